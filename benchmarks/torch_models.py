"""PyTorch eager twins of the project's U-Net and DANCER (spec/models.md).

These exist only as the speed reference for the training benchmark: the same
networks written the way a researcher of the original PyTorch code base would
write them today (plain `nn.Module`s, default initialisation, NCL tensors of
shape (batch, 2, length)). They are not used for any result table.

Importing this module imports torch; callers that treat torch as optional
should catch ImportError around the import (see benchmarks/README.md).
"""

from __future__ import annotations

import torch
from torch import nn

CHANNELS = (2, 16, 32, 64, 128)
UNET_KERNELS = (13, 7, 7, 7)
LEAKY_SLOPE = 0.01

# Parameter counts of the reference implementation (models.md).
REFERENCE_PARAM_COUNTS = {"unet": 200_994, "dancer": 321_754}


def same_conv(c_in: int, c_out: int, kernel: int, bias: bool = True) -> nn.Conv1d:
    """Stride-1 convolution that keeps the length (odd kernels, padding (k-1)//2)."""
    return nn.Conv1d(c_in, c_out, kernel, padding=(kernel - 1) // 2, bias=bias)


def soft_threshold(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.relu(x.abs() - threshold)


class CAC(nn.Module):
    """Channel adaptive compression: soft-threshold each channel at GAP(|x|) * a.

    The threshold is a learned fraction `a` in (0, 1) of the channel's mean
    magnitude, so small (noise-like) activations are shrunk to zero.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(channels, channels),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Linear(channels, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().mean(dim=2)                       # (B, C)
        threshold = (scale * self.attention(scale)).unsqueeze(2)
        return soft_threshold(x, threshold)


class CSE(nn.Module):
    """Channel-spatial excitation: a per-channel, per-time gate computed from |x|."""

    def __init__(self, channels: int, reduction: int = 4, kernel: int = 7):
        super().__init__()
        hidden = channels // reduction
        self.gate = nn.Sequential(
            same_conv(channels, hidden, kernel, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            same_conv(hidden, channels, kernel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.abs())


class DANCE(nn.Sequential):
    """DANCE = CSE(CAC(x))."""

    def __init__(self, channels: int):
        super().__init__(CAC(channels), CSE(channels))


class TorchUNet(nn.Module):
    """Four-level 1-D U-Net with additive skips (models.md, "U-Net").

    `encoder_activation(channels)` builds what follows each encoder
    convolution: LeakyReLU for the U-Net, DANCE for DANCER.
    """

    def __init__(self, encoder_activation=None):
        super().__init__()
        if encoder_activation is None:
            encoder_activation = lambda channels: nn.LeakyReLU(LEAKY_SLOPE)  # noqa: E731
        c, k = CHANNELS, UNET_KERNELS
        self.encoder = nn.ModuleList(
            nn.Sequential(same_conv(c[i], c[i + 1], k[i]), encoder_activation(c[i + 1]))
            for i in range(4))
        self.pool = nn.MaxPool1d(2)
        self.bottleneck = nn.Sequential(same_conv(c[4], c[4], 3), nn.LeakyReLU(LEAKY_SLOPE))
        self.up = nn.Upsample(scale_factor=2, mode="linear", align_corners=False)
        self.decoder = nn.ModuleList(same_conv(c[4 - j], c[3 - j], k[3 - j]) for j in range(4))
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for j, conv in enumerate(self.decoder):
            x = conv(self.up(x) + skips[3 - j])
            if j < 3:  # the last level is linear: the output is a normalised signal
                x = self.act(x)
        return x


class TorchDANCER(TorchUNet):
    """The U-Net with DANCE in place of each encoder LeakyReLU (models.md, "DANCER")."""

    def __init__(self):
        super().__init__(encoder_activation=DANCE)


TORCH_MODELS = {"unet": TorchUNet, "dancer": TorchDANCER}


def create_torch_model(name: str) -> nn.Module:
    """A freshly initialised twin by its project name ("unet" or "dancer")."""
    try:
        return TORCH_MODELS[name]()
    except KeyError:
        raise ValueError(f"no PyTorch twin for {name!r}; known: {sorted(TORCH_MODELS)}") from None


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
