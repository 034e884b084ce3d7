"""Presets: the lucid preset is Lucid's Adam, schedules are optax's, a staged run is one run whose
transforms change (stages with equal transforms equal one stage; the carry is exact), snapshots equal
shorter runs, and runs too short for a preset's schedule are refused naming the minimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfv import imageops
from jfv.optvis import objectives as O
from jfv.optvis import parameterisations as pz
from jfv.optvis import presets
from jfv.optvis import transforms as T
from jfv.optvis.presets import Preset, Resize, render_staged
from jfv.optvis.render import render_channels
from tiny_model import tiny_model

PARAM = pz.image(16)
TF = T.compose(T.Pad(2), T.Jitter(2))


def objective_fn(c):
    return O.channel("conv2", c)


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


def _updates(opt, grads, steps=5):
    params = jnp.ones(4)
    state = opt.init(params)
    out = []
    for g in grads[:steps]:
        u, state = opt.update(g, state, params)
        params = optax.apply_updates(params, u)
        out.append(np.asarray(params))
    return np.stack(out)


def test_lucid_preset_is_adam_at_0_05():
    grads = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    got = _updates(presets.LUCID.optimiser_for(512), grads)
    want = _updates(optax.adam(0.05), grads)
    np.testing.assert_array_equal(got, want)
    assert presets.LUCID.steps == 512 and presets.get("lucid") is presets.LUCID


def test_cosine_schedule_values():
    p = Preset("p", 100, "adam", 0.2, "cosine", warmup=0.1, end=0.05)
    lr = p.learning_rates(100)
    assert float(lr(0)) == 0.0
    assert float(lr(5)) == pytest.approx(0.1)  # linear warm-up over 10 steps
    assert float(lr(10)) == pytest.approx(0.2)
    # cosine from step 10 to 100, down to 0.05 * 0.2
    t = (55 - 10) / 90
    assert float(lr(55)) == pytest.approx(0.01 + (0.2 - 0.01) * 0.5 * (1 + np.cos(np.pi * t)), rel=1e-5)
    assert float(lr(100)) == pytest.approx(0.01, rel=1e-5)


@pytest.mark.parametrize("name, fn", [("nadam", optax.nadam), ("lion", optax.lion), ("sgd", optax.sgd)])
def test_optimiser_names(name, fn):
    grads = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    got = _updates(Preset("p", 10, name, 0.03).optimiser_for(10), grads)
    np.testing.assert_array_equal(got, _updates(fn(0.03), grads))


@pytest.mark.parametrize("kwargs, match", [
    ({"optimiser": "adagrad"}, "unknown optimiser 'adagrad': use one of adam, nadam, lion, sgd"),
    ({"schedule": "step"}, "unknown schedule 'step'"),
    ({"warmup": 1.5}, r"warmup is a fraction in \[0, 1\)"),
    ({"start_size": 0.0}, r"start_size is a fraction of the side in \(0, 1\]"),
    ({"learning_rate": -1.0}, "learning_rate must be > 0"),
])
def test_bad_presets(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Preset("p", 64, **kwargs)


def test_steps_that_do_not_fit_the_schedule():
    p = Preset("p", 64, warmup=0.05, schedule="cosine", start_size=0.5, start_steps=0.5)
    assert presets.minimum_steps(p) == 11  # round(0.05 * 10) is 0: Python rounds half to even
    with pytest.raises(ValueError, match="which 8 steps cannot hold: use at least 11 steps"):
        p.optimiser_for(8)
    p.optimiser_for(11)
    with pytest.raises(ValueError, match="unknown preset 'quick': use one of lucid"):
        presets.get("quick")
    assert presets.minimum_steps(presets.DRAFT) == 4  # one-cycle: int(0.3 * steps) warm-up steps >= 1
    assert [float(presets.DRAFT.learning_rates(4)(i)) for i in (1, 4)] == pytest.approx([0.6, 0.0], abs=1e-5)


def test_stages_of_a_progressive_start():
    p = Preset("p", 8, start_size=0.5, start_steps=0.5)
    stages = p.stages(TF, 8, 16)
    assert [e for _, e in stages] == [4, 8]
    assert T.output_size(stages[0][0], 16) == 9  # (16 + 4 - 2) * 0.5, rounded
    assert T.output_size(stages[1][0], 16) == 18
    assert Preset("q", 8).stages(TF, 8, 16) == [(TF, 8)]


def test_resize_transform():
    x = jax.random.uniform(jax.random.key(0), (2, 12, 12, 3))
    np.testing.assert_array_equal(Resize(6)(jax.random.key(1), x), imageops.resize(x, 6))
    with pytest.raises(ValueError, match="whole number >= 1"):
        Resize(0)


def test_one_stage_equals_render_channels(tiny):
    opt = optax.adam(0.05)
    want = render_channels(tiny, objective_fn, PARAM, TF, opt, [1, 5, 2], jax.random.key(3), 6, batch_size=2)
    got, info = render_staged(tiny, objective_fn, PARAM, [(TF, 6)], opt, [1, 5, 2], jax.random.key(3), batch_size=2)
    np.testing.assert_array_equal(got.images, want.images)
    np.testing.assert_array_equal(got.objective, want.objective)
    np.testing.assert_array_equal(got.history, want.history)
    assert len(info["step_seconds"]) == 1 and info["step_seconds"][0] > 0


def test_equal_stages_equal_one_stage_and_snapshots_equal_shorter_runs(tiny):
    opt = optax.adam(0.05)
    one, _ = render_staged(tiny, objective_fn, PARAM, [(TF, 6)], opt, [1, 5], jax.random.key(3))
    two, info = render_staged(tiny, objective_fn, PARAM, [(TF, 2), (TF, 6)], opt, [1, 5], jax.random.key(3),
                              snapshots=(2, 4))
    np.testing.assert_array_equal(two.images, one.images)
    np.testing.assert_array_equal(two.history, one.history)
    short = render_channels(tiny, objective_fn, PARAM, TF, opt, [1, 5], jax.random.key(3), 4)
    images, objective = info["snapshots"][4]
    np.testing.assert_array_equal(images, short.images)
    np.testing.assert_array_equal(objective, short.objective)


def test_a_progressive_stage_changes_only_what_the_model_sees(tiny):
    """Stage 1 at half size differs from a plain run; its first steps equal a run whose transforms
    resize (the same program); the second stage continues from that state."""
    opt = optax.adam(0.05)
    half = T.compose(TF, Resize(9))
    staged, _ = render_staged(tiny, objective_fn, PARAM, [(half, 3), (TF, 5)], opt, [4], jax.random.key(0))
    first = render_channels(tiny, objective_fn, PARAM, half, opt, [4], jax.random.key(0), 3)
    np.testing.assert_array_equal(staged.history[:, :3], first.history)
    plain = render_channels(tiny, objective_fn, PARAM, TF, opt, [4], jax.random.key(0), 5)
    assert not np.array_equal(staged.images, plain.images)
    assert np.isfinite(staged.history).all()


def test_bad_stage_ends(tiny):
    with pytest.raises(ValueError, match="stage end steps must increase"):
        render_staged(tiny, objective_fn, PARAM, [(TF, 3), (TF, 3)], optax.adam(0.05), [1], jax.random.key(0))
