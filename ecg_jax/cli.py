"""Helpers shared by the `ecg-jax` subcommands (ecg_jax/commands; scripts/*.py call them)."""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn

from ecg_jax.errors import EcgJaxError, one_line
from ecg_jax.interrupts import (
    DEFAULT_PEER_TIMEOUT_S,
    JAX_HEARTBEAT_EXTRA_S,
    Interrupted,
    caused_by_signal,
    end_peer_watch,
    exit_interrupted,
    finish,
    install_signal_handlers,
    is_disk_full,
    raise_if_received,
    settle_with_peers,
    watch_peers,
)
from ecg_jax.process_settings import apply_for_command
from ecg_jax.quiet_logs import quiet_orbax

XLA_CACHE_ENV = "ECG_JAX_XLA_CACHE"
# XLA:CPU reads its thread-pool size from these (the first set wins), else counts the cores.
CPU_THREADS_ENV = ("PJRT_NPROC", "NPROC")


def configure_jax() -> None:
    """Persistent XLA compilation cache, so a resumed or repeated run skips compiling.

    Compiling a network's training step takes 10-30 s on a CPU; the cache makes
    the second time ~10x faster. $ECG_JAX_XLA_CACHE sets the folder ("off"
    disables it); default ~/.cache/ecg_jax/xla.
    """
    import jax

    path = os.environ.get(XLA_CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "ecg_jax", "xla"))
    if path.lower() in ("off", "none", "0", ""):
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def local_cpu_devices() -> int:
    """CPU devices this process will have: jax_num_cpu_devices, else XLA_FLAGS'
    --xla_force_host_platform_device_count, else 1. Read without starting the backend."""
    import re

    import jax

    configured = getattr(jax.config, "jax_num_cpu_devices", -1)
    if isinstance(configured, int) and configured > 0:
        return configured
    m = re.search(r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return int(m.group(1)) if m else 1


def cpu_thread_pool_size(cores: int, local_devices: int, processes: int) -> int | None:
    """The CPU thread-pool size that makes every layout of one mesh compute the same bits, or None
    when XLA's own choice already does.

    XLA:CPU sizes its intra-op (Eigen) pool max(cores, devices of this process), and Eigen's
    convolution/contraction blocking, hence the float rounding, depends on the pool size. Measured
    (U-Net smoke, 4 members, 2 epochs, 2 cores): 1 process x 4 fake devices (pool 4) and 2 processes
    x 2 (pool 2 each) differed by 1.65e-5 relative in the metrics; with both pools at 4 they are
    bit-identical. So a process gets max(cores, devices of the whole mesh): every split of the same
    mesh over processes then has the same pool. Only fake-device runs (or clusters with more devices
    than a host has cores) are changed; a host with more cores than the mesh has devices keeps XLA's
    default.
    """
    wanted = max(cores, local_devices * processes)
    return wanted if wanted > max(cores, local_devices) else None


def pin_cpu_thread_pool(num_processes: int | None) -> None:
    """Set $PJRT_NPROC per `cpu_thread_pool_size` before the backend starts, unless the user set
    $PJRT_NPROC or $NPROC (their choice wins; results then depend on it)."""
    if any(name in os.environ for name in CPU_THREADS_ENV):
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return
    size = cpu_thread_pool_size(len(os.sched_getaffinity(0)), local_cpu_devices(), num_processes or 1)
    if size is not None:
        os.environ[CPU_THREADS_ENV[0]] = str(size)


def define_distributed_flags() -> None:
    """`--coordinator_address --num_processes --process_id` for multi-process runs (jax.distributed)."""
    from absl import flags

    flags.DEFINE_string("coordinator_address", None,
                        "HOST:PORT of process 0 of a multi-process run; every process passes the same.")
    flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
    flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")
    flags.DEFINE_integer("peer_timeout", DEFAULT_PEER_TIMEOUT_S,
                         "Seconds without a heartbeat from another process of a multi-process run after which "
                         "every other process stops with one line naming it (raise it for slow or busy hosts).")


def initialize_distributed(coordinator_address: str | None, num_processes: int | None,
                           process_id: int | None, peer_timeout: float = DEFAULT_PEER_TIMEOUT_S) -> None:
    """Join a multi-process run before anything touches a device.

    With the flags, the run is exactly the one they describe. Without them,
    JAX's own cluster detection (SLURM, Open MPI, TPU pods, ...) decides;
    outside any cluster the run is a single process. CPU devices talk to other
    processes through gloo collectives. Every process then watches the others'
    heartbeats (`interrupts.watch_peers`): a lost one stops the rest within
    `peer_timeout` seconds, before JAX's own, later heartbeat check would abort them.
    """
    import jax

    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise EcgJaxError("multi-process runs need all of --coordinator_address, --num_processes and --process_id")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if not peer_timeout or peer_timeout <= 0:
        raise EcgJaxError(f"--peer_timeout must be a positive number of seconds, got {peer_timeout}")
    heartbeat = int(peer_timeout) + JAX_HEARTBEAT_EXTRA_S
    if all(given):
        if num_processes > 1:
            jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                       process_id=process_id, heartbeat_timeout_seconds=heartbeat)
            watch_peers(peer_timeout)
        return
    try:
        jax.distributed.initialize(heartbeat_timeout_seconds=heartbeat)
    except ValueError as e:  # no cluster detected: one process
        if "coordinator_address should be defined" not in str(e):
            raise EcgJaxError(f"jax.distributed could not start from the cluster's environment: {e}") from None
        return
    watch_peers(peer_timeout)


def configs_dir() -> str:
    """The folder of the built-in configs (the package `ecg_jax.configs`, configs/ in a clone)."""
    from ecg_jax import configs

    return os.path.dirname(os.path.abspath(configs.__file__))


def builtin_configs() -> list[str]:
    """Names of the built-in configs: the config files of `configs_dir()` (common.py is their shared part)."""
    return sorted(name[:-3] for name in os.listdir(configs_dir())
                  if name.endswith(".py") and name not in ("__init__.py", "common.py"))


def config_file(spec: str) -> str:
    """A `--config` value as ml_collections loads it: "NAME[:ARG]" of a built-in config (`dancer:smoke`)
    becomes its file's path; a file path (`configs/dancer.py:smoke`, `my.py`) stays as it is.

    A bare word is a built-in name unless a file of exactly that name exists."""
    import re

    name, colon, arg = spec.partition(":")
    if not re.fullmatch(r"[A-Za-z_]\w*", name) or os.path.isfile(name):
        return spec
    if name not in builtin_configs():
        raise FileNotFoundError(f"no config file {name!r} and no built-in config of that name "
                                f"(built in: {', '.join(builtin_configs())})")
    return os.path.join(configs_dir(), f"{name}.py") + colon + arg


def define_config_file(default: str | None, help_text: str, **kwargs):
    """`--config NAME|FILE[:ARG]` and its `--config.a.b=V` overrides (ml_collections).

    NAME is a built-in config (`config_file`). With a default, ml_collections
    loads it and applies the command line's overrides while defining the flag,
    before `app.run`: a misspelled field (`--config.data.revsion=final`) raised
    a traceback there. It is one line and exit 2 here, as for every other user
    error."""
    from absl import flags
    from ml_collections import config_flags

    default = None if default is None else config_file(default)
    try:
        holder = config_flags.DEFINE_config_file("config", default, help_text, **kwargs)
    except Exception as e:  # noqa: BLE001 -- whatever ml_collections raises: one line
        _exit_with_error(_default_config_error(default, e))
    flag = flags.FLAGS[holder.name]
    flag.parser = _NamedConfigParser(flag.parser)
    return holder


class _NamedConfigParser:
    """ml_collections' config file parser, taking built-in config names as well as paths."""

    def __init__(self, parser):
        self._parser = parser

    def parse(self, argument):
        return self._parser.parse(config_file(argument))

    def __getattr__(self, name):  # flag_type, syntactic_help, ...: ml_collections' own
        return getattr(self._parser, name)


def _default_config_error(path: str, e: Exception) -> str:
    """The unknown `--config.a.b` on the command line (with the closest valid field), else the error."""
    import importlib.util

    from ecg_jax.config_utils import field_paths

    file, _, arg = path.partition(":")
    try:
        spec = importlib.util.spec_from_file_location("_ecg_jax_default_config", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        known = field_paths(module.get_config(arg or None))
    except Exception:  # noqa: BLE001 -- the default file itself is broken: `e` says why
        known = []
    unknown = _unknown_override(known, sys.argv[1:], "config") if known else None
    return unknown or f"--config: {one_line(e, typed=False)}"


def _unknown_override(known: list[str], argv: list[str], name: str) -> str | None:
    """The first `--<name>.a.b=V` of `argv` whose field is not in `known`, as a one-line message."""
    import re

    from ecg_jax.config_utils import closest_field
    from ecg_jax.sweep_points import sweep_field_refusal

    for arg in argv:
        m = re.match(rf"^--?(no)?{re.escape(name)}\.([^=\[]+)(=|$)", arg)
        if m and m.group(2) not in known:
            refusal = sweep_field_refusal(m.group(2))   # e.g. sweep.train.batch_size: says why not
            if refusal:
                return refusal
            return (f"unknown config field {m.group(2)} in {arg}; did you mean "
                    f"--{name}.{closest_field(m.group(2), known)}?")
    return None


def _overrides_without_config_file() -> None:
    """`train.py --config.seeds=2` without `--config FILE`: absl's "Unknown command line flag" (two
    lines, exit 1) becomes one line naming what is missing."""
    import re

    from absl import flags

    if "config" not in flags.FLAGS or flags.FLAGS["config"].default is not None:
        return
    args = sys.argv[1:]
    if any(re.match(r"^--?config(=|$)", a) for a in args):
        return
    overrides = [a for a in args if re.match(r"^--?(no)?config\.", a)]
    if overrides:
        _exit_with_error(f"{overrides[0]} overrides a field of a config file: give --config FILE first "
                         "(a built-in name such as --config unet, or a path such as --config configs/unet.py)")


def run_main(main: Callable[[list[str]], None], distributed: bool = False) -> Callable[[list[str]], None]:
    """Wrap an absl `main`: the config's process-global settings (`process_settings`), quiet logs,
    compilation cache, multi-process start (with
    `distributed=True` and `define_distributed_flags()`), user errors as one line + exit 2.

    Errors of `--config FILE` and `--config.a.b=V` (config flags defined before
    this call) are user errors too, although absl meets them while parsing the
    flags, before `main`: see `_config_flag_errors_in_one_line`."""

    _overrides_without_config_file()
    _config_flag_errors_in_one_line()

    def wrapped(argv: list[str]) -> None:
        from absl import flags
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)  # no INFO chatter from jax/orbax
        install_signal_handlers()   # already there when started by ecg_jax.commands (before the imports)
        try:
            # Process-global settings belong to the entry point: made here, before anything starts JAX.
            apply_for_command(flags.FLAGS)
            configure_jax()
            quiet_orbax()
            if distributed:
                f = flags.FLAGS
                pin_cpu_thread_pool(f.num_processes)
                initialize_distributed(f.coordinator_address, f.num_processes, f.process_id, f.peer_timeout)
            main(argv)
            raise_if_received()   # a signal whose Interrupted a gc callback or a library swallowed
        except (Interrupted, KeyboardInterrupt) as e:
            exit_interrupted(e)   # the one line, then os._exit: no finalisation racing XLA's threads
        except EcgJaxError as e:
            if caused_by_signal(e) is not None:   # a signal that some code turned into an error
                exit_interrupted(caused_by_signal(e))
            _stop(f"error: {e}", 2)
        except SystemExit:
            try:
                raise_if_received()   # main's own sys.exit (export-programs) does not hide a signal either
            except Interrupted as e:
                exit_interrupted(e)
            finish()
            raise
        except Exception as e:
            if caused_by_signal(e) is not None:   # an import that wrapped it in an ImportError, ...
                exit_interrupted(caused_by_signal(e))
            if not is_disk_full(e):   # written where no caller names the folder: the file, at least
                settle_with_peers(e)
                _stop_multiprocess_with_traceback()
                finish()
                raise
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            _stop(f"error: no space left on the device{where}: {one_line(e, typed=False)}; "
                  "free some space and rerun", 2)
        finish()   # from here a signal is the line and exit 130/143 at once, not a raise into absl's exit

    return wrapped


def _stop_multiprocess_with_traceback() -> None:
    """An unexpected error in a multi-process run: its traceback, then exit at once (see `_stop`)."""
    import traceback

    import jax._src.distributed as distributed

    if distributed.global_state.client is None:
        end_peer_watch("failed")
        return
    traceback.print_exc()
    _stop("error: this process stopped on the error above; its peers stop too", 1)


def _stop(line: str, status: int) -> NoReturn:
    """Print the one line and exit. A process of a multi-process run tells its peers first and exits
    at once: a normal exit would wait in jax.distributed's shutdown for peers that may never come."""
    print(line, file=sys.stderr, flush=True)
    finish()
    end_peer_watch("failed")
    import jax._src.distributed as distributed

    if distributed.global_state.client is not None:
        sys.stdout.flush()
        os._exit(status)
    sys.exit(status)


def _exit_with_error(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def _config_flag_errors_in_one_line() -> None:
    """One line + exit 2 (as for any user error) for mistakes in config flags.

    absl parses the flags inside `app.run`, before `main`: ml_collections
    answers a misspelled `--config.trian.epochs=3` with a KeyError traceback,
    absl a bad value (`--config.train.epochs=abc`) or a bad `--config FILE:ARG`
    with a multi-line "FATAL Flags parsing error" and exit 1, and a missing
    config file surfaces as a traceback in `main`. The config flags' `parse`
    (absl calls it for each flag on the command line) is wrapped so that such
    an error prints "error: ..." naming the flag (for an unknown field, the
    closest valid one) and exits 2, as absl's own --help exits from `parse`.
    """
    from absl import flags
    from ml_collections.config_flags.config_flags import is_config_flag

    for name in list(flags.FLAGS):
        flag = flags.FLAGS[name]
        if is_config_flag(flag):
            _wrap_parse(flag, _config_file_error, after=_check_config_file)
            _wrap_override_flags(flag)   # already there if a default config file was loaded


def _wrap_parse(flag, describe: Callable, after: Callable | None = None) -> None:
    if getattr(flag, "_ecg_jax_one_line", False):
        return
    parse = flag.parse

    def one_line_parse(argument):
        try:
            parse(argument)
            if after is not None:
                after(flag)
        except Exception as e:  # noqa: BLE001 -- whatever absl or ml_collections raise: one line
            _exit_with_error(describe(flag, argument, e))

    flag.parse = one_line_parse
    flag._ecg_jax_one_line = True


def _check_config_file(flag) -> None:
    """ml_collections defers a config file that does not load (an error raised at first use); raise it
    now. Then wrap the `--config.a.b` flags its parse has just defined."""
    import ml_collections

    if flag.value is not None and not isinstance(flag.value, ml_collections.ConfigDict):
        try:
            flag.value.keys()
        except AttributeError:   # some other kind of config: nothing deferred
            pass
    _wrap_override_flags(flag)


def _wrap_override_flags(config_flag) -> None:
    from absl import flags

    for name in list(flags.FLAGS):
        if name.startswith(f"{config_flag.name}."):
            _wrap_parse(flags.FLAGS[name], _flag_error)


def _flag_error(flag, argument, e: Exception) -> str:
    """`--config.train.epochs=abc`: absl's "flag --config.train.epochs=abc: invalid literal ..." on one line."""
    message = one_line(e, typed=False)
    return message[len("flag "):] if message.startswith("flag --") else f"--{flag.name}={argument}: {message}"


def _config_file_error(flag, argument, e: Exception) -> str:
    """An unknown field in a `--config.a.b` override (naming the closest valid one), or what went wrong."""
    import ml_collections
    from absl import flags

    from ecg_jax.config_utils import field_paths

    try:
        config = flag.parser.parse(argument)
        argv = flags.FLAGS.read_flags_from_files(sys.argv, force_gnu=False)
    except Exception:  # noqa: BLE001 -- the file itself does not load: `e` says why
        config, argv = None, []
    if isinstance(config, ml_collections.ConfigDict):
        unknown = _unknown_override(field_paths(config), argv, flag.name)
        if unknown:
            return unknown
    if isinstance(e, OSError):   # its last line is the reason: "[Errno 2] No such file or directory: ..."
        return f"--{flag.name}={argument}: cannot load the config file ({_last_line(e)})"
    return _flag_error(flag, argument, e)


def _last_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__
