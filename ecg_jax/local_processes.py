"""Several local processes of one command, as a multi-host run would start them.

Used to test and measure multi-process behaviour on one machine: each process
gets `--coordinator_address --num_processes --process_id` (jax.distributed over
loopback) and `devices` fake CPU devices. A process that fails leaves its peers
waiting for it (until JAX's heartbeat gives up, minutes later), so `wait`
stops them all at the first failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from typing import Sequence


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cmd: Sequence[str], processes: int, devices: int, env: dict | None = None,
           stdout=subprocess.PIPE) -> list[subprocess.Popen]:
    """Start `processes` copies of `cmd`, each with `devices` fake CPU devices."""
    env = dict(os.environ if env is None else env, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    cmds = [list(cmd)]
    if processes > 1:
        port = free_port()
        cmds = [list(cmd) + [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}",
                             f"--process_id={i}"] for i in range(processes)]
    procs = []
    for c in cmds:
        # Output goes to temporary files, not pipes: a chatty process never blocks on a full pipe.
        out = tempfile.TemporaryFile("w+") if stdout == subprocess.PIPE else stdout
        err = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen(c, env=env, stdout=out, stderr=err, text=True)
        proc.output_files = (out if stdout == subprocess.PIPE else None, err)
        procs.append(proc)
    return procs


def wait(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of every process; all are killed at the first failure or the timeout."""
    deadline = time.time() + timeout
    try:
        while any(p.poll() is None for p in procs) and time.time() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = []
    for p in procs:
        p.wait()
        texts = []
        for f in p.output_files:
            if f is None:
                texts.append("")
                continue
            f.seek(0)
            texts.append(f.read())
            f.close()
        results.append((p.returncode, texts[0], texts[1]))
    return results
