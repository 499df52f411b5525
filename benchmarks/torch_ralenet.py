"""PyTorch twin of RALENet (models.md, "Final revision networks"), and its Flax mapping.

Written from the reference's models/RALENet.py read as a description; module
and parameter names follow the reference, so its state dict has the same keys
(`conv1.0.weight`, `enc1.blocks.0.attn.qkv.weight`, `rwattns.2.relative_position_bias_table`,
...). Tensors are NCL `(batch, 2, length)` at the network's edges and
`(batch, length, channels)` tokens inside, as in the reference.

`to_flax(state)` maps such a state dict (or a dict of parameter gradients)
onto the variable tree of `ecg_jax.models.ralenet.RALENet`.

The sinusoidal position table: the reference computes it with float32 torch
arithmetic (`pe_recipe="reference"`); the Flax network computes it in float64
and rounds once (`pe_recipe="exact"`, the default here, so that the float64
parity check compares the same function). The two differ by float32 rounding
of the angles (below 2e-5 absolute for positions under 256).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (8, 16, 32, 64, 128)
HEADS = (2, 4, 8, 16, 32)
BIAS_SPAN = 32
REFERENCE_LENGTHS = (256, 128, 64, 32)   # the reference pads each bias block to these lengths
REFERENCE_PARAM_COUNT = 1_088_690


def position_table(length: int, dim: int, recipe: str) -> torch.Tensor:
    """(1, length, dim) sinusoids: "reference" = the reference's float32 torch arithmetic, "exact" = float64."""
    if recipe == "reference":
        pe = torch.zeros((1, length, dim))
        position = torch.arange(length).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dim, 2) * -(math.log(10000.0) / dim))
        pe[0, :, 0::2] = torch.sin(position * freq)
        pe[0, :, 1::2] = torch.cos(position * freq)
        return pe
    if recipe == "exact":
        freq = np.exp(np.arange(0, dim, 2, dtype=np.float64) * -(math.log(10000.0) / dim))
        angle = np.arange(length, dtype=np.float64)[:, None] * freq[None, :]
        pe = np.zeros((1, length, dim))
        pe[0, :, 0::2] = np.sin(angle)
        pe[0, :, 1::2] = np.cos(angle)
        return torch.from_numpy(pe)
    raise ValueError(f"pe_recipe must be 'reference' or 'exact', got {recipe!r}")


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth: keep with probability 1 - rate, kept samples scaled by 1 / (1 - rate)."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    if keep > 0.0:
        mask.div_(keep)
    return x * mask


class DropPath(nn.Module):
    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        return drop_path(x, self.rate, self.training)


class PartialConv(nn.Module):
    """A bias-free 3-tap convolution of the first `dim // n_div` channels (NCL); the rest pass unchanged."""

    def __init__(self, dim: int, n_div: int):
        super().__init__()
        self.n_conv = dim // n_div
        self.partial_conv3 = nn.Conv1d(self.n_conv, self.n_conv, 3, 1, 1, bias=False)

    def forward(self, x):
        head, tail = x[:, : self.n_conv], x[:, self.n_conv:]
        return torch.cat((self.partial_conv3(head), tail), dim=1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.leconv = PartialConv(hidden, hidden)

    def forward(self, x):                              # (B, L, C)
        h = self.act(self.fc1(x))
        h = self.act(self.leconv(h.transpose(1, 2))).transpose(1, 2)
        return self.fc2(h)


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, recipe: str, max_len: int = 2048):
        super().__init__()
        self.register_buffer("pe", position_table(max_len, dim, recipe))

    def forward(self, x):
        return x + self.pe[:, : x.shape[1], :].to(x.dtype)


class MSAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                    # (B, heads, N, d)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        if mask is not None:
            scores = scores + mask[:, :, :n, :n]
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, drop_path_rate: float, recipe: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MSAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.drop_path = DropPath(drop_path_rate)
        self.pos_enc = PositionalEncoding(dim, recipe)

    def forward(self, x, mask=None):
        x = x + self.drop_path(self.attn(self.norm1(self.pos_enc(x)), mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(2 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x):
        if x.shape[1] % 2:
            x = F.pad(x, (0, 0, 0, 1))
        return self.reduction(self.norm(torch.cat([x[:, 0::2], x[:, 1::2]], dim=-1)))


class PatchSeparate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(dim // 2, dim // 2, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x):
        half = x.shape[2] // 2
        x = torch.cat([x[:, :, :half], x[:, :, half:]], dim=1)   # channel halves one after the other in time
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, heads: int, resample, drop_path_rate: float, recipe: str, depth: int = 2):
        super().__init__()
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, drop_path_rate, recipe) for _ in range(depth)])
        self.downsample = resample(dim) if resample else None

    def forward(self, x, mask=None):
        for block in self.blocks:
            x = block(x, mask)
        return self.downsample(x) if self.downsample else x


class RelativePositionEmbedding(nn.Module):
    """A (63, heads) table -> (1, heads, L, L) bias: table[i - j + 31] on the first 32 x 32 pairs, zero elsewhere."""

    def __init__(self, span: int, padded_length: int, heads: int):
        super().__init__()
        self.span, self.padded_length = span, padded_length
        self.relative_position_bias_table = nn.Parameter(torch.zeros(2 * span - 1, heads))
        coords = torch.arange(span)
        self.register_buffer("relative_position_index", coords[:, None] - coords[None, :] + span - 1)

    def forward(self):
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        bias = bias.reshape(self.span, self.span, -1).permute(2, 0, 1)
        pad = self.padded_length - self.span
        return F.pad(bias, (0, pad, 0, pad)).unsqueeze(0)


class TorchRALENet(nn.Module):
    """RALENet(double_ch=True, high_level_enhence=True); `drop_path_rate` as in the Flax network.

    Runs on windows of at most 256 samples, as the reference (its bias blocks
    are padded to 256, 128, 64, 32 positions).
    """

    def __init__(self, drop_path_rate: float = 0.0, pe_recipe: str = "exact"):
        super().__init__()
        w, h, r = WIDTHS, HEADS, pe_recipe
        self.conv1 = nn.Sequential(nn.Conv1d(2, w[0], 3, padding=1), nn.LeakyReLU(0.2), nn.BatchNorm1d(w[0]))
        self.rwattns = nn.ModuleList([RelativePositionEmbedding(BIAS_SPAN, REFERENCE_LENGTHS[i], h[i])
                                      for i in range(4)])
        self.enc1 = BasicLayer(w[0], h[0], PatchMerging, drop_path_rate, r)
        self.enc2 = BasicLayer(w[1], h[1], PatchMerging, drop_path_rate, r)
        self.enc3 = BasicLayer(w[2], h[2], PatchMerging, drop_path_rate, r)
        self.enc4 = BasicLayer(w[3], h[3], PatchMerging, drop_path_rate, r)
        self.mid = BasicLayer(w[4], h[4], None, drop_path_rate, r)
        self.dec4 = BasicLayer(w[4], h[4], PatchSeparate, drop_path_rate, r)
        self.dec3 = BasicLayer(w[3], h[3], PatchSeparate, drop_path_rate, r)
        self.dec2 = BasicLayer(w[2], h[2], PatchSeparate, drop_path_rate, r)
        self.dec1 = BasicLayer(w[1], h[1], PatchSeparate, drop_path_rate, r)
        self.transconv = nn.Conv1d(w[0], 2, 3, padding=1)

    def forward(self, x):                                   # (B, 2, L)
        stem = self.conv1(x)
        masks = [rw() for rw in self.rwattns]
        x = stem.transpose(1, 2)
        x = self.enc1(x, masks[0])
        s2 = x
        x = self.enc2(x, masks[1])
        s3 = x
        x = self.enc3(x, masks[2])
        s4 = x
        x = self.enc4(x, masks[3])
        x = self.mid(x) + x
        x = self.dec4(x) + s4
        x = self.dec3(x, masks[3]) + s3
        x = self.dec2(x, masks[2]) + s2
        x = self.dec1(x, masks[1])
        return self.transconv(x.transpose(1, 2) + stem)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


_STAGES = {"enc1": "enc1", "enc2": "enc2", "enc3": "enc3", "enc4": "enc4", "mid": "mid",
           "dec4": "dec4", "dec3": "dec3", "dec2": "dec2", "dec1": "dec1"}
_LEAF = {"weight": "kernel", "bias": "bias"}
_NORM_LEAF = {"weight": "scale", "bias": "bias"}


def _conv(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 1, 0))          # (out, in, k) -> (k, in, out)


def _flax_entry(key: str, value: np.ndarray):
    """(collection, path, array) for one state-dict entry, or None for the constant buffers."""
    parts = key.split(".")
    if parts[-1] in ("pe", "relative_position_index", "num_batches_tracked"):
        return None
    if parts[0] == "conv1":
        if parts[1] == "0":
            return "params", ("stem_conv", _LEAF[parts[2]]), _conv(value) if parts[2] == "weight" else value
        stats = {"running_mean": "mean", "running_var": "var"}
        if parts[2] in stats:
            return "batch_stats", ("stem_bn", stats[parts[2]]), value
        return "params", ("stem_bn", _NORM_LEAF[parts[2]]), value
    if parts[0] == "rwattns":
        return "params", (f"rel_bias{parts[1]}",), value
    if parts[0] == "transconv":
        return "params", ("out_conv", _LEAF[parts[1]]), _conv(value) if parts[1] == "weight" else value
    stage = _STAGES[parts[0]]
    if parts[1] == "downsample":
        resample = "merge" if stage.startswith("enc") else "separate"
        if parts[2] == "norm":
            return "params", (stage, resample, "norm", _NORM_LEAF[parts[3]]), value
        return "params", (stage, resample, "reduction", "kernel"), value.T
    block = (stage, f"block{parts[2]}")
    sub, rest = parts[3], parts[4:]
    if sub in ("norm1", "norm2"):
        return "params", block + (sub, _NORM_LEAF[rest[0]]), value
    if sub == "attn":
        leaf = value.T if rest[1] == "weight" else value
        return "params", block + ("attn", rest[0], _LEAF[rest[1]]), leaf
    if sub == "mlp":
        if rest[0] == "leconv":
            return "params", block + ("mlp", "partial_conv", "kernel"), _conv(value)
        leaf = value.T if rest[1] == "weight" else value
        return "params", block + ("mlp", rest[0], _LEAF[rest[1]]), leaf
    raise KeyError(f"unmapped RALENet state entry {key!r}")


def to_flax(state: dict[str, np.ndarray]) -> dict:
    """Map a TorchRALENet state dict (or parameter-gradient dict) onto the Flax variable tree."""
    tree: dict = {}
    for key, value in state.items():
        entry = _flax_entry(key, np.asarray(value))
        if entry is None:
            continue
        collection, path, array = entry
        node = tree.setdefault(collection, {})
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = np.ascontiguousarray(array)
    return tree


if __name__ == "__main__":
    net = TorchRALENet()
    print(count_params(net), net(torch.randn(2, 2, 256)).shape)
