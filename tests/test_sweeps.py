"""Hyperparameter sweeps as members (issue 29): the points, the one program, the choice on validation.

- the Adam step with hyperparameters as values computes optax's bits (so a run without a sweep keeps
  its numbers, and a sweep member computes what its setting computes alone);
- a sweep member trained through the CLI equals the same setting trained alone, metrics and
  parameters bit for bit on one CPU device;
- a shape-changing sweep field is refused in one line before anything is written;
- the validation split is whole training records, drawn from the config alone;
- the tables show the point chosen on validation, never on test, and say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ecg_jax.config_utils import resolve_config, with_defaults
from ecg_jax.configs import common
from ecg_jax.errors import ConfigError
from ecg_jax.sweep_points import point_name, sweep_points
from ecg_jax.train import engine
from ecg_jax.train.members import members_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def smoke_config(**sweep) -> ml_collections.ConfigDict:
    c = common.smoke_overrides(common.base_config())
    for name, value in sweep.items():
        c.sweep.train[name] = value
    return c


# ------------------------------------------------------------------ the optimizer's bits

def _scan_updates(update, params, grads):
    """Params after each of `grads`' steps, the optimizer's count a carry (as in training)."""
    def body(carry, g):
        p, state = carry
        u, state = update(g, state, p)
        p = optax.apply_updates(p, u)
        return (p, state), p
    return jax.lax.scan(body, (params, engine.init_optimizer_state(params)), grads)[1]


def _problem():
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(7, 5)), jnp.float32), "b": jnp.asarray(rng.normal(size=5), jnp.float32)}
    scales = 10.0 ** rng.integers(-8, 2, size=(40, 1, 1))
    grads = {"w": jnp.asarray(rng.normal(size=(40, 7, 5)) * scales, jnp.float32),
             "b": jnp.asarray(rng.normal(size=(40, 5)), jnp.float32)}
    return params, grads


@pytest.mark.parametrize("decays", [((), ()), ((1,), (0.1,)), ((1, 3), (0.1, 0.05))])
def test_adam_with_values_computes_optax_adam_bit_for_bit(decays):
    settings = engine.TrainSettings(batch_size=4, steps_per_epoch=8, window=32, channels=2, learning_rate=3e-4,
                                    lr_decay_epoch=decays[0], lr_decay_factor=decays[1], adam_b1=0.85)
    params, grads = _problem()
    tx = engine.make_optimizer(settings)
    reference = jax.jit(lambda p, g: _scan_updates(lambda g, s, p: tx.update(g, s, p), p, g))(params, grads)
    hyper = engine.settings_hyper(settings)
    as_values = jax.jit(lambda p, g, h: _scan_updates(
        lambda g, s, p: engine.adam_update(g, s, p, h, False), p, g))(params, grads, hyper)
    as_constants = jax.jit(lambda p, g: _scan_updates(
        lambda g, s, p: engine.adam_update(g, s, p, hyper, False), p, g))(params, grads)
    for got in (as_values, as_constants):
        for a, b in zip(jax.tree_util.tree_leaves(reference), jax.tree_util.tree_leaves(got), strict=True):
            np.testing.assert_array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


def test_weight_decay_is_pytorch_adams_and_zero_keeps_the_gradient_itself():
    settings = engine.TrainSettings(batch_size=4, steps_per_epoch=8, window=32, channels=2, learning_rate=1e-3,
                                    lr_decay_epoch=(2,), lr_decay_factor=(0.1,))
    params, grads = _problem()

    def run_optax(tx):
        def body(carry, g):
            p, state = carry
            u, state = tx.update(g, state, p)
            p = optax.apply_updates(p, u)
            return (p, state), p
        return jax.jit(lambda p, g: jax.lax.scan(body, (p, tx.init(p)), g)[1])(params, grads)

    def ours(h):
        return jax.jit(lambda p, g, h: _scan_updates(
            lambda g, s, p: engine.adam_update(g, s, p, h, True), p, g))(params, grads, h)
    hyper = engine.settings_hyper(settings)
    # Decay 0 in a program that has the term: the gradient itself (a select), so plain Adam's bits.
    plain = run_optax(engine.make_optimizer(settings))
    for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(ours(hyper)), strict=True):
        np.testing.assert_array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))
    # Decay 1e-2: PyTorch Adam's g + wd * p (optax's add_decayed_weights before Adam). XLA:CPU rounds
    # `g + wd * p` with wd a program constant differently from wd a value (up to 1 ulp here); every
    # CLI run passes the value, so a sweep member and its lone twin share the value's bits (below).
    decayed = run_optax(optax.chain(optax.add_decayed_weights(1e-2), engine.make_optimizer(settings)))
    with_decay = ours(hyper._replace(weight_decay=np.float32(1e-2)))
    for a, b in zip(jax.tree_util.tree_leaves(decayed), jax.tree_util.tree_leaves(with_decay), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=0)
    # One program, two members (decay 0 and 1e-2): each has its lone run's bits.
    pair = jax.tree_util.tree_map(lambda *v: np.stack(v), hyper, hyper._replace(weight_decay=np.float32(1e-2)))
    both = jax.jit(jax.vmap(lambda h: _scan_updates(lambda g, s, p: engine.adam_update(g, s, p, h, True),
                                                    params, grads)))(pair)
    for j, alone in enumerate((ours(hyper), with_decay)):
        for a, b in zip(jax.tree_util.tree_leaves(alone), jax.tree_util.tree_leaves(both), strict=True):
            np.testing.assert_array_equal(np.asarray(a).view(np.uint32), np.asarray(b)[j].view(np.uint32))


def test_hyper_of_rounds_one_minus_beta_as_optax_does():
    h = engine.hyper_of({"learning_rate": 1e-3, "lr_decay_epoch": (50, 70), "lr_decay_factor": (0.1, 0.05),
                         "adam_b1": 0.9}, steps_per_epoch=125)
    assert h.one_minus_b1 == np.float32(1 - 0.9) != np.float32(1) - np.float32(0.9)
    np.testing.assert_array_equal(h.decay_step, [6250, 8750])
    np.testing.assert_array_equal(h.decay_scale, np.float32([0.1, 0.05 / 0.1]))


# ------------------------------------------------------------------ points and members

def test_grid_and_zip_points_and_member_order():
    c = smoke_config(learning_rate="1e-3,3e-4", weight_decay="0,1e-4")
    points = sweep_points(c)
    assert [point_name(p) for p in points] == ["learning_rate=0.001,weight_decay=0",
                                               "learning_rate=0.001,weight_decay=0.0001",
                                               "learning_rate=0.0003,weight_decay=0",
                                               "learning_rate=0.0003,weight_decay=0.0001"]
    c.sweep.mode = "zip"
    assert [point_name(p) for p in sweep_points(c)] == ["learning_rate=0.001,weight_decay=0",
                                                        "learning_rate=0.0003,weight_decay=0.0001"]
    c.seeds, c.snr_levels = 2, (-4, 0)
    members = members_of(resolve_config(c))
    # datasets x points x seeds, seeds fastest; a member's seed alone gives its key (same init as alone)
    assert [(m.dataset.snr_db, m.point_name, m.seed) for m in members[:4]] == [
        (-4, "learning_rate=0.001,weight_decay=0", 0), (-4, "learning_rate=0.001,weight_decay=0", 1),
        (-4, "learning_rate=0.0003,weight_decay=0.0001", 0), (-4, "learning_rate=0.0003,weight_decay=0.0001", 1)]
    assert len(members) == 2 * 2 * 2 and [m.index for m in members] == list(range(8))
    assert members[0].to_json()["sweep"] == {"learning_rate": 0.001, "weight_decay": 0.0}
    assert "sweep" not in members_of(resolve_config(smoke_config()))[0].to_json()   # old fingerprints hold


def test_schedules_and_values_are_checked_per_point():
    with pytest.raises(ConfigError, match="same number of learning-rate decays"):
        resolve_config(_zip(smoke_config(lr_decay_epoch="1,1/2", lr_decay_factor="0.1,0.1/0.05")))
    with pytest.raises(ConfigError, match="not a number in"):
        resolve_config(smoke_config(adam_b1="0.9,1.5"))
    with pytest.raises(ConfigError, match="lists a value twice"):
        resolve_config(smoke_config(learning_rate="1e-3,1e-3"))
    c = smoke_config(learning_rate="1e-3,3e-4,1e-4", weight_decay="0,1e-4")
    c.sweep.mode = "zip"
    with pytest.raises(ConfigError, match="zip pairs"):
        resolve_config(c)


def _zip(c):
    c.sweep.mode = "zip"
    return c


def test_member_limit_counts_sweep_points():
    c = smoke_config(learning_rate=",".join(f"{1e-3 / (k + 1):g}" for k in range(50)))
    c.seeds = 2001
    with pytest.raises(ConfigError, match="50 sweep points"):
        resolve_config(c)


def test_configs_saved_before_sweeps_compare_equal():
    new = json.loads(json.dumps(resolve_config(smoke_config()).to_dict(), default=list))
    old = json.loads(json.dumps(new))
    for name in ("weight_decay", "adam_b1", "adam_b2", "adam_eps"):
        del old["train"][name]
    del old["data"]["validation_records"]
    del old["sweep"]
    assert with_defaults(old) == json.loads(json.dumps(new))


# ------------------------------------------------------------------ the validation split

def test_validation_split_holds_out_whole_training_records_from_the_config_alone():
    from ecg_jax.data import prepare_data
    from ecg_jax.data.validation import hold_out_validation, training_records

    c = resolve_config(smoke_config(learning_rate="1e-3,3e-4"))
    c.data.source = "synthetic"
    prepared = prepare_data(c)
    held = hold_out_validation(prepared, c)
    again = hold_out_validation(prepare_data(c), c)
    assert held.records == again.records and len(held.records) == 1   # 10% of 8 records, at least 1
    val_records = set(np.asarray(held.validation.window_records).tolist())
    assert val_records == set(held.records)
    assert not val_records & set(training_records(held.prepared))
    assert held.prepared.n_train + len(held.validation) == prepared.n_train
    np.testing.assert_array_equal(held.prepared.test.clean, prepared.test.clean)   # the test set is untouched
    # normalisation from the remaining training windows only
    _, mean, _ = held.prepared.dataset_stats("emb", 0.0)
    noisy = prepared.noisy("emb", 0.0)[:prepared.n_train]
    keep = ~np.isin(np.asarray(prepared.window_records[:prepared.n_train]), held.records)
    np.testing.assert_allclose(mean, noisy[keep].mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    assert held.card_fields() == {"validation_records": list(held.records), "n_validation": len(held.validation)}
    assert hold_out_validation(prepared, resolve_config(smoke_config())).validation is None   # no sweep: none
    c.data.validation_records = "8"
    with pytest.raises(ConfigError, match="every one of the 8 training records"):
        hold_out_validation(prepared, c)


# ------------------------------------------------------------------ the tables

def _row(point, seed, validation, test):
    from ecg_jax.results import make_row
    metrics = {"snr_db": test, "rmse": 0.2, "snr_improvement_db": test, "prd": 50.0, "ssd": 1.0, "mad": 0.5,
               "cosine": 0.9}
    return make_row("unet", "emb", 0, seed, "reference", "synthetic", metrics, epochs=3, sweep_point=point,
                    sweep={"learning_rate": float(point.split("=")[1])},
                    validation_metrics={**metrics, "snr_db": validation})


def test_tables_use_the_point_chosen_on_validation_never_on_test(tmp_path):
    from ecg_jax import report
    from ecg_jax.report.sweeps import sweep_markdown

    # learning_rate=0.001 is better on validation, learning_rate=0.0003 on test: validation decides
    rows = [_row("learning_rate=0.001", s, 5.0 + s, 3.0) for s in (0, 1)] + \
           [_row("learning_rate=0.0003", s, 4.0 + s, 9.0) for s in (0, 1)]
    chosen = report.select_rows(rows)
    assert {r["sweep_point"] for r in chosen} == {"learning_rate=0.001"} and len(chosen) == 2
    tables = report.build_tables(rows)
    assert "learning_rate=0.001" in tables[0].caption and "validation" in tables[0].caption
    table = sweep_markdown(report.select_rows(rows, all_points=True))
    line = next(x for x in table.splitlines() if x.startswith("| learning_rate=0.001 "))
    assert line.endswith("✓ |") and "5.5000 ± 0.7071" in line and "3.0000 ± 0.0000" in line
    assert not next(x for x in table.splitlines() if x.startswith("| learning_rate=0.0003 ")).endswith("✓ |")


# ------------------------------------------------------------------ through the CLI

def _cli(*args, cwd):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "ecg_jax", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1200)


def test_a_shape_changing_sweep_field_is_refused_in_one_line_before_anything_is_written(tmp_path):
    for field, why in (("train.batch_size=32,64", "shapes of the compiled step"),
                       ("data.window=128,256", "windows"), ("model_kwargs.features=8,16", "network"),
                       ("seeds=1,2", "--config.seeds")):
        workdir = tmp_path / field.split("=")[0]
        p = _cli("train", "--config", "unet:smoke", f"--config.sweep.{field}", "--workdir", str(workdir),
                 cwd=tmp_path)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, p.stderr
        assert "cannot be a sweep axis" in lines[0] and why in lines[0] and "Sweepable:" in lines[0]
        assert not workdir.exists()


@pytest.mark.slow
def test_a_sweep_member_equals_the_same_rate_trained_alone_and_the_tables_show_the_choice(tmp_path):
    """The issue's acceptance, shrunk to 1 epoch: 2 seeds x 1 dataset x 2 rates in one run."""
    from ecg_jax.evaluation import restore_member

    data = os.environ.get("ECG_JAX_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")
    common_args = ["--config", "unet:smoke", "--config.seeds=2", "--config.train.epochs=1",
                   f"--config.data.data_dir={data}"]
    sweep, alone = tmp_path / "sweep", tmp_path / "alone"
    p = _cli("train", *common_args, "--config.sweep.train.learning_rate=1e-3,3e-4", "--workdir", str(sweep),
             cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 seeds x 2 sweep points x 1 datasets" in p.stderr
    card = json.loads((sweep / "data_card.json").read_text())
    assert len(card["validation_records"]) == 1 and card["n_validation"] > 0
    # alone: the same rate, and the same held-out record (the sweep's "auto" is 1 of 8 records)
    p = _cli("train", *common_args, "--config.train.learning_rate=3e-4", "--config.data.validation_records=1",
             "--workdir", str(alone), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(x) for x in (sweep / "results.jsonl").read_text().splitlines()]
    alone_rows = [json.loads(x) for x in (alone / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["sweep_point"] for r in rows} == {"learning_rate=0.001", "learning_rate=0.0003"}
    for seed in (0, 1):
        member = next(r for r in rows if r["seed"] == seed and r["sweep_point"] == "learning_rate=0.0003")
        twin = next(r for r in alone_rows if r["seed"] == seed)
        assert member["metrics"] == twin["metrics"]
        assert member["validation_metrics"] == twin["validation_metrics"]
    # parameters bit for bit: member 2 (rate 3e-4, seed 0) against the lone run's member 0
    a, b = restore_member(str(sweep), 2), restore_member(str(alone), 0)
    for x, y in zip(jax.tree_util.tree_leaves(a["variables"]), jax.tree_util.tree_leaves(b["variables"]),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(x).view(np.uint32), np.asarray(y).view(np.uint32))
    # evaluate from the checkpoints gives the training process's rows, validation included
    p = _cli("evaluate", "--workdir", str(sweep), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    again = [json.loads(x) for x in (sweep / "results.jsonl").read_text().splitlines()]
    assert sorted(json.dumps(r, sort_keys=True) for r in again) == sorted(json.dumps(r, sort_keys=True) for r in rows)
    p = _cli("tables", "--results", str(sweep), "--out", str(tmp_path / "t"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "## Hyperparameter sweep" in p.stdout and "✓" in p.stdout
    assert (tmp_path / "t" / "sweep.md").exists() and (tmp_path / "t" / "sweep_learning_rate.png").exists()
    # as the issue types it, without --out: the tables go beside the results, into W/tables
    p = _cli("tables", "--results", str(sweep), cwd=tmp_path)
    assert p.returncode == 0 and "## Hyperparameter sweep" in p.stdout, p.stderr[-3000:]
    assert (sweep / "tables" / "sweep.md").exists()


@pytest.mark.slow
def test_a_sweep_sharded_over_4_devices_killed_and_resumed_equals_the_uninterrupted_run(tmp_path):
    """Sweep members are members: one program of 2 seeds x 2 points over a 4-device mesh, killed -9 as it
    is about to save epoch 3 and resumed with --workdir alone, ends bit for bit where the uninterrupted
    run ends. (A 1-device run of the same members differs in the last bits, for seeds as for sweep
    points: XLA:CPU compiles the 4-device program's convolutions differently; seen before sweeps too.)"""
    from test_train_loop import KILLED_BEFORE_SAVING_EPOCH_3, leaves, sharding_free_state

    args = [os.path.join(REPO, "scripts", "train.py"), "--config", os.path.join(REPO, "configs", "unet.py:smoke"),
            "--config.data.source=synthetic", "--config.data.window=64", "--config.data.n_windows=400",
            "--config.train.epochs=4", "--config.train.batch_size=32", "--config.seeds=2",
            "--config.sweep.train.learning_rate=1e-3,3e-4"]

    def run(*extra, code=None):
        env = dict(os.environ, ECG_JAX_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu",
                   XLA_FLAGS="--xla_force_host_platform_device_count=4")
        cmd = [sys.executable] + (["-c", code] if code else []) + list(extra)
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)

    full, resumed = tmp_path / "full", tmp_path / "resumed"
    p = run(*args, f"--workdir={full}")
    assert p.returncode == 0, p.stderr[-3000:]
    killed = run(*args, f"--workdir={resumed}", code=KILLED_BEFORE_SAVING_EPOCH_3)
    assert killed.returncode == -9, killed.stderr[-3000:]
    p = run(args[0], f"--workdir={resumed}")
    assert p.returncode == 0 and "resuming from the checkpoint after epoch 2" in p.stderr, p.stderr[-3000:]
    layout = json.loads((resumed / "members.json").read_text())
    assert layout["members_per_program"] == 4 and len(layout["chunks"]) == 1   # one program, 4 devices
    def key(r):
        return (r["sweep_point"], r["seed"])
    rows_full = {key(r): r for r in map(json.loads, (full / "results.jsonl").read_text().splitlines())}
    rows_resumed = {key(r): r for r in map(json.loads, (resumed / "results.jsonl").read_text().splitlines())}
    assert len(rows_full) == 4 and rows_full.keys() == rows_resumed.keys()
    for k in rows_full:
        assert rows_full[k]["metrics"] == rows_resumed[k]["metrics"], k
        assert rows_full[k]["validation_metrics"] == rows_resumed[k]["validation_metrics"], k
    for x, y in zip(leaves(sharding_free_state(full, 0)), leaves(sharding_free_state(resumed, 0)), strict=True):
        np.testing.assert_array_equal(x, y)
