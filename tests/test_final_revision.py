"""The final revision's data: draw for draw the reference's generator, on a small WFDB folder.

`reference_generator` below is written from protocol.md ("final") alone, in the
reference's style (module-level `random` and `np.random` seeded with 42, plain
loops, numpy float32 arithmetic), independently of ecg_jax's code; the
prepared arrays and the exported file must equal it to float32 rounding.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys

import numpy as np
import pytest
import wfdb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))

import final  # noqa: E402

from ecg_jax.config_utils import SNR_LEVELS, resolve_config  # noqa: E402
from ecg_jax.data import prepare_data  # noqa: E402
from ecg_jax.data.export import export_arrays  # noqa: E402

RECORDS = ["100", "101", "102", "103", "104", "105"]
LENGTHS = [256 * 9 + 17, 256 * 7, 256 * 11 + 255, 256 * 8 + 1, 256 * 10, 256 * 6 + 100]
NOISE_LEN = 2900
N_TRAIN, N_TEST = 20, 8


def write_record(folder: str, name: str, signal: np.ndarray) -> None:
    os.makedirs(folder, exist_ok=True)
    wfdb.wrsamp(name, fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=signal.astype(np.float64),
                fmt=["212", "212"], adc_gain=[200.0, 200.0], baseline=[1024, 1024], write_dir=folder)


def write_sums(folder: str) -> None:
    with open(os.path.join(folder, "SHA256SUMS.txt"), "w") as f:
        for name in sorted(os.listdir(folder)):
            if name.endswith((".dat", ".hea")):
                with open(os.path.join(folder, name), "rb") as g:
                    f.write(f"{hashlib.sha256(g.read()).hexdigest()} {name}\n")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("physionet")
    rng = np.random.default_rng(7)
    for name, n in zip(RECORDS, LENGTHS, strict=True):
        t = np.arange(n) / 360
        ecg = np.stack([np.sin(2 * np.pi * 1.2 * t), 0.5 * np.cos(2 * np.pi * 0.9 * t)], axis=1)
        write_record(str(root / "mitdb"), name, ecg + 0.05 * rng.standard_normal((n, 2)))
    for name in ("bw", "em", "ma"):
        write_record(str(root / "nstdb"), name, 0.3 * rng.standard_normal((NOISE_LEN, 2)))
    write_sums(str(root / "mitdb"))
    write_sums(str(root / "nstdb"))
    return root


def reference_generator(data_dir: str, seed: int = 42):
    """protocol.md "final", steps 1-5, as the reference writes it."""
    random.seed(seed)
    np.random.seed(seed)
    mit = os.path.join(data_dir, "mitdb")
    names = sorted(f[:-4] for f in os.listdir(mit) if f.endswith(".dat"))
    signals = {n: wfdb.rdrecord(os.path.join(mit, n)).p_signal.astype(np.float32) for n in names}
    windows = {n: [(n, s) for s in range(0, (len(signals[n]) // 256) * 256, 256)] for n in names}
    random.shuffle(names)
    k = int(len(names) * 0.8)
    train_records, test_records = names[:k], names[k:]
    train_pool = [w for n in train_records for w in windows[n]]
    test_pool = [w for n in test_records for w in windows[n]]
    examples = random.sample(train_pool, N_TRAIN) + random.sample(test_pool, N_TEST)
    clean = np.stack([signals[n][s:s + 256] for n, s in examples])
    noise = {t: wfdb.rdrecord(os.path.join(data_dir, "nstdb", t)).p_signal.astype(np.float32)
             for t in ("bw", "em", "ma")}

    def add(c, n, snr):
        pc, pn = np.mean(c ** 2), np.mean(n ** 2)
        scale = np.float32(0.0) if pn == 0 else np.sqrt(pc / (pn * 10 ** (snr / 10)))
        return c + scale * n

    noisy = {}
    for snr in (-4, -2, 0, 2, 4):
        for t in ("bw", "em", "ma"):
            out = []
            for i in range(len(examples)):
                start = np.random.randint(0, len(noise[t]) - 256)
                out.append(add(clean[i], noise[t][start:start + 256], snr))
            noisy[f"{t}_{snr}"] = np.stack(out)
        out = []
        for i in range(len(examples)):
            segs = []
            for t in ("bw", "em", "ma"):
                start = np.random.randint(0, len(noise[t]) - 256)
                segs.append(noise[t][start:start + 256])
            out.append(add(clean[i], (segs[0] + segs[1] + segs[2]) / 3, snr))
        noisy[f"emb_{snr}"] = np.stack(out)
    return clean, noisy, train_records, test_records


def final_config(folder, tmp_path):
    c = final.get_config()
    c.data.data_dir = str(folder)
    c.data.cache_dir = str(tmp_path / "cache")
    c.data.records = tuple(RECORDS)
    c.data.n_windows = N_TRAIN + N_TEST
    c.data.train_fraction = N_TRAIN / (N_TRAIN + N_TEST)
    return resolve_config(c)


def test_prepared_arrays_equal_the_reference_generator(folder, tmp_path):
    config = final_config(folder, tmp_path)
    # train_fraction also splits the records: int(6 * 0.714) = 4 train records, as int(6 * 0.8)
    assert int(len(RECORDS) * config.data.train_fraction) == int(len(RECORDS) * 0.8)
    clean, noisy, train_records, test_records = reference_generator(str(folder))
    p = prepare_data(config)
    assert list(p.train_records) == train_records and list(p.test_records) == test_records
    np.testing.assert_array_equal(p.clean, clean)
    for snr in SNR_LEVELS:
        for t in ("bw", "em", "ma", "emb"):
            np.testing.assert_allclose(p.noisy(t, snr), noisy[f"{t}_{snr}"], rtol=2e-6, atol=2e-6,
                                       err_msg=f"{t} {snr} dB")
    # Every noise type and SNR has segments of its own (unlike "paper").
    assert not np.array_equal(p.noise_starts["bw@-4"], p.noise_starts["bw@-2"])


def test_export_writes_the_reference_arrays_in_example_order(folder, tmp_path):
    config = final_config(folder, tmp_path)
    clean, noisy, _, _ = reference_generator(str(folder))
    path = tmp_path / "final.npz"
    export_arrays(prepare_data(config), config, str(path))
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["clean"], clean)
        for key, value in noisy.items():
            assert z[key].dtype == np.float32 and z[key].shape == (N_TRAIN + N_TEST, 256, 2)
            np.testing.assert_allclose(z[key], value, rtol=2e-6, atol=2e-6)
        np.testing.assert_array_equal(z["train_index"], np.arange(N_TRAIN))
        np.testing.assert_array_equal(z["test_index"], np.arange(N_TRAIN, N_TRAIN + N_TEST))
        assert str(z["revision"]) == "final"
    with pytest.raises(FileExistsError):
        export_arrays(prepare_data(config), config, str(path))   # never silently rewritten


def test_prepare_script_exports_once_and_refuses_to_overwrite(tmp_path):
    import subprocess

    out = tmp_path / "final.npz"
    args = [sys.executable, os.path.join(REPO, "scripts", "prepare_data.py"), "--config",
            os.path.join(REPO, "configs", "final.py:smoke"), "--config.data.source=synthetic",
            f"--config.data.cache_dir={tmp_path / 'cache'}", f"--export={out}"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "revision: final" in first.stdout and f"wrote {out}" in first.stdout
    with np.load(out, allow_pickle=False) as z:
        assert z["clean"].shape == (1000, 256, 2) and z["emb_0"].shape == (1000, 256, 2)
        assert len(z["train_index"]) == 800 and str(z["revision"]) == "final"
    before = out.read_bytes()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and len(again.stderr.strip().splitlines()) == 1 and "exists" in again.stderr
    assert out.read_bytes() == before
