"""Lower every network's compiled programs for GPUs and TPUs on any machine, with `jax.export`.

For each network this builds what its training builds (`Experiment`,
`TrainProgram` with both loops, `EvalProgram`) for M members over a mesh of N
devices (fake CPU devices here: `jax_num_cpu_devices`), and exports each
jitted program for the requested platforms in one multi-platform lowering:

  init         seeds -> initial state
  epoch_scan   the scanned epoch (train.loop=scan, the default)
  shuffle      the host loop's per-epoch shuffle (train.loop=host)
  step_host    the host loop's step
  eval_block   one block of test windows scored (evaluation.py)

Into OUT/<network>/ go `<program>.jax_exported` (`Exported.serialize()`, to be
`jax.export.deserialize`d and called on a machine of that platform; where the
optional `flatbuffers` package is missing, the module's portable StableHLO
bytecode `<program>.stablehlo.mlirbc` instead) and `<program>.json` (platforms, argument shapes and
shardings, the custom calls in the module, whether a host callback is present). OUT/summary.json lists
every network. A lowering failure, a host callback, or a CPU-only custom call
in a GPU/TPU program is a failure: one line each, and a non-zero exit.

Shapes are small (window 64, batch 8) and do not change what is lowered:
the same functions, lifted, sharded and differentiated the same way.

JAX, the networks and the training code are imported inside the functions
(lazy): `use_cpu_devices` must set the CPU device count before anything can
start JAX's backends.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from typing import Sequence

from ecg_jax.atomic import atomic_path, write_text_atomic
from ecg_jax.errors import ConfigError
from ecg_jax.interrupts import disk_full_as_one_line

PLATFORMS = ("cuda", "rocm", "tpu", "cpu")
# Custom-call targets that only a CPU runtime provides (LAPACK and DUCC kernels,
# the CPU flavours of host callbacks).
_CPU_ONLY_TARGET = re.compile(r"(^lapack_|^ducc_|cpu)", re.IGNORECASE)
# Host callbacks (jax.pure_callback / io_callback / debug.print): a round-trip to Python inside the program.
_HOST_CALLBACK_TARGET = re.compile(r"callback", re.IGNORECASE)
# `Exported.serialize()` (needs `pip install flatbuffers`; load with jax.export.deserialize), else the
# module's portable StableHLO bytecode (compile with the target's XLA; shardings in the .json).
ARTEFACT_SUFFIXES = {"jax_exported": ".jax_exported", "stablehlo": ".stablehlo.mlirbc"}
# An argument the program never reads (e.g. the data of `shuffle`, which needs its shape only): jax.export
# drops it from the module.
UNUSED = "unused"
_CUSTOM_CALL = re.compile(r"stablehlo\.custom_call\s+@([A-Za-z0-9_.$-]+)|call_target_name\s*=\s*\"([^\"]+)\"")


@dataclasses.dataclass
class ExportOptions:
    platforms: tuple[str, ...] = ("cuda", "tpu")
    devices: int = 8
    members: int = 10
    networks: tuple[str, ...] = ()        # () -> every registered network
    skip_unavailable: bool = False
    window: int = 64
    batch_size: int = 8
    train_windows: int = 32
    test_windows: int = 16


def check_options(o: ExportOptions) -> None:
    from ecg_jax.models import MODEL_NAMES

    unknown = [p for p in o.platforms if p not in PLATFORMS]
    if not o.platforms or unknown:
        raise ConfigError(f"unknown platform(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(PLATFORMS)}")
    bad = [n for n in o.networks if n not in MODEL_NAMES]
    if bad:
        raise ConfigError(f"unknown network(s) {', '.join(bad)}; valid: {', '.join(MODEL_NAMES)}")
    for name in ("devices", "members", "batch_size", "train_windows", "test_windows"):
        if getattr(o, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(o, name)}")
    if o.window % 16:
        raise ConfigError(f"--window must be a multiple of 16, got {o.window}")
    if o.batch_size > o.train_windows:
        raise ConfigError(f"--batch-size {o.batch_size} is larger than --train-windows {o.train_windows}")


def use_cpu_devices(n: int) -> None:
    """Ask for `n` CPU devices before JAX starts (fake devices standing in for the accelerators)."""
    import jax
    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_num_cpu_devices", n)
    if jax.device_count() < n:
        raise ConfigError(f"--devices {n} but JAX has {jax.device_count()} device(s); "
                          f"export XLA_FLAGS=--xla_force_host_platform_device_count={n} before starting")


def network_config(name: str, o: ExportOptions):
    """`name`'s training config (its revision's), shrunk to M members of one emb dataset and small shapes."""
    from ecg_jax.config_utils import resolve_config
    from ecg_jax.configs import common, final
    from ecg_jax.models import PAPER_MODEL_NAMES

    c = common.network_config(name, None) if name in PAPER_MODEL_NAMES else final.get_config(name)
    c.seeds, c.noise_types, c.snr_levels = o.members, ("emb",), (-4,)
    c.data.window, c.train.batch_size = o.window, o.batch_size
    c.data.n_windows = o.train_windows + o.test_windows
    c.data.train_fraction = o.train_windows / c.data.n_windows
    return resolve_config(c)


def programs_of(name: str, o: ExportOptions, mesh) -> dict:
    """program name -> (jitted function, abstract arguments), as `name`'s training builds them."""
    import jax
    import jax.numpy as jnp

    from ecg_jax.train.device_data import SplitArrays, abstract_member_consts
    from ecg_jax.train.experiment import Experiment
    from ecg_jax.train.program import TrainProgram
    from ecg_jax.train.scoring import EVAL_BLOCK, EvalProgram

    config = network_config(name, o)
    experiment = dataclasses.replace(Experiment.from_config(config, o.train_windows), mesh=mesh)
    s = experiment.settings
    n = experiment.padded(experiment.members)          # the program's member count (padded to the mesh)
    segments = 3                                       # emb: the bw, em and ma segment sets
    state = experiment.abstract_state(n)
    consts = abstract_member_consts(n, segments, s.channels, experiment.n_decays)   # as training passes them

    def shape(*dims, dtype=jnp.float32):
        return jax.ShapeDtypeStruct(dims, dtype)

    train = SplitArrays(shape(o.train_windows, s.window, s.channels),
                        shape(segments, o.train_windows, s.window, s.channels))
    test = SplitArrays(shape(o.test_windows, s.window, s.channels),
                       shape(segments, o.test_windows, s.window, s.channels))
    scan = TrainProgram(experiment.model, s, mesh, "scan", 1)
    host = TrainProgram(experiment.model, s, mesh, "host", 1)
    evaluator = EvalProgram.for_experiment(experiment, max_shapes=1)
    i32 = jnp.int32
    # The jitted programs are the objects training calls (TrainProgram/EvalProgram attributes).
    return {
        "init": (scan._init, (shape(n, dtype=i32),)),
        "epoch_scan": (scan._epoch, (state, consts, train)),
        "shuffle": (host._shuffle, (state, train)),
        "step_host": (host._step, (state, consts, shape(n, s.steps_per_epoch, s.batch_size, dtype=i32), train,
                                   shape(dtype=i32))),
        "eval_block": (evaluator._block, (state.params, state.batch_stats, consts, test,
                                          shape(EVAL_BLOCK, dtype=i32), shape(EVAL_BLOCK))),
    }, {"members": len(experiment.members), "members_in_program": n, "devices": experiment.n_devices,
        "window": s.window, "batch_size": s.batch_size, "steps_per_epoch": s.steps_per_epoch,
        "loop_default": experiment.loop, "precision": s.precision, "revision": config.data.revision,
        "n_params": experiment.n_params()}


def custom_call_targets(mlir_text: str) -> list[str]:
    return sorted({a or b for a, b in _CUSTOM_CALL.findall(mlir_text)})


def _describe(aval, sharding) -> dict:
    spec = getattr(sharding, "spec", None)
    text = UNUSED if sharding is None else str(sharding) if spec is None else str(tuple(spec))
    return {"shape": list(aval.shape), "dtype": str(aval.dtype), "sharding": text}


def export_program(fn, args, platforms: Sequence[str], mesh):
    """(serialized bytes, summary dict) of `fn(*args)` lowered for `platforms`; shardings over `mesh`."""
    from jax import export

    exported = export.export(fn, platforms=tuple(platforms))(*args)
    text = exported.mlir_module()
    targets = custom_call_targets(text)
    summary = {
        "platforms": list(exported.platforms),
        "nr_devices": exported.nr_devices,
        "mesh": {str(k): int(v) for k, v in mesh.shape.items()},
        # Per flattened argument: () is replicated, ('members',) split over the mesh's member axis.
        "in": [_describe(a, s) for a, s in zip(exported.in_avals, exported.in_shardings_jax(mesh), strict=True)],
        "out": [_describe(a, s) for a, s in zip(exported.out_avals, exported.out_shardings_jax(mesh), strict=True)],
        "custom_calls": targets,
        "host_callback": any(_HOST_CALLBACK_TARGET.search(t) for t in targets),
        "cpu_only_custom_calls": [t for t in targets if _CPU_ONLY_TARGET.search(t)],
        "ordered_effects": [str(e) for e in exported.ordered_effects],
        "mlir_bytes": len(text),
    }
    try:
        blob, summary["artefact"] = exported.serialize(), "jax_exported"
    except ImportError:   # Exported.serialize needs the optional `flatbuffers` package
        blob, summary["artefact"] = exported.mlir_module_serialized, "stablehlo"
    return blob, summary


def problems_of(network: str, program: str, summary: dict) -> list[str]:
    out = []
    if summary["host_callback"]:
        out.append(f"{network}/{program}: host callback in the program ({', '.join(summary['custom_calls'])})")
    accelerators = [p for p in summary["platforms"] if p != "cpu"]
    if accelerators and summary["cpu_only_custom_calls"]:
        out.append(f"{network}/{program}: CPU-only custom call(s) {', '.join(summary['cpu_only_custom_calls'])} "
                   f"in a {'/'.join(accelerators)} program")
    return out


def check_no_earlier_export(out_dir: str, names, overwrite: bool) -> None:
    """Refuse, before any work, an `out_dir` that holds an earlier export (its summary.json, or a
    network's folder with files in it) unless `overwrite`: nothing is silently rewritten."""
    if overwrite:
        return
    held = [os.path.join(out_dir, "summary.json")] if os.path.exists(os.path.join(out_dir, "summary.json")) else []
    held += [os.path.join(out_dir, n) for n in names
             if os.path.isdir(os.path.join(out_dir, n)) and os.listdir(os.path.join(out_dir, n))]
    if held:
        raise ConfigError(f"{out_dir} already holds exported programs ({', '.join(held[:3])}"
                          f"{', ...' if len(held) > 3 else ''}); refusing to overwrite them: pass --overwrite "
                          "to replace them, or choose another --out")


def export_all(o: ExportOptions, out_dir: str, log=print, overwrite: bool = False) -> list[str]:
    """Export every program of every network into `out_dir`; the failures, one line each.

    Every file is written atomically (`ecg_jax.atomic`): an interrupted export leaves whole files only.
    An earlier export in `out_dir` is refused unless `overwrite` (`check_no_earlier_export`)."""
    import jax

    from ecg_jax.models import MODEL_NAMES, create_model
    from ecg_jax.train import sharding

    check_options(o)
    check_no_earlier_export(out_dir, o.networks or MODEL_NAMES, overwrite)
    use_cpu_devices(o.devices)
    mesh = sharding.member_mesh(jax.devices()[:o.devices])
    os.makedirs(out_dir, exist_ok=True)
    failures, networks = [], {}
    for name in o.networks or MODEL_NAMES:
        try:
            create_model(name)
        except ImportError as e:     # a network whose module is not written (or not importable) yet
            networks[name] = {"status": "not available", "reason": str(e).splitlines()[0]}
            line = f"{name}: not available ({networks[name]['reason']})"
            log(line + (" - skipped" if o.skip_unavailable else ""))
            if not o.skip_unavailable:
                failures.append(line)
            continue
        tic = time.perf_counter()
        entry = {"status": "exported", "programs": {}}
        try:
            programs, entry["settings"] = programs_of(name, o, mesh)
        except Exception as e:  # noqa: BLE001 - reported as this network's failure, the others go on
            failures.append(f"{name}: cannot build its programs: {type(e).__name__}: {_first_line(e)}")
            networks[name] = {"status": "failed", "reason": failures[-1]}
            log(failures[-1])
            continue
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        for program, (fn, args) in programs.items():
            try:
                blob, summary = export_program(fn, args, o.platforms, mesh)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{name}/{program}: lowering for {','.join(o.platforms)} failed: "
                                f"{type(e).__name__}: {_first_line(e)}")
                entry["status"] = "failed"
                log(failures[-1])
                continue
            suffix = ARTEFACT_SUFFIXES[summary["artefact"]]
            path = os.path.join(folder, f"{program}{suffix}")
            with disk_full_as_one_line(folder, os.path.basename(path)), atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    f.write(blob)
            summary["serialized_bytes"] = len(blob)
            write_text_atomic(os.path.join(folder, f"{program}.json"),
                              json.dumps({"network": name, "program": program, **summary}, indent=1))
            problems = problems_of(name, program, summary)
            failures += problems
            if problems:
                entry["status"] = "failed"
            entry["programs"][program] = {k: summary[k] for k in ("custom_calls", "host_callback", "nr_devices")}
        entry["seconds"] = round(time.perf_counter() - tic, 1)
        networks[name] = entry
        log(f"{name}: {entry['status']} {len(entry['programs'])} programs for {','.join(o.platforms)} "
            f"({entry['seconds']:.0f}s)")
    write_text_atomic(os.path.join(out_dir, "summary.json"), json.dumps(
        {"platforms": list(o.platforms), "devices": o.devices, "members": o.members,
         "jax": jax.__version__, "networks": networks, "failures": failures}, indent=1))
    return failures


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "(no message)"
