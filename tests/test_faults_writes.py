"""Writes that must not leave a half file, a temporary file or a crash behind (issue 30, third round).

  A  the report's figures (`ecg-jax tables`, `reproduce`) are rendered into a temporary file beside the
     final name and renamed: a save that fails half-way, or whose close fails, keeps the previous
     figures as they were and leaves no temporary file (in process, and through `make_tables.py`);
  B  `ecg-jax denoise` onto a full disk: a .npy (memory-mapped: a SIGBUS past the free space) or WFDB
     output larger than the free space is refused in one line before it is created, and reserved on
     disk once created; a .csv whose close fails leaves no `.denoise-*` file; a failing WFDB write is one
     line (a real tmpfs where root can mount one, and simulated ENOSPC/EIO that always run);
  C  `--fs` outside the rates the resampler handles is refused in one line before the input is read.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from test_denoise_faults import files_in, one_line_exit_2, save_scale_weights, scale_network, write_csv, write_wfdb  # noqa: F401
from test_faults_disk import assert_one_line_disk_full, env_for, fill, leftovers, small_disk  # noqa: F401

from ecg_jax.denoise.files import denoise_file
from ecg_jax.denoise.resampling import MAX_FS, MIN_FS
from ecg_jax.errors import DenoiseInputError
from ecg_jax.interrupts import DiskFullError
from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.report import figures
from ecg_jax.results import append_rows, make_row

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def rows():
    """FFT and two U-Net seeds at two input SNRs: enough for the SNR-curve figure and the tables."""
    out = []
    for method, seed, snr in [("fft", None, 5.0), ("unet", 0, 6.0), ("unet", 1, 7.0)]:
        for level in (-4, 0):
            metrics = {k: 0.5 for k in METRIC_NAMES}
            metrics.update(snr_db=snr + level, rmse=0.1)
            out.append(make_row(method=method, noise_type="emb", snr_db=level, seed=seed, split="reference",
                                source="physionet", metrics=metrics, experiment=method, epochs=3))
    return out


class CloseFails:
    """A file whose writes pass (or, with `write_fails`, write part of the data, then raise) and whose
    close closes the real file and then raises `error`, as a full disk does at the last flush."""

    def __init__(self, f, error=None, write_fails=False):
        self.f, self.error, self.write_fails = f, error or enospc(), write_fails

    def write(self, data):
        if self.write_fails:
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            raise self.error
        return self.f.write(data)

    def close(self):
        self.f.close()
        raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self.f, name)


def opener(**kwargs):
    def fake_open(file, mode="r", *args, **kw):
        f = open(file, mode, *args, **kw)
        return CloseFails(f, **kwargs) if ("w" in mode or "a" in mode) else f
    return fake_open


# --------------------------------------------------------------- A: figures

def snapshot(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize("failing", ["png", "svg"])
def test_a_figure_save_failing_half_way_keeps_the_previous_figures(tmp_path, monkeypatch, failing):
    from matplotlib.figure import Figure

    out = tmp_path / "tables"
    paths = figures.plot_snr_curves(rows(), str(out / "snr_curves"))
    assert [os.path.basename(p) for p in paths] == ["snr_curves.png", "snr_curves.svg"]
    before = snapshot(out)
    assert before["snr_curves.png"][:4] == b"\x89PNG" and b"</svg>" in before["snr_curves.svg"]
    real_savefig = Figure.savefig

    def half(self, fname, **kwargs):
        if kwargs.get("format") != failing:
            return real_savefig(self, fname, **kwargs)
        fname.write(b"<svg half a figure" if failing == "svg" else b"\x89PNG half a figure")
        fname.flush()   # some bytes reach the disk, then the disk is full
        raise enospc()

    monkeypatch.setattr(Figure, "savefig", half)
    with pytest.raises(DiskFullError) as e:
        figures.plot_snr_curves(rows(), str(out / "snr_curves"), title="another title")
    assert str(e.value).startswith(f"no space left in {out} while writing snr_curves.{failing} (")
    assert "\n" not in str(e.value)
    assert snapshot(out) == before          # both figures as they were, no temporary file


def test_a_figure_whose_close_fails_leaves_no_temporary_file(tmp_path, monkeypatch):
    clean = np.sin(np.linspace(0, 6, 128))[:, None] * np.ones((1, 2))
    out = tmp_path / "figs"
    figures.plot_denoising_example(clean, clean * 2, {"FFT": clean * 1.5}, 360, "t", str(out / "example"))
    before = snapshot(out)
    monkeypatch.setattr(figures, "open", opener(), raising=False)   # the full disk shows at close
    with pytest.raises(DiskFullError, match=rf"^no space left in {out} while writing example.png"):
        figures.plot_denoising_example(clean, clean * 3, {"FFT": clean}, 360, "new", str(out / "example"))
    assert snapshot(out) == before


def test_cli_tables_with_a_figure_failing_half_way_is_one_line_and_keeps_the_old_figures(tmp_path):
    results = tmp_path / "w" / "results.jsonl"
    append_rows(str(results), rows())
    out = tmp_path / "out"
    env = env_for(tmp_path)
    first = subprocess.run([sys.executable, "scripts/make_tables.py", f"--results={results}", f"--out={out}"],
                           cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(out)
    assert {"snr_curves.png", "snr_curves.svg", "tables.md"} <= set(before)
    # The same command with the SVG save writing part of the file, then failing as on a full disk.
    wrapper = tmp_path / "svg_fails.py"
    wrapper.write_text(
        "import errno, runpy, sys\n"
        "from matplotlib.figure import Figure\n"
        "real = Figure.savefig\n"
        "def half(self, fname, **kw):\n"
        "    if kw.get('format') != 'svg':\n"
        "        return real(self, fname, **kw)\n"
        "    fname.write(b'<svg half'); fname.flush()\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "Figure.savefig = half\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    proc = subprocess.run([sys.executable, str(wrapper), "scripts/make_tables.py", f"--results={results}",
                           f"--out={out}"], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert_one_line_disk_full(proc, f"no space left in {out} while writing snr_curves.svg")
    assert snapshot(out) == before
    assert leftovers(out) == []


# --------------------------------------------------------------- B: denoise onto a full disk

def low_free_space(monkeypatch, free: int) -> None:
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(2**40, 2**40 - free, free))


@pytest.mark.parametrize("output, need", [("o.npy", "173 KiB"), ("o.hea", "89 KiB")])
def test_an_output_larger_than_the_free_space_is_refused_before_it_is_created(tmp_path, monkeypatch, output,
                                                                               need):
    write_csv(tmp_path / "a.csv", seconds=60)   # 21600 samples x 2 leads
    before = files_in(tmp_path)
    low_free_space(monkeypatch, 64 * 1024)
    with pytest.raises(DiskFullError) as e:   # refused before the weights are even looked for
        denoise_file(str(tmp_path / "a.csv"), str(tmp_path / output), fs=360, weights=str(tmp_path / "none.npz"),
                     progress=False)
    assert str(e.value) == (f"{tmp_path} has 64 KiB free, {output} needs {need} (21600 samples x 2 lead(s)); "
                            f"nothing was written: free some space or write the output to another folder")
    assert files_in(tmp_path) == before


def test_cli_npy_output_larger_than_the_free_space_is_one_line(tmp_path):
    write_csv(tmp_path / "a.csv", seconds=60)
    before = files_in(tmp_path)
    wrapper = tmp_path / "little_space.py"
    wrapper.write_text(
        "import runpy, shutil, sys\n"
        "shutil.disk_usage = lambda p: shutil._ntuple_diskusage(2**40, 2**40 - 65536, 65536)\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    proc = subprocess.run([sys.executable, str(wrapper), os.path.join(REPO, "scripts", "denoise.py"), "a.csv",
                           "--fs", "360", "--output", "o.npy"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=180)
    one_line_exit_2(proc, f"error: {tmp_path} has 64 KiB free, o.npy needs 173 KiB", "another folder")
    assert files_in(tmp_path) == before | {"little_space.py"}


def test_a_npy_output_is_reserved_on_disk_before_it_is_mapped(tmp_path, scale_network, monkeypatch):
    """The free-space check passed, then the disk filled up: the reservation fails with ENOSPC (one line),
    where writing the memory map would have been a SIGBUS."""
    write_csv(tmp_path / "a.csv", seconds=30)
    weights = save_scale_weights(tmp_path / "w.npz", [1.0], np.zeros((1, 2)), np.ones((1, 2)))
    before = files_in(tmp_path)

    def full(fd, offset, length):
        raise enospc()

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(DiskFullError, match=rf"^no space left in {tmp_path} while writing o.npy \(.* free\)"):
        denoise_file(str(tmp_path / "a.csv"), str(tmp_path / "o.npy"), fs=360, weights=weights, progress=False)
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("write_fails", [False, True])
@pytest.mark.parametrize("output", ["o.csv", "o.hea"])
def test_a_failing_close_leaves_no_temporary_file(tmp_path, scale_network, monkeypatch, output, write_fails):
    """ENOSPC at the real file's write and/or close (the last flush): one line, no `.denoise-*` file."""
    from ecg_jax.denoise import signals

    write_csv(tmp_path / "a.csv", seconds=30)
    weights = save_scale_weights(tmp_path / "w.npz", [1.0], np.zeros((1, 2)), np.ones((1, 2)))
    before = files_in(tmp_path)
    monkeypatch.setattr(signals, "open", opener(write_fails=write_fails), raising=False)
    with pytest.raises(DiskFullError) as e:
        denoise_file(str(tmp_path / "a.csv"), str(tmp_path / output), fs=360, weights=weights, progress=False)
    assert str(e.value).startswith(f"no space left in {tmp_path} while writing {output} (") and "\n" not in str(e.value)
    assert files_in(tmp_path) == before


def test_a_wfdb_write_that_fails_otherwise_is_one_line(tmp_path, scale_network, monkeypatch):
    from ecg_jax.denoise import signals

    write_csv(tmp_path / "a.csv", seconds=30)
    weights = save_scale_weights(tmp_path / "w.npz", [1.0], np.zeros((1, 2)), np.ones((1, 2)))
    before = files_in(tmp_path)
    with monkeypatch.context() as m:   # an I/O error at the .dat
        m.setattr(signals, "open", opener(error=OSError(errno.EIO, "Input/output error"), write_fails=True),
                  raising=False)
        with pytest.raises(DenoiseInputError) as e:
            denoise_file(str(tmp_path / "a.csv"), str(tmp_path / "o.hea"), fs=360, weights=weights, progress=False)
    assert str(e.value) == (f"cannot write the WFDB record {tmp_path / 'o.hea'} (o.dat): OSError: [Errno 5] "
                            f"Input/output error; nothing was kept; check the folder and rerun")
    assert files_in(tmp_path) == before

    import wfdb

    def refuse(self, **kwargs):   # wfdb refusing a header field
        raise ValueError("bad header field\nsecond line")

    monkeypatch.setattr(wfdb.Record, "wrheader", refuse)
    with pytest.raises(DenoiseInputError, match=r"^cannot write the WFDB record .*o.hea \(o.hea\): ValueError: "
                                                r"bad header field; nothing was kept"):
        denoise_file(str(tmp_path / "a.csv"), str(tmp_path / "o.hea"), fs=360, weights=weights, progress=False)
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("output", ["out.npy", "out.hea", "out.csv"])
def test_cli_denoise_onto_a_full_tmpfs_is_one_line_never_a_crash(small_disk, tmp_path, output):
    """A real full disk: the .npy was a SIGBUS (exit 135), the WFDB .dat a traceback. With the free-space
    check told a lie (plenty free), the .npy's reservation and the .dat's write meet the full disk."""
    t = np.arange(int(120 * 360)) / 360
    np.save(tmp_path / "in.npy", np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t)], 1)
            .astype(np.float32))
    fill(small_disk, leave=64 * 1024)
    env = env_for(tmp_path)
    args = [str(tmp_path / "in.npy"), "--fs", "360", "--output", str(small_disk / output)]
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "denoise.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    if output == "out.csv":   # its size is not known beforehand: the write meets the full disk
        assert_one_line_disk_full(proc, f"no space left in {small_disk} while writing out.csv")
    else:
        one_line_exit_2(proc, f"error: {small_disk} has 64 KiB free, {output} needs")
    assert sorted(os.listdir(small_disk)) == ["ballast"]
    if output == "out.csv":
        return
    liar = tmp_path / "plenty_free.py"
    liar.write_text("import runpy, shutil, sys\n"
                    "shutil.disk_usage = lambda p: shutil._ntuple_diskusage(2**40, 0, 2**40)\n"
                    "sys.argv = sys.argv[1:]\n"
                    "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    proc = subprocess.run([sys.executable, str(liar), os.path.join(REPO, "scripts", "denoise.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert_one_line_disk_full(proc, f"no space left in {small_disk} while writing {output}")
    assert sorted(os.listdir(small_disk)) == ["ballast"]


# --------------------------------------------------------------- C: --fs bounds

@pytest.mark.parametrize("value", ["0.001", "49.9", "10001", "1e9"])
def test_cli_fs_out_of_the_resampler_range_is_one_line_exit_2_at_once(tmp_path, value):
    write_csv(tmp_path / "a.csv", seconds=4)
    before = files_in(tmp_path)
    tic = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ecg_jax", "denoise", "a.csv", f"--fs={value}", "--output", "o.csv"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": REPO})
    one_line_exit_2(proc, f"error: --fs {float(value):g} Hz is out of range", f"{MIN_FS:g}..{MAX_FS:g} Hz",
                    "--fs 500")
    assert time.monotonic() - tic < 60      # no minutes of resampling at gigabytes
    assert files_in(tmp_path) == before


def test_fs_bounds_hold_for_file_rates_and_the_array_api(tmp_path, scale_network):
    from ecg_jax.denoise import load_denoiser
    from ecg_jax.denoise.signals import open_recording

    write_wfdb(tmp_path, fs=20)
    with pytest.raises(DenoiseInputError, match=r"rec.hea: its sampling rate, 20 Hz, is out of range: .* 50..10000 "
                                                r"Hz; resample the recording into that range first"):
        open_recording(str(tmp_path / "rec.hea"))
    write_csv(tmp_path / "b.csv", seconds=4)
    assert open_recording(str(tmp_path / "b.csv"), fs=MIN_FS).fs == MIN_FS        # the bounds themselves are fine
    assert open_recording(str(tmp_path / "b.csv"), fs=MAX_FS).fs == MAX_FS
    d = load_denoiser(save_scale_weights(tmp_path / "w.npz", [1.0], np.zeros((1, 2)), np.ones((1, 2))))
    with pytest.raises(DenoiseInputError, match="0.001 Hz, is out of range"):
        d(np.zeros((1000, 2)), fs=0.001)
