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
Issue 20:
J  an amplitude that cannot be mV of ECG (µV or V read as mV) is refused with a hint; --units for .csv/.npy
K  weights checked against the network the file names (missing, unexpected, wrong shape or dtype); random
   bytes get no pickle hint
L  the output may not be the input: same file after resolving, or the same WFDB record, even with --overwrite
M  a full disk while writing the output: one line, nothing left
"""

from __future__ import annotations

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


# --------------------------------------------------------------- J: implausible amplitudes, --units

def ecg_like(seconds=10.0, fs=360):
    """Spiky 1-mV "beats" once a second on a small baseline: a peak-to-peak of about 1.2 mV."""
    t = np.arange(int(seconds * fs)) / fs
    beats = np.exp(-((t % 1.0) - 0.5) ** 2 / (2 * 0.01 ** 2))
    return np.stack([beats + 0.1 * np.sin(2 * np.pi * 0.3 * t), 0.8 * beats - 0.1], 1)


@pytest.mark.parametrize("scale,units,hint", [(1000.0, None, "--units uV"), (0.001, None, "--units V"),
                                              (1.0, "uV", "--units mV"), (1.0, "V", "--units mV")])
def test_amplitudes_that_cannot_be_millivolts_are_refused_with_a_hint(tmp_path, scale_network, scale, units, hint):
    np.save(tmp_path / "x.npy", (ecg_like() * scale).astype(np.float32))
    weights = save_scale_weights(tmp_path / "w.npz", [1.0], np.zeros((1, 2)), np.ones((1, 2)))
    with pytest.raises(DenoiseInputError, match=r"peak-to-peak amplitude of .*the rule: 0.01 to 20 mV") as e:
        denoise_file(str(tmp_path / "x.npy"), str(tmp_path / "o.npy"), fs=360, weights=weights, units=units,
                     progress=False)
    assert hint in str(e.value)
    assert files_in(tmp_path) == {"x.npy", "w.npz"}


@pytest.mark.parametrize("units,scale", [("uV", 1000.0), ("mV", 1.0), ("V", 0.001), ("µV", 1000.0)])
def test_units_of_an_array_input_are_read_and_written_back(tmp_path, scale_network, units, scale):
    x = ecg_like()
    np.savetxt(tmp_path / "x.csv", x * scale, delimiter=",")
    weights = save_scale_weights(tmp_path / "w.npz", [2.0], np.zeros((1, 2)), np.ones((1, 2)))
    denoise_file(str(tmp_path / "x.csv"), str(tmp_path / "o.csv"), fs=360, weights=weights, units=units,
                 progress=False)
    out = np.loadtxt(tmp_path / "o.csv", delimiter=",")
    # The network doubles its mV input; the file holds the result in the input's units.
    np.testing.assert_allclose(out, 2 * x * scale, rtol=1e-5, atol=2e-6)


def test_wfdb_units_come_from_the_file_and_units_is_refused_for_it(tmp_path, scale_network):
    import wfdb

    x = ecg_like()
    wfdb.wrsamp("uv", fs=360, units=["uV", "uV"], sig_name=["I", "II"], p_signal=x * 1000, fmt=["16", "16"],
                adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(tmp_path))
    wfdb.wrsamp("wrong", fs=360, units=["mV", "mV"], sig_name=["I", "II"], p_signal=x * 1000, fmt=["16", "16"],
                adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(tmp_path))
    weights = save_scale_weights(tmp_path / "w.npz", [1.0], np.zeros((1, 2)), np.ones((1, 2)))
    denoise_file(str(tmp_path / "uv.hea"), str(tmp_path / "o.npy"), weights=weights, progress=False)   # µV: fine
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), x, atol=2e-3)
    with pytest.raises(DenoiseInputError, match=r"lead 0 \(I\).*the file says its units are mV"):
        denoise_file(str(tmp_path / "wrong.hea"), str(tmp_path / "o2.npy"), weights=weights, progress=False)
    with pytest.raises(DenoiseInputError, match="states its own units; drop --units"):
        open_recording(str(tmp_path / "uv.hea"), units="uV")
    with pytest.raises(DenoiseInputError, match="--units must be one of uV, mV, V"):
        open_recording(str(tmp_path / "uv.hea"), units="mv2")


def test_cli_microvolts_as_millivolts_is_one_line_exit_2(tmp_path):
    np.savetxt(tmp_path / "x.csv", ecg_like() * 1000, delimiter=",")
    line = one_line_exit_2(run_script("denoise.py", "x.csv", "--fs", "360", "--output", "o.csv", cwd=tmp_path),
                           "x.csv", "lead 0", "if the values are in uV, pass --units uV")
    assert files_in(tmp_path) == {"x.csv"}, line
    ok = run_script("denoise.py", "x.csv", "--fs", "360", "--units", "uV", "--output", "o.csv", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-3000:]
    out = np.loadtxt(tmp_path / "o.csv", delimiter=",")
    assert 500 < np.percentile(out[:, 0], 99) - np.percentile(out[:, 0], 1) < 2000   # written back in µV


# --------------------------------------------------------------- K: weights against their network

def test_weights_are_checked_against_the_network_they_name(tmp_path, scale_network):
    good = {"params": {"scale": np.ones(1, np.float32)}}
    meta = {"network": "scale", "options": {}}
    mean, std = np.zeros((1, 2)), np.ones((1, 2))
    save_weights(str(tmp_path / "ok.npz"), good, mean, std, meta)
    load_weights(str(tmp_path / "ok.npz"))
    cases = {
        "extra.npz": ({"params": {"scale": np.ones(1, np.float32), "bias": np.ones(1, np.float32)}},
                      "unexpected params/bias"),
        "shape.npz": ({"params": {"scale": np.ones((1, 3), np.float32)}},
                      r"params/scale is float32 \[3\] per member, the network needs float32 \[\] per member"),
        "dtype.npz": ({"params": {"scale": np.ones(1, np.float64)}},
                      r"params/scale is float64 \[\] per member, the network needs float32"),
    }
    for name, (variables, message) in cases.items():
        save_weights(str(tmp_path / name), variables, mean, std, meta)
        with pytest.raises(WeightsError, match=rf"{name} does not fit the network it names \(scale\): {message}"):
            load_weights(str(tmp_path / name))


def test_weights_of_a_real_network_with_an_array_missing(tmp_path):
    model, variables, mean, std, meta = load_weights(os.path.join(REPO, "weights", "dancer.npz"))
    from flax import traverse_util

    flat = traverse_util.flatten_dict(variables["params"], sep="/")
    dropped = sorted(flat)[0]
    del flat[dropped]
    variables = {**variables, "params": traverse_util.unflatten_dict(flat, sep="/")}
    save_weights(str(tmp_path / "w.npz"), variables, mean, std, {k: v for k, v in meta.items()
                                                                    if k not in ("format", "format_version")})
    with pytest.raises(WeightsError, match=rf"does not fit the network it names \(dancer\): missing params/{dropped}"):
        load_weights(str(tmp_path / "w.npz"))


@pytest.mark.parametrize("make", ["missing", "random"])
def test_cli_damaged_weights_are_one_line_without_a_pickle_hint(tmp_path, make):
    write_csv(tmp_path / "a.csv")
    if make == "random":
        (tmp_path / "w.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        with np.load(os.path.join(REPO, "weights", "dancer.npz")) as z:
            arrays = {k: z[k] for k in z.files}
        del arrays[sorted(k for k in arrays if k.startswith("params/"))[-1]]
        np.savez(tmp_path / "w.npz", **arrays)
    before = files_in(tmp_path)
    line = one_line_exit_2(run_script("denoise.py", "a.csv", "--fs", "360", "--output", "o.csv", "--weights",
                                      "w.npz", cwd=tmp_path), "w.npz")
    assert "pickle" not in line
    assert ("missing params/" in line) if make == "missing" else ("not an .npz (zip) archive" in line)
    assert files_in(tmp_path) == before


# --------------------------------------------------------------- L: the output may not be the input

def test_cli_output_equal_to_the_input_is_refused_even_with_overwrite(tmp_path):
    write_csv(tmp_path / "a.csv")
    write_wfdb(tmp_path, "rec")
    before = {p: (tmp_path / p).read_bytes() for p in files_in(tmp_path)}
    for args in (["a.csv", "--fs", "360", "--output", "a.csv"],
                 ["a.csv", "--fs", "360", "--output", "./sub/../a.csv"],
                 ["rec.hea", "--output", "rec.hea"],
                 ["rec.hea", "--output", "rec.HEA"]):
        one_line_exit_2(run_script("denoise.py", *args, "--overwrite", cwd=tmp_path), "would replace the input",
                        "--overwrite does not allow this")
    assert {p: (tmp_path / p).read_bytes() for p in files_in(tmp_path)} == before


def test_output_that_is_the_input_through_a_link_is_refused(tmp_path, scale_network):
    write_csv(tmp_path / "a.csv")
    os.symlink(tmp_path / "a.csv", tmp_path / "link.csv")
    os.link(tmp_path / "a.csv", tmp_path / "hard.csv")
    weights = save_scale_weights(tmp_path / "w.npz", [1.0], np.zeros((1, 2)), np.ones((1, 2)))
    for output in ("link.csv", "hard.csv"):
        with pytest.raises(DenoiseInputError, match="would replace the input"):
            denoise_file(str(tmp_path / "a.csv"), str(tmp_path / output), fs=360, weights=weights, overwrite=True,
                         progress=False)


# --------------------------------------------------------------- M: a full disk while writing the output

def test_a_full_disk_while_writing_the_output_is_one_line_and_leaves_nothing(tmp_path, scale_network,
                                                                             monkeypatch):
    import errno

    from ecg_jax.denoise import signals
    from ecg_jax.interrupts import DiskFullError

    write_csv(tmp_path / "a.csv", seconds=30)
    weights = save_scale_weights(tmp_path / "w.npz", [1.0], np.zeros((1, 2)), np.ones((1, 2)))
    before = files_in(tmp_path)

    def full(self, block):
        raise OSError(errno.ENOSPC, "No space left on device")

    for writer, output in ((signals.CsvWriter, "o.csv"), (signals.NpyWriter, "o.npy"), (signals.WfdbWriter, "o.hea")):
        monkeypatch.setattr(writer, "write", full)
        with pytest.raises(DiskFullError, match=rf"^no space left in {tmp_path} while writing {output} \(.* free\)"):
            denoise_file(str(tmp_path / "a.csv"), str(tmp_path / output), fs=360, weights=weights, progress=False)
        assert files_in(tmp_path) == before


def test_cli_output_under_a_regular_file_is_one_line_before_reading(tmp_path):
    """--output whose folder is a regular file: one line naming --output, nothing written, exit 2."""
    src = tmp_path / "rec.csv"
    write_csv(src)
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    before = files_in(tmp_path)
    result = run_script("denoise.py", str(src), "--fs", "360", "--output", str(blocker / "out.npy"), cwd=tmp_path)
    one_line_exit_2(result, "is a file, not a folder", "--output")
    assert files_in(tmp_path) == before
