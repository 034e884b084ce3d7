"""Objectives: values on hand-made activations, arithmetic, traced channels, ascent raises them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfv.optvis import objectives as O
from jfv.optvis import parameterisations as pz
from jfv.optvis import transforms as T
from jfv.optvis.render import render

ACTS = {
    "conv": jnp.arange(2 * 3 * 4 * 5, dtype=jnp.float32).reshape(2, 3, 4, 5) / 10.0,
    "logits": jnp.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]),
    O.INPUT: jnp.full((2, 4, 4, 3), 0.75),
}


def test_values_match_hand_computation():
    a = np.asarray(ACTS["conv"])
    assert float(O.channel("conv", 2)(ACTS)) == pytest.approx(a[..., 2].mean())
    assert float(O.neuron("conv", 1)(ACTS)) == pytest.approx(a[:, 1, 2, 1].mean())
    assert float(O.neuron("conv", 1, x=0, y=2)(ACTS)) == pytest.approx(a[:, 2, 0, 1].mean())
    assert float(O.layer("conv")(ACTS)) == pytest.approx((a**2).mean(), rel=1e-6)
    v = np.arange(5.0)
    assert float(O.direction("conv", v)(ACTS)) == pytest.approx((a @ v).mean(), rel=1e-6)
    assert float(O.class_logit(1)(ACTS)) == pytest.approx(3.0)
    assert float(O.l2()(ACTS)) == pytest.approx(0.0625)
    assert float(O.l1()(ACTS)) == pytest.approx(0.25)


def test_total_variation_hand_computed():
    x = np.zeros((1, 3, 3, 1), np.float32)
    x[0, 1, 1, 0] = 1.0
    acts = {O.INPUT: jnp.asarray(x)}
    # Forward differences on the top-left 2x2 grid: (0,0): 0; (0,1): dy=1 -> 1; (1,0): dx=1 -> 1;
    # (1,1): dy=-1, dx=-1 -> sqrt(2) with beta=1, 2 with beta=2.
    assert float(O.total_variation(1.0)(acts)) == pytest.approx((2 + np.sqrt(2)) / 4, rel=1e-4)
    assert float(O.total_variation(2.0)(acts)) == pytest.approx(4 / 4, rel=1e-4)


def test_arithmetic_and_descriptions():
    o = O.channel("conv", 2) - 0.5 * O.l2() + 2 * O.class_logit(0) / 4
    expected = np.asarray(ACTS["conv"])[..., 2].mean() - 0.5 * 0.0625 + 2 * 2.0 / 4
    assert float(o(ACTS)) == pytest.approx(expected, rel=1e-6)
    assert float((-O.channel("conv", 2))(ACTS)) == pytest.approx(-np.asarray(ACTS["conv"])[..., 2].mean())
    assert float((1.0 - O.l1())(ACTS)) == pytest.approx(0.75)
    assert o.layers == ("conv", "logits")
    assert repr(O.channel("conv4_3", 7) - 0.05 * O.total_variation()) == (
        "Objective(channel(conv4_3, 7) - 0.05 * total_variation(beta=1, mean))"
    )


def test_traced_channel_vmaps():
    f = jax.jit(jax.vmap(lambda c: O.channel("conv", c)(ACTS)))
    np.testing.assert_allclose(f(jnp.arange(5)), np.asarray(ACTS["conv"]).mean(axis=(0, 1, 2)), rtol=1e-6)


def test_diversity_prefers_different_images():
    same = {"conv": jnp.ones((3, 4, 4, 2))}
    t = np.zeros((3, 4, 4, 2), np.float32)
    t[0, ..., 0] = 1
    t[1, ..., 1] = 1
    t[2, :2, ..., 0] = 1
    different = {"conv": jnp.asarray(t)}
    assert float(O.gram_diversity("conv")(same)) == pytest.approx(-1.0, abs=1e-5)
    assert float(O.gram_diversity("conv")(different)) > -0.5
    with pytest.raises(ValueError, match="at least 2"):
        O.gram_diversity("conv")({"conv": jnp.ones((1, 2, 2, 2))})


@pytest.mark.parametrize(
    "objective",
    [O.channel("conv3_1", 5), O.neuron("conv3_1", 5), O.layer("conv2_2"), O.direction("conv3_1", np.ones(256))],
    ids=["channel", "neuron", "deepdream", "direction"],
)
def test_ascent_raises_the_objective(vgg16, objective):
    out = render(vgg16, objective, pz.image(32), T.identity(), optax.adam(0.05), jax.random.key(0), steps=6)
    assert out.history.shape == (6,)
    assert float(out.history[-1]) > float(out.history[0])
    assert float(out.objective) > float(out.history[0])


def test_old_name_diversity_warns_and_is_gram_diversity():
    acts = {"conv": jax.random.normal(jax.random.key(1), (3, 4, 4, 5))}
    with pytest.warns(DeprecationWarning, match="gram_diversity"):
        old = O.diversity("conv")
    new = O.gram_diversity("conv")
    assert old.description == new.description == "diversity(conv)"
    assert float(old(acts)) == float(new(acts))
