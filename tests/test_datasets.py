"""Prepared data end to end: real-data protocol sizes, SNR accuracy, cache, data card."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import wfdb

from ecg_jax import data as datasets
from ecg_jax.data import noise
from ecg_jax.errors import ConfigError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("configs_common", os.path.join(REPO, "configs", "common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)

SUBSET = ("103", "100", "101")  # deliberately unsorted


def make_config(data_dir, cache_dir, **data):
    c = common.base_config()
    c.data.data_dir = str(data_dir) if data_dir else ""
    c.data.cache_dir = str(cache_dir)
    for k, v in data.items():
        setattr(c.data, k, v)
    return c


def small_config(data_dir, cache_dir, **data):
    c = make_config(data_dir, cache_dir, **{"records": SUBSET, "n_windows": 500, **data})
    c.noise_types = ("emb", "bw")
    c.snr_levels = (-4, 0, 4)
    return c


def same_arrays(a: datasets.PreparedData, b: datasets.PreparedData) -> bool:
    return (np.array_equal(a.clean, b.clean) and np.array_equal(a.window_starts, b.window_starts)
            and np.array_equal(a.window_records, b.window_records)
            and all(np.array_equal(a.noise[t], b.noise[t]) for t in ("bw", "em", "ma")))


@pytest.fixture(scope="session")
def full(shared_data_dir, tmp_path_factory):
    """The protocol's full preparation (48 records, 20 datasets), built once."""
    config = make_config(shared_data_dir, tmp_path_factory.mktemp("cache_full"))
    prepared = datasets.prepare_data(config)
    return config, prepared, datasets.data_card(prepared, config)


def test_full_protocol_sizes_and_disjoint_split(full):
    _, p, card = full
    assert p.source == "physionet" and not p.cache_hit
    assert p.clean.shape == (10000, 256, 2) and p.clean.dtype == np.float32
    assert all(p.noise[t].shape == (10000, 256, 2) for t in ("bw", "em", "ma"))
    assert (p.n_train, p.n_test, p.pool_size) == (8000, 2000, 12144)
    assert len(p.record_names) == 48 and list(p.record_names) == sorted(p.record_names)
    train = set(zip(p.train.window_records.tolist(), p.train.window_starts.tolist(), strict=True))
    test = set(zip(p.test.window_records.tolist(), p.test.window_starts.tolist(), strict=True))
    assert len(train) == 8000 and len(test) == 2000 and not train & test
    assert (card["n_windows"], card["n_train"], card["n_test"]) == (10000, 8000, 2000)


def test_rows_are_the_record_samples(full, shared_data_dir):
    _, p, _ = full
    i = 8123  # a test row
    start = int(p.window_starts[i])
    ecg = wfdb.rdrecord(os.path.join(shared_data_dir, "mitdb", p.window_records[i])).p_signal
    np.testing.assert_array_equal(p.clean[i], ecg[start:start + 256].astype(np.float32))
    s = int(p.noise_starts["em"][i])
    em = wfdb.rdrecord(os.path.join(shared_data_dir, "nstdb", "em")).p_signal
    np.testing.assert_array_equal(p.noise["em"][i], em[s:s + 256].astype(np.float32))


def test_full_card_every_dataset_hits_its_target_snr(full):
    _, _, card = full
    assert card["source"] == "physionet" and card["split"] == "reference"
    assert len(card["datasets"]) == 20 and len(card["normalization"]) == 20
    assert {(d["noise_type"], d["snr_db"]) for d in card["datasets"]} == {
        (t, s) for t in ("emb", "bw", "ma", "em") for s in (-4, -2, 0, 2, 4)}
    for d in card["datasets"]:
        assert abs(d["input_snr_train_db"] - d["snr_db"]) < 0.01
        assert abs(d["input_snr_test_db"] - d["snr_db"]) < 0.01
        assert d["input_snr_max_abs_error_db"] < 0.01 and d["windows_without_finite_snr"] == 0
    for key in ("records", "data_seed", "window", "fs", "noise_types", "snr_levels", "data_dir", "cache_key"):
        assert key in card
    json.dumps(card)  # JSON-able


def test_norm_stats_match_card_and_numpy(full):
    _, p, card = full
    entry = next(n for n in card["normalization"] if (n["noise_type"], n["snr_db"]) == ("ma", 2))
    mean, std = p.norm_stats("ma", 2)
    assert mean.shape == std.shape == (2,)
    np.testing.assert_allclose(mean, entry["mean"], rtol=1e-6)
    np.testing.assert_allclose(std, entry["std"], rtol=1e-6)
    noisy = p.train.noisy("ma", 2).astype(np.float64)
    np.testing.assert_allclose(mean, noisy.mean(axis=(0, 1)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(std, noisy.std(axis=(0, 1)), rtol=1e-4)


def test_emb_dataset_is_the_sum_of_segments_scaled_as_one(full):
    _, p, _ = full
    rows = slice(0, 50)
    total = p.noise["bw"][rows] + p.noise["em"][rows] + p.noise["ma"][rows]
    expected = noise.mix_at_snr(p.clean[rows], total, -2.0)
    sub = dataclasses.replace(p, clean=p.clean[rows], noise={k: v[rows] for k, v in p.noise.items()},
                              window_records=p.window_records[rows], window_starts=p.window_starts[rows])
    np.testing.assert_allclose(sub.noisy("emb", -2.0), np.asarray(expected), rtol=1e-6, atol=1e-6)


def test_norm_stats_use_training_windows_only(full):
    _, p, _ = full
    base = p.norm_stats("bw", 0)
    clean = p.clean.copy()
    clean[p.n_train + 5] += 100.0  # a test window
    test_changed = dataclasses.replace(p, clean=clean).norm_stats("bw", 0)
    assert all(np.array_equal(a, b) for a, b in zip(base, test_changed, strict=True))
    clean[5] += 100.0  # a training window
    train_changed = dataclasses.replace(p, clean=clean).norm_stats("bw", 0)
    assert not np.array_equal(base[0], train_changed[0])


def test_subset_is_proportional_sorted_and_cached(shared_data_dir, tmp_path):
    config = small_config(shared_data_dir, tmp_path)
    first = datasets.prepare_data(config)
    assert (first.n_train, first.n_test, first.pool_size) == (400, 100, 3 * 253)
    assert first.record_names == ("100", "101", "103") and not first.cache_hit
    second = datasets.prepare_data(config)
    assert second.cache_hit and second.cache_key == first.cache_key and same_arrays(first, second)
    other_cache = datasets.prepare_data(small_config(shared_data_dir, tmp_path / "other"))
    assert not other_cache.cache_hit and same_arrays(first, other_cache)  # deterministic rebuild
    reseeded = datasets.prepare_data(small_config(shared_data_dir, tmp_path, data_seed=7))
    assert not reseeded.cache_hit and reseeded.cache_key != first.cache_key
    assert not np.array_equal(reseeded.window_starts, first.window_starts)
    # noise types / SNR levels do not change the arrays, so they share the cache.
    regrid = small_config(shared_data_dir, tmp_path)
    regrid.noise_types, regrid.snr_levels = ("ma",), (2,)
    assert datasets.prepare_data(regrid).cache_hit


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_cache_is_detected_and_rebuilt(shared_data_dir, tmp_path, caplog, damage):
    config = small_config(shared_data_dir, tmp_path)
    original = datasets.prepare_data(config)
    path = original.cache_path
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        if damage == "truncate":
            f.truncate(size // 2)
        else:  # flip bytes inside the clean array's data
            f.seek(size // 3)
            chunk = bytearray(f.read(16))
            f.seek(size // 3)
            f.write(bytes(b ^ 0xFF for b in chunk))
    with caplog.at_level(logging.WARNING, logger="ecg_jax.data"):
        rebuilt = datasets.prepare_data(config)
    assert not rebuilt.cache_hit and same_arrays(original, rebuilt)
    assert "rebuilding" in caplog.text and path in caplog.text
    assert datasets.prepare_data(config).cache_hit  # the rebuilt file is good


def test_a_cache_file_with_another_key_is_never_used(shared_data_dir, tmp_path, caplog):
    a = datasets.prepare_data(small_config(shared_data_dir, tmp_path))
    b_config = small_config(shared_data_dir, tmp_path, data_seed=5)
    b = datasets.prepare_data(b_config)
    os.replace(a.cache_path, b.cache_path)  # b's file now holds a's arrays and key
    with caplog.at_level(logging.WARNING, logger="ecg_jax.data"):
        again = datasets.prepare_data(b_config)
    assert not again.cache_hit and same_arrays(b, again)
    assert "another configuration" in caplog.text


def test_inter_patient_split_has_no_shared_record(shared_data_dir, tmp_path):
    config = small_config(shared_data_dir, tmp_path, split="inter_patient",
                          records=("100", "101", "103", "105", "106"))
    p = datasets.prepare_data(config)
    assert (p.n_train, p.n_test) == (400, 100) and len(p.train_records) == 4
    assert not set(p.train.window_records) & set(p.test.window_records)
    assert set(p.train.window_records) <= set(p.train_records)
    card = datasets.data_card(p, config)
    assert card["split"] == "inter_patient" and card["test_records"] == list(p.test_records)


def test_auto_source_without_data_is_synthetic(tmp_path, monkeypatch):
    monkeypatch.delenv("ECG_JAX_DATA", raising=False)
    config = make_config("", tmp_path, synthetic_records=3, synthetic_samples=12000, n_windows=12)
    config.noise_types, config.snr_levels = ("em",), (4,)
    p = datasets.prepare_data(config)
    assert p.source == "synthetic" and p.record_names == ("syn000", "syn001", "syn002")
    assert p.clean.shape == (12, 256, 2) and p.pool_size == 12  # 12000 // 2560 = 4 per record
    card = datasets.data_card(p, config)
    assert card["source"] == "synthetic" and "SYNTHETIC" in card["source_note"]
    assert abs(card["datasets"][0]["input_snr_test_db"] - 4) < 0.01
    again = datasets.prepare_data(config)
    assert again.cache_hit and same_arrays(p, again)


def test_physionet_source_without_data_dir_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("ECG_JAX_DATA", raising=False)
    config = make_config("", tmp_path, source="physionet")
    with pytest.raises(DataError, match=r"no PhysioNet data folder is configured.*download_data\.py --out DIR"):
        datasets.prepare_data(config)
    missing = tmp_path / "missing"
    with pytest.raises(DataError, match=f"{missing} does not exist"):
        datasets.prepare_data(make_config(missing, tmp_path))  # "auto" never hides a bad folder


def test_check_dataset_lists_valid_values():
    config = common.base_config()
    config.noise_types = ("emb", "bw")
    config.snr_levels = (-4, 0, 4)
    assert datasets.check_dataset("bw", 0, config) == ("bw", 0)
    with pytest.raises(ConfigError, match="unknown noise type 'pink'; valid noise types: emb, bw, ma, em"):
        datasets.check_dataset("pink", 0, config)
    with pytest.raises(ConfigError, match="'ma' is not one of the configured noise types: emb, bw"):
        datasets.check_dataset("ma", 0, config)
    with pytest.raises(ConfigError, match="SNR level 2 dB is not one of the configured levels: -4, 0, 4"):
        datasets.check_dataset("emb", 2, config)


def test_write_data_card(tmp_path):
    path = datasets.write_data_card({"source": "physionet", "n_windows": 3}, str(tmp_path / "w"))
    assert path == str(tmp_path / "w" / "data_card.json")
    assert json.loads(open(path).read()) == {"source": "physionet", "n_windows": 3}
    assert os.listdir(tmp_path / "w") == ["data_card.json"]  # no temp file left


def run_prepare(args, env_data):
    env = dict(os.environ, ECG_JAX_DATA=env_data, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "scripts/prepare_data.py", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)


def test_prepare_script_physionet_and_synthetic(shared_data_dir, tmp_path):
    cache = f"--config.data.cache_dir={tmp_path / 'cache'}"
    proc = run_prepare([f"--workdir={tmp_path / 'w1'}", "--config.data.records=100,101,103",
                        "--config.data.n_windows=500", "--config.noise_types=emb",
                        "--config.snr_levels=-4,4", cache], str(shared_data_dir))
    assert proc.returncode == 0, proc.stderr
    assert "source: PhysioNet" in proc.stdout and "cache: miss" in proc.stdout
    card = json.load(open(tmp_path / "w1" / "data_card.json"))
    assert card["source"] == "physionet" and (card["n_train"], card["n_test"]) == (400, 100)
    assert [d["snr_db"] for d in card["datasets"]] == [-4, 4]

    proc = run_prepare([f"--workdir={tmp_path / 'w2'}", "--config=configs/default.py:smoke",
                        "--config.data.synthetic_records=2", "--config.data.synthetic_samples=60000",
                        "--config.data.n_windows=40", cache], "")
    assert proc.returncode == 0, proc.stderr
    assert "SOURCE: SYNTHETIC" in proc.stdout
    card = json.load(open(tmp_path / "w2" / "data_card.json"))
    assert card["source"] == "synthetic" and card["n_windows"] == 40


def test_prepare_reports_a_truncated_file_not_just_a_checksum(shared_data_dir, tmp_path):
    from test_records import copy_records  # pytest (prepend import mode) puts tests/ on sys.path

    data = tmp_path / "data"
    copy_records(shared_data_dir, data, "mitdb", ["100", "101", "103"])
    copy_records(shared_data_dir, data, "nstdb", ["bw", "em", "ma"])
    config = small_config(data, tmp_path / "cache")
    assert datasets.prepare_data(config).source == "physionet"
    with open(data / "mitdb" / "103.dat", "r+b") as f:
        f.truncate(4096)
    with pytest.raises(DataError, match=r"103\.dat is truncated: 4096 bytes"):
        datasets.prepare_data(config)  # the SHA256SUMS line also mismatches; the specific message wins
