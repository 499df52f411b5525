"""The final revision's DRSN, DACNN and ACDAE (models.md) against their PyTorch twins.

torch is an optional benchmark extra (benchmarks/requirements.txt): without
it this module is skipped with a reason. The twins (benchmarks/torch_final_cnns.py)
are written independently from the reference's code; here the Flax networks
must compute what they compute on copied weights (train- and eval-mode
outputs, BatchNorm running statistics, MSE gradients; float64 and float32),
both must have the models.md parameter counts, and the new blocks are checked
by hand. `dacnn_final`'s twin follows models.md's layout of the reference's
final DACNN (stride-1 convolutions, max-pool down, linear upsampling up); the
strided paper DACNN is checked against its own twin here too.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

if importlib.util.find_spec("torch") is None:
    pytest.skip("torch not installed: pip install -r benchmarks/requirements.txt",
                allow_module_level=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT / "tests"))
from torch_final_cnns import (  # noqa: E402
    DACNN_FINAL_KERNELS,
    ChannelECA,
    ResidualShrinkageBlock,
    Shrink,
    TorchDACNN,
    count_params,
    create_torch_model,
    to_flax,
)
from twin_parity import check_parity, state_of  # noqa: E402

from ecg_jax.models import count_params as flax_count_params  # noqa: E402
from ecg_jax.models import create_model, reference_param_count  # noqa: E402
from ecg_jax.models.blocks import ECA, Shrinkage  # noqa: E402
from ecg_jax.models.dacnn import DACNN  # noqa: E402
from ecg_jax.models.drsn import ResidualShrinkage  # noqa: E402

NAMES = ("drsn", "dacnn_final", "acdae_final")
MODELS_MD = {"drsn": 328_422, "dacnn_final": 258_457, "acdae_final": 151_735}


def flax_shapes(name: str, length: int = 64):
    model = create_model(name)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, length, 2)), train=False))


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_match_models_md(name):
    expected = MODELS_MD[name]
    assert count_params(create_torch_model(name)) == expected
    assert flax_count_params(flax_shapes(name)["params"]) == expected == reference_param_count(name)


def test_only_acdae_final_has_no_batchnorm():
    assert "batch_stats" in flax_shapes("drsn")
    assert "batch_stats" in flax_shapes("dacnn_final")
    assert "batch_stats" not in flax_shapes("acdae_final")


def test_dacnn_final_has_the_reference_layout_not_the_paper_one():
    """Stride-1 convolutions only (no transposed ones), kernels (17, 17, 3, 3) / (3, 3, 17, 17),
    DAM after decoder blocks 0-2: the variable tree of models.md's layout. The paper DACNN has
    the same blocks with strided and transposed convolutions."""
    final = flax_shapes("dacnn_final")["params"]
    assert sorted(final) == sorted([f"enc{i}_{b}" for i in range(4) for b in ("conv", "aprelu", "bn")]
                                   + [f"dec{j}_{b}" for j in range(4) for b in ("conv", "aprelu", "bn")]
                                   + [f"dec{j}_dam" for j in range(3)])
    taps = {name: final[name]["kernel"].shape for name in final if name.endswith("_conv")}
    assert taps == {"enc0_conv": (17, 2, 16), "enc1_conv": (17, 16, 32), "enc2_conv": (3, 32, 64),
                    "enc3_conv": (3, 64, 128), "dec0_conv": (3, 128, 64), "dec1_conv": (3, 64, 32),
                    "dec2_conv": (17, 32, 16), "dec3_conv": (17, 16, 2)}
    assert any(name.endswith("_convt") for name in flax_shapes("dacnn")["params"])


def test_dacnn_final_is_not_the_strided_network_with_its_kernels():
    """The parity test below can tell the layouts apart: the strided twin with the final kernels
    has the same parameter count but, on the same weights, another output."""
    torch.manual_seed(0)
    strided = TorchDACNN(*DACNN_FINAL_KERNELS).eval()
    final = create_torch_model("dacnn_final").eval()
    assert count_params(strided) == count_params(final) == 258_457
    shared = {k: v for k, v in final.state_dict().items() if k in strided.state_dict()
              and strided.state_dict()[k].shape == v.shape}
    strided.load_state_dict(shared, strict=False)
    x = torch.randn(2, 2, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.allclose(strided(x), final(x), atol=1e-3)


def test_dacnn_twin_with_the_paper_kernels_is_the_paper_dacnn():
    """The twin written from the reference's DACNN, given the paper's kernels, has its 329,881
    parameters and computes what `dacnn` (ecg_jax.models.dacnn.DACNN) computes."""
    kernels = (DACNN.encoder_kernels, DACNN.decoder_kernels)
    assert count_params(TorchDACNN(*kernels)) == 329_881
    check_parity(lambda: TorchDACNN(*kernels), create_model("dacnn"), to_flax, dtype="float64")


@pytest.mark.parametrize("name", NAMES)
def test_to_flax_maps_every_twin_tensor_onto_the_flax_tree(name):
    torch.manual_seed(0)
    mapped = to_flax(state_of(create_torch_model(name)))
    want = jax.tree_util.tree_map(lambda a: a.shape, flax_shapes(name))
    assert jax.tree_util.tree_map(np.shape, mapped) == want


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_flax_network_computes_what_its_twin_computes(name, dtype):
    check_parity(lambda: create_torch_model(name), create_model(name), to_flax, dtype=dtype)


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_at_other_lengths(name):
    torch.manual_seed(0)
    net = create_torch_model(name).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 2, 256)).shape == (2, 2, 256)
        assert net(torch.randn(1, 2, 48)).shape == (1, 2, 48)


# ---------------------------------------------------------------- the new blocks by hand

# Channel 0 has signed mean +2, channel 1 mean -2. With the second FC zeroed the
# learned fraction is sigmoid(0) = 1/2, so the thresholds are +1 and -1: channel 0
# is shrunk towards zero by 1, channel 1 is *pushed away* from zero by 1 (a negative
# threshold), as the reference's Shrink does with its signed mean.
SHRINK_X = [[[3.0, 1.0, -1.0, 5.0], [-3.0, -1.0, 0.0, -4.0]]]          # (1, C=2, L=4)
SHRINK_Y = [[[2.0, 0.0, 0.0, 4.0], [-4.0, -2.0, 0.0, -5.0]]]


def test_twin_shrink_thresholds_at_half_the_signed_mean():
    shrink = Shrink(2).eval()
    with torch.no_grad():
        shrink.fc2.weight.zero_()
        shrink.fc2.bias.zero_()
        out = shrink(torch.tensor(SHRINK_X))
    torch.testing.assert_close(out, torch.tensor(SHRINK_Y))


def test_flax_shrink_thresholds_at_half_the_signed_mean():
    x = jnp.asarray(np.transpose(SHRINK_X, (0, 2, 1)))
    block = Shrinkage()
    variables = block.init(jax.random.key(0), x, train=False)
    params = jax.tree_util.tree_map(np.asarray, variables["params"])
    params["fc2"] = {"kernel": np.zeros((2, 2), np.float32), "bias": np.zeros(2, np.float32)}
    out = block.apply({**variables, "params": params}, x, train=False)
    np.testing.assert_allclose(out, np.transpose(SHRINK_Y, (0, 2, 1)), rtol=0, atol=1e-6)


def test_residual_shrinkage_with_silenced_branch_is_relu():
    """conv2 = 0 makes the residual branch BN(0) = 0 (fresh stats, eval), Shrink(0) = 0: y = ReLU(x)."""
    x = np.random.default_rng(0).normal(size=(2, 16, 8)).astype(np.float32)      # NLC
    block = ResidualShrinkage()
    variables = block.init(jax.random.key(0), jnp.asarray(x), train=False)
    params = jax.tree_util.tree_map(np.asarray, variables["params"])
    params["conv2"]["kernel"] = np.zeros_like(params["conv2"]["kernel"])
    out = block.apply({**variables, "params": params}, jnp.asarray(x), train=False)
    np.testing.assert_array_equal(out, np.maximum(x, 0.0))

    twin = ResidualShrinkageBlock(8).eval()
    with torch.no_grad():
        twin.conv2.weight.zero_()
        out_twin = twin(torch.from_numpy(x.transpose(0, 2, 1))).numpy().transpose(0, 2, 1)
    np.testing.assert_array_equal(out_twin, np.maximum(x, 0.0))


# ECA with kernel 7 and only its last tap set reads the channel three places up
# (a cross-correlation, zero-padded by 3): channel means [1, 2, 3, 4] give the
# pre-sigmoid gates [4, 0, 0, 0].
ECA_MEANS = np.array([1.0, 2.0, 3.0, 4.0])
ECA_GATE = 1.0 / (1.0 + np.exp(-np.array([4.0, 0.0, 0.0, 0.0])))


def eca_input():
    return np.tile(ECA_MEANS, (1, 5, 1)).astype(np.float32)                    # (1, L=5, C=4), constant in time


def test_flax_eca7_last_tap_reads_three_channels_up():
    x = jnp.asarray(eca_input())
    block = ECA(kernel_size=7)
    taps = np.zeros(7, np.float32)
    taps[-1] = 1.0
    out = block.apply({"params": {"kernel": taps}}, x, train=False)
    np.testing.assert_allclose(out, eca_input() * ECA_GATE, rtol=1e-6)


def test_twin_eca7_last_tap_reads_three_channels_up():
    eca = ChannelECA(7)
    with torch.no_grad():
        eca.conv.weight.zero_()
        eca.conv.weight[0, 0, -1] = 1.0
        out = eca(torch.from_numpy(eca_input().transpose(0, 2, 1))).numpy().transpose(0, 2, 1)
    np.testing.assert_allclose(out, eca_input() * ECA_GATE, rtol=1e-6)
