"""Fresh-noise training of one denoiser: every batch gets new noise, drawn inside the compiled step.

The protocol's programs (program.py) train on a fixed set of noisy windows:
window i has one noise segment, one noise type and one SNR for the whole
run. A denoiser for other people's recordings must not learn those pairs by
heart, so this program keeps only raw material on the device and draws every
batch anew, inside the jit-compiled step (no host work per step):

  clean   the full MIT-BIH training records (card's train records minus the
          `val_records`), a window at a random record and sample offset, so
          every window of every training record can appear;
  noise   a noise bank of the three NSTDB records, only their first
          `noise_train_fraction` (the rest is the denoise benchmark's noise);
          a random offset per noise type, a random mixture: each of bw, em, ma
          on with probability 1/2 (at least one), each weighed by U(0.25, 1),
          or with probability `emb_probability` exactly bw + em + ma;
  SNR     uniform in `snr_db_range` per window, scaled over the window, both
          leads together (noise.mix_at_snr, the protocol's rule);
  scale   clean and noise multiplied by one log-uniform factor in
          `amplitude_range`, as recordings differ in gain.
  mains   optional (`mains_probability`, default 0: off): with that
          probability a window's noise also gets a segment of a bank of
          artificial 50 and 60 Hz mains interference with harmonics
          (ecg_jax.data.mains; 50 or 60 at random), at a log-uniform
          U(0.25, 4) times the RMS of its NSTDB noise, before the SNR scaling;
  DC      optional (`dc_step_probability`, default 0): likewise a DC offset
          plus one step at a random sample, per lead N(0, 1), scaled to
          U(0.25, 1) times that RMS.
          Both draw from keys folded out of the batch key, so with both at 0
          every batch is bit for bit the recipe's batch without them.

Normalisation is a pair of fixed per-lead constants (mean, std in mV of noisy
training windows, from 64 drawn batches), stored in the weights like the
shipped model's. Loss: MSE in normalised units, plus `lowfreq_weight` times
the MSE of the error's moving average over `lowfreq_window` samples (the
baseline-wander band). Model selection: a fixed validation set of noisy
windows from `val_records`, drawn once from a fixed key; the weights of the
best validation SNR gain are kept. The learning rate follows a cosine decay
over `steps`. The state (parameters, BatchNorm statistics, Adam moments,
PRNG key) of one member is the engine's MemberState, and the network, the
optimizer's update and the divergence guard are the engine's.

Output: `<workdir>/best.npz` and `<workdir>/last.npz` (portable weights with
their model card, ecg_jax.denoise.weights), `<workdir>/log.jsonl` (loss and
validation per evaluation).

  python -m ecg_jax.train.fresh_noise --config configs/denoiser.py:fresh --workdir runs/fresh
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ecg_jax import interrupts
from ecg_jax.atomic import save_npz_atomic, write_text_atomic
from ecg_jax.cli import configure_jax
from ecg_jax.config_utils import config_differences, config_to_json, read_json_file, save_config
from ecg_jax.data.mains import MAINS_FREQUENCIES, mains_noise
from ecg_jax.data.noise import channel_stats, mix_at_snr, normalize
from ecg_jax.data.records import load_mitdb, load_nstdb, missing_data_error, resolve_data_dir
from ecg_jax.denoise.weights import SHIPPED_WEIGHTS as DEFAULT_WEIGHTS  # the file format, not the denoiser
from ecg_jax.denoise.weights import load_weights, read_meta, save_weights, stack_variables
from ecg_jax.errors import ConfigError, DataError, EcgJaxError
from ecg_jax.models import create_model
from ecg_jax.normalization import apply_in_mv
from ecg_jax.train.engine import MemberState, _all_finite, variables_of
from ecg_jax.workdir import claimed

RAW_NOISE = ("bw", "em", "ma")
MAINS_BANK_SECONDS = 120.0   # per mains frequency; a window takes a segment at a random offset
FS = 360.0


class Bank(NamedTuple):
    clean: jax.Array   # (R, T, C) whole clean records, mV
    noise: jax.Array   # (3, Tn, C) bw, em, ma: the training part of each NSTDB record
    mains: jax.Array | None = None   # (2, Tm, C) 50 and 60 Hz mains, unit RMS; only when mains are drawn


@dataclasses.dataclass(frozen=True)
class FreshSettings:
    batch_size: int = 64
    window: int = 256
    steps: int = 6000
    learning_rate: float = 1e-3
    final_lr_fraction: float = 0.02
    snr_db_range: tuple[float, float] = (-8.0, 12.0)
    amplitude_range: tuple[float, float] = (0.5, 2.0)
    emb_probability: float = 0.25
    lowfreq_weight: float = 0.0
    lowfreq_window: int = 64
    mains_probability: float = 0.0
    dc_step_probability: float = 0.0

    @property
    def artefacts(self) -> bool:
        return self.mains_probability > 0 or self.dc_step_probability > 0

    @classmethod
    def from_config(cls, f) -> "FreshSettings":
        s = cls(batch_size=int(f.batch_size), window=int(f.window), steps=int(f.steps),
                learning_rate=float(f.learning_rate), final_lr_fraction=float(f.final_lr_fraction),
                snr_db_range=tuple(float(v) for v in f.snr_db_range),
                amplitude_range=tuple(float(v) for v in f.amplitude_range),
                emb_probability=float(f.emb_probability), lowfreq_weight=float(f.lowfreq_weight),
                lowfreq_window=int(f.lowfreq_window),
                mains_probability=float(f.get("mains_probability", 0.0)),
                dc_step_probability=float(f.get("dc_step_probability", 0.0)))
        if not (0 <= s.mains_probability <= 1 and 0 <= s.dc_step_probability <= 1):
            raise ConfigError(f"fresh noise: mains_probability and dc_step_probability must lie in [0, 1]; got {s}")
        lo, hi = s.snr_db_range
        if not lo < hi or not 0 < s.amplitude_range[0] <= s.amplitude_range[1] or s.steps < 1:
            raise ConfigError(f"fresh noise: need snr_db_range lo < hi, 0 < amplitude lo <= hi, steps >= 1; got {s}")
        return s


def optimizer(s: FreshSettings) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(s.learning_rate, s.steps, alpha=s.final_lr_fraction)
    return optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)


def _slices(array: jax.Array, first: jax.Array, offsets: jax.Array, length: int) -> jax.Array:
    """array[first[i], offsets[i]:offsets[i] + length] for every i: (B, length, C)."""
    c = array.shape[-1]
    return jax.vmap(lambda r, o: jax.lax.dynamic_slice(array, (r, o, 0), (1, length, c))[0])(first, offsets)


def draw_noise(key: jax.Array, noise: jax.Array, batch: int, window: int, emb_probability: float) -> jax.Array:
    """(batch, window, C) unscaled noise: a random mixture of random segments of bw, em, ma."""
    k_off, k_on, k_pick, k_w, k_emb = jax.random.split(key, 5)
    kinds, length = noise.shape[0], noise.shape[1]
    offsets = jax.random.randint(k_off, (batch, kinds), 0, length - window + 1)
    kind_index = jnp.broadcast_to(jnp.arange(kinds), (batch, kinds))
    segments = _slices(noise, kind_index.reshape(-1), offsets.reshape(-1), window)
    segments = segments.reshape(batch, kinds, window, noise.shape[-1])
    on = jax.random.bernoulli(k_on, 0.5, (batch, kinds))
    none_on = ~jnp.any(on, axis=1, keepdims=True)
    # No component drawn: switch one on at random, so every window is noisy.
    pick = jax.nn.one_hot(jax.random.randint(k_pick, (batch,), 0, kinds), kinds, dtype=bool)
    on = jnp.where(none_on, pick, on)
    weights = jnp.where(on, jax.random.uniform(k_w, (batch, kinds), minval=0.25, maxval=1.0), 0.0)
    weights = jnp.where(jax.random.bernoulli(k_emb, emb_probability, (batch, 1)), 1.0, weights)
    return jnp.einsum("bk,bklc->blc", weights, segments)


def mains_bank(seed: int, seconds: float = MAINS_BANK_SECONDS, channels: int = 2) -> np.ndarray:
    """(2, n, channels) float32: 50 and 60 Hz mains interference (ecg_jax.data.mains), unit RMS, seeded."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * FS))
    return np.stack([mains_noise(rng, n, FS, frequency=f, channels=channels) for f in MAINS_FREQUENCIES]
                    ).astype(np.float32)


def add_artefacts(key: jax.Array, noise: jax.Array, mains: jax.Array | None, s: FreshSettings) -> jax.Array:
    """`noise` plus, per window, mains (probability `mains_probability`) and a DC step (`dc_step_probability`).

    Each is scaled relative to the RMS of the window's NSTDB noise (mains log-uniform 0.25-4 times, DC
    U(0.25, 1) times), so the SNR scaling that follows sets the total.
    """
    b, w, c = noise.shape
    k_on, k_kind, k_off, k_gain, k_dc_on, k_level, k_step, k_pos, k_dc_gain = jax.random.split(key, 9)
    rms = jnp.sqrt(jnp.mean(jnp.square(noise), axis=(1, 2), keepdims=True))
    out = noise
    if s.mains_probability > 0:
        if mains is None:
            raise ConfigError("fresh noise: mains_probability > 0 needs a bank with mains (load_bank(mains=True))")
        kinds = jax.random.randint(k_kind, (b,), 0, mains.shape[0])
        offsets = jax.random.randint(k_off, (b,), 0, mains.shape[1] - w + 1)
        segment = _slices(mains, kinds, offsets, w)
        gain = jnp.exp(jax.random.uniform(k_gain, (b, 1, 1), minval=np.log(0.25), maxval=np.log(4.0)))
        on = jax.random.bernoulli(k_on, s.mains_probability, (b, 1, 1))
        out = out + jnp.where(on, gain * rms * segment, 0.0)
    if s.dc_step_probability > 0:
        level = jax.random.normal(k_level, (b, 1, c))
        step = jax.random.normal(k_step, (b, 1, c))
        at = jax.random.randint(k_pos, (b, 1, 1), 0, w)
        dc = level + step * (jnp.arange(w)[None, :, None] >= at)
        dc = dc / jnp.sqrt(jnp.mean(jnp.square(dc), axis=(1, 2), keepdims=True) + 1e-12)
        gain = jax.random.uniform(k_dc_gain, (b, 1, 1), minval=0.25, maxval=1.0)
        on = jax.random.bernoulli(k_dc_on, s.dc_step_probability, (b, 1, 1))
        out = out + jnp.where(on, gain * rms * dc, 0.0)
    return out


def draw_batch(key: jax.Array, bank: Bank, s: FreshSettings) -> tuple[jax.Array, jax.Array]:
    """(clean, noisy), each (batch, window, C) mV: fresh windows, noise, SNR and amplitude."""
    k_rec, k_off, k_noise, k_snr, k_amp = jax.random.split(key, 5)
    b, w = s.batch_size, s.window
    records = jax.random.randint(k_rec, (b,), 0, bank.clean.shape[0])
    offsets = jax.random.randint(k_off, (b,), 0, bank.clean.shape[1] - w + 1)
    clean = _slices(bank.clean, records, offsets, w)
    noise = draw_noise(k_noise, bank.noise, b, w, s.emb_probability)
    if s.artefacts:
        noise = add_artefacts(jax.random.fold_in(key, 1), noise, bank.mains, s)
    snr = jax.random.uniform(k_snr, (b,), minval=s.snr_db_range[0], maxval=s.snr_db_range[1])
    noisy = mix_at_snr(clean, noise, snr)
    lo, hi = np.log(s.amplitude_range[0]), np.log(s.amplitude_range[1])
    amp = jnp.exp(jax.random.uniform(k_amp, (b, 1, 1), minval=lo, maxval=hi))
    return clean * amp, noisy * amp


def moving_average(x: jax.Array, n: int) -> jax.Array:
    """Mean over `n` samples along axis -2 (the time axis of (..., L, C)), 'valid' part only."""
    c = jnp.cumsum(x, axis=-2)
    c = jnp.concatenate([jnp.zeros_like(c[..., :1, :]), c], axis=-2)
    return (c[..., n:, :] - c[..., :-n, :]) / n


def loss_of(out: jax.Array, target: jax.Array, s: FreshSettings) -> jax.Array:
    err = out - target
    loss = jnp.mean(err ** 2)
    if s.lowfreq_weight > 0:
        loss = loss + s.lowfreq_weight * jnp.mean(moving_average(err, s.lowfreq_window) ** 2)
    return loss


def make_step(model, s: FreshSettings, mean: jax.Array, std: jax.Array):
    """`step(state, bank) -> (state, loss)`: draw a batch from the state's key, one Adam step."""
    tx = optimizer(s)

    def step(state: MemberState, bank: Bank):
        rng, key = jax.random.split(state.rng)
        clean, noisy = draw_batch(key, bank, s)
        x, y = normalize(noisy, mean, std), normalize(clean, mean, std)

        def loss_fn(p):
            out, updates = model.apply(variables_of(p, state.batch_stats), x, train=True, mutable=["batch_stats"])
            return loss_of(out, y, s), updates.get("batch_stats", state.batch_stats)

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & _all_finite(new_params) & _all_finite(new_stats) & ~state.diverged
        def keep(new, old):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
        return MemberState(keep(new_params, state.params), keep(new_stats, state.batch_stats),
                           keep(new_opt, state.opt_state), rng, state.diverged | ~ok), loss

    return step


def make_steps(model, s: FreshSettings, mean, std, n: int):
    """`n` steps in one compiled call (lax.scan): (state, bank) -> (state, losses (n,))."""
    step = make_step(model, s, mean, std)

    @jax.jit
    def run(state, bank):
        return jax.lax.scan(lambda st, _: step(st, bank), state, None, length=n)

    return run


def make_validation(model, mean, std, batch: int = 256):
    """`score(params, batch_stats, clean, noisy) -> mean per-window SNR gain (dB)`, eval mode."""

    @jax.jit
    def one(variables, noisy):
        return apply_in_mv(model, variables, noisy, mean, std)

    def score(params, batch_stats, clean, noisy):
        gains = []
        for a in range(0, len(clean), batch):
            out = one(variables_of(params, batch_stats), noisy[a:a + batch])
            c, x = clean[a:a + batch], noisy[a:a + batch]
            def power(e):
                return jnp.sum(jnp.square(e), axis=(1, 2))
            gains.append(10 * jnp.log10(power(x - c) / power(out - c)))
        return float(jnp.mean(jnp.concatenate(gains)))

    return score


def init_state(model, s: FreshSettings, seed: int, init_variables=None) -> MemberState:
    init_key, train_key = jax.random.split(jax.random.key(seed))
    if init_variables is None:
        init_variables = model.init(init_key, jnp.zeros((1, s.window, 2), jnp.float32), train=False)
    params = jax.tree_util.tree_map(jnp.asarray, init_variables["params"])
    stats = jax.tree_util.tree_map(jnp.asarray, init_variables.get("batch_stats", {}))
    return MemberState(params, stats, optimizer(s).init(params), train_key, jnp.zeros((), bool))


def norm_stats(bank: Bank, s: FreshSettings, seed: int, batches: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and std (mV) of `batches` drawn noisy training batches."""
    keys = jax.random.split(jax.random.key(seed + 1_000_003), batches)
    noisy = jax.jit(jax.vmap(lambda k: draw_batch(k, bank, s)[1]))(keys)
    mean, std = channel_stats(noisy)
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


# ----------------------------------------------------------------------------- the job

def _records_of(card: dict, config) -> tuple[list[str], list[str], list[str]]:
    """(train, validation, test) MIT-BIH records: the shipped card's split, validation taken out of train.

    The card's training pool is its train_records plus its val_records (a card
    written by this program lists them apart), so the split does not drift
    when the shipped weights are replaced.
    """
    f = config.fresh
    td = card["training_data"]
    test = [str(r) for r in td["test_records"]]
    pool = sorted(set(map(str, td["train_records"])) | set(map(str, td.get("val_records", []))))
    val = [str(r) for r in f.val_records]
    train = [r for r in pool if r not in val]
    leak = sorted(set(val) & set(test))
    if leak or not set(val) <= set(pool):
        raise ConfigError(f"fresh.val_records must be training records of the card (not test: {leak})")
    return train, val, test


def load_bank(data_dir: str, train: list[str], noise_fraction: float, mains: bool = False,
              mains_seed: int = 0) -> tuple[Bank, dict]:
    mitdb = load_mitdb(data_dir, train, verify=False)
    nstdb = load_nstdb(data_dir, verify=False)
    t = min(len(v) for v in mitdb.values())
    tn = int(round(min(len(v) for v in nstdb.values()) * noise_fraction))
    clean = np.stack([mitdb[r][:t] for r in train]).astype(np.float32)
    noise = np.stack([nstdb[k][:tn] for k in RAW_NOISE]).astype(np.float32)
    bank_mains = jnp.asarray(mains_bank(mains_seed, channels=clean.shape[-1])) if mains else None
    return Bank(jnp.asarray(clean), jnp.asarray(noise), bank_mains), {"record_samples": t, "noise_samples": tn}


def validation_set(data_dir: str, val: list[str], noise_fraction: float, s: FreshSettings, n: int, seed: int):
    """(clean, noisy) numpy arrays: `n` windows of the validation records, drawn with a fixed key."""
    bank, _ = load_bank(data_dir, val, noise_fraction, mains=s.mains_probability > 0, mains_seed=1)
    vs = dataclasses.replace(s, batch_size=n)
    clean, noisy = jax.jit(lambda k: draw_batch(k, bank, vs))(jax.random.key(seed + 7))
    return np.asarray(clean), np.asarray(noisy)


def _log(message: str) -> None:
    print(message, flush=True)


CHECKPOINT = "checkpoint.npz"   # the state after the last evaluation, with the loop's progress
CONFIG = "config.json"


def state_arrays(state: MemberState) -> dict[str, np.ndarray]:
    """The state as named numpy arrays (leaf i as "leaf_i"; the PRNG key as its raw data)."""
    leaves = jax.tree_util.tree_leaves(state._replace(rng=jax.random.key_data(state.rng)))
    return {f"leaf_{i}": np.asarray(jax.device_get(x)) for i, x in enumerate(leaves)}


def state_from_arrays(template: MemberState, arrays, path: str) -> MemberState:
    """`state_arrays`' inverse, shaped by `template` (a freshly initialised state of the same run)."""
    plain = template._replace(rng=jax.random.key_data(template.rng))
    leaves, treedef = jax.tree_util.tree_flatten(plain)
    saved = [k for k in arrays.files if k.startswith("leaf_")]
    if len(saved) != len(leaves):
        raise DataError(f"{path} holds {len(saved)} arrays, this run's state has {len(leaves)}; "
                        "it belongs to another network or recipe: use another --workdir")
    restored = []
    for i, leaf in enumerate(leaves):
        a = arrays[f"leaf_{i}"]
        if a.shape != leaf.shape or a.dtype != leaf.dtype:
            raise DataError(f"{path}: array {i} is {a.dtype}{list(a.shape)}, this run expects "
                            f"{leaf.dtype}{list(leaf.shape)}; use another --workdir")
        restored.append(jnp.asarray(a))
    state = jax.tree_util.tree_unflatten(treedef, restored)
    return state._replace(rng=jax.random.wrap_key_data(state.rng))


def save_checkpoint(workdir: str, state: MemberState, progress: dict) -> None:
    save_npz_atomic(os.path.join(workdir, CHECKPOINT),
                    {**state_arrays(state), "progress": np.asarray(json.dumps(progress))})


def load_checkpoint(workdir: str, template: MemberState) -> tuple[MemberState, dict] | tuple[None, None]:
    path = os.path.join(workdir, CHECKPOINT)
    if not os.path.exists(path):
        return None, None
    try:
        with np.load(path) as arrays:
            progress = json.loads(str(arrays["progress"]))
            state = state_from_arrays(template, arrays, path)
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DataError(f"{path} is damaged ({type(e).__name__}); move it away to train again from step 0, "
                        "or restore it from a backup") from None
    return state, progress


def claim_config(config, workdir: str) -> None:
    """Save the config beside the checkpoints on the first start; on a resume it must be the saved one.

    Every field counts: the cosine schedule spans `fresh.steps`, and the noise,
    the records and the network all shape the state being continued.
    """
    path = os.path.join(workdir, CONFIG)
    if not os.path.exists(path):
        save_config(config, path)
        return
    saved = read_json_file(path)
    differences = config_differences(saved, json.loads(config_to_json(config)))
    if differences:
        shown = ", ".join(f"{k} {a!r} -> {b!r}" for k, a, b in differences[:4])
        raise ConfigError(f"{workdir} holds a fresh-noise run of another config ({shown}); resume it with "
                          f"`ecg-jax train --workdir {workdir}` or start a new --workdir")


def train(config, workdir: str, log=_log) -> dict:
    """Run the recipe of `config.fresh`; write best.npz / last.npz with model cards into `workdir`.

    After every evaluation the whole state (parameters, BatchNorm statistics,
    Adam moments, PRNG key) and the loop's progress go to `checkpoint.npz`
    (atomically, after best.npz and log.jsonl), so a run stopped in any way,
    kill -9 included, goes on from there with the same config
    (`ecg-jax train --workdir W`) to the same bits as one that never stopped.
    """
    f = config.fresh
    s = FreshSettings.from_config(f)
    data_dir = resolve_data_dir(config.data.data_dir)
    if data_dir is None:
        raise missing_data_error("fresh-noise training needs the real MIT-BIH and NSTDB records")
    card = read_meta(DEFAULT_WEIGHTS)
    train_records, val_records, test_records = _records_of(card, config)
    os.makedirs(workdir, exist_ok=True)
    with claimed(workdir), interrupts.resume_hint(f"rerun `ecg-jax train --workdir {workdir}` to resume"):
        claim_config(config, workdir)
        return _train_claimed(config, workdir, s, data_dir, (train_records, val_records, test_records), log)


def _train_claimed(config, workdir, s: FreshSettings, data_dir, records, log) -> dict:
    f = config.fresh
    train_records, val_records, test_records = records
    tic = time.perf_counter()
    bank, sizes = load_bank(data_dir, train_records, float(f.noise_train_fraction),
                            mains=s.mains_probability > 0, mains_seed=0)
    val_clean, val_noisy = validation_set(data_dir, val_records, float(f.noise_train_fraction), s,
                                          int(f.val_windows), int(config.seed_offset))
    log(f"data: {len(train_records)} train records, {len(val_records)} validation records "
        f"({len(val_clean)} windows), noise bank {sizes['noise_samples']} samples x 3 "
        f"({time.perf_counter() - tic:.1f}s)")

    init_variables = None
    if f.init_weights:
        model, stacked, mean, std, meta = load_weights(f.init_weights)
        if meta["network"] != config.model:
            raise ConfigError(f"fresh.init_weights is a {meta['network']}, the config trains a {config.model}")
        init_variables = jax.tree_util.tree_map(lambda x: x[0], stacked)
        mean, std = mean[0], std[0]
        log(f"warm start from {f.init_weights} (its normalisation kept)")
    else:
        model = create_model(config.model, **dict(config.model_kwargs))
        mean, std = norm_stats(bank, s, int(config.seed_offset))
    state = init_state(model, s, int(config.seed_offset), init_variables)
    restored, progress = load_checkpoint(workdir, state)
    if restored is not None:
        state = restored
        mean, std = np.asarray(progress["norm_mean"], np.float32), np.asarray(progress["norm_std"], np.float32)
        log(f"resuming from {os.path.join(workdir, CHECKPOINT)} at step {progress['step']}")
    else:
        progress = {"step": 0, "best_val_gain_db": None, "best_step": 0, "history": [], "seconds": 0.0,
                    "norm_mean": np.asarray(mean).tolist(), "norm_std": np.asarray(std).tolist()}
    mean_j, std_j = jnp.asarray(mean), jnp.asarray(std)
    chunk = int(f.eval_every)
    run = make_steps(model, s, mean_j, std_j, chunk)
    score = make_validation(model, mean_j, std_j)
    options = dict(config.model_kwargs)
    n_params = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(state.params)))

    def write(name: str, st: MemberState, extra: dict) -> None:
        variables = jax.device_get(variables_of(st.params, st.batch_stats))
        meta = {"network": config.model, "options": options, "parameter_count": n_params,
                "ensemble": "single member",
                "input": {"fs": 360, "window": s.window, "channels": 2, "units": "mV"},
                "training_data": {"source": "physionet", "split": "inter_patient (the shipped card's records)",
                                  "train_records": train_records, "val_records": val_records,
                                  "test_records": test_records, "noise": {
                                      "records": list(RAW_NOISE),
                                      "samples_used": f"first {sizes['noise_samples']} of each (the first "
                                                      f"{float(f.noise_train_fraction):.0%})"}},
                "recipe": {"program": "ecg_jax.train.fresh_noise", **dataclasses.asdict(s),
                           "init_weights": f.init_weights or None, "seed": int(config.seed_offset),
                           "val_windows": int(f.val_windows), "eval_every": chunk},
                **extra}
        save_weights(os.path.join(workdir, name), stack_variables([variables]), mean[None], std[None], meta,
                     overwrite=True)

    total = (s.steps // chunk) * chunk
    history = progress["history"]
    best = -np.inf if progress["best_val_gain_db"] is None else progress["best_val_gain_db"]
    started = time.perf_counter() - progress["seconds"]
    if progress["step"] == 0:
        val0 = score(state.params, state.batch_stats, val_clean, val_noisy)
        log(f"step 0: validation gain {val0:.2f} dB")
        progress["val0"] = val0
    for done in range(progress["step"] + chunk, total + 1, chunk):
        interrupts.note_progress(f"after step {done - chunk} of {total} (its checkpoint)")
        state, losses = run(state, bank)
        losses = np.asarray(losses)
        val = score(state.params, state.batch_stats, val_clean, val_noisy)
        elapsed = time.perf_counter() - started
        row = {"step": done, "loss": float(np.mean(losses)), "val_gain_db": val, "seconds": round(elapsed, 1),
               "diverged": bool(state.diverged)}
        history.append(row)
        log(f"step {done}/{total}: loss {row['loss']:.4f}, validation gain {val:.2f} dB ({elapsed:.0f}s)")
        if val > best:   # best.npz first: a stop before the checkpoint repeats this chunk to the same bits
            best = val
            progress.update(best_val_gain_db=val, best_step=done)
            write("best.npz", state, {"selected": {"step": done, "val_gain_db": val, "seconds": round(elapsed, 1)}})
        write_text_atomic(os.path.join(workdir, "log.jsonl"), "".join(json.dumps(r) + "\n" for r in history))
        progress.update(step=done, seconds=elapsed)
        save_checkpoint(workdir, state, progress)
    last_val = history[-1]["val_gain_db"] if history else progress.get("val0")
    write("last.npz", state, {"selected": {"step": total, "val_gain_db": last_val}})
    return {"best_step": progress["best_step"], "best_val_gain_db": best, "seconds": time.perf_counter() - started,
            "history": history}


def main(argv=None) -> None:
    import argparse

    from ml_collections import config_flags  # noqa: F401  (the config file loader)

    p = argparse.ArgumentParser(description="Fresh-noise training of the shipped denoiser.")
    p.add_argument("--config", default="configs/denoiser.py:fresh")
    p.add_argument("--workdir", required=True)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. fresh.steps=3000")
    a = p.parse_args(argv)
    import sys

    try:
        configure_jax()
        config = _load_config(a.config)
        for item in a.set:
            _override(config, item)
        result = train(config, a.workdir)
    except EcgJaxError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}))


def _load_config(spec: str):
    import importlib.util

    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise ConfigError(f"config file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location("fresh_noise_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg or None)
    if "fresh" not in config:
        raise ConfigError(f"{spec} has no `fresh` section; use configs/denoiser.py:fresh")
    return config


def _override(config, item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(f"--set takes FIELD=VALUE, got {item!r}")
    parent = config
    parts = key.split(".")
    for part in parts[:-1]:
        if part not in parent:
            raise ConfigError(f"unknown config field {key}")
        parent = parent[part]
    if parts[-1] not in parent:
        raise ConfigError(f"unknown config field {key}")
    old = parent[parts[-1]]
    if isinstance(old, (tuple, list)):
        new = tuple(type(old[0])(v) if old else v for v in value.split(",")) if value else ()
    elif isinstance(old, bool):
        new = value.lower() in ("1", "true", "yes")
    elif old is None or isinstance(old, str):
        new = value
    else:
        new = type(old)(value)
    parent[parts[-1]] = new


if __name__ == "__main__":
    main()
