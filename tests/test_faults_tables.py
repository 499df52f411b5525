"""scripts/make_tables.py on a results.jsonl as real runs leave it: a diverged member with
finite garbage metrics, the same runs scored at epoch 2 and at epoch 3, re-evaluations
that appended duplicate and stale rows. Every number is checked against hand computation.

The runs (emb noise, input SNR -4 dB, reference split, PhysioNet source):
  FFT (deterministic): SNR 5.0, RMSE 0.01
  U-Net, epoch 2 (an `evaluate.py --epoch 2`), seeds 0..3:
      SNR 1, 2, 3, 2       -> 2.0000 ± 0.8165 (sample std sqrt(2/3))
      RMSE .1, .2, .3, .2  -> 0.2000 ± 0.0816
  U-Net, epoch 3 (final), seeds 0..2 finite, seed 3 diverged with SNR 1000, RMSE 99:
      SNR 4, 6, 8          -> 6.0000 ± 2.0000 (with the diverged seed it would be 254.5000)
      RMSE .4, .6, .8      -> 0.6000 ± 0.2000
"""

import csv
import os
import subprocess
import sys

from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.results import append_rows, make_row, replace_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def row(method, seed, snr, rmse, **extra):
    m = {k: 0.5 for k in METRIC_NAMES}
    m.update(snr_db=snr, rmse=rmse)
    return make_row(method=method, noise_type="emb", snr_db=-4, seed=seed, split="reference",
                    source="physionet", metrics=m, experiment=method, **extra)


FFT = [row("fft", None, 5.0, 0.01)]
EPOCH_3 = [row("unet", s, 4.0 + 2 * s, 0.2 * (s + 2), epochs=3) for s in range(3)]
EPOCH_3.append(row("unet", 3, 1000.0, 99.0, epochs=3, diverged=True))  # finite garbage, flagged
EPOCH_2 = [row("unet", s, v, r, epochs=2) for s, v, r in [(0, 1.0, 0.1), (1, 2.0, 0.2), (2, 3.0, 0.3), (3, 2.0, 0.2)]]

FINAL_UNET = "| U-Net | **6.0000 ± 2.0000** | — | — | — | — | 0.6000 ± 0.2000 | — | — | — | — |"
EPOCH2_UNET = "| U-Net | 2.0000 ± 0.8165 | — | — | — | — | 0.2000 ± 0.0816 | — | — | — | — |"


def make_tables(results, out, *extra):
    return subprocess.run([sys.executable, "scripts/make_tables.py", f"--results={results}", f"--out={out}", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def read_csv(path):
    with open(path) as f:
        header = next(csv.reader(f))
        f.seek(0)
        return header, list(csv.DictReader(f))


def test_make_tables_final_epoch_diverged_duplicates_and_epoch_flag(tmp_path):
    results = tmp_path / "w" / "results.jsonl"
    # As the runs leave it: baselines; training's rows at the final epoch, after a stale
    # evaluation of seed 0 (appended by an older version, replaced by the later line);
    # an evaluation appended twice (exact duplicates).
    append_rows(str(results), FFT)
    append_rows(str(results), [row("unet", 0, 100.0, 5.0, epochs=3)])
    append_rows(str(results), EPOCH_3)
    append_rows(str(results), EPOCH_3)

    first = make_tables(results, tmp_path / "first")
    assert first.returncode == 0, first.stderr
    # `evaluate.py --epoch 2`, twice: its rows replace each other, the final tables do not change.
    replace_rows(str(results), EPOCH_2)
    replace_rows(str(results), EPOCH_2)
    assert len(results.read_text().splitlines()) == 1 + 1 + 2 * len(EPOCH_3) + len(EPOCH_2)

    final = make_tables(results, tmp_path / "final")
    assert final.returncode == 0, final.stderr
    for name in ("tables.md", "tables.html", "runs.csv"):
        assert (tmp_path / "final" / name).read_text() == (tmp_path / "first" / name).read_text(), name
    out = final.stdout
    assert FINAL_UNET in out.splitlines()
    assert "| FFT | 5.0000 | — | — | — | — | **0.0100** | — | — | — | — |" in out.splitlines()
    assert "254.5000" not in out and "1000.0000" not in out and "100.0000" not in out
    assert "over 3 runs, one seed per run" in out
    assert "Diverged runs are left out of mean ± std: U-Net at -4 dB (3 of 4 runs; 1 diverged)." in out
    assert "Networks scored at their final epoch (3)." in out
    assert (tmp_path / "final" / "tables.md").read_text() == out
    assert "1 diverged" in (tmp_path / "final" / "tables.html").read_text()

    header, runs = read_csv(tmp_path / "final" / "runs.csv")
    assert len(header) == len(set(header))
    assert {"input_snr_db", "output_snr_db", "rmse_mv", "epochs", "diverged"} <= set(header)
    assert "snr_db" not in header and "rmse" not in header
    assert len(runs) == 5  # FFT + 4 U-Net runs, each once, at its final epoch
    unet = {r["seed"]: r for r in runs if r["method"] == "unet"}
    assert {s: (r["epochs"], r["diverged"], float(r["output_snr_db"])) for s, r in unet.items()} == {
        "0": ("3", "false", 4.0), "1": ("3", "false", 6.0), "2": ("3", "false", 8.0), "3": ("3", "true", 1000.0)}
    assert all(r["input_snr_db"] == "-4" for r in runs)

    at2 = make_tables(results, tmp_path / "e2", "--epoch=2")
    assert at2.returncode == 0, at2.stderr
    lines = at2.stdout.splitlines()
    assert EPOCH2_UNET in lines and FINAL_UNET not in lines
    # Baselines are unaffected; with U-Net at 2.0 FFT now has the best SNR.
    assert "| FFT | **5.0000** | — | — | — | — | **0.0100** | — | — | — | — |" in lines
    assert "Networks scored at epoch 2." in at2.stdout and "over 4 runs" in at2.stdout
    assert "diverged" not in at2.stdout.lower()
    _, runs2 = read_csv(tmp_path / "e2" / "runs.csv")
    assert sorted((r["seed"], r["epochs"], r["output_snr_db"]) for r in runs2 if r["method"] == "unet") == [
        ("0", "2", "1.0"), ("1", "2", "2.0"), ("2", "2", "3.0"), ("3", "2", "2.0")]

    explicit3 = make_tables(results, tmp_path / "e3", "--epoch", "3")
    assert explicit3.returncode == 0, explicit3.stderr
    assert FINAL_UNET in explicit3.stdout.splitlines() and "Networks scored at epoch 3." in explicit3.stdout

    missing = make_tables(results, tmp_path / "e7", "--epoch=7")
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: no network results scored at epoch 7")
    assert "epochs present: 2, 3" in missing.stderr
