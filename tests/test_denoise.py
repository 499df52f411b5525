"""ecg_jax.denoise: resampling, overlap-add, streaming, leads, NaN, formats, weights, ensemble, CLI errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax.denoise import Denoiser, load_denoiser, load_weights, save_weights
from ecg_jax.denoise.core import ensemble_window_fn, lead_pairs, min_samples
from ecg_jax.denoise.overlap import crossfade_weights, cut_windows, overlap_add
from ecg_jax.denoise.signals import array_recording, open_recording, open_writer
from ecg_jax.denoise.weights import WeightsError, stack_variables
from ecg_jax.errors import DenoiseInputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def identity(x):
    return x


def band_limited(fs: float, seconds: float, leads: int = 2) -> np.ndarray:
    """Sines well below every Nyquist rate involved (< 100 Hz), mV-sized."""
    t = np.arange(int(round(fs * seconds))) / fs
    freqs = [(1.1, 0.9), (7.3, 0.4), (23.0, 0.2), (61.0, 0.05)]
    return np.stack([sum(a * np.sin(2 * np.pi * f * t + lead) for f, a in freqs) for lead in range(leads)], 1)


# --------------------------------------------------------------- resampling, overlap-add

def test_crossfade_weights_sum_to_one():
    w = crossfade_weights(256)
    for hop in (128, 64):
        total = sum(np.roll(w, k * hop) for k in range(256 // hop))
        np.testing.assert_allclose(total, 256 / hop / 2, atol=1e-12)
    x = np.random.default_rng(0).normal(size=(2000, 2))
    np.testing.assert_allclose(overlap_add(cut_windows(x[:1920], 256, 128), 128, w)[128:-128], x[128:1792],
                               atol=1e-12)


def test_identity_model_gives_the_input_back_exactly_at_360_hz():
    x = np.random.default_rng(1).normal(size=(5000, 2)).astype(np.float32)
    for hop in (128, 64):
        np.testing.assert_allclose(Denoiser(identity, hop=hop)(x, fs=360), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fs", [500, 250])
def test_resampling_round_trip(fs):
    """fs -> 360 -> fs through the pipeline (identity network), and 360 -> fs -> 360 with the same filters."""
    from ecg_jax.denoise.resampling import Ratio

    x = band_limited(fs, 12)
    y = Denoiser(identity)(x, fs=fs)
    assert y.shape == x.shape
    np.testing.assert_allclose(y[50:-50], x[50:-50], atol=3e-5)
    np.testing.assert_allclose(y, x, atol=2e-3)       # the ends: point reflection keeps them close too
    x360 = band_limited(360, 12)
    there = Ratio.between(360, fs).apply(x360)
    np.testing.assert_allclose(there[100:-100], x[100:-100], atol=3e-5)
    back = Ratio.between(fs, 360).apply(there)
    np.testing.assert_allclose(back[200:-200], x360[200:-200], atol=3e-5)


@pytest.mark.parametrize("fs", [360, 500, 128, 128.5])
def test_blocked_equals_unblocked(fs):
    def nonlinear(x):  # depends on the whole window: any misaligned block would show
        return np.tanh(x) + x.mean(axis=1, keepdims=True)

    x = band_limited(fs, 30) + np.random.default_rng(2).normal(0, 0.1, (int(fs * 30), 2))
    whole = Denoiser(nonlinear, block_seconds=1e9)(x, fs=fs)
    blocked = Denoiser(nonlinear, block_seconds=2.3)(x, fs=fs)
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-9)


# --------------------------------------------------------------- leads, NaN, bad input

def mixing(x):
    """Channel 0 -> x0 + x1, channel 1 -> x1 - x0: linear, so the cross-fade is exact."""
    return np.stack([x[..., 0] + x[..., 1], x[..., 1] - x[..., 0]], -1)


def test_one_lead_is_duplicated_and_channel_0_kept():
    x = np.random.default_rng(3).normal(size=3000)
    y = Denoiser(mixing)(x, fs=360)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, 2 * x, atol=1e-5)


def test_three_leads_go_in_pairs_and_the_last_with_itself():
    assert lead_pairs(3) == [(0, 1), (2, 2)] and lead_pairs(4) == [(0, 1), (2, 3)]
    x = np.random.default_rng(4).normal(size=(3000, 3)).astype(np.float32)
    y = Denoiser(mixing)(x, fs=360)
    assert y.shape == x.shape
    np.testing.assert_allclose(y[:, 0], x[:, 0] + x[:, 1], atol=1e-5)
    np.testing.assert_allclose(y[:, 1], x[:, 1] - x[:, 0], atol=1e-5)
    np.testing.assert_allclose(y[:, 2], 2 * x[:, 2], atol=1e-5)


def test_nan_gaps_are_bridged_for_the_network_and_kept_in_the_output():
    seen = []

    def spy(x):
        seen.append(np.isnan(x).any())
        return x

    x = np.linspace(0.0, 1.0, 4000)[:, None] * np.ones((1, 2))
    x[1000:1100, 0] = np.nan
    x[:10, 1] = np.nan
    y = Denoiser(spy)(x, fs=360)
    assert not any(seen)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    np.testing.assert_allclose(y[~np.isnan(x)], x[~np.isnan(x)], atol=1e-6)


@pytest.mark.parametrize("x, message", [
    (np.zeros((1000, 2)), "flat"),
    (np.full((1000, 2), np.nan), "all NaN"),
    (np.ones((100, 2)) * np.arange(100)[:, None], "too short"),
])
def test_bad_signals_are_refused(x, message):
    with pytest.raises(DenoiseInputError, match=message):
        Denoiser(identity)(x, fs=360)
    assert min_samples(360) == 256 and min_samples(500) == 356


# --------------------------------------------------------------- formats

def roundtrip(tmp_path, name, x, fs=500.0, reference=None):
    rec = reference or array_recording(x, fs)
    out = str(tmp_path / name)
    with open_writer(out, rec, len(x)) as w:
        w.write(x[:700])
        w.write(x[700:])
    return open_recording(out, fs)


def test_csv_with_and_without_header(tmp_path):
    x = np.random.default_rng(5).normal(size=(1000, 2))
    back = roundtrip(tmp_path, "a.csv", x)
    assert back.lead_names is None and back.n_leads == 2
    np.testing.assert_allclose(back.read(0, 1000), x, atol=1e-6)
    (tmp_path / "h.csv").write_text("MLII,V5\n" + (tmp_path / "a.csv").read_text())
    rec = open_recording(str(tmp_path / "h.csv"), fs=500)
    assert rec.lead_names == ["MLII", "V5"] and rec.n_samples == 1000
    back = roundtrip(tmp_path, "b.csv", rec.read(0, 1000), reference=rec)
    assert back.lead_names == ["MLII", "V5"]
    np.testing.assert_allclose(back.read(0, 1000), x, atol=2e-6)


def test_npy(tmp_path):
    x = np.random.default_rng(6).normal(size=(1000, 3)).astype(np.float32)
    back = roundtrip(tmp_path, "a.npy", x)
    np.testing.assert_array_equal(back.read(0, 1000), x)
    np.save(tmp_path / "one.npy", x[:, 0])
    assert open_recording(str(tmp_path / "one.npy"), fs=250).n_leads == 1


def test_wfdb_keeps_rate_names_and_units(tmp_path):
    import wfdb

    x = np.random.default_rng(7).normal(size=(1000, 2))
    wfdb.wrsamp("in", fs=500, units=["uV", "mV"], sig_name=["I", "II"], p_signal=np.stack([x[:, 0] * 1000, x[:, 1]], 1),
                fmt=["16", "16"], adc_gain=[1.0, 1000.0], baseline=[0, 0], write_dir=str(tmp_path))
    rec = open_recording(str(tmp_path / "in.hea"))
    assert (rec.fs, rec.lead_names, rec.units) == (500.0, ["I", "II"], ["uV", "mV"])
    np.testing.assert_allclose(rec.read(0, 1000), x, atol=1e-3)      # µV read as mV
    out = roundtrip(tmp_path, "out.hea", rec.read(0, 1000), reference=rec)
    header = wfdb.rdheader(str(tmp_path / "out"))
    assert (header.fs, header.sig_len, header.sig_name, header.units) == (500, 1000, ["I", "II"], ["uV", "mV"])
    np.testing.assert_allclose(out.read(0, 1000), x, atol=1.1e-3)
    wfdb.rdrecord(str(tmp_path / "out"))   # checksums and sizes as wfdb expects


def test_edf(tmp_path):
    import edfio

    x = np.random.default_rng(8).normal(size=(2000, 2))
    signals = [edfio.EdfSignal(x[:, 0] * 1000, 200, label="ECG1", physical_dimension="uV",
                               physical_range=(-10000, 10000)),
               edfio.EdfSignal(x[:, 1], 200, label="ECG2", physical_dimension="mV", physical_range=(-10, 10))]
    edfio.Edf(signals).write(tmp_path / "a.edf")
    rec = open_recording(str(tmp_path / "a.edf"))
    assert (rec.fs, rec.n_samples, rec.lead_names) == (200.0, 2000, ["ECG1", "ECG2"])
    np.testing.assert_allclose(rec.read(300, 1700), x[300:1700], atol=1e-3)


def test_unknown_extensions_and_missing_fs(tmp_path):
    (tmp_path / "a.txt").write_text("1\n")
    with pytest.raises(DenoiseInputError, match="valid: .csv, .npy, .hea, .edf"):
        open_recording(str(tmp_path / "a.txt"))
    (tmp_path / "a.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DenoiseInputError, match="--fs"):
        open_recording(str(tmp_path / "a.csv"))


# --------------------------------------------------------------- weights and ensemble

class Scale(nn.Module):
    """out = scale * x: a network whose output is known."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return self.param("scale", nn.initializers.ones, ()) * x


def test_ensemble_is_the_mean_of_members_each_with_its_own_normalisation():
    variables = {"params": {"scale": jnp.asarray([1.0, 3.0])}}
    mean = np.array([[0.0, 0.0], [0.5, 0.5]], np.float32)
    std = np.array([[1.0, 1.0], [2.0, 2.0]], np.float32)
    x = np.random.default_rng(9).normal(size=(4, 256, 2)).astype(np.float32)
    y = ensemble_window_fn(Scale(), variables, mean, std)(x)
    np.testing.assert_allclose(y, (x + (3 * (x - 0.5) + 0.5)) / 2, atol=1e-5)   # member 0: x; member 1: 3x - 1


def random_variables(model, seed: int) -> dict:
    """Random variables of the model's shapes without compiling its init (which takes ~10 s on a CPU)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 256, 2)), train=False))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "var" in name:                       # BatchNorm running variance: positive
            return np.ones(leaf.shape, leaf.dtype)
        scale = 1.0 / np.sqrt(max(1, np.prod(leaf.shape[:-1])))
        return (rng.normal(size=leaf.shape) * scale).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def dancer_weights(tmp_path_factory):
    from ecg_jax.models import create_model

    model = create_model("dancer")
    members = [random_variables(model, k) for k in (0, 1)]
    path = str(tmp_path_factory.mktemp("w") / "dancer.npz")
    mean, std = np.array([[0.1, -0.1], [0.0, 0.2]]), np.array([[1.0, 0.5], [1.5, 1.0]])
    save_weights(path, stack_variables(members), mean, std, {"network": "dancer", "options": {}, "note": "test"})
    return path, model, members, mean, std


def test_weights_round_trip_and_the_ensemble_of_two_dancers(dancer_weights):
    path, model, members, mean, std = dancer_weights
    with np.load(path, allow_pickle=False) as data:
        assert json.loads(str(data["meta"]))["network"] == "dancer"
    loaded_model, variables, m, s, meta = load_weights(path)
    assert meta["note"] == "test" and meta["members_count"] == 2
    np.testing.assert_allclose(m, mean)
    np.testing.assert_allclose(s, std)
    for k in (0, 1):
        for a, b in zip(jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, k=k: a[k], variables)),
                        jax.tree_util.tree_leaves(members[k]), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(WeightsError, match="refusing to overwrite"):
        save_weights(path, variables, m, s, meta)
    # The loaded denoiser is the mean of the members, each with its own normalisation.
    x = np.random.default_rng(10).normal(size=(8, 256, 2)).astype(np.float32)
    apply = jax.jit(lambda v, x: loaded_model.apply(v, x, train=False))
    singles = [np.asarray(apply(members[k], (x - m[k]) / s[k])) * s[k] + m[k] for k in (0, 1)]
    both = load_denoiser(path, batch=8).run_windows(x)
    np.testing.assert_allclose(both, (singles[0] + singles[1]) / 2, rtol=1e-4, atol=1e-4)


def test_load_denoiser_on_a_500_hz_signal(dancer_weights, tmp_path, monkeypatch):
    d = load_denoiser(dancer_weights[0], member=1, batch=32)
    x = band_limited(500, 4, leads=1)[:, 0]
    y = d(x, fs=500)
    assert y.shape == x.shape and np.isfinite(y).all()
    # A weights file whose member 1 is the identity (in mV, through its own normalisation) and member 0
    # is not: the loaded member-1 denoiser gives a 500 Hz signal back, through 360 Hz and back.
    import ecg_jax.models as models

    original = models.create_model
    monkeypatch.setattr(models, "create_model", lambda name, **kw: Scale() if name == "scale" else original(name, **kw))
    path = str(tmp_path / "scale.npz")
    save_weights(path, {"params": {"scale": np.array([3.0, 1.0], np.float32)}}, [[0.2, -0.1], [0.5, -0.3]],
                 [[1.0, 2.0], [0.5, 4.0]], {"network": "scale", "options": {}})
    x2 = band_limited(500, 6, leads=2)
    y2 = load_denoiser(path, member=1, batch=32)(x2, fs=500)
    assert y2.shape == x2.shape
    np.testing.assert_allclose(y2[50:-50], x2[50:-50], atol=1e-4)
    y1 = load_denoiser(path, member=1, batch=32)(x2[:, 0], fs=500)
    np.testing.assert_allclose(y1[50:-50], x2[50:-50, 0], atol=1e-4)
    assert np.abs(load_denoiser(path, member=0, batch=32)(x2, fs=500) - x2)[50:-50].max() > 0.1


# --------------------------------------------------------------- command line

def run_cli(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "denoise.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("make, args, message", [
    (None, ["missing.csv", "--fs", "360", "--output", "o.csv"], "does not exist"),
    ("a.csv", ["a.csv", "--output", "o.csv"], "--fs"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, make, args, message):
    if make:
        np.savetxt(tmp_path / make, np.random.default_rng(0).normal(size=(1000, 2)), delimiter=",")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "o.csv").exists()
