"""Which PyTorch twin stands for which registered network: the speed benchmark's registry.

Every name of `ecg_jax.models.MODEL_NAMES` is either in `TWINS` (module of this
folder, class, constructor options: the JAX network's defaults) or in `NO_TWIN`
with the reason it has none; tests/test_benchmark_torch.py checks that the two
cover the registry exactly. The twin of each name is the one its parity test
compares with the Flax network on copied weights (tests/test_torch_twins.py,
tests/test_final_cnns.py, tests/test_dance_final.py, tests/test_ralenet.py), so
`ecg-jax benchmark` provably times the same computation on both sides.

Importing this module does not import torch (the JAX side reads `NO_TWIN` and
`describe` without it); `create_twin` imports the twin's module, and torch with it.

    import torch_twins
    net = torch_twins.create_twin("dance_final_se")   # TorchDANCEFinal("se", True)
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple


class Twin(NamedTuple):
    module: str              # a module of benchmarks/
    cls: str                 # its nn.Module class
    kwargs: dict[str, Any]   # constructor options: those that make the JAX network's defaults
    parity_test: str         # where the twin is compared with the Flax network


_DANCE = "tests/test_dance_final.py"
_FINAL = "tests/test_final_cnns.py"

TWINS: dict[str, Twin] = {
    "unet": Twin("torch_models", "TorchUNet", {}, "tests/test_torch_twins.py"),
    "dancer": Twin("torch_models", "TorchDANCER", {}, "tests/test_torch_twins.py"),
    # The paper's strided DACNN: TorchDACNN's defaults are the paper kernels ((13, 7, 7, 7), (7, 7, 7, 13)).
    "dacnn": Twin("torch_final_cnns", "TorchDACNN", {}, _FINAL),
    "drsn": Twin("torch_final_cnns", "TorchDRSN", {}, _FINAL),
    "dacnn_final": Twin("torch_final_cnns", "TorchDACNNFinal", {}, _FINAL),
    "acdae_final": Twin("torch_final_cnns", "TorchACDAEFinal", {}, _FINAL),
    # RALENet(drop_path_rate=0.0), sinusoids in float64 ("exact"), as ecg_jax.models.ralenet.RALENet.
    "ralenet": Twin("torch_ralenet", "TorchRALENet", {"drop_path_rate": 0.0, "pe_recipe": "exact"},
                    "tests/test_ralenet.py"),
    # DANCEFinal(decoder_attention, atnc) per variant (torch_dance_final.VARIANTS, models.md).
    "dance_final": Twin("torch_dance_final", "TorchDANCEFinal", {"decoder_attention": "arem", "atnc": True}, _DANCE),
    "dance_final_se": Twin("torch_dance_final", "TorchDANCEFinal", {"decoder_attention": "se", "atnc": True}, _DANCE),
    "dance_final_cbam": Twin("torch_dance_final", "TorchDANCEFinal", {"decoder_attention": "cbam", "atnc": True},
                             _DANCE),
    "dance_final_eca": Twin("torch_dance_final", "TorchDANCEFinal", {"decoder_attention": "eca", "atnc": True},
                            _DANCE),
    "dance_final_atnc": Twin("torch_dance_final", "TorchDANCEFinal",
                             {"decoder_attention": "identity", "atnc": True}, _DANCE),
    "dance_final_arem": Twin("torch_dance_final", "TorchDANCEFinal", {"decoder_attention": "arem", "atnc": False},
                             _DANCE),
}

# Registered networks without a twin, with why (the benchmark prints the reason in their row).
NO_TWIN: dict[str, str] = {
    "acdae": "no PyTorch twin (the paper's ACDAE is not written in benchmarks/; the final one is acdae_final)",
    "ags_unet": "no PyTorch twin (AGS-UNet is not written in benchmarks/)",
    "ciadnet": "no PyTorch twin (CIADNet is not written in benchmarks/)",
}


def describe(name: str) -> str:
    """`TorchX(k=v, ...)` for a twin, or the reason there is none (any unknown name: none)."""
    if name in TWINS:
        t = TWINS[name]
        return f"{t.module}.{t.cls}({', '.join(f'{k}={v!r}' for k, v in t.kwargs.items())})"
    return NO_TWIN.get(name, f"no PyTorch twin ({name!r} is not a registered network with one)")


def create_twin(name: str):
    """A freshly initialised twin of registered network `name` (PyTorch default initialisation);
    ValueError with the reason for a name without one."""
    if name not in TWINS:
        raise ValueError(describe(name))
    t = TWINS[name]
    return getattr(importlib.import_module(t.module), t.cls)(**t.kwargs)
