"""Channel interpolation: the objective and the alignment penalty by hand, the strip's
parameterisation (conformance, shared components), and the strip's end frames equal to
single-channel renders."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfv.optvis import interpolation, objectives, parameterisations, transforms
from jfv.optvis.engine import activations
from tiny_model import tiny_model

MODEL = tiny_model()
KEY = jax.random.key(0)


def test_channel_interpolate_by_hand():
    # 3 frames, t = 0, 1/2, 1; channel 0 of "x" is 1, 2, 3, channel 1 of "y" is 10, 20, 30.
    x = jnp.asarray([1.0, 2.0, 3.0]).reshape(3, 1, 1, 1) * jnp.asarray([1.0, 0.0])
    y = jnp.asarray([10.0, 20.0, 30.0]).reshape(3, 1, 1, 1) * jnp.asarray([0.0, 1.0])
    value = objectives.channel_interpolate("x", 0, "y", 1)({"x": x, "y": y})
    assert float(value) == pytest.approx(1 * 1 + (0.5 * 2 + 0.5 * 20) + 1 * 30)  # 42


def test_channel_interpolate_on_a_tiny_model_equals_a_loop():
    images = jax.random.uniform(KEY, (5, 16, 16, 3))
    acts = activations(MODEL, MODEL.params, images, images)
    value = objectives.channel_interpolate("conv2", 3, "conv1", 6)(acts)
    a, b = np.asarray(acts["conv2"]), np.asarray(acts["conv1"])
    expect = sum((1 - i / 4) * a[i, ..., 3].mean() + (i / 4) * b[i, ..., 6].mean() for i in range(5))
    assert float(value) == pytest.approx(expect, rel=1e-5)
    assert objectives.channel_interpolate("conv2", 3, "conv1", 6).layers == ("conv2", "conv1")


def test_alignment_by_hand_and_zero_for_identical_frames():
    x = jnp.asarray([0.0, 1.0, 3.0]).reshape(3, 1, 1, 1)
    # d = 1: (1 - 0)^2 + (3 - 1)^2 = 5, / 2; d = 2: (3 - 0)^2 = 9, / 4.
    assert float(objectives.alignment("x", 2.0)({"x": x})) == pytest.approx(5 / 2 + 9 / 4)
    frame = jax.random.normal(KEY, (1, 4, 4, 8))
    assert float(objectives.alignment("x", 3.0)({"x": jnp.repeat(frame, 6, axis=0)})) == 0.0
    # 7 frames: pairs up to 4 apart, brute force.
    z = np.asarray(jax.random.normal(KEY, (7, 3, 3, 2)))
    expect = sum(np.mean((z[i] - z[i + d]) ** 2) / 5.0**d for d in range(1, 5) for i in range(7 - d))
    assert float(objectives.alignment("z", 5.0)({"z": jnp.asarray(z)})) == pytest.approx(expect, rel=1e-5)


def test_they_compose_jit_and_vmap_over_pairs():
    images = jax.random.uniform(KEY, (4, 16, 16, 3))
    acts = activations(MODEL, MODEL.params, images, images)
    both = objectives.channel_interpolate("conv2", 1, "conv2", 5) - 0.1 * objectives.alignment("conv1")
    eager = float(both(acts))
    parts = float(objectives.channel_interpolate("conv2", 1, "conv2", 5)(acts)) - 0.1 * float(
        objectives.alignment("conv1")(acts))
    assert eager == pytest.approx(parts, rel=1e-6)
    assert float(jax.jit(both)(acts)) == pytest.approx(eager, rel=1e-5)
    pairs = jnp.asarray([[1, 5], [2, 0], [7, 7]])
    batched = jax.vmap(lambda p: objectives.channel_interpolate("conv2", p[0], "conv2", p[1])(acts))(pairs)
    loop = [float(objectives.channel_interpolate("conv2", int(a), "conv2", int(b))(acts)) for a, b in pairs]
    np.testing.assert_allclose(batched, loop, rtol=1e-5)
    assert "alignment(conv1, decay=2)" in both.description


@pytest.mark.parametrize("bad, message", [
    (lambda: objectives.channel_interpolate("conv2", 0, "conv2", 1)({"conv2": jnp.ones((1, 2, 2, 8))}),
     "at least 2 frames"),
    (lambda: objectives.alignment("conv2", 0.0), "decay_ratio must be > 0"),
    (lambda: interpolation.param(16, frames=1), "frames >= 2"),
])
def test_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


# ---------------------------------------------------------------------------------------------
# The strip's parameterisation.


def test_frame_weights_align_the_ends():
    np.testing.assert_allclose(interpolation.frame_weights(5, 2),
                               [[1, 0], [0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(interpolation.frame_weights(3, 1), np.ones((3, 1)))
    w = interpolation.frame_weights(6, 3)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(w[0], [1, 0, 0]) and np.testing.assert_allclose(w[-1], [0, 0, 1])


def test_param_conformance():
    param = interpolation.param(16, frames=4)
    p = param.init(KEY)
    img = param.to_image(p)
    assert img.shape == (4, 16, 16, 3) and float(img.min()) >= 0 and float(img.max()) <= 1
    np.testing.assert_allclose(jax.jit(param.to_image)(p), img, atol=1e-6)  # jit = eager
    np.testing.assert_array_equal(param.to_image(param.init(KEY)), img)  # same key, same image
    keys = jax.random.split(KEY, 3)
    batched = jax.vmap(lambda k: param.to_image(param.init(k)))(keys)
    for i, k in enumerate(keys):  # vmap = loop
        np.testing.assert_allclose(batched[i], param.to_image(param.init(k)), atol=1e-6)
    g = jax.grad(lambda q: jnp.sum(param.to_image(q) ** 2))(p)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(g))
    assert "InterpolationParam(size=16, frames=4" in repr(param)


def test_shared_components_are_shared_and_unshared_is_plain_fourier():
    plain = interpolation.param(16, frames=3, shared=False)
    p = plain.init(KEY)
    np.testing.assert_allclose(plain.to_image(p), parameterisations.image(16, 3).to_image(p["unique"]), atol=1e-6)
    param = interpolation.InterpolationParam(16, 3, ((1, 4), (2, 8)))
    q = param.init(KEY)
    q = {"unique": jnp.zeros_like(q["unique"]), "shared": (q["shared"][0], jnp.zeros_like(q["shared"][1]))}
    t = np.asarray(param.spatial(q))
    np.testing.assert_allclose(t[0], t[1], atol=1e-7) and np.testing.assert_allclose(t[0], t[2], atol=1e-7)
    low = jax.random.normal(KEY, (2, 2, 2, 3))
    q = {"unique": jnp.zeros_like(q["unique"]), "shared": (jnp.zeros((1, 4, 4, 3)), low)}
    t = np.asarray(param.spatial(q))
    from jfv import imageops

    up = np.asarray(imageops.resize(low, 16))
    np.testing.assert_allclose(t[0], up[0], atol=1e-6)  # the first frame is component 0
    np.testing.assert_allclose(t[2], up[1], atol=1e-6)  # the last frame component 1
    np.testing.assert_allclose(t[1], (up[0] + up[1]) / 2, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Strips through the engine.


def single_render(channel, params, steps, lr):
    """A one-image render of ``channel`` of conv2 from ``params`` (Fourier, batch 1), by hand, SGD."""
    param = parameterisations.image(16, 1)
    opt = optax.sgd(lr)
    state = opt.init(params)

    @jax.jit
    def step(p, s):
        loss = lambda q: -objectives.channel("conv2", channel)(MODEL.apply(MODEL.params, param.to_image(q)))
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    for _ in range(steps):
        params, state = step(params, state)
    return np.asarray(param.to_image(params))[0]


def test_the_strips_end_frames_equal_single_channel_renders():
    """Independent frames, no alignment, no transforms: frame 0 is a render of channel a alone, the
    last frame one of channel b alone (each from that frame's initial image). SGD: Adam's
    normalisation turns the float noise of near-zero gradients (batch 3 vs 1 convolutions) into
    whole steps, which parts the two runs by ~1e-2 after 4 steps on some channels."""
    param = interpolation.param(16, frames=3, shared=False)
    pairs, steps, lr = [(1, 4), (6, 2)], 4, 20.0  # moves the frames by 0.03-0.2
    out = interpolation.render_interpolations(MODEL, "conv2", pairs, param, transforms.identity(), optax.sgd(lr),
                                              KEY, steps, batch_size=2)
    assert out.images.shape == (2, 3, 16, 16, 3) and out.history.shape == (2, steps)
    for (a, b), strip in zip(pairs, out.images):
        init = param.init(jax.random.split(jax.random.fold_in(KEY, a))[0])["unique"]
        np.testing.assert_allclose(strip[0], single_render(a, init[:, 0:1], steps, lr), atol=1e-5)
        np.testing.assert_allclose(strip[2], single_render(b, init[:, 2:3], steps, lr), atol=1e-5)
        start = param.to_image({"unique": init, "shared": ()})[0]
        assert np.abs(strip[0] - start).max() > 0.02  # it moved (the start is 0.5 +- 0.01)


def test_aligned_strips_rise_and_pairs_are_independent_of_the_batch():
    param = interpolation.param(16, frames=4)
    kwargs = dict(alignment_layers=("conv1",), alignment_weight=0.1, decay_ratio=2.0)
    tf, opt = transforms.compose(transforms.Jitter(2)), optax.adam(0.05)
    out = interpolation.render_interpolations(MODEL, "conv2", [(1, 4), (3, 0)], param, tf, opt, KEY, 6,
                                              batch_size=2, **kwargs)
    alone = interpolation.render_interpolations(MODEL, "conv2", [(3, 0)], param, tf, opt, KEY, 6, **kwargs)
    np.testing.assert_allclose(out.images[1], alone.images[0], atol=1e-5)
    assert (out.history[:, -1] > out.history[:, 0]).all()
    final = interpolation.strip_objective("conv2", 1, 4, ("conv1",), 0.1, 2.0)(
        activations(MODEL, MODEL.params, jnp.asarray(out.images[0]), jnp.asarray(out.images[0])))
    assert float(out.objective[0]) == pytest.approx(float(final), rel=1e-4)
