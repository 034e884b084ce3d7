"""Penalties, Yosinski's image steps and traceable transforms: numbers, conformance, bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfv.optvis import objectives, parameterisations, regularisers, transforms

ndimage = pytest.importorskip("scipy.ndimage")


def acts(x):
    return {objectives.INPUT: jnp.asarray(x, jnp.float32)}


def value_and_grad(objective, x):
    return jax.value_and_grad(lambda z: objective(acts(z)))(jnp.asarray(x, jnp.float32))


# ---------------------------------------------------------------------------------------------
# Penalties on hand-computed images.

X = np.array([[[[0.0], [1.0]], [[2.0], [4.0]]]], np.float32)  # (1, 2, 2, 1)


def test_l1_value_and_gradient():
    v, g = value_and_grad(objectives.l1(constant=1.5), X)  # |x - c| = 1.5, 0.5, 0.5, 2.5
    assert v == pytest.approx(5.0 / 4)
    np.testing.assert_allclose(g[..., 0], [[[-0.25, -0.25], [0.25, 0.25]]])
    v, g = value_and_grad(objectives.l1(constant=1.5, reduction="sum"), X)
    assert v == pytest.approx(5.0)
    np.testing.assert_allclose(g[..., 0], [[[-1.0, -1.0], [1.0, 1.0]]])


def test_l2_value_and_gradient():
    v, g = value_and_grad(objectives.l2(constant=1.0), X)
    assert v == pytest.approx((1 + 0 + 1 + 9) / 4)
    np.testing.assert_allclose(g[..., 0], [[[-0.5, 0.0], [0.5, 1.5]]])  # 2 (x - c) / 4
    v, g = value_and_grad(objectives.l2(constant=1.0, reduction="sum"), X)
    assert v == pytest.approx(11.0)
    np.testing.assert_allclose(g[..., 0], [[[-2.0, 0.0], [2.0, 6.0]]])
    v, g = value_and_grad(objectives.l2(constant=1.0, reduction="norm"), X)  # Lucid's L2
    assert v == pytest.approx(math.sqrt(11.0 + 1e-6))
    np.testing.assert_allclose(g[..., 0], np.array([[[-1, 0], [1, 3]]]) / math.sqrt(11.0), rtol=1e-5)


def test_total_variation_beta2_value_and_gradient():
    # One position with both neighbours: dy = 2 - 0, dx = 1 - 0.
    v, g = value_and_grad(objectives.total_variation(beta=2.0), X)
    assert v == pytest.approx(5.0, rel=1e-6)
    np.testing.assert_allclose(g[..., 0], [[[-6.0, 2.0], [4.0, 0.0]]], rtol=1e-6)


def test_total_variation_beta1_and_sum():
    v, g = value_and_grad(objectives.total_variation(beta=1.0), X)
    assert v == pytest.approx(math.sqrt(5.0), rel=1e-6)
    r = math.sqrt(5.0)
    np.testing.assert_allclose(g[..., 0], [[[-3 / r, 1 / r], [2 / r, 0.0]]], rtol=1e-5)
    x = np.random.default_rng(0).uniform(size=(2, 6, 5, 3)).astype(np.float32)
    dy = x[:, 1:, :-1] - x[:, :-1, :-1]
    dx = x[:, :-1, 1:] - x[:, :-1, :-1]
    expect = np.sum((dy**2 + dx**2 + 1e-8) ** 0.75)
    v, _ = value_and_grad(objectives.total_variation(beta=1.5, reduction="sum"), x)
    assert v == pytest.approx(expect, rel=1e-5)
    v, _ = value_and_grad(objectives.total_variation(beta=1.5), x)
    assert v == pytest.approx(expect / dy.size, rel=1e-5)


def test_blur_penalty_value_and_gradient():
    x = np.random.default_rng(1).uniform(size=(1, 12, 12, 3)).astype(np.float32)
    blurred = ndimage.gaussian_filter(x, (0, 1.0, 1.0, 0), mode="reflect", truncate=4.0)
    v, g = value_and_grad(objectives.blur_penalty(1.0), x)
    assert v == pytest.approx(np.mean((x - blurred) ** 2), rel=1e-4)
    np.testing.assert_allclose(g, 2 * (x - blurred) / x.size, atol=1e-7)


def test_penalties_subtract_and_print():
    o = objectives.channel("conv1", 3) - 0.005 * objectives.total_variation()
    assert "total_variation(beta=1, mean)" in o.description
    x = np.random.default_rng(2).uniform(size=(1, 8, 8, 3)).astype(np.float32)
    a = {"conv1": jnp.ones((1, 4, 4, 8)), objectives.INPUT: jnp.asarray(x)}
    seed_style = objectives.channel("conv1", 3) + (-0.005) * objectives.total_variation()
    assert float(o(a)) == pytest.approx(float(seed_style(a)))  # w = -lambda


@pytest.mark.parametrize("bad", [
    lambda: objectives.l2(reduction="max"),
    lambda: objectives.total_variation(beta=0.0),
    lambda: objectives.blur_penalty(-1.0),
])
def test_penalty_bad_input(bad):
    with pytest.raises(ValueError, match="must be"):
        bad()


# ---------------------------------------------------------------------------------------------
# Gaussian blur.


def test_gaussian_kernel_known_values():
    e = math.exp(-0.5)
    np.testing.assert_allclose(regularisers.gaussian_kernel(1.0, 1), [e / (1 + 2 * e), 1 / (1 + 2 * e), e / (1 + 2 * e)], rtol=1e-6)
    np.testing.assert_allclose(regularisers.gaussian_kernel(0.0, 2), [0, 0, 1, 0, 0])
    assert regularisers.gaussian_radius(1.0) == 4 and regularisers.gaussian_radius(0.5) == 2


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = np.random.default_rng(3).normal(size=(2, 20, 17, 3)).astype(np.float32)
    expect = ndimage.gaussian_filter(x, (0, sigma, sigma, 0), mode="reflect", truncate=4.0)
    np.testing.assert_allclose(regularisers.gaussian_blur(jnp.asarray(x), sigma), expect, atol=2e-6)


def test_gaussian_blur_of_delta_is_outer_kernel():
    x = np.zeros((1, 15, 15, 1), np.float32)
    x[0, 7, 7, 0] = 1.0
    k = np.asarray(regularisers.gaussian_kernel(1.0, 4))
    out = np.asarray(regularisers.gaussian_blur(jnp.asarray(x), 1.0))[0, 3:12, 3:12, 0]
    np.testing.assert_allclose(out, np.outer(k, k), atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Image-space steps against numpy.

RNG = np.random.default_rng(4)
P0 = RNG.normal(size=(1, 10, 10, 3)).astype(np.float32)
U0 = (0.1 * RNG.normal(size=(1, 10, 10, 3))).astype(np.float32)
G0 = RNG.normal(size=(1, 10, 10, 3)).astype(np.float32)


def apply_step(step, p=P0, u=U0, g=None, state=None):
    state = step.init(jnp.asarray(p)) if state is None else state
    kw = {} if g is None else {"grad": jnp.asarray(g)}
    upd, state = step.update(jnp.asarray(u), state, jnp.asarray(p), **kw)
    return np.asarray(p + upd), state


def test_decay_matches_formula():
    new, _ = apply_step(regularisers.decay(0.3))
    np.testing.assert_allclose(new, 0.7 * (P0 + U0), rtol=1e-6)


def test_blur_step_fires_every_k_steps():
    step = regularisers.blur_step(1.0, every=3)
    p, state = P0, None
    for t in range(7):
        new, state = apply_step(step, p, U0, state=state)
        x = p + U0
        expect = ndimage.gaussian_filter(x, (0, 1, 1, 0), mode="reflect", truncate=4.0) if t % 3 == 0 else x
        np.testing.assert_allclose(new, expect, atol=1e-5, err_msg=f"step {t}")
        p = new
    assert int(state.count) == 7


def numpy_zero_under(x, score, pct):
    cut = np.percentile(score.reshape(score.shape[0], -1), pct, axis=-1)
    return x * (score >= cut[:, None, None])[..., None]


@pytest.mark.parametrize("pct", [0.0, 20.0, 50.0, 90.0])
def test_clip_norm_matches_numpy_and_fraction(pct):
    new, _ = apply_step(regularisers.clip_norm(pct))
    x = P0 + U0
    np.testing.assert_allclose(new, numpy_zero_under(x, np.linalg.norm(x, axis=-1), pct), rtol=1e-6)
    zeroed = np.all(new == 0, axis=-1).mean()
    assert zeroed == pytest.approx(pct / 100)  # 100 distinct norms: exactly pct% below the percentile


@pytest.mark.parametrize("pct", [10.0, 90.0])
def test_clip_contribution_matches_numpy_and_fraction(pct):
    new, _ = apply_step(regularisers.clip_contribution(pct), g=G0)
    x = P0 + U0
    score = np.abs(np.sum(x * G0, axis=-1))
    np.testing.assert_allclose(new, numpy_zero_under(x, score, pct), rtol=1e-6)
    assert np.all(new == 0, axis=-1).mean() == pytest.approx(pct / 100)
    flipped, _ = apply_step(regularisers.clip_contribution(pct), g=-G0)  # sign of g is irrelevant
    np.testing.assert_array_equal(flipped, new)


def test_chain_image_steps_is_yosinskis_loop():
    """SGD + decay + blur + norm clip + contribution clip over 3 steps equals the numpy loop."""
    param = parameterisations.pixel(10)
    lr = 0.5
    opt = regularisers.chain_image_steps(param, optax.sgd(lr), *regularisers.yosinski_steps(
        regularisers.YosinskiSettings(0.1, 1.0, 2, 30.0, 40.0)))
    grads = [RNG.normal(size=P0.shape).astype(np.float32) for _ in range(3)]
    p, state = jnp.asarray(P0), opt.init(jnp.asarray(P0))
    x = P0.copy()
    for t, g in enumerate(grads):
        upd, state = opt.update(jnp.asarray(g), state, p)
        p = optax.apply_updates(p, upd)
        x = x - lr * g  # the gradient is of minus the objective
        x = 0.9 * x
        if t % 2 == 0:
            x = ndimage.gaussian_filter(x, (0, 1, 1, 0), mode="reflect", truncate=4.0)
        x = numpy_zero_under(x, np.linalg.norm(x, axis=-1), 30.0)
        x = numpy_zero_under(x, np.abs(np.sum(x * g, axis=-1)), 40.0)
        np.testing.assert_allclose(np.asarray(p), x, atol=1e-5, err_msg=f"step {t}")


def test_presets_are_table_1():
    assert set(regularisers.YOSINSKI_PRESETS) == {"blur_norm", "decay_norm", "decay_blur", "blur_contribution"}
    rows = np.stack([s.as_array() for s in regularisers.YOSINSKI_PRESETS.values()])
    np.testing.assert_allclose(rows, [[0, 0.5, 4, 50, 0], [0.3, 0, 0, 20, 0], [1e-4, 1.0, 4, 0, 0], [0, 0.5, 4, 0, 90]])
    assert repr(regularisers.yosinski("decay_norm")[0]) == "decay(theta=0.3)"


# ---------------------------------------------------------------------------------------------
# Conformance: every step and traceable transform.

STEPS = {
    "decay": lambda h: regularisers.decay(h),
    "blur": lambda h: regularisers.blur_step(h, 2, radius=4),
    "clip_norm": lambda h: regularisers.clip_norm(h),
    "clip_contribution": lambda h: regularisers.clip_contribution(h),
}
HYPER = {"decay": (0.1, 0.5), "blur": (0.5, 1.0), "clip_norm": (20.0, 60.0), "clip_contribution": (20.0, 60.0)}


def run_step(name, h, p, u, g):
    step = STEPS[name](h)
    upd, _ = step.update(u, step.init(p), p, grad=g)
    return upd


@pytest.mark.parametrize("name", list(STEPS))
def test_step_conformance(name):
    p, u, g = jnp.asarray(P0), jnp.asarray(U0), jnp.asarray(G0)
    h = HYPER[name][0]
    eager = run_step(name, h, p, u, g)
    assert eager.shape == p.shape
    jitted = jax.jit(lambda hh: run_step(name, hh, p, u, g))(h)  # hyperparameter traced
    np.testing.assert_allclose(jitted, eager, atol=1e-6)
    np.testing.assert_array_equal(run_step(name, h, p, u, g), eager)  # deterministic
    grad = jax.grad(lambda uu: jnp.sum(run_step(name, h, p, uu, g) ** 2))(u)
    assert np.all(np.isfinite(grad))
    batched = jax.vmap(lambda hh: run_step(name, hh, p, u, g))(jnp.asarray(HYPER[name]))
    for i, hh in enumerate(HYPER[name]):
        np.testing.assert_allclose(batched[i], run_step(name, hh, p, u, g), atol=1e-6)


PENALTIES = {
    "l1": lambda: objectives.l1(),
    "l2": lambda: objectives.l2(reduction="norm"),
    "tv": lambda: objectives.total_variation(beta=1.5),
    "blur": lambda: objectives.blur_penalty(1.0),
}


@pytest.mark.parametrize("name", list(PENALTIES))
def test_penalty_conformance(name):
    o = PENALTIES[name]()
    xs = jnp.asarray(np.random.default_rng(5).uniform(size=(3, 1, 12, 12, 3)), jnp.float32)
    f = lambda x: o(acts(x))  # noqa: E731
    np.testing.assert_allclose(jax.jit(f)(xs[0]), f(xs[0]), rtol=1e-6)
    assert np.all(np.isfinite(jax.grad(f)(xs[0])))
    np.testing.assert_allclose(jax.vmap(f)(xs), [f(x) for x in xs], rtol=1e-5)
    w = jnp.asarray([0.0, 0.1, 1.0])
    np.testing.assert_allclose(jax.vmap(lambda wi: (wi * o)(acts(xs[0])))(w), np.asarray(w) * float(f(xs[0])), rtol=1e-5)


TRANSFORMS = {
    "scale": lambda h: transforms.scale(h),
    "rotate": lambda h: transforms.rotate(h),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_uniform_transform_conformance(name):
    x = jnp.asarray(np.random.default_rng(6).uniform(size=(1, 16, 16, 3)), jnp.float32)
    h = 1.3 if name == "scale" else 45.0
    k = jax.random.key(0)
    t = TRANSFORMS[name]
    eager = t(h)(k, x)
    assert eager.shape == x.shape
    np.testing.assert_allclose(jax.jit(lambda hh: t(hh)(k, x))(h), eager, atol=1e-5)
    np.testing.assert_array_equal(t(h)(k, x), eager)
    assert not np.allclose(t(h)(jax.random.key(1), x), eager)
    assert np.all(np.isfinite(jax.grad(lambda z: jnp.sum(t(h)(k, z) ** 2))(x)))
    hs = jnp.asarray([h, 1.0 if name == "scale" else 0.0])
    batched = jax.vmap(lambda hh: t(hh)(k, x))(hs)
    np.testing.assert_allclose(batched[0], eager, atol=1e-5)
    np.testing.assert_allclose(batched[1], x, atol=1e-5)  # scale 1 / rotate 0 is the identity


def test_uniform_scale_with_one_value_is_random_scale():
    x = jnp.asarray(np.random.default_rng(7).uniform(size=(1, 16, 16, 3)), jnp.float32)
    k = jax.random.key(3)
    np.testing.assert_allclose(transforms.UniformScale(1.2, 1.2)(k, x), transforms.RandomScale((1.2,))(k, x), atol=1e-6)
    np.testing.assert_allclose(transforms.UniformRotate(30, 30)(k, x), transforms.RandomRotate((30,))(k, x), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Bad input: each names the valid range or combination.


@pytest.mark.parametrize("bad, message", [
    (lambda: regularisers.blur_step(-1.0), r"blur radius sigma must be >= 0"),
    (lambda: regularisers.gaussian_blur(jnp.zeros((1, 8, 8, 3)), -0.5), r">= 0"),
    (lambda: regularisers.clip_norm(101.0), r"in \[0, 100\]"),
    (lambda: regularisers.clip_contribution(-5.0), r"in \[0, 100\]"),
    (lambda: regularisers.decay(1.5), r"in \[0, 1\]"),
    (lambda: transforms.UniformScale(1.4, 1.0), r"range inverts: need 0 < low <= high"),
    (lambda: transforms.UniformRotate(30, -30), r"range inverts"),
    (lambda: transforms.scale(0.8), r">= 1"),
    (lambda: regularisers.yosinski("row5"), r"valid: blur_norm"),
])
def test_bad_input_names_valid_range(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


@pytest.mark.parametrize("param", [
    parameterisations.image(16),
    parameterisations.fourier(16),
    parameterisations.sigmoid(16),
    parameterisations.decorrelated(16),
])
def test_image_steps_refuse_non_pixel_params(param):
    with pytest.raises(regularisers.ImageStepError, match=r"use parameterisations.pixel\(size\)"):
        regularisers.chain_image_steps(param, optax.adam(0.1), regularisers.decay(0.1))


def test_image_step_in_plain_chain_refuses_fourier_coefficients():
    opt = optax.chain(optax.sgd(0.1), regularisers.blur_step(1.0))
    p = jnp.zeros((2, 1, 3, 16, 9))  # the coefficients of parameterisations.fourier(16)
    with pytest.raises(regularisers.ImageStepError, match="pixel parameters of shape"):
        opt.update(p, opt.init(p), p)


def test_clip_contribution_without_gradient_says_how():
    opt = optax.chain(optax.adam(0.1), regularisers.clip_contribution(50.0))
    p = jnp.asarray(P0)
    with pytest.raises(regularisers.ImageStepError, match="chain_image_steps"):
        opt.update(p, opt.init(p), p)


def test_old_name_blur_warns_and_builds_the_same_step():
    """``blur`` is now ``blur_step`` (one meaning per name): the old name warns and is the same step."""
    new = regularisers.blur_step(1.5, every=2)
    with pytest.warns(DeprecationWarning, match="blur_step"):
        old = regularisers.blur(1.5, every=2)
    assert repr(old) == repr(new)  # the printed settings are unchanged
    np.testing.assert_array_equal(apply_step(old)[0], apply_step(new)[0])
    assert not np.allclose(apply_step(new)[0], P0 + U0)  # step 0 blurs
