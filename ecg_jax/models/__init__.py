"""Registry of the denoising networks (models.md).

Every network is a `flax.linen.Module` mapping (batch, length, 2) float32 to
the same shape, called as `model.apply(variables, x, train=...)` (`train` is
keyword-only and required, the same for every network); networks
with BatchNorm keep running statistics in the `batch_stats` collection
(pass `mutable=["batch_stats"]` in train mode), the others have only `params`.

    model = create_model("ciadnet", channel_shrink=False)
    variables = model.init(key, jnp.zeros((1, 256, 2)), train=False)
    count_params(variables["params"])  # == reference_param_count("ciadnet", channel_shrink=False)

A name that is not built in is an external network (ecg_jax/models/external.py): `path/to/my_net.py:MyNet`,
`my_package.module:MyNet` or the name of an entry point of group `ecg_jax.models`. It is built the same
way (`create_model(spec, **model_kwargs)`), must meet the contract `check_model` checks, and has no
reference parameter count (`reference_param_count` is None).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from typing import Any, Mapping

import flax.linen as nn
import jax

from ecg_jax.errors import ConfigError, one_line
from ecg_jax.models import external
from ecg_jax.models.ags_unet import AGSUNet
from ecg_jax.models.ciadnet import CIADNet
from ecg_jax.models.dacnn import DACNN
from ecg_jax.models.unet import ACDAE, DANCER, UNet
from ecg_jax.names import METHOD_DISPLAY_NAMES

PAPER_MODEL_NAMES = ("unet", "dacnn", "acdae", "ags_unet", "ciadnet", "dancer")
# The reference's final revision (models.md, "Final revision networks"): five
# networks in its README's order (after its U-Net, `unet` with kernels 17, 17, 7, 7),
# then DANCE's component and ablation variants (one class, a switch each).
# `dacnn_final` is the final DACNN's stride-1 layout (models.md; ecg_jax.models.dacnn.DACNNFinal).
FINAL_MODEL_NAMES = ("drsn", "dacnn_final", "acdae_final", "ralenet", "dance_final")
DANCE_VARIANT_NAMES = ("dance_final_se", "dance_final_cbam", "dance_final_eca",
                       "dance_final_atnc", "dance_final_arem")
MODEL_NAMES = PAPER_MODEL_NAMES + FINAL_MODEL_NAMES + DANCE_VARIANT_NAMES
# Networks of the final README that cannot be built faithfully yet, with why
# (a one-line ConfigError instead of a guess that would only look like them).
UNAVAILABLE_MODELS: dict[str, str] = {}   # none at present

DISPLAY_NAMES = {name: METHOD_DISPLAY_NAMES[name] for name in MODEL_NAMES}

_MODEL_CLASSES: Mapping[str, type[nn.Module]] = {
    "unet": UNet, "dacnn": DACNN, "acdae": ACDAE,
    "ags_unet": AGSUNet, "ciadnet": CIADNet, "dancer": DANCER,
}

# Final-revision networks: (module, class, option defaults that make the name).
# A variant is its class with other defaults, so `dance_final_se` is
# DANCEFinal(decoder_attention="se") and reports its own parameter count.
_FINAL_CLASSES: Mapping[str, tuple[str, str, dict[str, Any]]] = {
    "drsn": ("ecg_jax.models.drsn", "DRSN", {}),
    "dacnn_final": ("ecg_jax.models.dacnn", "DACNNFinal", {}),
    "acdae_final": ("ecg_jax.models.acdae_final", "ACDAEFinal", {}),
    "ralenet": ("ecg_jax.models.ralenet", "RALENet", {}),
    "dance_final": ("ecg_jax.models.dance_final", "DANCEFinal", {}),
    "dance_final_se": ("ecg_jax.models.dance_final", "DANCEFinal", {"decoder_attention": "se"}),
    "dance_final_cbam": ("ecg_jax.models.dance_final", "DANCEFinal", {"decoder_attention": "cbam"}),
    "dance_final_eca": ("ecg_jax.models.dance_final", "DANCEFinal", {"decoder_attention": "eca"}),
    "dance_final_atnc": ("ecg_jax.models.dance_final", "DANCEFinal", {"decoder_attention": "identity"}),
    "dance_final_arem": ("ecg_jax.models.dance_final", "DANCEFinal", {"atnc": False}),
}

# Parameter counts of the reference implementation (models.md). Plain names
# are the default configurations (CIADNet with both switches on); the CIADNet
# ablation variants are keyed ("ciadnet", channel_shrink, spatial_shrink).
REFERENCE_PARAM_COUNTS: dict[str | tuple[str, bool, bool], int] = {
    "unet": 200_994,
    "dancer": 321_754,
    "acdae": 201_006,
    "dacnn": 329_881,
    "ags_unet": 169_923,
    "ciadnet": 279_578,
    ("ciadnet", True, True): 279_578,
    ("ciadnet", True, False): 202_338,
    ("ciadnet", False, True): 235_098,
    ("ciadnet", False, False): 157_858,
    # The final revision's U-Net (protocol.md, "final", item 8).
    ("unet", (17, 17, 7, 7)): 211_490,
    # The final revision's networks and DANCE's variants (models.md).
    "drsn": 328_422,
    "dacnn_final": 258_457,
    "acdae_final": 151_735,
    "ralenet": 1_088_690,
    "dance_final": 232_198,
    "dance_final_se": 213_494,
    "dance_final_cbam": 213_536,
    "dance_final_eca": 208_139,
    "dance_final_atnc": 208_118,
    "dance_final_arem": 176_502,
}

_MODULE_INTERNALS = {"parent", "name"}


def is_builtin(name: str) -> bool:
    """A registered network (or one registered as unavailable); any other name is an external spec."""
    return name in MODEL_NAMES or name in UNAVAILABLE_MODELS


def model_options(name: str) -> dict[str, Any]:
    """The keyword overrides `create_model(name, ...)` accepts, with their defaults (an external
    network's: its dataclass fields; `dataclasses.MISSING` for one without a default)."""
    cls = _model_class(name)
    options = {f.name: f.default for f in dataclasses.fields(cls)
               if f.name not in _MODULE_INTERNALS and f.init}
    if name in _FINAL_CLASSES:
        options.update(_FINAL_CLASSES[name][2])
    return options


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered network; `overrides` set its options (e.g. CIADNet's switches).

    Raises ConfigError for an unknown name, an unknown option or a non-boolean
    value for a boolean switch ("true"/"false" strings are accepted, as they
    may come from a command line).
    """
    options = model_options(name)
    kwargs = {}
    for key, value in overrides.items():
        if key not in options:
            valid = ", ".join(sorted(options)) or "none"
            raise ConfigError(f"model {name!r} has no option {key!r} (valid options: {valid})")
        kwargs[key] = _coerce(name, key, value, options[key])
    if name in _FINAL_CLASSES:
        kwargs = {**_FINAL_CLASSES[name][2], **kwargs}
    cls = _model_class(name)
    if is_builtin(name):
        return cls(**kwargs)
    try:
        return cls(**kwargs)
    except Exception as e:  # noqa: BLE001 -- the user's constructor: one line (e.g. a required option missing)
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"model {name!r}: {cls.__name__}({shown}) fails ({external.error_location(e)}"
                          f"{one_line(e)}); its options come from the config's model_kwargs") from None


def check_model(name: str, model: nn.Module, window: int) -> None:
    """An external network against the contract every network meets (external.check_contract, one
    ConfigError line per broken rule); the built-in networks meet it by construction (tests/test_models.py)."""
    if not is_builtin(name):
        external.check_contract(model, window, name)


def model_source(name: str) -> dict[str, Any] | None:
    """How to rebuild an external network (its spec, file and sha256: external.source_record); None
    for a built-in one."""
    return None if is_builtin(name) else external.source_record(name)


def method_id_of(name: str) -> str:
    """The results id of a network name: the name itself, or for an external network its class (or entry
    point) name in lower case, with `_external` added where that is a built-in method's id."""
    if is_builtin(name):
        return name
    method = re.sub(r"[^a-z0-9_\-]+", "_", external.class_label(name).lower()).strip("_-") or "external"
    return f"{method}_external" if method in METHOD_DISPLAY_NAMES else method


def display_name_of(name: str) -> str:
    """How tables name a network: DISPLAY_NAMES, or an external network's class (or entry point) name."""
    return DISPLAY_NAMES[name] if name in DISPLAY_NAMES else external.class_label(name)


def reference_param_count(name: str, **overrides: Any) -> int | None:
    """The models.md parameter count of this configuration (every built-in configuration has one;
    an external network has none: None)."""
    if not is_builtin(name):
        create_model(name, **overrides)  # validates the spec and options
        return None
    if name == "ciadnet":
        model = create_model(name, **overrides)
        return REFERENCE_PARAM_COUNTS[("ciadnet", model.channel_shrink, model.spatial_shrink)]
    model = create_model(name, **overrides)  # validates the name and options
    if name in _FINAL_CLASSES:
        return REFERENCE_PARAM_COUNTS[_final_variant_of(name, model)]
    kernels = getattr(model, "kernels", None)
    if kernels is not None and tuple(kernels) != model_options(name)["kernels"]:
        key = (name, tuple(int(k) for k in kernels))
        if key not in REFERENCE_PARAM_COUNTS:
            raise ConfigError(f"no reference parameter count for {name} with kernels {key[1]}")
        return REFERENCE_PARAM_COUNTS[key]
    return REFERENCE_PARAM_COUNTS[name]


def _final_variant_of(name: str, model: nn.Module) -> str:
    """The registered name whose defaults `model` has on the options that tell variants apart
    (DANCEFinal(decoder_attention="se") is `dance_final_se`, whatever it was created as)."""
    module, cls, _ = _FINAL_CLASSES[name]
    relatives = [n for n, (m, c, _) in _FINAL_CLASSES.items() if (m, c) == (module, cls)]
    keys = {k for n in relatives for k in _FINAL_CLASSES[n][2]}
    for other in relatives:
        defaults = model_options(other)
        if all(getattr(model, k) == defaults[k] for k in keys):
            return other
    raise ConfigError(f"no reference parameter count for {name} with "
                      + ", ".join(f"{k}={getattr(model, k)!r}" for k in sorted(keys)))


def count_params(params: Any) -> int:
    """Number of scalars in a `params` collection (BatchNorm running stats are not params)."""
    return int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)))


def _model_class(name: str) -> type[nn.Module]:
    if name in _MODEL_CLASSES:
        return _MODEL_CLASSES[name]
    if name in _FINAL_CLASSES:
        module, cls, _ = _FINAL_CLASSES[name]
        return getattr(importlib.import_module(module), cls)
    if name in UNAVAILABLE_MODELS:
        raise ConfigError(f"model {name!r} is not available: {UNAVAILABLE_MODELS[name]}")
    return external.load_class(name, MODEL_NAMES)


def _coerce(model: str, key: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):  # kernel sizes: a tuple, a list or "17,17,7,7"
        parts = value.split(",") if isinstance(value, str) else list(value)
        try:
            return tuple(int(str(p).strip()) for p in parts)
        except ValueError:
            raise ConfigError(f"model {model!r} option {key!r} must be integers, got {value!r}") from None
    if not isinstance(default, bool) or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"model {model!r} option {key!r} must be true or false, got {value!r}")


__all__ = ["MODEL_NAMES", "DISPLAY_NAMES", "REFERENCE_PARAM_COUNTS", "create_model",
           "count_params", "model_options", "reference_param_count", "is_builtin", "check_model",
           "model_source", "method_id_of", "display_name_of",
           "UNet", "DANCER", "ACDAE", "DACNN", "AGSUNet", "CIADNet"]
