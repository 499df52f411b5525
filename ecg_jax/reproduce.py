"""The whole benchmark in one call: baselines, every network, tables and figures (scripts/reproduce.py).

  ECG_JAX_DATA=../shared/data python scripts/reproduce.py --config configs/paper.py --workdir R
  ECG_JAX_DATA=../shared/data python scripts/reproduce.py --config configs/paper.py:smoke --workdir /tmp/repro
  python scripts/reproduce.py --config configs/paper.py --workdir R --config.networks=unet,dancer
  ecg-jax reproduce --config final:all --workdir R --extra_models=/abs/my_net.py:MyNet   # + your network

Your own networks (ecg_jax/models/external.py) join a run as `extra_models` (specs PATH.py:Class,
module:Class or an entry point name; `reproduce(..., extra_models=...)`, the command's --extra_models),
or as entries of config.networks that are specs rather than experiment ids. Each is an experiment of
its own, R/<its method id>/, trained with the run's shared fields and its constructor's defaults, its
rows named by its class in the tables and figures. Each is checked against the network contract before
anything is written, and on a rerun against the source its workdir recorded.

Stages, each logged on stderr with its wall time:
  data        prepare (or load from the cache) the windows once; states the source
  baselines   FFT and DWT on every dataset -> R/baselines/results.jsonl
  <network>   one experiment per entry of config.networks -> R/<experiment>/
              (train_and_evaluate: checkpoints, metrics.jsonl, results.jsonl, examples.npz)
  tables      R/tables/tables.html, tables.md, runs.csv
  figures     R/tables/snr_curves.{png,svg}; example_<noise>_<snr>dB.{png,svg} (one test
              window: clean, noisy, FFT, DWT and the first seed of every main-table network)
              and example_<noise>_<snr>dB_ablation.{png,svg} (the CIADNet ablation variants)

Resumable: run the same command again after an interruption. An experiment
whose workdir holds the same config and a result row for every member is
skipped ("done, skipping"); an unfinished one resumes from its last checkpoint
inside train_and_evaluate. Tables and figures are always rebuilt, from the rows
of the current grid only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time

import jax
import ml_collections
import numpy as np

from ecg_jax import interrupts
from ecg_jax.atomic import write_text_atomic
from ecg_jax.baselines import denoise_like_row, score_baselines_on_grid
from ecg_jax.config_utils import (
    NOT_AFFECTING_RESULTS,
    as_list,
    config_differences,
    config_to_json,
    read_json_file,
    resolve_config,
    save_config,
    with_defaults,
)
from ecg_jax.data import data_card, prepare_data, write_data_card
from ecg_jax.errors import CheckpointError, ConfigError
from ecg_jax.models import check_model, create_model, is_builtin, method_id_of
from ecg_jax.models.external import GROUP as ENTRY_POINT_GROUP
from ecg_jax.models.external import check_recorded_source
from ecg_jax.results import (
    ABLATION_DISPLAY_NAMES,
    ABLATION_METHODS,
    MAIN_TABLE_METHODS,
    RESULTS_FILENAME,
    display_name,
    key_of,
    read_rows,
    replace_rows,
    run_key,
)
from ecg_jax.train.experiment import method_id
from ecg_jax.train.loop import train_and_evaluate
from ecg_jax.train.members import members_of
from ecg_jax.workdir import WorkdirLock, pin_data_source

# The built-in configs (the package ecg_jax.configs: configs/ of a clone, linked in).
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
BASELINE_METHODS = ("fft", "dwt")
BASELINES_DIR = "baselines"
TABLES_DIR = "tables"
# The paper config's own fields; every other field of it (data, noise_types,
# snr_levels, seeds, train, baselines, ...) is shared by all experiments.
PAPER_ONLY_FIELDS = ("networks", "experiments", "experiment_noise_types", "baselines_enabled")
EXAMPLE_SNR_DB = -4.0  # the protocol's hardest input SNR: where denoisers differ most
EXAMPLE_NOISE_TYPE = "emb"


def log(msg: str) -> None:
    if jax.process_index() == 0:
        print(f"[reproduce] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ configs

def _load_config_file(spec: str) -> ml_collections.ConfigDict:
    """`get_config(arg)` of "file.py[:arg]" in configs/ (as config_flags would load it)."""
    filename, _, arg = spec.partition(":")
    path = os.path.join(CONFIGS_DIR, filename)
    if not os.path.isfile(path):
        raise ConfigError(f"network config file {path} does not exist (from experiment entry {spec!r})")
    module_spec = importlib.util.spec_from_file_location(f"_reproduce_{filename[:-3]}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    try:
        return module.get_config(arg or None)
    except ValueError as e:  # the config files' own argument check
        raise ConfigError(f"{spec}: {e}") from None


def _is_network_spec(entry: str, known: list[str]) -> bool:
    """An entry of config.networks naming your own network rather than an experiment: PATH.py:Class,
    module:Class, or the name of an installed `ecg_jax.models` entry point."""
    if entry in known or is_builtin(entry):
        return False
    if ":" in entry:
        return True
    import importlib.metadata

    return any(ep.name == entry for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def experiment_ids(paper: ml_collections.ConfigDict) -> list[str]:
    """The experiments to run, validated against the paper config's `experiments` map (entries that
    are specs of your own networks are `external_networks`')."""
    known = list(paper.experiments.keys())
    ids = [str(x) for x in as_list(paper.networks) if not _is_network_spec(str(x), known)]
    for x in ids:
        if x not in known:
            raise ConfigError(f"unknown experiment {x!r} in config.networks; valid: {', '.join(known)}")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"config.networks has duplicates: {', '.join(ids)}")
    for x in paper.get("experiment_noise_types", {}).keys():
        if x not in known:
            raise ConfigError(f"unknown experiment {x!r} in config.experiment_noise_types; valid: {', '.join(known)}")
    if not ids and not paper.baselines_enabled and not external_networks(paper):
        raise ConfigError("nothing to do: config.networks is empty and baselines_enabled is False")
    return ids


def external_networks(paper: ml_collections.ConfigDict, extra_models=()) -> dict[str, str]:
    """{experiment id: spec} of your own networks in a run: the entries of config.networks that are specs,
    then `extra_models`. The id is the network's method id (its class name in lower case); one that
    another experiment of the run has already is refused, since rows are keyed by it."""
    known = list(paper.experiments.keys())
    specs = [str(x) for x in as_list(paper.networks) if _is_network_spec(str(x), known)]
    specs += [str(x) for x in as_list(extra_models)]
    taken = {x: f"experiment {x}" for x in as_list(paper.networks) if str(x) in known}
    out: dict[str, str] = {}
    for spec in specs:
        if is_builtin(spec):
            raise ConfigError(f"extra model {spec!r} is a built-in network: add its experiment to config.networks "
                              f"instead (experiments: {', '.join(known)})")
        experiment = method_id_of(spec)
        if experiment in taken or experiment in known:
            raise ConfigError(f"your network {spec!r} would be experiment {experiment!r}, which "
                              f"{taken.get(experiment, 'an experiment of the config')} already is; rename its class")
        taken[experiment] = f"network {spec!r}"
        out[experiment] = spec
    return out


def _take_shared_fields(config: ml_collections.ConfigDict, paper: ml_collections.ConfigDict,
                        experiment: str) -> None:
    """Every field the run shares (data, train, seeds, grid...) from the paper config, copied, into `config`."""
    for name in paper.keys():
        if name not in PAPER_ONLY_FIELDS:
            value = paper[name]
            config[name] = ml_collections.ConfigDict(value.to_dict()) \
                if isinstance(value, ml_collections.ConfigDict) else value
    config.experiment = experiment


def external_experiment_config(paper: ml_collections.ConfigDict, experiment: str, spec: str
                               ) -> ml_collections.ConfigDict:
    """The config of your own network's experiment: the run's shared fields, the network's default options."""
    from ecg_jax.configs import common

    config = common.network_config(spec, None)
    _take_shared_fields(config, paper, experiment)
    return resolve_config(config)


def check_external_networks(paper: ml_collections.ConfigDict, networks: dict[str, str]) -> None:
    """Every network of your own against the contract, before the run writes anything (one line each)."""
    for spec in networks.values():
        check_model(spec, create_model(spec), int(paper.data.window))


def experiment_config(paper: ml_collections.ConfigDict, experiment: str) -> ml_collections.ConfigDict:
    """The network's own config file for model/model_kwargs, the paper config for all shared fields."""
    config = _load_config_file(paper.experiments[experiment])
    _take_shared_fields(config, paper, experiment)
    # A grid of its own (configs/final.py:all: DANCE's variants at emb only).
    own_noise_types = paper.get("experiment_noise_types", {}).get(experiment)
    if own_noise_types:
        config.noise_types = tuple(as_list(own_noise_types))
    if method_id(config) != experiment:
        # Rows are keyed by method id; an experiment under another id would
        # silently merge with (or hide behind) a different table row.
        raise ConfigError(f"experiment {experiment!r} ({paper.experiments[experiment]}) trains "
                          f"method {method_id(config)!r}; the experiment id must be the method id")
    return resolve_config(config)


def _same_config(config: ml_collections.ConfigDict, path: str) -> bool:
    if not os.path.isfile(path):
        return False
    saved = with_defaults(read_json_file(path))   # a workdir from before a field existed
    if config.data.source == "auto" and saved.get("data", {}).get("source") != "auto":
        # A training workdir saves data.source "auto" as the source it used
        # (workdir.pin_data_source): compare like with like.
        config = pin_data_source(config.copy_and_resolve_references(), os.path.dirname(path))
    return not config_differences(saved, json.loads(config_to_json(config)), NOT_AFFECTING_RESULTS)


def baseline_config(paper: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The fields the FFT/DWT rows depend on: a change of networks or training keeps them valid."""
    return ml_collections.ConfigDict({name: paper[name] for name in ("data", "noise_types", "snr_levels",
                                                                      "baselines")})


# ------------------------------------------------------------------ results bookkeeping

def expected_network_keys(config: ml_collections.ConfigDict, source: str) -> set[tuple]:
    """One row key per member (seed x dataset) of a resolved experiment config."""
    return {key_of(method_id(config), m.dataset.noise_type, m.dataset.snr_db, m.seed, config.data.split, source,
                   config.data.revision) for m in members_of(config)}


def baseline_methods(paper: ml_collections.ConfigDict) -> tuple[str, ...]:
    return tuple(as_list(paper.baselines.get("methods", BASELINE_METHODS)))


def expected_baseline_keys(paper: ml_collections.ConfigDict, source: str) -> set[tuple]:
    return {key_of(m, nt, snr, None, paper.data.split, source, paper.data.revision)
            for m in baseline_methods(paper) for nt in paper.noise_types for snr in paper.snr_levels}


def _finished_rows(workdir: str, expected: set[tuple], epochs: int | None = None) -> dict[tuple, dict]:
    """The rows of workdir/results.jsonl that belong to `expected` (and were trained for `epochs`)."""
    path = os.path.join(workdir, RESULTS_FILENAME)
    if not os.path.isfile(path):
        return {}
    return {run_key(r): r for r in read_rows(path)
            if run_key(r) in expected and (epochs is None or r.get("epochs") == epochs)}


# ------------------------------------------------------------------ stages

def run_baselines_stage(paper: ml_collections.ConfigDict, workdir: str, source: str) -> list[dict]:
    """FFT and DWT rows of every dataset, computed unless workdir already holds them for this config.

    Holds the workdir's lock, as training holds each network's: two `reproduce` on one --workdir once
    both wrote the baseline rows (16 where 8 belong); the second now stops with one line naming the
    first. The rows are written with `replace_rows`, so a row of the same key is never there twice."""
    os.makedirs(workdir, exist_ok=True)
    with WorkdirLock(workdir):
        return _run_baselines_stage(paper, workdir, source)


def _run_baselines_stage(paper: ml_collections.ConfigDict, workdir: str, source: str) -> list[dict]:
    expected = expected_baseline_keys(paper, source)
    config = baseline_config(paper)
    config_path = os.path.join(workdir, "config.json")
    done = _finished_rows(workdir, expected) if _same_config(config, config_path) else {}
    if len(done) == len(expected):
        log(f"baselines: done, skipping ({len(done)} rows in {workdir})")
        return list(done.values())
    # Deterministic and cheap: recompute from scratch rather than merge with
    # rows of another config.
    results_path = os.path.join(workdir, RESULTS_FILENAME)
    if os.path.exists(results_path):
        os.remove(results_path)
    prepared = prepare_data(config)
    os.makedirs(workdir, exist_ok=True)
    write_data_card(data_card(prepared, config), workdir)
    rows = score_baselines_on_grid(config, prepared, baseline_methods(paper))
    replace_rows(results_path, rows)
    save_config(config, config_path)
    log(f"baselines: {len(rows)} rows -> {results_path}")
    return rows


def run_experiment_stage(paper: ml_collections.ConfigDict, experiment: str, workdir: str,
                         source: str, spec: str | None = None, allow_changed_model_source: bool = False
                         ) -> list[dict]:
    """Train and evaluate one network experiment unless its workdir already holds every result.
    `spec`: your own network's (external_networks); its workdir's recorded source is checked first,
    so finished rows of a file that has changed since are not taken as its results."""
    if spec is None:
        config = experiment_config(paper, experiment)
    else:
        config = external_experiment_config(paper, experiment, spec)
        check_recorded_source(spec, workdir, allow_changed_model_source)
    expected = expected_network_keys(config, source)
    done = (_finished_rows(workdir, expected, epochs=int(config.train.epochs))
            if _same_config(config, os.path.join(workdir, "config.json")) else {})
    if len(done) == len(expected):
        log(f"{experiment}: done, skipping ({len(done)} runs in {workdir})")
        return list(done.values())
    state = "resuming" if os.path.isdir(os.path.join(workdir, "checkpoints")) else "training"
    log(f"{experiment}: {state} {len(expected)} members ({config.model}, "
        f"{json.dumps(config.model_kwargs.to_dict())}) -> {workdir}")
    try:
        rows = train_and_evaluate(config, workdir, allow_changed_model_source=allow_changed_model_source)
    except CheckpointError as e:
        raise CheckpointError(f"experiment {experiment}: {e} (reproduce.py: delete {workdir} to retrain "
                              f"this experiment with the current config, or use a fresh --workdir)") from None
    return [r for r in rows if run_key(r) in expected]


# ------------------------------------------------------------------ figures

def _example_dataset(paper: ml_collections.ConfigDict) -> tuple[str, float]:
    noise_type = EXAMPLE_NOISE_TYPE if EXAMPLE_NOISE_TYPE in paper.noise_types else paper.noise_types[0]
    levels = [float(s) for s in paper.snr_levels]
    snr = EXAMPLE_SNR_DB if EXAMPLE_SNR_DB in levels else min(levels)
    if snr != EXAMPLE_SNR_DB:
        log(f"figures: {EXAMPLE_SNR_DB:g} dB is not in snr_levels; the example window uses {snr:g} dB")
    return noise_type, snr


def example_window(paper: ml_collections.ConfigDict, noise_type: str, snr_db: float):
    """The first test window (clean, noisy), mixed exactly as the training workdirs' examples.npz."""
    prepared = prepare_data(paper)
    first_test = prepared.rows(slice(prepared.n_train, prepared.n_train + 1))
    return (np.asarray(first_test.clean[0]), first_test.noisy(noise_type, snr_db)[0],
            float(paper.data.fs), prepared.norm_stats(noise_type, snr_db))


def baseline_outputs(noisy: np.ndarray, baseline_rows: list[dict], noise_type: str,
                     snr_db: float, stats=None) -> dict[str, np.ndarray]:
    """Each baseline's output on the example window, with the settings its row was scored with
    (`stats`: the dataset's normalisation, for rows scored on normalised windows)."""
    return {r["method"]: denoise_like_row(r, noisy[None], stats)[0] for r in baseline_rows
            if r["noise_type"] == noise_type and float(r["snr_db"]) == snr_db}


def network_output(workdir: str, clean: np.ndarray, noise_type: str, snr_db: float) -> np.ndarray | None:
    """The first seed's output on the example window from workdir/examples.npz (None, logged, if absent)."""
    path = os.path.join(workdir, "examples.npz")
    if not os.path.isfile(path):
        log(f"figures: no {path}; left out of the example figure")
        return None
    with np.load(path) as z:
        if "clean" not in z.files or not np.allclose(z["clean"], clean, atol=1e-5):
            log(f"figures: {path} holds another test window; left out of the example figure")
            return None
        prefix = f"denoised/{noise_type}/{snr_db:g}/"
        seeds = sorted((k for k in z.files if k.startswith(prefix)), key=lambda k: int(k[len(prefix):]))
        if not seeds:
            log(f"figures: {path} has no output for {noise_type} at {snr_db:g} dB")
            return None
        return np.asarray(z[seeds[0]])


def write_figures(paper: ml_collections.ConfigDict, root: str, out_dir: str, experiments: list[str],
                  rows: list[dict], own: list[str] = ()) -> dict[str, str]:
    """The SNR curves and the example figures; `own`: experiments of your own networks (external_networks),
    shown in the main example figure under their names."""
    # lazy: ecg_jax.report pulls in matplotlib, needed only for the last stage (and only on process 0)
    from ecg_jax.report import figures

    paths: dict[str, str] = figures.plot_snr_curves_by_protocol(rows, out_dir)

    noise_type, snr = _example_dataset(paper)
    clean, noisy, fs, stats = example_window(paper, noise_type, snr)
    outputs = baseline_outputs(noisy, [r for r in rows if r["seed"] is None], noise_type, snr, stats)
    for experiment in list(experiments) + [x for x in own if x not in experiments]:
        out = network_output(os.path.join(root, experiment), clean, noise_type, snr)
        if out is not None:
            outputs[experiment] = out
    source = rows[0]["source"] if rows else "unknown"
    what = f"First test window, {noise_type} noise at {snr:g} dB input SNR ({source} data)"
    stem = f"example_{noise_type}_{snr:g}dB"
    # Two figures: eleven lines on one window would be unreadable. The main
    # figure holds the main-table methods, the ablation figure CIADNet's variants.
    main = {display_name(m): outputs[m] for m in MAIN_TABLE_METHODS if m in outputs}
    main.update({display_name(m, rows): outputs[m] for m in own if m in outputs})
    if main:
        png, svg = figures.plot_denoising_example(clean, noisy, main, fs, what + "; networks: seed 0",
                                                  os.path.join(out_dir, stem))
        paths["example"], paths["example_svg"] = png, svg
    ablation = {ABLATION_DISPLAY_NAMES[m]: outputs[m] for m in ABLATION_METHODS if m in outputs}
    if any(m in outputs for m in ABLATION_METHODS if m not in MAIN_TABLE_METHODS):
        png, svg = figures.plot_denoising_example(clean, noisy, ablation, fs, "CIADNet ablation: " + what,
                                                  os.path.join(out_dir, stem + "_ablation"))
        paths["example_ablation"], paths["example_ablation_svg"] = png, svg
    return paths


# ------------------------------------------------------------------ the whole run

def _describe_source(paper: ml_collections.ConfigDict) -> tuple[str, str]:
    """(source, sentence) after preparing (or loading from the cache) the shared data once."""
    prepared = prepare_data(paper)
    sizes = f"{prepared.n_train} train / {prepared.n_test} test windows, {paper.data.split} split"
    if prepared.source == "synthetic":
        return "synthetic", f"SYNTHETIC ECG and noise (built-in generator, not PhysioNet), {sizes}"
    return "physionet", (f"PhysioNet MIT-BIH Arrhythmia + Noise Stress Test from {prepared.data_dir} "
                         f"({len(prepared.record_names)} records), {sizes}")


def reproduce(config: ml_collections.ConfigDict, workdir: str, published=None, extra_models=(),
              allow_changed_model_source: bool = False) -> dict[str, str]:
    """Run the whole grid of a paper config (configs/paper.py) in `workdir`; return the output paths.

    `published` (report.load_published): the tables show the published rows and
    our differences under ours. `extra_models`: specs of your own networks to add (module docstring);
    `allow_changed_model_source`: go on with one whose file changed since its workdir was trained.

    Keys: "html", "markdown", "csv" (tables), "snr_curves" (+ "_svg"),
    "example" (+ "_svg"), "example_ablation" (+ "_svg") when ablation variants
    ran, and "timings" (the per-stage wall times as JSON). Processes other than
    process 0 of a multi-process run return {}.
    """
    with interrupts.resume_hint(f"rerun the same `scripts/reproduce.py ... --workdir {workdir}` command to resume "
                                "(finished stages are skipped)"):
        return _reproduce(config, workdir, published, extra_models, allow_changed_model_source)


def _reproduce(config: ml_collections.ConfigDict, workdir: str, published, extra_models=(),
               allow_changed_model_source: bool = False) -> dict[str, str]:
    from ecg_jax import report  # lazy: matplotlib, for the tables stage on process 0 only

    paper = resolve_config(config)
    experiments = experiment_ids(paper)
    own = external_networks(paper, extra_models)
    check_external_networks(paper, own)   # a broken network of yours: one line before anything is written
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    def stage(name: str, fn, *args):
        log(f"== {name}")
        interrupts.note_progress(f"in stage {name} (finished stages are kept)")
        tic = time.perf_counter()
        result = fn(*args)
        timings[name] = time.perf_counter() - tic
        log(f"== {name}: {timings[name]:.1f}s")
        return result

    source, description = stage("data", _describe_source, paper)
    log(f"data source: {description}")
    rows: list[dict] = []
    # In a multi-process run every process trains its share of each network;
    # the host-only work (baselines, tables, figures) is process 0's alone.
    main = jax.process_index() == 0
    if paper.baselines_enabled and main:
        rows += stage("baselines", run_baselines_stage, paper, os.path.join(workdir, BASELINES_DIR), source)
    for experiment in experiments:
        rows += stage(experiment, run_experiment_stage, paper, experiment, os.path.join(workdir, experiment),
                      source)
    for experiment, spec in own.items():
        rows += stage(experiment, run_experiment_stage, paper, experiment, os.path.join(workdir, experiment),
                      source, spec, allow_changed_model_source)
    if not main:
        return {}

    out_dir = os.path.join(workdir, TABLES_DIR)
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(stage("tables", report.write_tables, rows, out_dir, None, published))
    with interrupts.disk_full_as_one_line(out_dir, "the figures"):
        paths.update(stage("figures", write_figures, paper, workdir, out_dir, experiments, rows, list(own)))
    timings["total"] = time.perf_counter() - t_all

    paths["timings"] = os.path.join(out_dir, "timings.json")
    write_text_atomic(paths["timings"], json.dumps({"source": source, "seconds": {k: round(v, 2) for k, v in
                                                                                   timings.items()}}, indent=1))
    log("wall time per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    log(f"data source: {description}")
    log(f"outputs in {out_dir}: " + ", ".join(sorted(os.path.basename(p) for p in paths.values())))
    return paths
