"""Transforms: the conformance suite every member passes, plus exact cases (parameterisations:
tests/optvis/test_parameterisations.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv.optvis import transforms as T

TRANSFORMS = {
    "pad": T.Pad(6, value=0.5),
    "pad_reflect": T.Pad(3, mode="reflect"),
    "jitter": T.Jitter(8),
    "scale": T.RandomScale((0.9, 1.0, 1.1)),
    "rotate": T.RandomRotate((-10, 0, 10)),
    "standard": T.standard(),
    "identity": T.identity(),
}
def _img(shape=(1, 40, 40, 3), seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32))


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_conformance(name):
    t = TRANSFORMS[name]
    x, key = _img(), jax.random.key(3)
    y = t(key, x)
    assert y.shape[-1] == 3 and y.shape[0] == 1
    assert y.shape[-2] == T.output_size(t, 40)
    np.testing.assert_allclose(jax.jit(t)(key, x), y, atol=2e-5)  # jit equals eager
    np.testing.assert_array_equal(t(key, x), y)  # same key, same output
    g = jax.jit(jax.grad(lambda x: jnp.sum(t(key, x) ** 2)))(x)
    assert bool(jnp.all(jnp.isfinite(g)))
    keys = jax.random.split(key, 3)
    xs = jnp.stack([_img(seed=i) for i in range(3)])
    batched = jax.jit(jax.vmap(t))(keys, xs)
    single = jax.jit(t)
    for i in range(3):
        np.testing.assert_allclose(batched[i], single(keys[i], xs[i]), atol=1e-5)  # vmap equals a loop
    assert repr(t).startswith(type(t).__name__) or repr(t).startswith("compose(")


def test_transforms_print_as_settings():
    assert repr(T.Jitter(8)) == "Jitter(pixels=8)"
    assert "Pad(pixels=12, mode='constant', value=0.5)" in repr(T.standard())


def test_standard_is_lucids():
    s = T.standard().transforms
    assert s[0] == T.Pad(12, "constant", 0.5) and s[1] == T.Jitter(8) and s[4] == T.Jitter(4)
    assert s[2].scales == tuple(1 + (i - 5) / 50 for i in range(11))
    assert s[3].angles.count(0.0) == 6 and len(s[3].angles) == 26 and min(s[3].angles) == -10
    assert T.output_size(T.standard(), 128) == 128 + 24 - 8 - 4


def test_jitter_offsets_cover_the_range():
    x = jnp.arange(20.0)[None, :, None, None] * jnp.ones((1, 20, 20, 3))
    firsts = {float(T.Jitter(4)(jax.random.key(k), x)[0, 0, 0, 0]) for k in range(200)}
    assert firsts == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_rotate_and_scale_exact_cases():
    x = _img((1, 9, 9, 3))
    np.testing.assert_allclose(T.RandomRotate((0,))(jax.random.key(0), x), x, atol=1e-6)
    np.testing.assert_allclose(T.RandomScale((1.0,))(jax.random.key(0), x), x, atol=1e-6)
    # 90 degrees about the centre maps the pixel grid onto itself.
    r = T.RandomRotate((90,))(jax.random.key(0), x)
    np.testing.assert_allclose(r[0], np.rot90(np.asarray(x[0]), k=-1, axes=(0, 1)), atol=1e-5)
    # Zoom 2x about the centre of a 9x9 image: output (y, x) samples input ((y-4)/2+4, (x-4)/2+4).
    z = T.RandomScale((2.0,))(jax.random.key(0), x)
    np.testing.assert_allclose(z[0, 4, 4], x[0, 4, 4], atol=1e-6)
    np.testing.assert_allclose(z[0, 0, 0], x[0, 2, 2], atol=1e-6)
    np.testing.assert_allclose(z[0, 1, 4], 0.5 * (x[0, 2, 4] + x[0, 3, 4]), atol=1e-6)


def test_affine_fill_outside():
    x = jnp.ones((1, 8, 8, 3))
    y = T.RandomScale((0.5,), fill=0.25)(jax.random.key(0), x)
    assert float(y[0, 0, 0, 0]) == pytest.approx(0.25) and float(y[0, 4, 4, 0]) == pytest.approx(1.0)


def test_bad_transform_settings():
    with pytest.raises(ValueError, match=">= 0"):
        T.Jitter(-1)
    with pytest.raises(ValueError, match="positive scales"):
        T.RandomScale((0.0, 1.0))
    with pytest.raises(ValueError, match="larger than"):
        T.Jitter(8)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
