"""Conformance of the CPPN parameterisation (Lucid's ``param.cppn``): shapes, range, flat start,
jit = eager, same key same image, vmap = loop, finite gradients, and renders through the engine."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfv.optvis import objectives, parameterisations
from jfv.optvis.render import render, render_channels
from jfv.optvis.transforms import identity
from tiny_model import tiny_model


def test_cppn_shapes_range_and_flat_start():
    param = parameterisations.cppn(20, 2, hidden=6, layers=3)
    p = param.init(jax.random.key(0))
    x = np.asarray(param.to_image(p))
    assert x.shape == (2, 20, 20, 3)
    # the output layer's weights start at zero: each image is one colour, sigmoid of its bias
    np.testing.assert_allclose(x, np.broadcast_to(jax.nn.sigmoid(p["out"][1])[:, None, None, :], x.shape), atol=1e-6)
    w0 = p["hidden"][0][0]
    assert w0.shape == (2, 2, 6) and p["hidden"][1][0].shape == (2, 12, 6)
    # variance scaling over the fan in alone: sd sqrt(1 / 12) for the second layer
    w = np.asarray(param.init(jax.random.key(1))["hidden"][1][0])
    assert abs(w.std() - np.sqrt(1 / 12)) < 0.05
    assert "CPPNParam(size=20, batch=2, hidden=6, layers=3)" == repr(param)


def random_cppn(param, key):
    """A CPPN with non-zero output weights (the image is no longer flat)."""
    p = param.init(key)
    w, b = p["out"]
    p["out"] = (jax.random.normal(jax.random.fold_in(key, 7), w.shape), b)
    return p


def test_cppn_jit_eager_same_key_vmap_loop_and_gradients():
    param = parameterisations.cppn(16, 1, hidden=5, layers=4)
    p = random_cppn(param, jax.random.key(0))
    x = param.to_image(p)
    assert 0 < float(x.min()) and float(x.max()) < 1 and float(x.std()) > 0.01
    np.testing.assert_allclose(np.asarray(jax.jit(param.to_image)(p)), np.asarray(x), atol=1e-6)
    same = jax.tree.map(np.asarray, param.init(jax.random.key(3)))
    again = jax.tree.map(np.asarray, param.init(jax.random.key(3)))
    jax.tree.map(np.testing.assert_array_equal, same, again)
    assert not np.allclose(same["hidden"][0][0], np.asarray(param.init(jax.random.key(4))["hidden"][0][0]))
    ps = [random_cppn(param, jax.random.key(k)) for k in range(3)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *ps)
    batched = jax.vmap(param.to_image)(stacked)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(batched[k]), np.asarray(param.to_image(ps[k])), atol=1e-6)
    grads = jax.grad(lambda q: jnp.mean(param.to_image(q)[..., 0]))(p)
    leaves = jax.tree.leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in leaves) and any(np.abs(np.asarray(g)).max() > 0 for g in leaves)


def test_cppn_renders_through_the_engine_as_through_render():
    model = tiny_model()
    param = parameterisations.cppn(16, hidden=6, layers=2)
    key = jax.random.key(0)
    opt = optax.adam(0.01)
    out = render_channels(model, lambda c: objectives.channel("conv2", c), param, identity(), opt, [2, 5], key, 6)
    ref = render(model, objectives.channel("conv2", 5), param, identity(), opt, jax.random.fold_in(key, 5), 6)
    np.testing.assert_allclose(out.images[1], ref.images, atol=1e-5)
    assert ref.history[-1] > ref.history[0]  # the objective rises
    assert not np.allclose(out.images[0], out.images[1])
