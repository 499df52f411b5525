"""Every shipped config loads, resolves, names a registered network, and has a smoke variant;
resolve_config refuses every bad field (type, range, unknown name) in one line."""

from __future__ import annotations

import glob
import importlib.util
import os

import ml_collections
import pytest

from ecg_jax.config_utils import NOISE_TYPES, SNR_LEVELS, check_trainable, resolve_config
from ecg_jax.errors import ConfigError
from ecg_jax.models import MODEL_NAMES, PAPER_MODEL_NAMES, create_model
from ecg_jax.train.experiment import method_id

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(p for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                      if os.path.basename(p) not in ("common.py", "__init__.py"))


def load(path: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_is_one_config_per_network():
    names = {os.path.basename(p)[:-3] for p in CONFIG_FILES}
    assert set(PAPER_MODEL_NAMES) <= names


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
        assert config.train.lr_decay_epoch == (40,) and config.data.n_windows == 10000
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


# ------------------------------------------------------------------ complete validation (resolve_config)

def smoke():
    return load(os.path.join(REPO, "configs", "unet.py")).get_config("smoke")


def with_value(path: str, value):
    """The unet smoke config as a plain dict (as config.json holds it) with one field set: any type goes."""
    d = smoke().to_dict()
    *sections, name = path.split(".")
    holder = d
    for s in sections:
        holder = holder[s]
    holder[name] = value
    return ml_collections.ConfigDict(d)


RANGE_RULES = [  # (field, a refused value, what the message says is allowed)
    ("seeds", 0, "an integer >= 1"),
    ("seed_offset", -1, "an integer >= 0"),
    ("data.data_seed", -1, "an integer >= 0"),
    ("data.window", 15, "an integer >= 16"),
    ("data.fs", 0, "a number > 0"),
    ("data.fs", -360.0, "a number > 0"),
    ("data.n_windows", 1, "an integer >= 2"),
    ("data.train_fraction", 0.0, "a number in (0, 1)"),
    ("data.train_fraction", 1.0, "a number in (0, 1)"),
    ("data.windows_per_record_divisor", 0, "an integer >= 1"),
    ("data.synthetic_records", 0, "an integer >= 1"),
    ("data.synthetic_samples", 0, "an integer >= 1"),
    ("train.epochs", 0, "an integer >= 1"),
    ("train.batch_size", 0, "an integer >= 1"),
    ("train.learning_rate", 0.0, "a number > 0"),
    ("train.learning_rate", -1e-3, "a number > 0"),
    ("train.learning_rate", float("nan"), "a number > 0"),
    ("train.lr_decay_epoch", -1, "an integer >= 0"),
    ("train.lr_decay_factor", 0.0, "a number in (0, 1]"),
    ("train.lr_decay_factor", 1.5, "a number in (0, 1]"),
    ("train.max_members_per_program", -1, "an integer >= 0"),
    ("train.checkpoint_every", 0, "an integer >= 1"),
    ("train.keep_checkpoints", 0, "an integer >= 1"),
    ("baselines.fft_threshold", -0.1, "a number >= 0"),
    ("baselines.dwt_threshold", -1, "a number >= 0"),
]


@pytest.mark.parametrize("path,value,allowed", RANGE_RULES, ids=[f"{p}={v}" for p, v, _ in RANGE_RULES])
def test_every_range_rule_refuses_in_one_line_naming_field_value_and_range(path, value, allowed):
    with pytest.raises(ConfigError) as e:
        resolve_config(with_value(path, value))
    assert str(e.value) == f"{path} must be {allowed}, got {value}"


@pytest.mark.parametrize("path,value", [
    ("seed_offset", 0), ("data.data_seed", 0), ("data.window", 16), ("data.n_windows", 2),
    ("data.windows_per_record_divisor", 1), ("train.epochs", 1), ("train.batch_size", 1),
    ("train.lr_decay_epoch", 0), ("train.lr_decay_factor", 1.0), ("train.max_members_per_program", 0),
    ("train.checkpoint_every", 1), ("train.keep_checkpoints", 1), ("train.learning_rate", 1e30),
    ("baselines.fft_threshold", 0.0), ("baselines.dwt_threshold", 0), ("data.fs", 250.5),
    ("data.train_fraction", 0.5),
])
def test_the_edges_of_every_range_are_allowed(path, value):
    c = with_value(path, value)
    if path == "data.n_windows":     # 1 training and 1 test window, a batch of 1
        c.data.train_fraction, c.train.batch_size = 0.5, 1
    resolved = resolve_config(c)
    assert resolved.to_dict() == resolve_config(resolved).to_dict()  # idempotent


@pytest.mark.parametrize("path,value,message", [
    ("train.epochs", "3", "train.epochs must be an integer >= 1, got '3' (str)"),
    ("train.epochs", 3.0, "train.epochs must be an integer >= 1, got 3.0 (float)"),
    ("train.batch_size", True, "train.batch_size must be an integer >= 1, got True (bool)"),
    ("train.learning_rate", "1e-3", "train.learning_rate must be a number > 0, got '1e-3' (str)"),
    ("train.tensorboard", "yes", "train.tensorboard must be True or False, got 'yes' (str)"),
    ("train.gpu_deterministic", 1, "train.gpu_deterministic must be True or False, got 1 (int)"),
    ("baselines.threshold_search", None, "baselines.threshold_search must be True or False, got None (NoneType)"),
    ("data.data_dir", 3, "data.data_dir must be a string, got 3 (int)"),
    ("data.cache_dir", None, "data.cache_dir must be a string, got None (NoneType)"),
    ("model", "", "model must be a non-empty string, got ''"),
    ("experiment", 7, "experiment must be a non-empty string, got 7 (int)"),
    ("model_kwargs", 3, "model_kwargs must be a section of named fields, got 3 (int)"),
    ("train", 5, "train must be a section of named fields, got 5 (int)"),
    ("data.split", "random", "unknown data.split 'random'; valid values: reference, inter_patient"),
    ("data.source", "kaggle", "unknown data.source 'kaggle'; valid values: auto, physionet, synthetic"),
    ("train.loop", "jit", "unknown train.loop 'jit'; valid values: auto, scan, host"),
    ("train.member_parallelism", "pmap", "unknown train.member_parallelism 'pmap'; valid values: auto, vmap, map"),
    ("data.records", ("100", "101", "100"), "data.records has duplicates: 100, 101, 100"),
])
def test_types_and_choices_are_checked(path, value, message):
    with pytest.raises(ConfigError) as e:
        resolve_config(with_value(path, value))
    assert str(e.value).startswith(message), str(e.value)


def test_a_batch_larger_than_the_training_windows_names_both_numbers():
    c = with_value("data.n_windows", 100)
    c.train.batch_size = 512
    resolve_config(c)                 # fine for data-only scripts, which share the config files
    with pytest.raises(ConfigError) as e:
        check_trainable(resolve_config(c))
    assert str(e.value) == ("train.batch_size=512 is larger than the 80 training windows (data.n_windows=100 x "
                            "data.train_fraction=0.8); use train.batch_size <= 80 or more data.n_windows")
    c.train.batch_size = 80           # exactly the training windows: one step per epoch
    check_trainable(resolve_config(c))


def test_a_split_without_training_or_test_windows_is_refused():
    c = with_value("data.n_windows", 2)
    c.data.train_fraction = 0.1       # round(0.2) = 0 training windows
    with pytest.raises(ConfigError, match=r"data.n_windows=2 with data.train_fraction=0.1 leaves 0 training "
                                          r"and 2 test windows; both must be at least 1"):
        resolve_config(c)


@pytest.mark.parametrize("path,shown,closest", [
    ("train.epoch", "train.epoch=3", "train.epochs"),
    ("trian", "trian", "train"),
    ("seed", "seed=3", "seeds"),
    ("data.windw", "data.windw=256", "data.window"),
    ("baselines.fft_treshold", "baselines.fft_treshold=0.5", "baselines.fft_threshold"),
])
def test_an_unknown_field_names_the_closest_valid_one(path, shown, closest):
    d = smoke().to_dict()
    if path == "trian":
        d["trian"] = d.pop("train")
    else:
        *sections, name = path.split(".")
        holder = d
        for s in sections:
            holder = holder[s]
        holder[name] = {"epoch": 3, "seed": 3, "windw": 256, "fft_treshold": 0.5}[name]
    with pytest.raises(ConfigError) as e:
        resolve_config(ml_collections.ConfigDict(d))
    assert str(e.value) == f"unknown config field {shown}; did you mean {closest}?"


def test_a_missing_field_of_a_present_section_is_refused_but_late_additions_are_optional():
    d = smoke().to_dict()
    del d["train"]["epochs"]
    with pytest.raises(ConfigError, match="config section train has no field epochs"):
        resolve_config(ml_collections.ConfigDict(d))
    d = smoke().to_dict()
    del d["train"]["loop"], d["train"]["gpu_deterministic"]   # workdirs older than these fields
    resolve_config(ml_collections.ConfigDict(d))


def test_configs_without_train_or_model_are_validated_by_their_sections():
    from ecg_jax.reproduce import baseline_config

    paper = resolve_config(load(os.path.join(REPO, "configs", "paper.py")).get_config("smoke"))
    assert "model" not in paper and paper.networks and paper.baselines_enabled is True
    baselines = baseline_config(paper)
    assert "train" not in baselines
    resolve_config(baselines)
    baselines.baselines.dwt_threshold = -1.0
    with pytest.raises(ConfigError, match=r"baselines.dwt_threshold must be a number >= 0, got -1.0"):
        resolve_config(baselines)
    paper.train.epochs = 0
    with pytest.raises(ConfigError, match=r"train.epochs must be an integer >= 1, got 0"):
        resolve_config(paper)


def test_paper_fields_are_checked():
    d = load(os.path.join(REPO, "configs", "paper.py")).get_config("smoke").to_dict()
    d["baselines_enabled"] = "no"
    with pytest.raises(ConfigError, match="baselines_enabled must be True or False, got 'no'"):
        resolve_config(ml_collections.ConfigDict(d))
    d = load(os.path.join(REPO, "configs", "paper.py")).get_config("smoke").to_dict()
    d["networks"] = ("unet", 3)
    with pytest.raises(ConfigError, match="networks must be names"):
        resolve_config(ml_collections.ConfigDict(d))
    d = load(os.path.join(REPO, "configs", "paper.py")).get_config("smoke").to_dict()
    d["experiments"]["unet"] = 3
    with pytest.raises(ConfigError, match="experiments.unet must be a string"):
        resolve_config(ml_collections.ConfigDict(d))


def test_every_field_of_the_base_config_has_a_rule():
    """A field added to configs/common.py gets a validation rule in ecg_jax/config_utils.py too."""
    from ecg_jax.config_utils import FIELD_RULES, FREE_SECTIONS, field_paths

    common = load(os.path.join(REPO, "configs", "common.py"))
    base = common.base_config().to_dict()
    leaves = {p for p in field_paths(base) if p not in ("data", "train", "baselines", "sweep", "sweep.train")}
    paper_only = {"networks", "experiments", "experiment_noise_types", "baselines_enabled"}
    assert leaves | paper_only == set(FIELD_RULES)
    assert set(FREE_SECTIONS) <= set(FIELD_RULES)


def test_revision_fields_resolve_and_refuse_in_one_line():
    c = load(os.path.join(REPO, "configs", "unet.py")).get_config("smoke")
    assert resolve_config(c).data.emb_mixing == "sum"
    c.data.revision = "first"
    assert resolve_config(c).data.emb_mixing == "mean_of_scaled"
    c.data.revision = "final"
    with pytest.raises(ConfigError, match="data.revision='final' draws an inter-patient split"):
        resolve_config(c)
    c.data.revision = "paper"
    c.train.lr_decay_epoch, c.train.lr_decay_factor = ("50,70",), ("0.1",)
    with pytest.raises(ConfigError, match="train.lr_decay_epoch has 2 value"):
        resolve_config(c)
    c.train.lr_decay_factor = ("0.1,0.05",)
    t = resolve_config(c).train
    assert t.lr_decay_epoch == (50, 70) and t.lr_decay_factor == (0.1, 0.05)
    c.train.lr_decay_epoch = ("70,50",)
    with pytest.raises(ConfigError, match="must increase"):
        resolve_config(c)
