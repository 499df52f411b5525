"""PyTorch twin of the final revision's DANCE and its variants (spec/models.md), and `to_flax`.

Written from the reference's description (models/DANCE.py, layers/dance.py,
se.py, cbam.py, eca.py at the pinned commit) in plain PyTorch, NCL tensors
(batch, 2, length). One class with the same two switches as
`ecg_jax.models.dance_final.DANCEFinal`: `decoder_attention` ("arem", "se",
"cbam", "eca", "identity") and `atnc`. Its module names are chosen so that
`to_flax` is a renaming: "encoder.2.atnc.fc1.weight" is
("enc2_atnc", "fc1", "kernel"), "decoder.0.arem.depthwise.weight" is
("dec0_arem", "depthwise", "kernel").

Importing this module imports torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch_final_cnns import PooledEncoderDecoder

CHANNELS = (2, 16, 32, 64, 128)
KERNELS = (13, 7, 7, 7)
ATTENTIONS = ("arem", "se", "cbam", "eca", "identity")

# models.md, "Final revision networks": name -> (decoder_attention, atnc), parameters.
VARIANTS = {"dance_final": ("arem", True), "dance_final_se": ("se", True),
            "dance_final_cbam": ("cbam", True), "dance_final_eca": ("eca", True),
            "dance_final_atnc": ("identity", True), "dance_final_arem": ("arem", False)}
REFERENCE_PARAM_COUNTS = {"dance_final": 232_198, "dance_final_se": 213_494,
                          "dance_final_cbam": 213_536, "dance_final_eca": 208_139,
                          "dance_final_atnc": 208_118, "dance_final_arem": 176_502}


def same_conv(c_in: int, c_out: int, kernel: int, bias: bool = True, groups: int = 1) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, kernel, padding=(kernel - 1) // 2, bias=bias, groups=groups)


class ATNC(nn.Module):
    """Adaptive threshold noise canceller: soft threshold at GAP(|x|) times a learned fraction."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels)
        self.bn = nn.BatchNorm1d(channels)
        self.fc2 = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        magnitude = x.abs()
        level = magnitude.mean(dim=2)                                       # (B, C)
        fraction = torch.sigmoid(self.fc2(torch.relu(self.bn(self.fc1(level)))))
        return torch.sign(x) * torch.relu(magnitude - (level * fraction).unsqueeze(2))


class AREM(nn.Module):
    """x times a sigmoid mask from 1x1 expand (2C), depthwise k-tap, 1x1 project (C)."""

    def __init__(self, channels: int, kernel: int = 7):
        super().__init__()
        wide = 2 * channels
        self.expand = nn.Conv1d(channels, wide, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(wide)
        self.depthwise = same_conv(wide, wide, kernel, bias=False, groups=wide)
        self.bn2 = nn.BatchNorm1d(wide)
        self.project = nn.Conv1d(wide, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.expand(x)))
        h = torch.relu(self.bn2(self.depthwise(h)))
        return x * torch.sigmoid(self.project(h))


class SE(nn.Module):
    """Squeeze-and-excitation without biases, reduction r."""

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction, bias=False)
        self.fc2 = nn.Linear(channels // reduction, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=2)))))
        return x * gate.unsqueeze(2)


class CBAM(nn.Module):
    """Channel attention (one bias-free MLP for average and max pooling, the two sigmoids summed),
    then spatial attention (a k-tap conv over the channel mean and max)."""

    def __init__(self, channels: int, reduction: int = 2, kernel: int = 7):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction, bias=False)
        self.fc2 = nn.Linear(channels // reduction, channels, bias=False)
        self.spatial_conv = same_conv(2, 1, kernel, bias=False)

    def _excite(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (self._excite(x.mean(dim=2)) + self._excite(x.amax(dim=2))).unsqueeze(2)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial_conv(pooled))


class ECA(nn.Module):
    """Efficient channel attention: a k-tap convolution across the channels of GAP(x)."""

    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = same_conv(1, 1, kernel, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.conv(x.mean(dim=2).unsqueeze(1))                       # (B, 1, C)
        return x * torch.sigmoid(mixed).transpose(1, 2)


def make_attention(kind: str, channels: int) -> nn.Module:
    return {"arem": lambda: AREM(channels), "se": lambda: SE(channels, 2),
            "cbam": lambda: CBAM(channels, 2, 7), "eca": lambda: ECA(7)}[kind]()


class Block(nn.Module):
    """Conv -> [ATNC] -> BN -> [attention], the attention stored under its kind's name."""

    def __init__(self, c_in: int, c_out: int, kernel: int, atnc: bool, attention: str | None):
        super().__init__()
        self.conv = same_conv(c_in, c_out, kernel)
        self.atnc = ATNC(c_out) if atnc else None
        self.bn = nn.BatchNorm1d(c_out)
        self.kind = attention
        if attention is not None:
            self.add_module(attention, make_attention(attention, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.atnc is not None:
            x = self.atnc(x)
        x = self.bn(x)
        if self.kind is not None:
            x = getattr(self, self.kind)(x)
        return x


class TorchDANCEFinal(PooledEncoderDecoder):
    """Three max-pooled encoder levels, a fourth block at L/8 feeding the decoder directly,
    decoder blocks reading Up(x) + the encoder output of their length; kernels (13, 7, 7, 7)."""

    def __init__(self, decoder_attention: str = "arem", atnc: bool = True):
        super().__init__()
        if decoder_attention not in ATTENTIONS:
            raise ValueError(f"decoder_attention must be one of {ATTENTIONS}, got {decoder_attention!r}")
        slot = None if decoder_attention == "identity" else decoder_attention
        c, k = CHANNELS, KERNELS
        self.encoder = nn.ModuleList(Block(c[i], c[i + 1], k[i], atnc, None) for i in range(4))
        # Decoder j maps c[4-j] -> c[3-j] with kernel k[3-j]; the last one has no attention.
        self.decoder = nn.ModuleList(Block(c[4 - j], c[3 - j], k[3 - j], atnc, slot if j < 3 else None)
                                     for j in range(4))


def create_torch_model(name: str) -> TorchDANCEFinal:
    """A freshly initialised twin by its project name (see VARIANTS)."""
    try:
        attention, atnc = VARIANTS[name]
    except KeyError:
        raise ValueError(f"no PyTorch twin for {name!r}; known: {sorted(VARIANTS)}") from None
    return TorchDANCEFinal(attention, atnc)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


_STATS = {"running_mean": "mean", "running_var": "var"}
_SIDES = {"encoder": "enc", "decoder": "dec"}


def to_flax(state: dict[str, np.ndarray]) -> dict:
    """A twin's state dict (or gradient dict: parameters only) as DANCEFinal's variable tree.

    Module paths "encoder.i.X..." / "decoder.j.X..." become "enc{i}_X" / "dec{j}_X";
    convolution weights (out, in, k) become (k, in, out) (the depthwise one (2C, 1, k)
    becomes (k, 1, 2C)), linear weights (out, in) become (in, out), ECA's (1, 1, k) its
    (k,) taps, BatchNorm weight/running_mean/running_var scale/mean/var.
    """
    variables: dict = {"params": {}}
    for key, value in state.items():
        *modules, leaf = key.split(".")
        if leaf == "num_batches_tracked":
            continue
        side, index, *inner = modules
        path = [f"{_SIDES[side]}{index}_{inner[0]}"] + inner[1:]
        value = np.asarray(value)
        is_batchnorm = modules[-1].startswith("bn")     # bn, bn1, bn2: every BatchNorm1d of the twin
        if leaf in _STATS:
            collection, name = "batch_stats", _STATS[leaf]
        elif leaf == "weight" and is_batchnorm:
            collection, name = "params", "scale"
        elif leaf == "weight":
            collection, name = "params", "kernel"
            if path[0].endswith("_eca"):          # Conv1d(1, 1, k) sliding over channels
                path, value = path[:1], value.reshape(-1)
            else:                                 # conv (out, in, k) -> (k, in, out); linear -> (in, out)
                value = value.transpose(tuple(reversed(range(value.ndim))))
        else:
            collection, name = "params", leaf
        tree = variables.setdefault(collection, {})
        for part in path:
            tree = tree.setdefault(part, {})
        tree[name] = np.ascontiguousarray(value)
    return variables
