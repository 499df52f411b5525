"""The final revision's DANCE and its five variants against their PyTorch twin (benchmarks/).

Parameter counts of both implementations equal models.md; every variant
computes what the twin computes (train/eval outputs, running statistics, MSE
gradients) in float64 and float32 on the same weights; the new blocks (ATNC,
AREM, SE, CBAM) give hand-computed values at neutral weights.

torch is an optional benchmark extra (benchmarks/requirements.txt): without
it this module is skipped with a reason.
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

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT / "tests"))
import torch_dance_final  # noqa: E402
from twin_parity import check_parity  # noqa: E402

from ecg_jax.errors import ConfigError  # noqa: E402
from ecg_jax.models import REFERENCE_PARAM_COUNTS, count_params, create_model, model_options  # noqa: E402
from ecg_jax.models.dance_final import AREM, ATNC, CBAM, SE, DANCEFinal, DepthwiseConv1d  # noqa: E402

NAMES = ("dance_final", "dance_final_se", "dance_final_cbam", "dance_final_eca",
         "dance_final_atnc", "dance_final_arem")
EXPECTED = {"dance_final": 232_198, "dance_final_se": 213_494, "dance_final_cbam": 213_536,
            "dance_final_eca": 208_139, "dance_final_atnc": 208_118, "dance_final_arem": 176_502}


def flax_params(module, x, **kwargs):
    return jax.eval_shape(lambda: module.init(jax.random.key(0), x, **kwargs))


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_of_twin_and_flax_equal_models_md(name):
    shapes = flax_params(create_model(name), jnp.zeros((1, 256, 2)), train=False)
    twin = torch_dance_final.create_torch_model(name)
    assert (count_params(shapes["params"]) == torch_dance_final.count_params(twin)
            == REFERENCE_PARAM_COUNTS[name] == torch_dance_final.REFERENCE_PARAM_COUNTS[name]
            == EXPECTED[name])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_flax_network_computes_what_the_twin_computes(name, dtype):
    attention, atnc = torch_dance_final.VARIANTS[name]
    check_parity(lambda: torch_dance_final.TorchDANCEFinal(attention, atnc), create_model(name),
                 torch_dance_final.to_flax, dtype=dtype)


def test_registry_names_are_the_class_with_the_variant_defaults():
    for name in NAMES:
        model = create_model(name)
        assert type(model) is DANCEFinal
        assert (model.decoder_attention, model.atnc) == torch_dance_final.VARIANTS[name]
    assert model_options("dance_final_cbam") == {"decoder_attention": "cbam", "atnc": True}
    assert create_model("dance_final", atnc="false").atnc is False


def test_invalid_options_are_config_errors_listing_valid_values():
    with pytest.raises(ConfigError, match="decoder_attention must be one of arem, se, cbam, eca, identity"):
        create_model("dance_final", decoder_attention="transformer")
    with pytest.raises(ConfigError, match="true or false"):
        create_model("dance_final", atnc="maybe")


def test_length_must_be_a_multiple_of_eight():
    model = create_model("dance_final")
    out = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), jnp.zeros((2, 40, 2)),
                                                        train=False)[0])
    assert out.shape == (2, 40, 2)
    with pytest.raises(ConfigError, match="divisible by 8"):
        flax_params(model, jnp.zeros((1, 44, 2)), train=False)


# ------------------------------------------------------------ blocks by hand

def _fill(shapes, **values):
    """A variable tree of `shapes` with every leaf named in `values` set to that constant."""
    def leaf(path, s):
        return jnp.full(s.shape, values[path[-1].key], jnp.float32)
    return jax.tree_util.tree_map_with_path(leaf, shapes)


def test_atnc_with_neutral_gate_thresholds_at_half_the_mean_magnitude():
    x = jnp.array([[[2.0, 1.0], [-2.0, 1.0], [4.0, -1.0], [-4.0, 1.0]]])  # (1, 4, 2)
    shapes = flax_params(ATNC(), x, train=False)
    # fc2 = 0 makes the gate sigmoid(0) = 1/2 whatever fc1 and BN do.
    variables = _fill(shapes, kernel=0.0, bias=0.0, scale=1.0, mean=0.0, var=1.0)
    y = ATNC().apply(variables, x, train=False)
    # channel 0: mean |x| = 3, threshold 1.5; channel 1: mean |x| = 1, threshold 0.5
    np.testing.assert_allclose(y, [[[0.5, 0.5], [-0.5, 0.5], [2.5, -0.5], [-2.5, 0.5]]])


def test_arem_with_zero_projection_halves_the_input():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 4)), jnp.float32)
    shapes = flax_params(AREM(), x, train=False)
    variables = _fill(shapes, kernel=0.3, bias=0.0, scale=1.0, mean=0.0, var=1.0)
    variables["params"]["project"]["kernel"] = jnp.zeros_like(variables["params"]["project"]["kernel"])
    np.testing.assert_allclose(AREM().apply(variables, x, train=False), x / 2, rtol=1e-6)


def test_arem_mask_by_hand_at_unit_weights():
    """Every weight 1, each BN the identity (eval, mean 0, var 1 - eps), projection bias -1; for one
    channel: the expansion is 2 copies of x, the depthwise sum d[t] = sum of relu(x)[t-3..t+3]
    (zero padded), the projection 2 d - 1, so y = x * sigmoid(2 d - 1)."""
    x = jnp.array([0.5, -1.0, 2.0, 0.25, -0.5, 1.0, 0.0, 3.0], jnp.float32).reshape(1, 8, 1)
    shapes = flax_params(AREM(), x, train=False)
    variables = _fill(shapes, kernel=1.0, bias=0.0, scale=1.0, mean=0.0, var=1.0 - 1e-5)
    variables["params"]["project"]["bias"] = jnp.full((1,), -1.0, jnp.float32)
    r = np.maximum(np.asarray(x[0, :, 0], np.float64), 0)
    d = np.array([r[max(t - 3, 0):t + 4].sum() for t in range(8)])
    expected = np.asarray(x[0, :, 0]) / (1 + np.exp(-(2 * d - 1.0)))
    np.testing.assert_allclose(AREM().apply(variables, x, train=False)[0, :, 0], expected, rtol=1e-5)


def test_depthwise_conv_filters_each_channel_on_its_own():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 12, 3)), jnp.float32)
    kernel = jnp.asarray(np.random.default_rng(2).normal(size=(7, 1, 3)), jnp.float32)
    y = DepthwiseConv1d(7).apply({"params": {"kernel": kernel}}, x)
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (3, 3), (0, 0)))
    w = np.asarray(kernel, np.float64)
    expected = np.zeros((2, 12, 3))
    for t in range(12):
        for j in range(7):
            expected[:, t] += xp[:, t + j] * w[j, 0]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_se_with_zero_weights_halves_the_input():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 8, 6)), jnp.float32)
    variables = _fill(flax_params(SE(), x, train=False), kernel=0.0)
    np.testing.assert_allclose(SE().apply(variables, x, train=False), x / 2)


def test_cbam_at_zero_weights_is_x_times_one_half():
    """fc = 0: each pooled branch is sigmoid(0) = 1/2 and the two are summed (not squashed again),
    so the channel weight is 1; spatial conv = 0: weight 1/2. y = x * 1 * 1/2."""
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 8, 6)), jnp.float32)
    variables = _fill(flax_params(CBAM(), x, train=False), kernel=0.0)
    y, state = CBAM().apply(variables, x, train=False, mutable=["intermediates"])
    np.testing.assert_allclose(state["intermediates"]["channel_gate"][0], np.ones((2, 6)))
    np.testing.assert_allclose(y, x / 2)


def test_cbam_spatial_gate_reads_channel_mean_then_max():
    """Only the centre taps of the spatial conv set, (a, b): v = sigmoid(a mean_c + b max_c) of x1 = x * 1."""
    x = jnp.asarray(np.random.default_rng(5).normal(size=(1, 8, 4)), jnp.float32)
    variables = _fill(flax_params(CBAM(), x, train=False), kernel=0.0)
    spatial = np.zeros((7, 2, 1), np.float32)
    spatial[3, 0, 0], spatial[3, 1, 0] = 0.7, -1.3
    variables["params"]["spatial_conv"]["kernel"] = jnp.asarray(spatial)
    xn = np.asarray(x, np.float64)
    v = 1 / (1 + np.exp(-(0.7 * xn.mean(-1, keepdims=True) - 1.3 * xn.max(-1, keepdims=True))))
    np.testing.assert_allclose(CBAM().apply(variables, x, train=False), xn * v, rtol=1e-5)


def test_reference_count_follows_the_options_not_the_name():
    from ecg_jax.models import reference_param_count

    assert reference_param_count("dance_final", decoder_attention="se") == 213_494
    assert reference_param_count("dance_final_se", decoder_attention="arem") == 232_198
    assert reference_param_count("dance_final", atnc=False) == 176_502
    with pytest.raises(ConfigError, match="no reference parameter count for dance_final"):
        reference_param_count("dance_final", decoder_attention="se", atnc=False)

