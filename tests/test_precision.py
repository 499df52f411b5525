"""train.precision and train.conv_input_rounding (ecg_jax/train/precision.py)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecg_jax import config_utils
from ecg_jax.errors import ConfigError
from ecg_jax.models import create_model
from ecg_jax.models.layers import conv1d
from ecg_jax.train import precision, sharding
from ecg_jax.train.device_data import MemberConsts, SplitArrays
from ecg_jax.train.engine import TrainSettings
from ecg_jax.train.precision import round_mantissa, with_policy
from ecg_jax.train.program import TrainProgram

CONV = dict(window_strides=(1,), padding=[(2, 2)], dimension_numbers=("NWC", "WIO", "NWC"))


def test_choices_are_the_same_in_config_validation():
    assert config_utils.PRECISIONS == precision.PRECISIONS
    assert config_utils.INPUT_ROUNDINGS == precision.INPUT_ROUNDINGS
    assert precision.DEFAULT_PRECISION == "highest"


def test_bfloat16_rounding_is_jax_bfloat16_conversion():
    r = np.random.RandomState(0)
    x = np.concatenate([r.randn(5000) * 10.0 ** r.randint(-6, 6, 5000),
                        # exact ties: 1 + 2^-8 (rounds down to even 1), 1 + 3 x 2^-8 (up to 1 + 2^-6)
                        [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 0.0, -0.0]]).astype(np.float32)
    got = np.asarray(round_mantissa(jnp.asarray(x), 8))
    np.testing.assert_array_equal(got, np.asarray(jnp.asarray(x).astype(jnp.bfloat16).astype(jnp.float32)))
    assert got[-5:-2].tolist() == [1.0, 1 + 2 ** -6, -1.0]


def test_tf32_rounding_keeps_eleven_significant_bits():
    x = jnp.asarray([1 + 2 ** -11,               # tie: to the even neighbour, 1
                     1 + 3 * 2 ** -11,           # tie: up to the even 1 + 2^-9
                     1 + 2 ** -11 + 2 ** -20,    # above the tie: 1 + 2^-10
                     3 * 2 ** -12 - 2 ** -30,    # below a tie: 3 x 2^-12 keeps its 11 bits
                     np.inf, -np.inf, np.nan], jnp.float32)
    got = np.asarray(round_mantissa(x, 11))
    np.testing.assert_array_equal(got[:4], np.float32([1.0, 1 + 2 ** -9, 1 + 2 ** -10, 3 * 2 ** -12]))
    assert got[4] == np.inf and got[5] == -np.inf and np.isnan(got[6])


def _rounded(x, bits):
    return np.asarray(round_mantissa(jnp.asarray(x, jnp.float32), bits))


@pytest.mark.parametrize("rounding,bits", [("bfloat16", 8), ("tf32", 11)])
def test_rounding_reaches_every_convolution_forward_and_backward(rounding, bits):
    """Forward: the convolution of rounded inputs. Backward: the gradient convolutions' inputs
    (cotangent and saved input/kernel) rounded too. Checked against JAX's own convolution of inputs
    rounded by hand, with a cotangent `w` that is exactly representable."""
    r = np.random.RandomState(1)
    x, k = r.randn(2, 16, 3).astype(np.float32), r.randn(5, 3, 4).astype(np.float32)
    w = _rounded(r.randn(2, 16, 4), bits)

    def loss(x, k):
        return jnp.sum(conv1d(x, k, 1, (2, 2), 1) * w)

    value, grads = jax.jit(with_policy(jax.value_and_grad(loss, argnums=(0, 1)), "highest", rounding))(x, k)
    def plain(a, b):
        return jax.lax.conv_general_dilated(a, b, **CONV)
    xr, kr = _rounded(x, bits), _rounded(k, bits)
    y, pull = jax.vjp(plain, jnp.asarray(xr), jnp.asarray(kr))
    # The loss's own product y * w is elementwise (no rounding); its sum is XLA's, compared to float32 rounding.
    np.testing.assert_allclose(value, np.sum(np.asarray(y, np.float64) * w), rtol=1e-5)
    for got, want in zip(grads, pull(jnp.asarray(w)), strict=True):
        np.testing.assert_array_equal(got, want)
    unrounded = jax.jit(jax.grad(loss, argnums=1))(x, k)
    assert not np.array_equal(unrounded, grads[1])   # the rounding did something


def test_rounding_reaches_inside_a_scan_and_matrix_products():
    r = np.random.RandomState(2)
    a, b = r.randn(3, 8, 8).astype(np.float32), r.randn(8, 8).astype(np.float32)

    def f(a, b):
        return jax.lax.scan(lambda c, m: (c @ m, jnp.sum(c)), b, a)

    (last, sums) = jax.jit(with_policy(f, "highest", "bfloat16"))(a, b)
    c = b
    for m in a:   # by hand: each product of rounded inputs, in float32
        c = np.asarray(jnp.asarray(_rounded(c, 8)) @ jnp.asarray(_rounded(m, 8)))
    np.testing.assert_array_equal(last, c)
    jaxpr = str(jax.make_jaxpr(with_policy(f, "highest", "bfloat16"))(a, b))
    assert jaxpr.count("bitcast_convert_type") == 4   # two inputs of the one dot_general in the body, in and out


def test_precision_is_written_into_the_lowered_program():
    x, k = jnp.ones((1, 16, 3)), jnp.ones((5, 3, 4))
    def f(x, k):
        return conv1d(x, k, 1, (2, 2), 1)
    for name, hlo in (("highest", "HIGHEST"), ("high", "HIGH"), ("default", "DEFAULT")):
        text = jax.jit(with_policy(f, name)).lower(x, k).as_text()
        assert re.findall(r"precision (\w+)>", text) == [hlo, hlo], name


def _tiny_epoch(settings: TrainSettings, model_name: str = "unet"):
    mesh = sharding.member_mesh(jax.devices()[:1])
    r = np.random.RandomState(0)
    data = sharding.put_replicated(SplitArrays(r.randn(24, 64, 2).astype(np.float32),
                                               0.3 * r.randn(3, 24, 64, 2).astype(np.float32)), mesh)
    consts = sharding.put_members(MemberConsts(np.ones((1, 3), np.float32), np.ones(1, np.float32),
                                               np.zeros(1, bool), np.zeros(1, bool), np.full(1, -4.0, np.float32),
                                               np.zeros((1, 2), np.float32), np.ones((1, 2), np.float32)), mesh)
    program = TrainProgram(create_model(model_name), settings, mesh, "scan")
    state = program.init(sharding.put_members(np.array([3], np.int32), mesh))
    state, losses = program.epoch(state, consts, data)
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(sharding.to_host((state, losses)))]


def test_on_cpu_every_precision_trains_the_same_bits_and_rounding_does_not():
    base = dict(batch_size=8, steps_per_epoch=3, window=64, channels=2, learning_rate=1e-3,
                lr_decay_epoch=(40,), lr_decay_factor=(0.1,))
    highest = _tiny_epoch(TrainSettings(**base, precision="highest"))
    for name in ("high", "default"):
        for a, b in zip(highest, _tiny_epoch(TrainSettings(**base, precision=name)), strict=True):
            np.testing.assert_array_equal(a, b)
    emulated = _tiny_epoch(TrainSettings(**base, conv_input_rounding="bfloat16"))
    assert any(not np.array_equal(a, b) for a, b in zip(highest, emulated, strict=True))


def test_config_validation_and_rows():
    c = config_utils.resolve_config(_config())
    assert c.train.precision == "highest" and c.train.conv_input_rounding == "none"
    for field, value in (("precision", "fast"), ("conv_input_rounding", "fp8"), ("precision", "HIGHEST")):
        bad = _config()
        bad.train[field] = value
        with pytest.raises(ConfigError, match=rf"^unknown train\.{field} .*; valid values: ") as e:
            config_utils.resolve_config(bad)
        assert "\n" not in str(e.value)
    s = TrainSettings(1, 1, 16, 2, 1e-3, (1,), (0.1,), precision="default", conv_input_rounding="tf32")
    assert precision.precision_fields(s) == {"precision": "default", "conv_input_rounding": "tf32"}
    assert precision.precision_fields(TrainSettings(1, 1, 16, 2, 1e-3, (1,), (0.1,))) == {"precision": "highest"}


def test_table_captions_name_the_precision():
    from ecg_jax.report import build_tables
    from ecg_jax.results import make_row

    metrics = {"snr_db": 10.0, "rmse": 0.1, "snr_improvement_db": 14.0, "prd": 30.0, "ssd": 1.0, "mad": 0.5,
               "cosine": 0.9}
    rows = [make_row("unet", "emb", -4, s, "reference", "physionet", metrics, precision="highest", epochs=100)
            for s in (0, 1)]
    table = [t for t in build_tables(rows) if t.noise_type == "emb" and t.kind == "main"][0]
    assert "Network arithmetic: train.precision=highest." in table.caption
    rows.append(make_row("dancer", "emb", -4, 0, "reference", "physionet", metrics, precision="default",
                         conv_input_rounding="bfloat16", epochs=100))
    table = [t for t in build_tables(rows) if t.noise_type == "emb" and t.kind == "main"][0]
    assert ("Network arithmetic (per row): train.precision=highest (U-Net); default, inputs rounded to bfloat16 "
            "(CPU emulation) (DANCER).") in table.caption


def _config():
    import ml_collections

    from ecg_jax.configs import common

    c = common.network_config("unet", "smoke")
    assert isinstance(c, ml_collections.ConfigDict)
    return c
