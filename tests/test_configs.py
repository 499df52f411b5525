"""Every shipped config loads, resolves, names a registered network, and has a smoke variant."""

from __future__ import annotations

import glob
import importlib.util
import os

import pytest

from ecg_jax.config_utils import NOISE_TYPES, SNR_LEVELS, resolve_config
from ecg_jax.errors import ConfigError
from ecg_jax.models import MODEL_NAMES, create_model
from ecg_jax.train.experiment import method_id

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(p for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                      if os.path.basename(p) != "common.py")


def load(path: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_is_one_config_per_network():
    names = {os.path.basename(p)[:-3] for p in CONFIG_FILES}
    assert set(MODEL_NAMES) <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: os.path.basename(p))
@pytest.mark.parametrize("arg", [None, "smoke"])
def test_config_loads_and_resolves(path, arg):
    config = resolve_config(load(path).get_config(arg))
    if "model" in config:
        create_model(config.model, **config.model_kwargs.to_dict())  # names a real network
    if arg is None and os.path.basename(path)[:-3] in MODEL_NAMES:
        # Full configs follow the protocol.
        assert config.seeds == 10 and config.train.epochs == 100
        assert config.noise_types == NOISE_TYPES and config.snr_levels == SNR_LEVELS
        assert config.train.batch_size == 64 and config.train.learning_rate == 1e-3
        assert config.train.lr_decay_epoch == 40 and config.data.n_windows == 10000
    if arg == "smoke":
        assert config.train.epochs <= 5 and config.data.n_windows <= 2000


@pytest.mark.parametrize("variant,expected", [(None, "ciadnet"), ("base", "ciadnet_base"),
                                              ("channel", "ciadnet_channel"), ("spatial", "ciadnet_spatial"),
                                              ("spatial,smoke", "ciadnet_spatial")])
def test_ciadnet_variants_map_to_ablation_rows(variant, expected):
    config = load(os.path.join(REPO, "configs", "ciadnet.py")).get_config(variant)
    assert method_id(config) == expected


def test_command_line_style_overrides_are_normalised():
    config = load(os.path.join(REPO, "configs", "unet.py")).get_config("smoke")
    config.noise_types = ("emb,bw",)          # what --config.noise_types=emb,bw produces
    config.snr_levels = (-4, 0)
    config.data.records = (100, 101)
    resolved = resolve_config(config)
    assert resolved.noise_types == ("emb", "bw")
    assert resolved.snr_levels == (-4, 0)
    assert resolved.data.records == ("100", "101")


@pytest.mark.parametrize("field,value,listed", [
    ("noise_types", ("pink",), "emb, bw, ma, em"),
    ("snr_levels", (6,), "-4, -2, 0, 2, 4"),
])
def test_bad_values_list_the_valid_ones(field, value, listed):
    config = load(os.path.join(REPO, "configs", "unet.py")).get_config("smoke")
    setattr(config, field, value)
    with pytest.raises(ConfigError, match=listed):
        resolve_config(config)


def test_unknown_config_argument_is_refused():
    with pytest.raises(ValueError, match="valid: smoke"):
        load(os.path.join(REPO, "configs", "dancer.py")).get_config("tiny")
