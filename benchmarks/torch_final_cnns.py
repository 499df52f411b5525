"""PyTorch twins of the final revision's DRSN, DACNN and ACDAE (spec/models.md), and `to_flax`.

Written from the reference's description (mallocobject/DANCE at the pinned
commit: models/DRSN.py, layers/drsn_block.py, layers/shcink.py;
models/ACDAE.py, layers/eca.py; models/DACNN.py, layers/dam.py,
layers/apr_relu.py) in plain PyTorch, NCL tensors (batch, 2, length),
PyTorch's default initialisation. They are the independent implementation
the Flax networks (`ecg_jax.models.drsn.DRSN`, `ecg_jax.models.acdae_final.ACDAEFinal`,
`ecg_jax.models.dacnn.DACNNFinal`) are checked against (tests/test_final_cnns.py).

Module names are chosen so that `to_flax` is a renaming:
"encoder.1.rsb.shrink.fc1.weight" is ("enc1_rsb", "shrink", "fc1", "kernel"),
"decoder.0.eca.conv.weight" is ("dec0_eca", "kernel"),
"decoder.0.dam.channel_mlp.bn1.running_mean" is batch_stats ("dec0_dam", "channel_mlp", "bn1", "mean").

The final DACNN (`TorchDACNNFinal`, 258,457 parameters) follows the layout
models.md gives for the reference's models/DACNN.py at ab22e14 ("DACNN (final):
its layout"): stride-1 convolutions, max-pooling after encoder blocks 0-2, and
linear x2 upsampling with the skip added before decoder blocks 1-3. The strided
`TorchDACNN` is the paper revision's DACNN (329,881 with its kernels), kept to
check `ecg_jax.models.dacnn.DACNN`.

Importing this module imports torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CHANNELS = (2, 16, 32, 64, 128)
KERNELS = (13, 7, 7, 7)
LEAKY_SLOPE = 0.01

REFERENCE_PARAM_COUNTS = {"drsn": 328_422, "dacnn_final": 258_457, "acdae_final": 151_735}
# DACNN: (encoder kernels, decoder kernels).
DACNN_PAPER_KERNELS = ((13, 7, 7, 7), (7, 7, 7, 13))
DACNN_FINAL_KERNELS = ((17, 17, 3, 3), (3, 3, 17, 17))


def same_conv(c_in: int, c_out: int, kernel: int, bias: bool = True) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, kernel, padding=(kernel - 1) // 2, bias=bias)


class Shrink(nn.Module):
    """Soft threshold at the signed channel mean m = mean_t(x) times sigmoid(FC(ReLU(BN(FC(m)))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels)
        self.bn = nn.BatchNorm1d(channels)
        self.fc2 = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=2)                                                 # (B, C), signed
        fraction = torch.sigmoid(self.fc2(torch.relu(self.bn(self.fc1(mean)))))
        threshold = (mean * fraction).unsqueeze(2)
        return torch.sign(x) * torch.relu(x.abs() - threshold)


class ResidualShrinkageBlock(nn.Module):
    """ReLU(Shrink(BN(conv3(ReLU(BN(conv3(x)))))) + x): channels in == out, stride 1, identity shortcut."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = same_conv(channels, channels, 3, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = same_conv(channels, channels, 3, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.shrink = Shrink(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = torch.relu(self.bn1(self.conv1(x)))
        residual = self.shrink(self.bn2(self.conv2(residual)))
        return torch.relu(residual + x)


class DRSNEncoderLevel(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = same_conv(c_in, c_out, kernel)
        self.rsb = ResidualShrinkageBlock(c_out)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(nn.functional.leaky_relu(self.rsb(self.conv(x)), LEAKY_SLOPE))


class DRSNDecoderLevel(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = same_conv(c_in, c_out, kernel)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(nn.functional.leaky_relu(self.conv(x), LEAKY_SLOPE))


class PooledEncoderDecoder(nn.Module):
    """The final revision's shared shape (DRSN, DACNN, DANCE): encoder blocks 0-2 kept as skips and
    max-pooled, block 3 at L/8 feeding decoder block 0 directly, and before decoder blocks 1-3 the
    input upsampled (linear, x2) and the skip of that length added. Subclasses set `encoder` and
    `decoder` (four blocks each); pooling and upsampling have no parameters."""

    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool1d(2)
        self.up = nn.Upsample(scale_factor=2, mode="linear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.encoder[:3]:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.decoder[0](self.encoder[3](x))
        for j in range(1, 4):
            x = self.decoder[j](self.up(x) + skips[3 - j])
        return x


class TorchDRSN(PooledEncoderDecoder):
    """Three max-pool levels; encoder level 3 at L/8 feeds decoder level 0 directly; additive skips."""

    def __init__(self):
        super().__init__()
        c, k = CHANNELS, KERNELS
        self.encoder = nn.ModuleList(DRSNEncoderLevel(c[i], c[i + 1], k[i]) for i in range(4))
        self.decoder = nn.ModuleList(DRSNDecoderLevel(c[4 - j], c[3 - j], k[3 - j]) for j in range(4))


class ChannelECA(nn.Module):
    """x * sigmoid(conv_k(GAP(x))) with the k-tap bias-free convolution sliding over channels."""

    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel, padding=(kernel - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=2).unsqueeze(1)                                  # (B, 1, C)
        gate = torch.sigmoid(self.conv(pooled)).transpose(1, 2)             # (B, C, 1)
        return x * gate


class ACDAEEncoderLevel(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = same_conv(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.leaky_relu(self.conv(x), LEAKY_SLOPE)


class ACDAEDecoderLevel(nn.Module):
    """Conv, then (all but the last level) Up -> LeakyReLU -> ECA(7)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, last: bool):
        super().__init__()
        self.conv = same_conv(c_in, c_out, kernel)
        self.last = last
        if not last:
            self.up = nn.Upsample(scale_factor=2, mode="linear", align_corners=False)
            self.eca = ChannelECA(7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.last:
            return x
        return self.eca(nn.functional.leaky_relu(self.up(x), LEAKY_SLOPE))


class TorchACDAEFinal(nn.Module):
    """Conv/LeakyReLU encoder, three max-pools, decoder with upsampling after its convolution."""

    def __init__(self):
        super().__init__()
        c, k = CHANNELS, KERNELS
        self.encoder = nn.ModuleList(ACDAEEncoderLevel(c[i], c[i + 1], k[i]) for i in range(4))
        self.decoder = nn.ModuleList(ACDAEDecoderLevel(c[4 - j], c[3 - j], k[3 - j], last=j == 3)
                                     for j in range(4))
        self.pool = nn.MaxPool1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.encoder[:3]:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.encoder[3](x)
        for j in range(3):
            x = self.decoder[j](x) + skips[2 - j]
        return self.decoder[3](x)


class APReLU(nn.Module):
    """p = max(x, 0), n = min(x, 0); slopes a = sigmoid(BN(FC(ReLU(BN(FC([GAP(p), GAP(n)])))))); p + a n."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, 2 * channels)
        self.bn1 = nn.BatchNorm1d(2 * channels)
        self.fc2 = nn.Linear(2 * channels, channels)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positive, negative = torch.relu(x), torch.clamp(x, max=0.0)
        pooled = torch.cat([positive.mean(dim=2), negative.mean(dim=2)], dim=1)      # (B, 2C)
        slopes = torch.sigmoid(self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(pooled))))))
        return positive + slopes.unsqueeze(2) * negative


class ChannelMLP(nn.Module):
    """sigmoid(BN(FC(ReLU(BN(FC(z)))))) on pooled (B, C) features."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels)
        self.bn1 = nn.BatchNorm1d(channels)
        self.fc2 = nn.Linear(channels, channels)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(z))))))


class DualAttention(nn.Module):
    """DAM: channel gate sigmoid(f(GAP) + f(GMP)) with ONE f for both poolings (the reference's
    two branches hold the same modules) and a time gate sigmoid(Conv1x1(2->1)([mean_c, max_c])),
    both computed from the block's input; output time gate * (channel gate * x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channel_mlp = ChannelMLP(channels)
        self.spatial_conv = nn.Conv1d(2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_gate = torch.sigmoid(self.channel_mlp(x.mean(dim=2)) + self.channel_mlp(x.amax(dim=2)))
        across = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)   # (B, 2, L)
        time_gate = torch.sigmoid(self.spatial_conv(across))                                   # (B, 1, L)
        return time_gate * (channel_gate.unsqueeze(2) * x)


class DACNNEncoderLevel(nn.Module):
    """BN(APReLU(Conv(stride 2, padding (k-1)//2)(x))): halves an even length."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=2, padding=(kernel - 1) // 2)
        self.aprelu = APReLU(c_out)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.aprelu(self.conv(x)))


class DACNNDecoderLevel(nn.Module):
    """BN(APReLU(ConvT(stride 2, padding (k-1)//2, output_padding 1)(x))), doubling the length;
    then DAM except at the last level."""

    def __init__(self, c_in: int, c_out: int, kernel: int, last: bool):
        super().__init__()
        self.convt = nn.ConvTranspose1d(c_in, c_out, kernel, stride=2, padding=(kernel - 1) // 2,
                                        output_padding=1)
        self.aprelu = APReLU(c_out)
        self.bn = nn.BatchNorm1d(c_out)
        self.dam = None if last else DualAttention(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.aprelu(self.convt(x)))
        return x if self.dam is None else self.dam(x)


class TorchDACNN(nn.Module):
    """The paper's DACNN: four strided encoder levels (L/2 .. L/16), four transposed-conv decoder
    levels; the input of decoder level j > 0 is the previous output plus the encoder output of the
    same length."""

    def __init__(self, encoder_kernels=DACNN_PAPER_KERNELS[0], decoder_kernels=DACNN_PAPER_KERNELS[1]):
        super().__init__()
        c = CHANNELS
        self.encoder = nn.ModuleList(DACNNEncoderLevel(c[i], c[i + 1], k) for i, k in enumerate(encoder_kernels))
        self.decoder = nn.ModuleList(DACNNDecoderLevel(c[4 - j], c[3 - j], k, last=j == 3)
                                     for j, k in enumerate(decoder_kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
        for j, level in enumerate(self.decoder):
            x = level(x if j == 0 else x + skips[3 - j])
        return x


class DACNNFinalBlock(nn.Module):
    """BN(APReLU(Conv(stride 1, padding (k-1)//2)(x))), then DAM when asked: the length is kept."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dam: bool):
        super().__init__()
        self.conv = same_conv(c_in, c_out, kernel)
        self.aprelu = APReLU(c_out)
        self.bn = nn.BatchNorm1d(c_out)
        self.dam = DualAttention(c_out) if dam else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.aprelu(self.conv(x)))
        return x if self.dam is None else self.dam(x)


class TorchDACNNFinal(PooledEncoderDecoder):
    """The final revision's DACNN (models.md, "DACNN (final): its layout"). Encoder blocks 0-2 are
    kept as skips and max-pooled; block 3 (L/8) feeds decoder block 0 directly; before decoder
    blocks 1-3 the input is upsampled (linear, x2) and the skip of that length added. DAM after
    decoder blocks 0-2."""

    def __init__(self):
        super().__init__()
        c = CHANNELS
        encoder_kernels, decoder_kernels = DACNN_FINAL_KERNELS
        self.encoder = nn.ModuleList(DACNNFinalBlock(c[i], c[i + 1], k, dam=False)
                                     for i, k in enumerate(encoder_kernels))
        self.decoder = nn.ModuleList(DACNNFinalBlock(c[4 - j], c[3 - j], k, dam=j < 3)
                                     for j, k in enumerate(decoder_kernels))


TORCH_MODELS = {"drsn": TorchDRSN, "dacnn_final": TorchDACNNFinal, "acdae_final": TorchACDAEFinal}

_SIDES = {"encoder": "enc", "decoder": "dec"}
_STATS = {"running_mean": "mean", "running_var": "var"}


def to_flax(state: dict[str, np.ndarray]) -> dict:
    """A twin's state dict (or gradient dict: parameters only) as the Flax network's variable tree.

    "encoder.i.X.rest.leaf" / "decoder.j.X.rest.leaf" become ("enc{i}_X", *rest, leaf'),
    where a convolution weight (out, in, k) becomes its (k, in, out) kernel, a
    transposed convolution's (in, out, k) its (k, in, out) kernel, a linear
    weight (out, in) its (in, out) kernel, ECA's (1, 1, k) weight its (k,)
    taps, and a BatchNorm's weight/bias/running_mean/running_var its
    scale/bias (params) and mean/var (batch_stats). Works for every twin here.
    """
    variables: dict = {"params": {}}
    for key, value in state.items():
        *modules, leaf = key.split(".")
        if leaf == "num_batches_tracked":
            continue
        side, index, first, *inner = modules
        path = [f"{_SIDES[side]}{index}_{first}"] + inner
        value = np.asarray(value)
        is_batchnorm = modules[-1].startswith("bn")
        if leaf in _STATS:
            collection, name = "batch_stats", _STATS[leaf]
        elif leaf == "weight" and is_batchnorm:
            collection, name = "params", "scale"
        elif leaf == "weight" and first == "eca":
            collection, name = "params", "kernel"
            path, value = path[:1], value.reshape(-1)
        elif leaf == "weight" and first == "convt":   # ConvTranspose1d (in, out, k) -> (k, in, out)
            collection, name = "params", "kernel"
            value = value.transpose(2, 0, 1)
        elif leaf == "weight":
            collection, name = "params", "kernel"
            value = value.transpose(tuple(reversed(range(value.ndim))))
        else:
            collection, name = "params", leaf
        tree = variables.setdefault(collection, {})
        for part in path:
            tree = tree.setdefault(part, {})
        tree[name] = value
    return variables


def create_torch_model(name: str) -> nn.Module:
    """A freshly initialised twin by its project name ("drsn", "dacnn_final" or "acdae_final")."""
    try:
        return TORCH_MODELS[name]()
    except KeyError:
        raise ValueError(f"no PyTorch twin for {name!r}; known: {sorted(TORCH_MODELS)}") from None


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
