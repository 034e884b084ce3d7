"""Parameterisations: the conformance suite every member passes (shapes, range, same key same init,
jit equals eager, finite gradients, vmappable), Lucid's Fourier scale and colour decorrelation by hand."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv.optvis import parameterisations as pz

PARAMS = {
    "lucid": pz.image(24),
    "fourier": pz.fourier(24),
    "pixel": pz.pixel(24),
    "sigmoid": pz.sigmoid(24),
    "decorrelated": pz.decorrelated(24, 2),
    "fft_no_sigmoid": pz.image(25, sigmoid=False),
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_conformance(name):
    param = PARAMS[name]
    key = jax.random.key(1)
    p = param.init(key)
    img = param.to_image(p)
    assert img.shape == param.shape
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    np.testing.assert_array_equal(param.init(key), p)  # same key, same init
    np.testing.assert_allclose(jax.jit(param.to_image)(p), img, atol=1e-6)
    g = jax.jit(jax.grad(lambda p: jnp.sum(param.to_image(p) * jnp.linspace(0, 1, 3))))(p)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0
    keys = jax.random.split(key, 2)
    imgs = jax.jit(jax.vmap(lambda k: param.to_image(param.init(k))))(keys)
    np.testing.assert_allclose(imgs[1], jax.jit(param.to_image)(param.init(keys[1])), atol=1e-6)


def test_fourier_matches_lucids_formula():
    """One coefficient at frequency (ky, kx) gives a cosine with Lucid's 1/f scale and /4."""
    h = w = 16
    param = pz.ImageParam(h, fft=True, decorrelate=False, sigmoid=False)
    p = np.zeros((2, 1, 3, h, w // 2 + 1), np.float32)
    p[0, 0, :, 2, 3] = 1.0  # real part at fy = 2/16, fx = 3/16
    spatial = np.asarray(param.spatial(jnp.asarray(p)))[0, :, :, 0]
    f = math.sqrt((2 / 16) ** 2 + (3 / 16) ** 2)
    scale = 1.0 / max(f, 1.0 / 16) * math.sqrt(h * w)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    expected = scale * 2 * np.cos(2 * np.pi * (2 * yy / h + 3 * xx / w)) / (h * w) / 4.0
    np.testing.assert_allclose(spatial, expected, atol=1e-5)


def test_decorrelation_matrix_is_lucids():
    c = pz.COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(pz.COLOR_CORRELATION_SVD_SQRT, axis=0))
    t = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(pz.decorrelate_colour(jnp.asarray(t)), t @ c.T, atol=1e-6)


def test_params_print_as_settings():
    assert repr(pz.image(128)).startswith("ImageParam(size=128, batch=1, fft=True, decorrelate=True")
