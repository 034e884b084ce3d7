"""The one engine: every render path equals the one-image reference, chunks need not divide the
steps, a second call compiles nothing, octaves go through it, a NaN stops the run; one group loop
(``render_group``) whose state saves to the host and restores exactly, on one device or four."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from jfv.optvis import objectives, octaves, parameterisations, transforms
from jfv.optvis.engine import (Engine, NonFiniteError, Setup, StateMismatchError, channel_key, final_cell, from_host,
                               init_cell, step_cell, to_host)
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


# ---------------------------------------------------------------------------------------------
# One group: render_group, save_state, restore_state.


class Stop(Exception):
    """What a between hook raises to stop a group mid-way (as the layer job's stop flag does)."""


def stop_at(engine, step):
    """A between hook that keeps the padded group's host state and history at ``step``, then stops."""
    kept = {}

    def between(state, history, done):
        if done == step:
            kept.update(arrays=engine.save_state(state), history=history.copy())
            raise Stop

    return kept, between


def assert_groups_equal(a, b):
    for x, y in zip(a[:4], b[:4]):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


def test_render_group_equals_init_advance_final_of_the_padded_group():
    engine = Engine.for_channels(MODEL, goal, PARAM, TF, OPT, chunk=2)
    chans, vs = [4, 1, 6], np.zeros(3, np.float32)
    out = engine.render_group(KEY, chans, vs, 5, size=4)
    cs, vs4 = np.asarray([4, 1, 6, 6], np.int32), np.zeros(4, np.float32)
    np.testing.assert_array_equal(engine.pad(chans, vs, 4)[0], cs)
    state, hist = engine.advance_group(engine.init(KEY, cs, vs4), cs, vs4, 5)
    images, objective = engine.final(state, cs, vs4)
    np.testing.assert_array_equal(out.images, images[:3])
    np.testing.assert_array_equal(out.objective, objective[:3])
    np.testing.assert_array_equal(out.history, hist[:3])
    assert out.transparency is None and out.images.shape == (3, 1, 16, 16, 3)
    assert int(np.asarray(out.state.step)[0]) == 5 and len(out.state.step) == 4  # the padded group's state
    np.testing.assert_array_equal(engine.render_cells(chans, vs, KEY, 5).images, out.images)
    with pytest.raises(ValueError, match="cannot be padded to 2"):
        engine.pad(chans, vs, 2)


def test_a_group_saved_to_the_host_and_restored_equals_one_call():
    """Stopped at step 2 of 5 (chunk 2: the last chunk masked), saved, restored, finished: every bit
    of images, objective, history and transparency map equals the uninterrupted group's."""
    engine = Engine.for_channels(MODEL, goal, PARAM, TF, OPT, chunk=2, transparency=True)
    chans, vs = [4, 1, 6], np.zeros(3, np.float32)
    whole = engine.render_group(KEY, chans, vs, 5, size=4)
    kept, between = stop_at(engine, 2)
    with pytest.raises(Stop):
        engine.render_group(KEY, chans, vs, 5, size=4, between=between)
    assert all(isinstance(x, np.ndarray) for x in kept["arrays"].values()) and sorted(kept["arrays"])[0] == "leaf_0000"
    restored = engine.restore_state(kept["arrays"], KEY, chans, vs, 4)
    assert int(np.asarray(restored.step)[0]) == 2
    seen = []
    resumed = engine.render_group(KEY, chans, vs, 5, size=4, state=restored, history=kept["history"],
                                  progress=seen.append)
    assert seen == [3 * 2, 3 * 3]  # real cells x steps this call advanced (2 -> 4 -> 5)
    assert_groups_equal(resumed, whole)
    assert whole.transparency is not None
    other = dict(kept["arrays"])
    with pytest.raises(StateMismatchError, match="leaves"):
        engine.restore_state({k: v for k, v in other.items() if k != "leaf_0000"}, KEY, chans, vs, 4)
    with pytest.raises(StateMismatchError, match=r"leaf_\d+ is float32\[4,"):
        engine.restore_state(other, KEY, chans[:2], vs[:2], 2)  # a group of another size


def test_a_second_group_with_save_and_restore_compiles_nothing():
    engine = Engine.for_channels(MODEL, goal, PARAM, TF, OPT)

    def group(chans, key):
        vs = np.zeros(len(chans), np.float32)
        kept, between = stop_at(engine, 1)
        with pytest.raises(Stop):
            engine.render_group(key, chans, vs, 3, size=4, between=between)
        state = engine.restore_state(kept["arrays"], key, chans, vs, 4)
        return engine.render_group(key, chans, vs, 3, size=4, state=state, history=kept["history"])

    group([1, 2, 3], KEY)
    assert compiles(lambda: group([5], jax.random.key(3))) == 0  # another group, padded to the same size


RESTORE_SHARDED = textwrap.dedent(
    """
    import json, jax, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from jfv.optvis import objectives, parameterisations, transforms
    from jfv.optvis.engine import Engine
    from tiny_model import tiny_model
    assert len(jax.devices()) == 4, jax.devices()

    model, key = tiny_model(), jax.random.key(0)
    goal = lambda c: objectives.channel("conv2", c)
    mesh = Mesh(np.array(jax.devices()), ("cells",))
    tf = transforms.compose(transforms.Jitter(2), transforms.scale(1.1))

    def engine(mesh):
        return Engine.for_channels(model, goal, parameterisations.image(16), tf, optax.adam(0.05), mesh=mesh,
                                   transparency=True)

    plain, sharded = engine(None), engine(mesh)
    chans, vs = [4, 1, 6], np.zeros(3, np.float32)
    kept = {}

    def between(state, history, done):
        if done == 2:
            kept.update(arrays=plain.save_state(state), history=history.copy())
            raise StopIteration

    whole = plain.render_group(key, chans, vs, 5, size=4)
    try:
        plain.render_group(key, chans, vs, 5, size=4, between=between)
    except StopIteration:
        pass
    restored = sharded.restore_state(kept["arrays"], key, chans, vs, 4)  # saved on one device, resumed on 4
    cells = NamedSharding(mesh, P("cells"))
    on_cells = all(x.sharding.is_equivalent_to(cells, x.ndim) for x in jax.tree.leaves(restored))
    resumed = sharded.render_group(key, chans, vs, 5, size=4, state=restored, history=kept["history"])
    one_call = sharded.render_group(key, chans, vs, 5, size=4)
    print(json.dumps({
        "on_cells": on_cells,
        "images": float(np.abs(resumed.images - whole.images).max()),
        "history": float(np.abs(resumed.history - whole.history).max()),
        "map": float(np.abs(resumed.transparency - whole.transparency).max()),
        "scale": float(np.abs(whole.transparency).max()),
        "resumed_vs_one_call": float(np.abs(resumed.images - one_call.images).max()),
    }))
    """
)


def test_a_state_restored_on_four_fake_devices_equals_the_unsharded_group():
    tests = Path(__file__).resolve().parents[1]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", RESTORE_SHARDED], env=env, cwd=tests.parent, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["on_cells"], got  # every leaf sharded on the cell axis over the 4 devices, as the engine's
    assert got["images"] < 1e-5 and got["history"] < 1e-4 and got["map"] <= 1e-5 * got["scale"], got
    assert got["resumed_vs_one_call"] < 1e-5, got
