"""Image operations (blur, resize, chunked map): hand-computed references, properties, bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv import imageops
from jfv.attribution import faithfulness


def kernel_by_hand(sigma: float, radius: int) -> np.ndarray:
    w = np.array([math.exp(-k * k / (2 * sigma * sigma)) for k in range(-radius, radius + 1)])
    return w / w.sum()


def blur_by_hand(x: np.ndarray, sigma: float, radius: int, mode: str) -> np.ndarray:
    """Plain loops over one (H, W) channel: index -1 maps to 0 ("symmetric") or 1 ("reflect")."""
    h, w = x.shape
    k = kernel_by_hand(sigma, radius)

    def at(i, n):
        while not 0 <= i < n:
            i = (-i - 1 if i < 0 else 2 * n - i - 1) if mode == "symmetric" else (-i if i < 0 else 2 * n - i - 2)
        return i

    rows = np.array([[sum(k[d + radius] * x[at(y + d, h), c] for d in range(-radius, radius + 1)) for c in range(w)]
                     for y in range(h)])
    return np.array([[sum(k[d + radius] * rows[y, at(c + d, w)] for d in range(-radius, radius + 1)) for c in range(w)]
                     for y in range(h)])


# ---------------------------------------------------------------------------------------------
# Gaussian blur.


def test_kernel_is_normalised_gaussian():
    np.testing.assert_allclose(imageops.gaussian_kernel(1.5, 3), kernel_by_hand(1.5, 3), rtol=1e-6)
    np.testing.assert_array_equal(imageops.gaussian_kernel(0.0, 2), [0, 0, 1, 0, 0])
    assert imageops.gaussian_radius(1.0) == 4 and imageops.gaussian_radius(1.0, truncate=3.0) == 3
    assert imageops.gaussian_radius(0.6, truncate=3.0) == 2  # int(1.8 + 0.5)


@pytest.mark.parametrize("mode", ["symmetric", "reflect"])
def test_blur_of_delta_is_outer_kernel(mode):
    x = np.zeros((1, 11, 11, 1), np.float32)
    x[0, 5, 5, 0] = 1.0
    out = np.asarray(imageops.gaussian_blur(jnp.asarray(x), 1.0, mode=mode))[0, ..., 0]  # radius 4: no edge reached
    k = kernel_by_hand(1.0, 4)
    np.testing.assert_allclose(out[1:10, 1:10], np.outer(k, k), atol=1e-7)
    assert out[0].max() == 0 and abs(out.sum() - 1) < 1e-6


@pytest.mark.parametrize("mode", ["symmetric", "reflect"])
@pytest.mark.parametrize("sigma, radius", [(0.8, None), (1.3, 2)])
def test_blur_edges_match_hand_loops(mode, sigma, radius):
    x = np.asarray(jax.random.uniform(jax.random.key(0), (6, 7)), np.float64)
    r = imageops.gaussian_radius(sigma) if radius is None else radius
    got = imageops.gaussian_blur(jnp.asarray(x, jnp.float32)[None, ..., None], sigma, radius, mode=mode)
    np.testing.assert_allclose(np.asarray(got)[0, ..., 0], blur_by_hand(x, sigma, r, mode), atol=2e-6)


def test_blur_edge_modes_differ_and_constants_stay():
    x = jnp.asarray(jax.random.uniform(jax.random.key(1), (1, 8, 8, 3)))
    sym, ref = (imageops.gaussian_blur(x, 1.0, 2, mode=m) for m in ("symmetric", "reflect"))
    assert float(jnp.abs(sym - ref).max()) > 1e-3
    np.testing.assert_allclose(sym[:, 3:5, 3:5], ref[:, 3:5, 3:5], atol=1e-6)  # the interior does not see the edge
    for m in ("symmetric", "reflect"):
        np.testing.assert_allclose(imageops.gaussian_blur(jnp.full((2, 9, 9, 3), 0.3), 1.7, mode=m), 0.3, atol=1e-6)


def test_blur_traced_sigma_jit_equals_eager_and_vmap_equals_loop():
    x = jax.random.uniform(jax.random.key(2), (3, 12, 12, 3))
    sigmas = jnp.array([0.0, 0.7, 1.5])
    eager = [imageops.gaussian_blur(x[i], sigmas[i], 6) for i in range(3)]
    jitted = jax.jit(lambda a, s: imageops.gaussian_blur(a, s, 6))
    batched = jax.vmap(lambda a, s: imageops.gaussian_blur(a, s, 6))(x, sigmas)
    for i in range(3):
        np.testing.assert_allclose(jitted(x[i], sigmas[i]), eager[i], atol=1e-6)
        np.testing.assert_allclose(batched[i], eager[i], atol=1e-6)
    np.testing.assert_array_equal(eager[0], x[0])  # sigma 0 is the identity


def test_faithfulness_baseline_is_the_shared_blur_with_its_own_settings():
    x = jax.random.uniform(jax.random.key(3), (2, 16, 16, 3))
    r = max(1, int(3 * 1.6))
    got = np.asarray(faithfulness.blurred_baseline(x, 1.6))
    np.testing.assert_array_equal(got, imageops.gaussian_blur(x, 1.6, r, mode="reflect"))
    np.testing.assert_allclose(got[1, ..., 2], blur_by_hand(np.asarray(x[1, ..., 2], np.float64), 1.6, r, "reflect"),
                               atol=2e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: imageops.gaussian_blur(jnp.zeros((1, 8, 8, 1)), -1.0), r">= 0 pixels"),
    (lambda: imageops.gaussian_blur(jnp.zeros((1, 8, 8, 1)), 1.0, mode="wrap"), r"symmetric, reflect"),
    (lambda: imageops.gaussian_blur(jnp.zeros((1, 4, 8, 1)), 2.0), r"exceeds the image size 4x8"),
    (lambda: jax.jit(lambda s: imageops.gaussian_blur(jnp.zeros((1, 8, 8, 1)), s))(1.0), r"static radius"),
    (lambda: imageops.resize(jnp.zeros((8, 8, 3)), (4, 4, 4)), r"one side or \(height, width\)"),
])
def test_bad_input_names_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------------------------------
# Resize.


@pytest.mark.parametrize("size", [5, 16, 40])
def test_resize_of_a_constant_is_constant(size):
    np.testing.assert_allclose(imageops.resize(jnp.full((2, 16, 16, 3), 0.7), size), 0.7, atol=1e-6)
    np.testing.assert_allclose(imageops.resize(jnp.full((3, 16, 16), -2.0), (size, 9), channels=False), -2.0, atol=1e-5)
    assert imageops.resize(jnp.zeros((2, 16, 16, 3)), size).shape == (2, size, size, 3)


def test_resize_upsample_by_two_is_hand_computed_bilinear():
    # Half-pixel centres: output i samples input (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (edges clamp).
    a, b = 1.0, 5.0
    row = np.asarray(imageops.resize(jnp.array([[a, b], [a, b]]), (2, 4), channels=False))
    np.testing.assert_allclose(row, [[a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b]] * 2, atol=1e-6)


def test_resize_channels_flag_and_identity():
    m = jax.random.uniform(jax.random.key(4), (2, 7, 9))
    np.testing.assert_allclose(imageops.resize(m, (11, 5), channels=False),
                               imageops.resize(m[..., None], (11, 5))[..., 0], atol=1e-6)
    np.testing.assert_allclose(imageops.resize(m[..., None], (7, 9)), m[..., None], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Map over padded chunks.


@pytest.mark.parametrize("n, batch", [(7, 3), (6, 3), (2, 5), (1, 1)])
def test_map_chunks_equals_unchunked_with_one_shape(n, batch):
    a = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    b = jnp.asarray(np.arange(n, dtype=np.int32))
    shapes, done = [], []

    def fn(x, y):
        shapes.append((x.shape, y.shape))
        return {"sum": x.sum(axis=1) + y, "twice": 2 * x}

    out = imageops.map_chunks(fn, a, b, batch=batch, progress=lambda k, total: done.append((k, total)))
    np.testing.assert_array_equal(out["sum"], a.sum(axis=1) + np.arange(n))
    np.testing.assert_array_equal(out["twice"], 2 * a)
    assert set(shapes) == {((batch, 2), (batch,))}  # the last chunk padded to the same shape
    assert done == [(min(s + batch, n), n) for s in range(0, n, batch)]


def test_map_chunks_pads_with_the_last_row():
    seen = []
    imageops.map_chunks(lambda x: seen.append(np.asarray(x)) or x, np.array([1, 2, 3]), batch=2)
    np.testing.assert_array_equal(seen[-1], [3, 3])


def test_map_chunks_jitted_model_equals_one_call():
    from tiny_model import tiny_model

    from jfv.optvis import references

    model = tiny_model()
    x = np.asarray(jax.random.uniform(jax.random.key(5), (5, 16, 16, 3)))
    whole = np.asarray(model.apply(model.params, jnp.asarray(x))["conv2"].mean(axis=(1, 2)))
    np.testing.assert_allclose(references.channel_means(model, "conv2", x, batch=2), whole, atol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda: imageops.map_chunks(lambda x: x, np.zeros(3), batch=0), r"batch must be >= 1"),
    (lambda: imageops.map_chunks(lambda x, y: x, np.zeros(3), np.zeros(2), batch=2), r"share their leading length"),
    (lambda: imageops.map_chunks(lambda x: x, np.zeros(0), batch=2), r"at least one row"),
])
def test_map_chunks_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_old_name_faithfulness_blur_warns_and_is_the_baseline():
    x = jax.random.uniform(jax.random.key(4), (1, 9, 9, 3))
    with pytest.warns(DeprecationWarning, match="blurred_baseline"):
        old = faithfulness.blur(x, 1.2)
    np.testing.assert_array_equal(np.asarray(old), np.asarray(faithfulness.blurred_baseline(x, 1.2)))
