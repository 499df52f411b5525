"""ecg_jax.denoise: faults found in review (issue 12), each with the case that showed it.

A  --member all over members of several datasets (noise type x SNR) is refused; --dataset picks one
B  WFDB input with a missing or truncated .dat: one line; any reader failure: one line
C  --weights that is a .npy or a corrupt file: one line
D  WFDB output names wfdb cannot read back: refused
E  a failed commit of a Writer leaves no temporary files
F  --plot: checked up front (existing, folder), written atomically
G  out.HEA is checked and written as out.hea
H  a first CSV row of NA tokens is data, not a header
I  --fs abc: one line, exit 2; --fs contradicting a .hea/.edf rate: refused
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flax.linen as nn
import numpy as np
import pytest

from ecg_jax.denoise import load_denoiser, load_weights, save_weights
from ecg_jax.denoise.files import denoise_file
from ecg_jax.denoise.runs import member_indices, select_members
from ecg_jax.denoise.signals import Recording, check_output_path, open_recording, open_writer
from ecg_jax.denoise.weights import WeightsError
from ecg_jax.errors import CheckpointError, DenoiseInputError, EcgJaxError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))
import common  # noqa: E402


def run_script(script, *args, cwd):
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180)


def one_line_exit_2(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def files_in(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def write_csv(path, seconds=4.0, fs=360):
    t = np.arange(int(seconds * fs)) / fs
    x = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 0.7 * t)], 1)
    np.savetxt(path, x, delimiter=",")
    return x


def write_wfdb(folder, name="rec", fs=360, n=2000):
    import wfdb

    x = np.random.default_rng(0).normal(size=(n, 2))
    wfdb.wrsamp(name, fs=fs, units=["mV", "mV"], sig_name=["I", "II"], p_signal=x, fmt=["16", "16"],
                adc_gain=[1000.0, 1000.0], baseline=[0, 0], write_dir=str(folder))
    return x


class Scale(nn.Module):
    """out = scale * x (one scale per member): a network whose output is known."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return self.param("scale", nn.initializers.ones, ()) * x


@pytest.fixture
def scale_network(monkeypatch):
    """Make "scale" a network name that weights files may name (in this process)."""
    import ecg_jax.models as models

    original = models.create_model
    monkeypatch.setattr(models, "create_model",
                        lambda name, **kw: Scale() if name == "scale" else original(name, **kw))


def save_scale_weights(path, scales, mean, std, members=None):
    meta = {"network": "scale", "options": {}}
    if members is not None:
        meta["members"] = members
    save_weights(str(path), {"params": {"scale": np.asarray(scales, np.float32)}}, mean, std, meta)
    return str(path)


# --------------------------------------------------------------- A: members of several datasets

GRID = [("emb", -4.0), ("emb", -4.0), ("emb", 4.0), ("emb", 4.0)]   # dataset-major, 2 seeds


def test_all_over_several_datasets_is_refused_naming_them():
    with pytest.raises(EcgJaxError, match=r"2 datasets \(emb@-4, emb@4\).*--dataset NOISE@SNR"):
        select_members(4, GRID, "all")
    assert select_members(4, GRID, "all", "emb@4") == [2, 3]
    assert select_members(4, GRID, "all", " EMB@-4.0 ") == [0, 1]
    assert select_members(4, GRID, "3") == [3]                     # one member: no dataset needed
    assert select_members(4, GRID, 3, "emb@4") == [3]
    with pytest.raises(EcgJaxError, match="trained on emb@-4, not on emb@4"):
        select_members(4, GRID, 1, "emb@4")
    with pytest.raises(EcgJaxError, match="no members trained on bw@0; its datasets: emb@-4, emb@4"):
        select_members(4, GRID, "all", "bw@0")
    for bad in ("emb", "emb@", "@0", "emb@x"):
        with pytest.raises(EcgJaxError, match="NOISE@SNR"):
            select_members(4, GRID, "all", bad)
    # One dataset (a seed ensemble, or the training mixture): nothing changes.
    assert select_members(3, [("mixed", 0.0)] * 3, "all") == [0, 1, 2]
    assert select_members(2, None, "all") == [0, 1]


def grid_workdir(tmp_path):
    from ecg_jax.config_utils import config_to_json, resolve_config

    c = common.network_config("unet", None)
    c.seeds, c.noise_types, c.snr_levels = 2, ("emb",), (-4, 4)
    c.data.source, c.data.cache_dir = "synthetic", str(tmp_path / "cache")
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(config_to_json(resolve_config(c)) + "\n")
    return workdir, resolve_config(c)


def test_member_indices_of_a_grid_run(tmp_path):
    _, config = grid_workdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"emb@-4, emb@4"):
        member_indices(config, "all")
    assert member_indices(config, "all", "emb@4") == [2, 3]
    assert member_indices(config, "1") == [1]


@pytest.mark.parametrize("script, args", [
    ("denoise.py", ["a.csv", "--fs", "360", "--output", "o.csv"]),
    ("export.py", ["--output", "o.npz"]),
])
def test_cli_refuses_all_over_several_datasets(tmp_path, script, args):
    workdir, _ = grid_workdir(tmp_path)
    write_csv(tmp_path / "a.csv")
    before = files_in(tmp_path)
    one_line_exit_2(run_script(script, *args, "--workdir", str(workdir), cwd=tmp_path),
                    "emb@-4, emb@4", "--dataset")
    assert files_in(tmp_path) == before


def test_weights_file_with_members_of_several_datasets(tmp_path, scale_network):
    members = [{"index": i, "seed": i % 2, "noise_type": n, "snr_db": s} for i, (n, s) in enumerate(GRID)]
    mean = np.array([[0.0, 0.0], [0.1, 0.1], [0.2, 0.2], [0.3, 0.3]])
    std = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    path = save_scale_weights(tmp_path / "grid.npz", [1.0, 2.0, 3.0, 4.0], mean, std, members)
    with pytest.raises(EcgJaxError, match="emb@-4, emb@4"):
        load_denoiser(path)
    d = load_denoiser(path, dataset="emb@4", batch=4)
    assert [m["index"] for m in d.meta["members"]] == [2, 3]
    x = np.random.default_rng(0).normal(size=(4, 256, 2)).astype(np.float32)
    expected = sum(k * (x - m) + m for k, m in ((3.0, 0.2), (4.0, 0.3))) / 2
    np.testing.assert_allclose(d.run_windows(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(load_denoiser(path, member=1, batch=4).run_windows(x), 2 * (x - 0.1) + 0.1,
                               rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------- B: WFDB signal files

def test_wfdb_with_a_missing_or_truncated_dat(tmp_path):
    write_wfdb(tmp_path)
    dat = tmp_path / "rec.dat"
    data = dat.read_bytes()
    dat.write_bytes(data[:len(data) // 2])
    with pytest.raises(DenoiseInputError, match="rec.dat is truncated"):
        open_recording(str(tmp_path / "rec.hea"))
    dat.unlink()
    with pytest.raises(DenoiseInputError, match="rec.dat is missing"):
        open_recording(str(tmp_path / "rec.hea"))
    dat.write_bytes(data)
    assert open_recording(str(tmp_path / "rec.hea")).n_samples == 2000


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_cli_wfdb_with_a_bad_dat_is_one_line(tmp_path, damage):
    write_wfdb(tmp_path)
    dat = tmp_path / "rec.dat"
    if damage == "missing":
        dat.unlink()
    else:
        dat.write_bytes(dat.read_bytes()[:1001])
    before = files_in(tmp_path)
    one_line_exit_2(run_script("denoise.py", "rec.hea", "--output", "o.npy", cwd=tmp_path), damage)
    assert files_in(tmp_path) == before


def test_any_reader_failure_is_a_denoise_input_error():
    def broken(a, b):
        raise OSError("disk on fire\nsecond line")

    rec = Recording("x.bin", 360.0, 1000, 2, broken)
    with pytest.raises(DenoiseInputError, match=r"cannot read samples 0..10 of x.bin: OSError: disk on fire$"):
        rec.read(0, 10)
    short = Recording("y.bin", 360.0, 1000, 2, lambda a, b: np.zeros((3, 2)))
    with pytest.raises(DenoiseInputError, match="y.bin"):
        short.read(0, 10)


# --------------------------------------------------------------- C: bad weights files

def test_weights_that_are_not_an_npz_or_are_corrupt(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros(3))
    with pytest.raises(WeightsError, match="must be a .npz"):
        load_weights(str(tmp_path / "w.npy"))
    np.save(tmp_path / "arr.npy", np.zeros(3))
    os.replace(tmp_path / "arr.npy", tmp_path / "arr.npz")
    with pytest.raises(WeightsError, match="holds one array"):
        load_weights(str(tmp_path / "arr.npz"))
    (tmp_path / "junk.npz").write_bytes(os.urandom(500))
    with pytest.raises(WeightsError, match="is not a weights file"):
        load_weights(str(tmp_path / "junk.npz"))
    np.savez(tmp_path / "badjson.npz", meta=np.asarray("{not json"), norm_mean=np.zeros((1, 2)),
             norm_std=np.ones((1, 2)))
    with pytest.raises(WeightsError, match="not readable JSON"):
        load_weights(str(tmp_path / "badjson.npz"))
    np.savez(tmp_path / "list.npz", meta=np.asarray("[1, 2]"), norm_mean=np.zeros((1, 2)), norm_std=np.ones((1, 2)))
    with pytest.raises(WeightsError, match="not a JSON object"):
        load_weights(str(tmp_path / "list.npz"))


@pytest.mark.parametrize("make", ["npy", "corrupt", "badjson"])
def test_cli_bad_weights_is_one_line(tmp_path, make):
    write_csv(tmp_path / "a.csv")
    if make == "npy":
        name = "w.npy"
        np.save(tmp_path / name, np.zeros((3, 2)))
    elif make == "corrupt":
        name = "w.npz"
        (tmp_path / name).write_bytes(b"PK\x03\x04" + os.urandom(300))
    else:
        name = "w.npz"
        np.savez(tmp_path / name, meta=np.asarray("{"), norm_mean=np.zeros((1, 2)), norm_std=np.ones((1, 2)))
    before = files_in(tmp_path)
    one_line_exit_2(run_script("denoise.py", "a.csv", "--fs", "360", "--output", "o.csv", "--weights", name,
                               cwd=tmp_path), name)
    assert files_in(tmp_path) == before


# --------------------------------------------------------------- D, G: WFDB output names

@pytest.mark.parametrize("name", ["out.v2.hea", "my out.hea", "a+b.hea"])
def test_wfdb_output_names_wfdb_cannot_read_are_refused(tmp_path, name):
    with pytest.raises(DenoiseInputError, match="not a WFDB record name"):
        check_output_path(str(tmp_path / name))
    assert check_output_path(str(tmp_path / "out-v2_b.hea")) == str(tmp_path / "out-v2_b.hea")
    assert check_output_path(str(tmp_path / "out.v2.csv")) == str(tmp_path / "out.v2.csv")   # not WFDB: fine


def test_cli_bad_wfdb_output_name_is_one_line(tmp_path):
    write_csv(tmp_path / "a.csv")
    before = files_in(tmp_path)
    one_line_exit_2(run_script("denoise.py", "a.csv", "--fs", "360", "--output", "out.v2.hea", cwd=tmp_path),
                    "WFDB record name")
    assert files_in(tmp_path) == before


def test_uppercase_hea_is_checked_and_written_as_lowercase(tmp_path):
    write_wfdb(tmp_path, "out")
    (tmp_path / "out.dat").unlink()
    with pytest.raises(DenoiseInputError, match="out.hea exists"):     # the header alone
        check_output_path(str(tmp_path / "out.HEA"))
    (tmp_path / "out.hea").unlink()
    assert check_output_path(str(tmp_path / "out.HEA")) == str(tmp_path / "out.hea")
    x = np.random.default_rng(1).normal(size=(500, 2))
    from ecg_jax.denoise.signals import array_recording

    with open_writer(str(tmp_path / "out.HEA"), array_recording(x, 360.0), 500) as w:
        w.write(x)
    assert files_in(tmp_path) == {"out.hea", "out.dat"}
    np.testing.assert_allclose(open_recording(str(tmp_path / "out.hea")).read(0, 500), x, atol=1e-3)


def test_cli_uppercase_hea_does_not_bypass_the_overwrite_check(tmp_path):
    write_csv(tmp_path / "a.csv")
    write_wfdb(tmp_path, "out")
    before = {p: (tmp_path / p).read_bytes() for p in files_in(tmp_path)}
    one_line_exit_2(run_script("denoise.py", "a.csv", "--fs", "360", "--output", "out.HEA", cwd=tmp_path),
                    "exists")
    assert {p: (tmp_path / p).read_bytes() for p in files_in(tmp_path)} == before


# --------------------------------------------------------------- E: failed commits

def test_a_failed_commit_leaves_no_temporary_files(tmp_path):
    from ecg_jax.denoise.signals import array_recording

    x = np.random.default_rng(2).normal(size=(500, 2))
    rec = array_recording(x, 360.0)
    for name in ("o.csv", "o.npy", "o.hea"):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).mkdir()        # the final name is taken by a folder: os.replace fails
        with pytest.raises(OSError):
            with open_writer(str(folder / name), rec, 500) as w:
                w.write(x)
        assert files_in(folder) == {name}, name    # no temporary file, no orphan .dat


# --------------------------------------------------------------- F: --plot

def test_cli_plot_checked_before_any_work(tmp_path):
    write_csv(tmp_path / "a.csv")
    (tmp_path / "p.png").write_bytes(b"old")
    before = files_in(tmp_path)
    one_line_exit_2(run_script("denoise.py", "a.csv", "--fs", "360", "--output", "o.csv", "--plot", "p.png",
                               cwd=tmp_path), "p.png exists", "--overwrite")
    one_line_exit_2(run_script("denoise.py", "a.csv", "--fs", "360", "--output", "o.csv", "--plot",
                               "nowhere/p.png", cwd=tmp_path), "does not exist")
    assert files_in(tmp_path) == before
    assert (tmp_path / "p.png").read_bytes() == b"old"


def test_plot_is_written_atomically_and_replaced_only_with_overwrite(tmp_path, scale_network):
    weights = save_scale_weights(tmp_path / "id.npz", [1.0], [[0.0, 0.0]], [[1.0, 1.0]])
    x = write_csv(tmp_path / "a.csv")
    denoise_file(str(tmp_path / "a.csv"), str(tmp_path / "o.csv"), fs=360, weights=weights,
                 plot=str(tmp_path / "p.png"), progress=False)
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_allclose(np.loadtxt(tmp_path / "o.csv", delimiter=","), x, atol=1e-5)
    with pytest.raises(DenoiseInputError, match="p.png exists"):
        denoise_file(str(tmp_path / "a.csv"), str(tmp_path / "o2.csv"), fs=360, weights=weights,
                     plot=str(tmp_path / "p.png"), progress=False)
    (tmp_path / "p.png").write_bytes(b"old")
    denoise_file(str(tmp_path / "a.csv"), str(tmp_path / "o.csv"), fs=360, weights=weights,
                 plot=str(tmp_path / "p.png"), overwrite=True, progress=False)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert files_in(tmp_path) == {"a.csv", "o.csv", "p.png", "id.npz"}


def test_a_failing_plot_leaves_neither_output_nor_plot(tmp_path, scale_network, monkeypatch):
    import ecg_jax.denoise.files as files

    weights = save_scale_weights(tmp_path / "id.npz", [1.0], [[0.0, 0.0]], [[1.0, 1.0]])
    write_csv(tmp_path / "a.csv")

    def fail(path, recording, denoised):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError("no space left on device")

    monkeypatch.setattr(files, "plot_comparison", fail)
    with pytest.raises(DenoiseInputError, match="cannot write the plot"):
        denoise_file(str(tmp_path / "a.csv"), str(tmp_path / "o.csv"), fs=360, weights=weights,
                     plot=str(tmp_path / "p.png"), progress=False)
    assert files_in(tmp_path) == {"a.csv", "id.npz"}


# --------------------------------------------------------------- H: NA in the first CSV row

@pytest.mark.parametrize("token", ["NA", "N/A", "null", "None", "nan", "NaN", ""])
def test_na_tokens_in_the_first_csv_row_are_data(tmp_path, token):
    rows = [f"{token},1.5"] + [f"{i * 0.1:.1f},{i * 0.2:.1f}" for i in range(1, 10)]
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    rec = open_recording(str(tmp_path / "a.csv"), fs=360)
    assert rec.lead_names is None and rec.n_samples == 10
    first = rec.read(0, 1)[0]
    assert np.isnan(first[0]) and first[1] == 1.5
    (tmp_path / "h.csv").write_text("MLII,V5\n" + "\n".join(rows) + "\n")
    rec = open_recording(str(tmp_path / "h.csv"), fs=360)
    assert rec.lead_names == ["MLII", "V5"] and rec.n_samples == 10


# --------------------------------------------------------------- I: --fs

@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
def test_cli_bad_fs_is_one_line_exit_2(tmp_path, value):
    write_csv(tmp_path / "a.csv")
    before = files_in(tmp_path)
    one_line_exit_2(run_script("denoise.py", "a.csv", f"--fs={value}", "--output", "o.csv", cwd=tmp_path),
                    "--fs", value)
    assert files_in(tmp_path) == before


def test_fs_contradicting_the_file_rate_is_refused(tmp_path):
    write_wfdb(tmp_path, fs=360)
    with pytest.raises(DenoiseInputError, match="differs from the file's own sampling rate, 360 Hz"):
        open_recording(str(tmp_path / "rec.hea"), fs=500)
    assert open_recording(str(tmp_path / "rec.hea"), fs=360).fs == 360.0
    assert open_recording(str(tmp_path / "rec.hea"), fs=360.0).fs == 360.0

    import edfio

    x = np.random.default_rng(3).normal(size=(2000, 1))
    edfio.Edf([edfio.EdfSignal(x[:, 0], 200, label="ECG", physical_dimension="mV",
                               physical_range=(-10, 10))]).write(tmp_path / "a.edf")
    with pytest.raises(DenoiseInputError, match="200 Hz"):
        open_recording(str(tmp_path / "a.edf"), fs=250)
    assert open_recording(str(tmp_path / "a.edf"), fs=200).fs == 200.0


def test_cli_fs_contradicting_a_wfdb_rate_is_one_line(tmp_path):
    write_wfdb(tmp_path, fs=360)
    before = files_in(tmp_path)
    one_line_exit_2(run_script("denoise.py", "rec.hea", "--fs", "500", "--output", "o.npy", cwd=tmp_path),
                    "360 Hz")
    assert files_in(tmp_path) == before
