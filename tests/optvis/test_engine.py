"""The one engine: every render path equals the one-image reference, chunks need not divide the
steps, a second call compiles nothing, octaves go through it, a NaN stops the run."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jfv.optvis import objectives, octaves, parameterisations, transforms
from jfv.optvis.engine import (Engine, NonFiniteError, Setup, channel_key, final_cell, from_host, init_cell, step_cell,
                        to_host)
from jfv.optvis.render import render, render_channels, render_sweep
from compile_count import compiles
from tiny_model import tiny_model

MODEL = tiny_model()
KEY = jax.random.key(0)
PARAM = parameterisations.image(16)
TF = transforms.compose(transforms.Jitter(2), transforms.scale(1.1))
OPT = optax.adam(0.05)


def goal(c):
    return objectives.channel("conv2", c)


def tv_make(c, v):
    return Setup(goal(c) + v * objectives.total_variation(), OPT)


def test_render_channels_and_sweep_equal_render_of_each_cell():
    chans, values = [3, 6, 1], np.asarray([-0.5, 0.0], np.float32)
    many = render_channels(MODEL, goal, PARAM, TF, OPT, chans, KEY, 5, batch_size=2)
    sweep = render_sweep(MODEL, tv_make, PARAM, TF, chans, values, KEY, 5, batch_size=4)
    for i, c in enumerate(chans):
        one = render(MODEL, goal(c), PARAM, TF, OPT, channel_key(KEY, c), 5)
        np.testing.assert_allclose(many.images[i], one.images, atol=1e-5)
        np.testing.assert_allclose(many.history[i], one.history, rtol=1e-4, atol=1e-5)
        for j, v in enumerate(values):
            cell = render(MODEL, tv_make(c, v).objective, PARAM, TF, OPT, channel_key(KEY, c), 5)
            np.testing.assert_allclose(sweep.images[i, j], cell.images, atol=1e-5)
            np.testing.assert_allclose(sweep.objective[i, j], cell.objective, rtol=1e-4, atol=1e-5)
    assert isinstance(many.images, np.ndarray) and isinstance(sweep.history, np.ndarray)


@pytest.mark.parametrize("chunk", [3, 5])  # 7 steps: 3+3+1 (2 masked) and 5+2 (3 masked)
def test_a_chunk_that_does_not_divide_the_steps_compiles_once_and_equals_chunk_1(chunk):
    one = Engine.for_channels(MODEL, goal, PARAM, TF, OPT, chunk=1).render([2, 5], KEY, 7)
    engine = Engine.for_channels(MODEL, goal, PARAM, TF, OPT, chunk=chunk)
    out = engine.render([2, 5], KEY, 7)
    assert engine._advance._cache_size() == 1
    np.testing.assert_allclose(out.images, one.images, atol=1e-5)
    np.testing.assert_allclose(out.history, one.history, rtol=1e-4, atol=1e-5)
    assert out.history.shape == (2, 7) and np.isfinite(out.history).all()


def test_no_recompilation_with_new_channels_or_values():
    engine = Engine(MODEL, tv_make, PARAM, TF)
    engine.render_cells([1, 2], [-0.1, 0.0], KEY, 2)
    assert compiles(lambda: engine.render_cells([5, 7], [0.3, -1.0], jax.random.key(9), 2)) == 0


def test_a_group_resumed_from_its_state_equals_an_uninterrupted_one():
    engine = Engine.for_channels(MODEL, goal, PARAM, TF, OPT)
    cs, vs = np.asarray([4, 1], np.int32), np.zeros(2, np.float32)
    full, full_hist = engine.advance_group(engine.init(KEY, cs, vs), cs, vs, 6)
    half, hist = engine.advance_group(engine.init(KEY, cs, vs), cs, vs, 3)
    host = to_host(half)  # as a checkpoint holds it
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(host))
    resumed, resumed_hist = engine.advance_group(from_host(host), cs, vs, 6,
                                                 history=np.concatenate([hist[:, :3], np.full((2, 3), np.nan)], 1))
    np.testing.assert_array_equal(engine.final(resumed, cs, vs)[0], engine.final(full, cs, vs)[0])
    np.testing.assert_array_equal(resumed_hist, full_hist)


def test_between_sees_finished_chunks_and_progress_counts_real_cells():
    seen = []
    Engine.for_channels(MODEL, goal, PARAM, TF, OPT).render(
        [1, 2, 3], KEY, 2, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 6), (4, 6), (5, 6), (6, 6)]


def test_octaves_through_the_engine_equal_a_plain_loop():
    """Stage i+1 starts from stage i's resized params, fresh optimiser, keys fold_in(fold_in(key, c), i)."""
    param = parameterisations.pixel(12)
    schedule = octaves.Octaves(3, 1.25, 2)
    out, sizes = octaves.render_octaves(MODEL, goal, param, transforms.identity(), OPT, [1, 4, 6], KEY, schedule,
                                        batch_size=2)
    assert sizes == (12, 15, 19)
    for i, c in enumerate([1, 4, 6]):
        state, hist = init_cell(param, OPT, channel_key(KEY, c)), []
        for stage, s in enumerate(sizes):
            p = parameterisations.pixel(s)
            if stage:
                state = octaves.carry(OPT, KEY, stage, octaves.resize(state.params, s), c)
            for _ in range(schedule.steps):
                state, v = step_cell(MODEL, goal(c), p, transforms.identity(), OPT, MODEL.params, state)
                hist.append(float(v))
        images, value = final_cell(MODEL, goal(c), p, MODEL.params, state)
        np.testing.assert_allclose(out.images[i], images, atol=1e-5)
        np.testing.assert_allclose(out.history[i], hist, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out.objective[i], value, rtol=1e-4, atol=1e-5)


def test_octave_engines_held_by_the_caller_are_reused():
    param, schedule, engines = parameterisations.pixel(12), octaves.Octaves(2, 1.25, 1), {}
    octaves.render_octaves(MODEL, goal, param, transforms.identity(), OPT, [1], KEY, schedule, engines=engines)
    assert sorted(engines) == [12, 15]
    assert compiles(lambda: octaves.render_octaves(MODEL, goal, param, transforms.identity(), OPT, [3], KEY,
                                                   schedule, engines=engines)) == 0


def test_a_nan_learning_rate_stops_with_the_step_and_the_fix():
    with pytest.raises(NonFiniteError, match=r"non-finite at step \d+ for channel\(s\) \[2\].*learning_rate"):
        render_channels(MODEL, goal, PARAM, TF, optax.adam(float("nan")), [2], KEY, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        Engine.for_channels(MODEL, goal, PARAM, TF, OPT, chunk=0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        Engine.for_channels(MODEL, goal, PARAM, TF, OPT).render([1], KEY, 0)
    with pytest.raises(ValueError, match="at least one channel"):
        Engine.for_channels(MODEL, goal, PARAM, TF, OPT).render([], KEY, 1)
    with pytest.raises(ValueError, match="Valid layers: conv1, conv2"):
        Engine.for_channels(MODEL, lambda c: objectives.channel("conv9", c), PARAM, TF, OPT).render([0], KEY, 1)


def test_a_pending_ctrl_c_stops_the_loop_after_the_chunk_in_flight(monkeypatch):
    from jfv.runtime import errors

    engine = Engine.for_channels(MODEL, goal, PARAM, TF, OPT, chunk=2)
    cs, vs = np.asarray([4, 1], np.int32), np.zeros(2, np.float32)
    seen = []
    monkeypatch.setattr(errors, "_interrupt", __import__("threading").Event())
    errors._interrupt.set()  # a Ctrl-C whose KeyboardInterrupt library code swallowed
    with pytest.raises(KeyboardInterrupt):
        engine.advance_group(engine.init(KEY, cs, vs), cs, vs, 6, between=lambda s, h, done: seen.append(done))
    assert seen == [2]  # one chunk finished (and its checkpoint hook ran), then the stop
