"""Every network's programs lower for GPU and TPU here (scripts/export_programs.py, jax.export).

The exporter runs in a subprocess with 8 fake CPU devices (XLA reads the flag when
it starts), 10 members per program, and what its JSON says is checked: both
platforms, every program, its arguments split over the 8 devices or replicated,
no host callback, no CPU-only custom call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ecg_jax.models import MODEL_NAMES, create_model
from ecg_jax.train.export_programs import custom_call_targets, problems_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ("init", "epoch_scan", "shuffle", "step_host", "eval_block")


def available_networks() -> list[str]:
    out = []
    for name in MODEL_NAMES:
        try:
            create_model(name)
        except ImportError:   # a final-revision network still being written
            continue
        out.append(name)
    return out


def run_exporter(out_dir, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "export_programs.py"),
                           "--platforms", "cuda,tpu", "--devices", "8", "--members", "10", "--out", str(out_dir),
                           *args], env=env, capture_output=True, text=True, timeout=1800)


def check_exported(out_dir, networks: list[str]) -> None:
    with open(os.path.join(out_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["failures"] == [] and summary["platforms"] == ["cuda", "tpu"]
    assert sorted(summary["networks"]) == sorted(networks)
    for name in networks:
        assert summary["networks"][name]["status"] == "exported", name
        for program in PROGRAMS:
            with open(os.path.join(out_dir, name, f"{program}.json")) as f:
                p = json.load(f)
            where = f"{name}/{program}"
            assert p["platforms"] == ["cuda", "tpu"], where
            assert p["nr_devices"] == 8 and p["mesh"] == {"members": 8}, where
            assert p["host_callback"] is False and p["cpu_only_custom_calls"] == [], where
            suffix = ".jax_exported" if p["artefact"] == "jax_exported" else ".stablehlo.mlirbc"
            assert os.path.getsize(os.path.join(out_dir, name, program + suffix)) == p["serialized_bytes"] > 0
            # 10 members padded to 16 (a multiple of 8 devices); member arguments split over the devices,
            # the data replicated.
            member_args = [a for a in p["in"] if a["sharding"] == "('members',)"]
            assert member_args and all(a["shape"][0] == 16 for a in member_args), where
            assert all(a["sharding"] in ("('members',)", "()") for a in p["out"]), where
            # "unused": jax.export drops an argument the program never reads: the shuffle reads only the
            # data's shape; the members' hyperparameters (MemberConsts.hyper) reach only the optimizer, so
            # the evaluation block drops them all and a step without weight decay drops that one
            allowed = ("('members',)", "()", "unused")
            assert all(a["sharding"] in allowed for a in p["in"]), where
            assert all(a["sharding"] == "('members',)" for a in p["out"]), where
        epoch = json.load(open(os.path.join(out_dir, name, "epoch_scan.json")))
        data = [a for a in epoch["in"] if a["sharding"] == "()"]
        assert [a["shape"] for a in data] == [[32, 64, 2], [3, 32, 64, 2]], name   # clean, noise: replicated


def test_export_one_network_for_gpu_and_tpu(tmp_path):
    result = run_exporter(tmp_path, "--networks", "unet")
    assert result.returncode == 0, result.stderr[-3000:]
    check_exported(tmp_path, ["unet"])


@pytest.mark.slow
def test_export_every_available_network_for_gpu_and_tpu(tmp_path):
    networks = available_networks()
    result = run_exporter(tmp_path, "--networks", ",".join(networks))
    assert result.returncode == 0, result.stderr[-3000:]
    check_exported(tmp_path, networks)


def test_an_unavailable_network_fails_unless_skipped(tmp_path, monkeypatch):
    """A network whose module does not import: a failure, or 'not available' with --skip_unavailable."""
    import ecg_jax.models as models
    from ecg_jax.train.export_programs import ExportOptions, export_all

    monkeypatch.setitem(models._FINAL_CLASSES, "drsn", ("ecg_jax.models.no_such_module", "DRSN", {}))
    lines = []
    failures = export_all(ExportOptions(networks=("drsn",), devices=1), str(tmp_path / "a"), log=lines.append)
    assert len(failures) == 1 and failures[0].startswith("drsn: not available (No module named")
    failures = export_all(ExportOptions(networks=("drsn",), devices=1, skip_unavailable=True),
                          str(tmp_path / "b"), log=lines.append)
    assert failures == [] and lines[-1].endswith("- skipped")
    summary = json.load(open(tmp_path / "b" / "summary.json"))
    assert summary["networks"]["drsn"]["status"] == "not available"


def test_custom_calls_and_host_callbacks_are_found():
    text = ('%0 = stablehlo.custom_call @lapack_sgetrf_ffi(%arg0) : ...\n'
            '%1 = "stablehlo.custom_call"(%0) {call_target_name = "xla_ffi_python_gpu_callback"} : ...\n'
            '%2 = stablehlo.custom_call @Sharding(%1) : ...')
    targets = custom_call_targets(text)
    assert targets == ["Sharding", "lapack_sgetrf_ffi", "xla_ffi_python_gpu_callback"]
    summary = {"platforms": ["cuda", "tpu"], "custom_calls": targets, "host_callback": True,
               "cpu_only_custom_calls": ["lapack_sgetrf_ffi"]}
    problems = problems_of("net", "step", summary)
    assert len(problems) == 2 and "host callback" in problems[0] and "lapack_sgetrf_ffi" in problems[1]
    assert problems_of("net", "step", {**summary, "platforms": ["cpu"], "host_callback": False}) == []


def test_a_real_cpu_only_custom_call_is_reported():
    """LAPACK is what XLA:CPU calls for a matrix inverse: lowered for the CPU, the exporter must see it."""
    import jax
    import jax.numpy as jnp

    from ecg_jax.train.export_programs import export_program

    mesh = jax.sharding.Mesh(jax.devices()[:1], ("members",))
    _, summary = export_program(jax.jit(jnp.linalg.inv), (jax.ShapeDtypeStruct((3, 3), jnp.float32),),
                                ("cpu",), mesh)
    assert any(t.startswith("lapack_") for t in summary["cpu_only_custom_calls"]), summary["custom_calls"]
    assert problems_of("inv", "p", {**summary, "platforms": ["cuda"]})   # the same call in a GPU program
    _, summary = export_program(jax.jit(jnp.linalg.inv), (jax.ShapeDtypeStruct((3, 3), jnp.float32),),
                                ("cuda",), mesh)
    assert summary["cpu_only_custom_calls"] == []


# ------------------------------------------------------------------ issue 30: atomic files, no silent overwrite

@pytest.fixture
def fake_lowering(monkeypatch):
    """export_all with its lowering replaced by a fixed blob: the file handling alone, in a second."""
    from ecg_jax.train import export_programs as ep

    summary = {"artefact": next(iter(ep.ARTEFACT_SUFFIXES)), "custom_calls": [], "host_callback": False,
               "nr_devices": 1}
    monkeypatch.setattr(ep, "programs_of", lambda name, o, mesh: ({"step": (None, None)}, {}))
    monkeypatch.setattr(ep, "export_program", lambda fn, args, platforms, mesh: (b"x" * 100, dict(summary)))
    monkeypatch.setattr(ep, "problems_of", lambda name, program, s: [])
    return ep


def test_an_earlier_export_is_not_overwritten_without_the_flag(tmp_path, fake_lowering):
    from ecg_jax.errors import ConfigError

    ep = fake_lowering
    options = ep.ExportOptions(networks=("unet",), devices=1)
    assert ep.export_all(options, str(tmp_path), log=lambda line: None) == []
    summary = (tmp_path / "summary.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds exported programs.*--overwrite"):
        ep.export_all(options, str(tmp_path), log=lambda line: None)
    assert (tmp_path / "summary.json").read_bytes() == summary
    assert ep.export_all(options, str(tmp_path), log=lambda line: None, overwrite=True) == []


def test_an_interrupted_export_leaves_no_partial_file(tmp_path, fake_lowering, monkeypatch):
    from ecg_jax import atomic, interrupts

    ep = fake_lowering

    def interrupted(src, dst):   # Ctrl-C just before the first file would be put in place
        raise interrupts.Interrupted(2)

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(interrupts.Interrupted):
        ep.export_all(ep.ExportOptions(networks=("unet",), devices=1), str(tmp_path), log=lambda line: None)
    assert [n for _, _, names in os.walk(tmp_path) for n in names] == []   # no blob, no temporary file
