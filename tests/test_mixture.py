"""The training mixture ("mixed"): every window its own noise type and SNR, from the usual recipes."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))

import denoiser  # noqa: E402

from ecg_jax.config_utils import NOISE_TYPES, resolve_config  # noqa: E402
from ecg_jax.data import prepare_data  # noqa: E402
from ecg_jax.errors import ConfigError  # noqa: E402
from ecg_jax.train.members import Dataset, members_of  # noqa: E402


def mixed_config(tmp_path, snr_levels=(-4, -2, 0, 2, 4)):
    c = denoiser.get_config("smoke")
    c.data.source = "synthetic"
    c.data.cache_dir = str(tmp_path)
    c.snr_levels = snr_levels
    return resolve_config(c)


def test_window_i_gets_combination_i_mod_20(tmp_path):
    config = mixed_config(tmp_path)
    p = prepare_data(config)
    mixed = p.noisy("mixed", 0.0)
    combos = [(t, s) for t in NOISE_TYPES for s in config.snr_levels]
    for i in (0, 1, 7, 19, 20, 433, len(p) - 1):
        t, s = combos[i % 20]
        np.testing.assert_allclose(mixed[i], p.noisy(t, s)[i], rtol=0, atol=1e-5)
    # train statistics are those of the mixed training inputs
    mean, std = p.norm_stats("mixed", 0.0)
    np.testing.assert_allclose(mean, mixed[:p.n_train].mean(axis=(0, 1)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std, mixed[:p.n_train].std(axis=(0, 1)), rtol=1e-4)


def test_mixed_is_one_dataset_per_seed_and_must_stand_alone(tmp_path):
    config = mixed_config(tmp_path)
    assert [m.dataset for m in members_of(config)] == [Dataset("mixed", 0.0)]
    c = denoiser.get_config("smoke")
    c.noise_types = ("mixed", "emb")
    with pytest.raises(ConfigError, match="give it alone"):
        resolve_config(c)
