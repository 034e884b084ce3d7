"""Feature inversion, caricature and accentuation: init_from_image, the matching objectives, the
projection, and the renders on the tiny model (and one shallow VGG16 layer)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfv.optvis import inversion, objectives, parameterisations
from jfv.optvis.engine import step_cell
from jfv.optvis.regularisers import gaussian_blur
from jfv.optvis.transforms import identity, standard
from tiny_model import tiny_model

PARAMS = [
    parameterisations.image(17, 2),
    parameterisations.image(16, 1, sigmoid=False),
    parameterisations.image(16, 1, decay_power=1.5),
    parameterisations.pixel(16, 2),
    parameterisations.fourier(16),
    parameterisations.sigmoid(16),
    parameterisations.decorrelated(16),
]


def photos(n: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth random images inside (0.1, 0.9): stand-ins for photos on the tiny model."""
    x = np.random.default_rng(seed).uniform(0.1, 0.9, (n, size, size, 3)).astype(np.float32)
    return np.asarray(gaussian_blur(jnp.asarray(x), 1.5))


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


# -- init_from_image ------------------------------------------------------------------------------


@pytest.mark.parametrize("param", PARAMS, ids=repr)
def test_init_from_image_inverts_to_image(param):
    x = np.random.default_rng(1).uniform(0.01, 0.99, param.shape).astype(np.float32)
    p = param.init_from_image(x)
    assert jax.tree.map(jnp.shape, p) == jax.tree.map(jnp.shape, param.init(jax.random.key(0)))
    assert float(jnp.abs(param.to_image(p) - x).max()) < 1e-5
    jitted = jax.jit(param.init_from_image)(x)  # jit equals eager
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(p), rtol=1e-5, atol=1e-5)


def test_init_from_image_repeats_one_image_and_clamps_the_ends():
    param = parameterisations.image(8, 3)
    x = np.zeros((8, 8, 3), np.float32)
    x[:4] = 1.0
    y = np.asarray(param.to_image(param.init_from_image(x)))
    assert y.shape == (3, 8, 8, 3)
    assert np.abs(y - x).max() <= parameterisations.LOGIT_EPSILON + 1e-5


def test_init_from_image_refuses_the_wrong_size():
    with pytest.raises(ValueError, match=r"resize it to 16 x 16"):
        parameterisations.image(16).init_from_image(np.zeros((8, 8, 3)))


# -- objectives -----------------------------------------------------------------------------------


def test_feature_objectives_by_hand():
    rng = np.random.default_rng(2)
    t = rng.normal(size=(3, 3, 4)).astype(np.float32)
    a = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    acts = {"l": jnp.asarray(a)}
    tt = np.sum(t.astype(np.float64) ** 2)
    dist = np.mean([np.sum((a[b] - t) ** 2) for b in range(2)]) / tt
    np.testing.assert_allclose(float(objectives.feature_distance("l", t)(acts)), dist, rtol=1e-5)
    np.testing.assert_allclose(float(objectives.feature_match("l", t)(acts)), -dist, rtol=1e-5)
    assert abs(float(objectives.feature_match("l", t)({"l": jnp.asarray(t[None])}))) < 1e-6
    for p in (0.0, 1.0, 3.0):
        want = np.mean([np.sum(a[b] * t) / tt * max(0.1, np.sum(a[b] * t) / np.linalg.norm(a[b]) / np.sqrt(tt)) ** p
                        for b in range(2)])
        np.testing.assert_allclose(float(objectives.caricature("l", t, p)(acts)), want, rtol=1e-5)
        np.testing.assert_allclose(float(objectives.caricature("l", t, p)({"l": jnp.asarray(t[None])})), 1.0, rtol=1e-5)


def test_feature_match_vmaps_over_targets():
    rng = np.random.default_rng(3)
    ts = jnp.asarray(rng.normal(size=(4, 2, 2, 3)), jnp.float32)
    a = {"l": jnp.asarray(rng.normal(size=(1, 2, 2, 3)), jnp.float32)}
    batched = jax.vmap(lambda t: objectives.caricature("l", t, 2.0)(a))(ts)
    looped = [objectives.caricature("l", t, 2.0)(a) for t in ts]
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-6)


# -- projection -----------------------------------------------------------------------------------


@pytest.mark.parametrize("param", [parameterisations.image(16), parameterisations.pixel(16)], ids=repr)
@pytest.mark.parametrize("norm,eps", [("linf", 0.03), ("l2", 0.5)])
def test_projection_keeps_the_image_in_the_ball(param, norm, eps):
    seed = photos(1, 16)[0]
    step = inversion.project(param, seed, eps, norm)
    p = param.init_from_image(seed)
    updates = jax.tree.map(lambda x: 0.5 * jnp.ones_like(x), p)  # a step far out of the ball
    out, _ = step.update(updates, step.init(p), p)
    x = np.asarray(param.to_image(optax.apply_updates(p, out)))[0]
    d = x - seed
    size = np.abs(d).max() if norm == "linf" else np.sqrt(np.sum(d**2))
    assert size <= eps * (1 + 1e-4) + 1e-5 and size > 0.9 * eps  # on the boundary, not at the seed
    jitted, _ = jax.jit(step.update)(updates, step.init(p), p)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(out), rtol=1e-4, atol=1e-5)
    inside = jax.tree.map(lambda x: 1e-4 * jnp.ones_like(x), p)  # a small step moves the image as it was
    kept, _ = step.update(inside, step.init(p), p)  # (coefficients irfft ignores come back as zeros)
    np.testing.assert_allclose(np.asarray(param.to_image(optax.apply_updates(p, kept))),
                               np.asarray(param.to_image(optax.apply_updates(p, inside))), atol=1e-5)


# -- inversion and caricature ---------------------------------------------------------------------


def relative_error(model, layer, rendered, targets):
    a = model.apply(model.params, jnp.asarray(rendered))[layer].reshape(len(targets), -1)
    t = model.apply(model.params, jnp.asarray(targets))[layer].reshape(len(targets), -1)
    return np.asarray(jnp.linalg.norm(a - t, axis=1) / jnp.linalg.norm(t, axis=1))


def test_inversion_of_the_tiny_model_matches_activations(tiny):
    x = photos()
    param = parameterisations.image(32)
    # conv1 is a 3x3 conv with 8 channels of 3 inputs: nearly invertible; conv2 comes after a max pool.
    for layer, steps, bound in (("conv1", 200, 1e-3), ("conv2", 200, 0.1)):
        out = inversion.invert(tiny, layer, x, param, optax.adam(0.05), jax.random.key(0), steps)
        err = relative_error(tiny, layer, out.images[:, 0], x)
        assert (err < bound).all(), (layer, err)
        assert (out.history[:, -1] > out.history[:, 0]).all()
    # each photo's cell is independent of the others (vmap equals a loop) and keyed by the cell
    alone = inversion.invert(tiny, "conv2", x[1:], param, optax.adam(0.05), jax.random.key(0), 5)
    both = inversion.invert(tiny, "conv2", x, param, optax.adam(0.05), jax.random.key(0), 5, batch_size=1)
    again = inversion.invert(tiny, "conv2", x, param, optax.adam(0.05), jax.random.key(0), 5)
    np.testing.assert_allclose(both.images, again.images, atol=1e-6)  # same key, same image
    assert not np.allclose(alone.images[0], both.images[1])  # cell 0 of a run of one uses fold_in(key, 0)
    first = inversion.invert(tiny, "conv2", x[:1], param, optax.adam(0.05), jax.random.key(0), 5)
    np.testing.assert_allclose(first.images[0], both.images[0], atol=1e-6)


def test_caricature_raises_the_dot_product(tiny):
    x = photos()
    param = parameterisations.image(32)
    out = inversion.invert(tiny, "conv2", x, param, optax.adam(0.05), jax.random.key(0), 60, mode="caricature")
    a = tiny.apply(tiny.params, jnp.asarray(out.images[:, 0]))["conv2"].reshape(2, -1)
    t = tiny.apply(tiny.params, jnp.asarray(x))["conv2"].reshape(2, -1)
    ratio = np.asarray(jnp.sum(a * t, 1) / jnp.sum(t * t, 1))
    assert (ratio > 2.0).all(), ratio  # further along the photo's activations than the photo itself
    assert (out.history[:, -1] > out.history[:, 0] + 1.0).all()


def test_inversion_of_vgg16_conv1_2(vgg16, shared):
    from jfv.runtime.outputs import load_image

    x = load_image(shared / "data/images/openimages/owl.jpg", 32)[None]
    out = inversion.invert(vgg16, "conv1_2", x, parameterisations.image(32), optax.adam(0.05), jax.random.key(0), 200)
    err = relative_error(vgg16, "conv1_2", out.images[:, 0], x)
    assert err[0] < 0.15, err  # 0.10 measured


def test_transforms_move_the_photo_with_the_rendering(tiny):
    x = photos(1)
    param = parameterisations.image(32)
    # WithReference draws one jitter / scale / angle for the whole batch: equal inputs stay equal
    t = inversion.WithReference(standard(), x[0])
    out = np.asarray(t(jax.random.key(5), jnp.asarray(x)))
    assert out.shape[0] == 2 and out.shape[1] < 32 + 24 and np.allclose(out[0], out[1], atol=1e-6)
    assert repr(t).startswith("with_reference(compose(Pad(")
    # through identity transforms, the reference's activations are the fixed target: the same render
    fixed = inversion.invert(tiny, "conv2", x, param, optax.adam(0.05), jax.random.key(0), 5)
    paired = inversion.invert(tiny, "conv2", x, param, optax.adam(0.05), jax.random.key(0), 5, transforms=identity())
    np.testing.assert_allclose(paired.images, fixed.images, atol=1e-5)
    np.testing.assert_allclose(paired.history, fixed.history, rtol=1e-4, atol=1e-6)
    # under Lucid's standard transforms (pad 12, jitter, scale, rotate) the inversion still converges
    out = inversion.invert(tiny, "conv1", x, param, optax.adam(0.05), jax.random.key(0), 100, transforms=standard())
    assert relative_error(tiny, "conv1", out.images[:, 0], x)[0] < 0.2
    acc = inversion.accentuate(tiny, "conv2", [1], x, param, optax.adam(0.05), jax.random.key(0), 3,
                               transforms=standard(), norm="linf", eps=0.05)
    assert np.abs(acc.images[0, 0, 0, 0] - x[0]).max() <= 0.05 + 1e-5


@pytest.mark.parametrize("bad,match", [
    (np.zeros((32, 32, 3)), "shape"),
    (np.full((1, 32, 32, 3), 255.0), r"\[0, 1\]"),
    (np.zeros((1, 16, 16, 3)), "load them at 32 px"),
])
def test_inversion_refuses_what_is_not_an_image(tiny, bad, match):
    with pytest.raises(inversion.InversionError, match=match):
        inversion.invert(tiny, "conv1", bad, parameterisations.image(32), optax.adam(0.05), jax.random.key(0), 2)


# -- accentuation ---------------------------------------------------------------------------------


def test_accentuation_with_a_huge_penalty_keeps_the_seed(tiny):
    x = photos(1)
    # reg_layer conv1 (before the pool): pooled features leave directions free that Adam moves anyway.
    out = inversion.accentuate(tiny, "conv2", [1], x, parameterisations.image(32), optax.adam(0.05),
                               jax.random.key(0), 100, reg_layer="conv1", penalties=[1e6, 0.0])
    huge, none = out.images[0, 0, 0, 0], out.images[0, 0, 1, 0]
    assert np.abs(huge - x[0]).max() < 1e-3
    assert np.abs(none - x[0]).max() > 0.2
    a = tiny.apply(tiny.params, jnp.asarray(out.images[0, 0, :, 0]))["conv2"][..., 1].mean((1, 2))
    seed = tiny.apply(tiny.params, jnp.asarray(x))["conv2"][..., 1].mean()
    assert a[1] > seed + 0.3 and abs(float(a[0] - seed)) < 0.01  # measured: +0.48 and ~1e-4


def test_accentuation_without_penalty_is_activation_maximisation_from_the_seed(tiny):
    x = photos(2)
    param = parameterisations.image(32)
    key = jax.random.key(3)
    out = inversion.accentuate(tiny, "conv2", [1, 6], x, param, optax.adam(0.05), key, 6, penalties=[0.0])
    for i in range(2):
        for j, c in enumerate((1, 6)):
            objective = objectives.channel("conv2", c)  # the RMS scale is a constant: same direction for Adam
            scale = float(jnp.sqrt(jnp.mean(tiny.apply(tiny.params, jnp.asarray(x[i:i + 1]))["conv2"] ** 2)))
            objective = objective / scale
            optimiser = optax.adam(0.05)
            p = param.init_from_image(x[i])
            cell = i * inversion.CELL_STRIDE + c
            _, k_steps = jax.random.split(jax.random.fold_in(key, cell))
            from jfv.optvis.engine import RenderState

            state = RenderState(p, optimiser.init(p), jnp.zeros((), jnp.int32), k_steps)
            step = jax.jit(functools.partial(step_cell, tiny, objective, param, identity(), optimiser))
            for _ in range(6):
                state, _ = step(tiny.params, state)
            np.testing.assert_allclose(out.images[i, j, 0], np.asarray(param.to_image(state.params)), atol=2e-5)
    again = inversion.accentuate(tiny, "conv2", [6], x[1:], param, optax.adam(0.05), key, 6, penalties=[0.0],
                                 batch_size=1)
    np.testing.assert_allclose(again.images[0, 0], out.images[1, 1], atol=2e-5)  # same cell, same image


def test_accentuation_linf_projection_stays_within_eps(tiny):
    x = photos(1)
    out = inversion.accentuate(tiny, "conv2", [1], x, parameterisations.image(32), optax.adam(0.05),
                               jax.random.key(0), 20, penalties=[0.0], norm="linf", eps=0.04)
    d = np.abs(out.images[0, 0, 0, 0] - x[0]).max()
    assert 0.035 < d <= 0.04 + 1e-5


@pytest.mark.parametrize("kwargs,match", [
    ({"norm": "linf"}, "needs a radius eps > 0"),
    ({"norm": "l1", "eps": 0.1}, "unknown norm"),
    ({"reg_layer": "conv9"}, "conv9"),
])
def test_accentuation_bad_arguments(tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        inversion.accentuate(tiny, "conv2", [1], photos(1), parameterisations.image(32), optax.adam(0.05),
                             jax.random.key(0), 2, **kwargs)
