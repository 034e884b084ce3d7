"""Octave scale-up: stage sizes, the image carried between stages, bad input."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jfv.optvis import objectives, octaves, parameterisations, transforms
from jfv.optvis.render import render_channels
from tiny_model import tiny_model

MODEL = tiny_model()
KEY = jax.random.key(0)


def objective_fn(c):
    return objectives.channel("conv2", c)


def test_sizes():
    assert octaves.Octaves(3, 1.2, 4).sizes(64) == (64, 77, 92)
    assert octaves.Octaves(4, 1.0, 4).sizes(32) == (32, 32, 32, 32)
    assert octaves.Octaves(1, 1.5, 4).sizes(32) == (32,)
    assert octaves.Octaves(3, 1.5, 4).total_steps == 12


def test_stages_produce_sizes_and_carry_the_image():
    """With a zero learning rate the result is the initial image resized through every stage."""
    param = parameterisations.pixel(16, sd=0.2)
    schedule = octaves.Octaves(3, 1.25, 2)
    out, sizes = octaves.render_octaves(MODEL, objective_fn, param, transforms.identity(), optax.sgd(0.0),
                                        [1, 4], KEY, schedule)
    assert sizes == (16, 20, 25)
    assert out.images.shape == (2, 1, 25, 25, 3) and out.history.shape == (2, 6)
    for i, c in enumerate([1, 4]):
        k_init, _ = jax.random.split(jax.random.fold_in(KEY, c))
        p = param.init(k_init)
        for s in sizes[1:]:
            p = octaves.resize(p, s)
        expect = parameterisations.pixel(25).to_image(p)
        np.testing.assert_allclose(out.images[i], expect, atol=1e-6)


def test_one_octave_is_render_channels_and_more_octaves_raise_the_objective():
    param = parameterisations.pixel(24)
    opt = optax.adam(0.05)
    one, _ = octaves.render_octaves(MODEL, objective_fn, param, transforms.identity(), opt, [2], KEY,
                                    octaves.Octaves(1, 1.2, 3))
    plain = render_channels(MODEL, objective_fn, param, transforms.identity(), opt, [2], KEY, 3)
    np.testing.assert_allclose(one.images, plain.images, atol=1e-6)
    three, _ = octaves.render_octaves(MODEL, objective_fn, param, transforms.identity(), opt, [2], KEY,
                                      octaves.Octaves(3, 1.0, 3))
    np.testing.assert_allclose(three.history[:, :3], plain.history, rtol=1e-5)
    assert three.objective[0] > one.objective[0]


@pytest.mark.parametrize("bad, message", [
    (lambda: octaves.Octaves(3, 0.9, 4), r"scale factor must be >= 1"),
    (lambda: octaves.Octaves(0, 1.2, 4), r"octaves must be a whole number >= 1"),
    (lambda: octaves.Octaves(2, 1.2, 0), r"steps per octave"),
    (lambda: octaves.render_octaves(MODEL, objective_fn, parameterisations.image(16), transforms.identity(),
                                    optax.adam(0.1), [0], KEY, octaves.Octaves(2, 1.2, 1)), r"fft=False"),
])
def test_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


# ---------------------------------------------------------------------------------------------
# Transparency (MACO's map) through octave stages.


def test_one_stage_transparency_equals_the_engines_map():
    param = parameterisations.pixel(16, sd=0.2)
    opt = optax.adam(0.05)
    one, _ = octaves.render_octaves(MODEL, objective_fn, param, transforms.Jitter(2), opt, [1, 4], KEY,
                                    octaves.Octaves(1, 1.5, 3), transparency=True)
    plain = render_channels(MODEL, objective_fn, param, transforms.Jitter(2), opt, [1, 4], KEY, 3, transparency=True)
    assert one.transparency.shape == plain.transparency.shape == (2, 1, 16, 16, 3)
    assert one.transparency.min() >= 0 and one.transparency.max() > 0
    np.testing.assert_allclose(one.transparency, plain.transparency, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(one.images, plain.images, atol=1e-6)


def test_two_stage_transparency_equals_a_hand_built_loop():
    """Stage 0 at 16 px, the map and pixels resized to 20 px, stage 1 adds its |d objective / d image|."""
    from jfv.optvis.engine import init_cell, step_cell

    param, opt, tf = parameterisations.pixel(16, sd=0.2), optax.adam(0.05), transforms.Jitter(2)
    schedule = octaves.Octaves(2, 1.25, 3)
    engines: dict = {}
    out, sizes = octaves.render_octaves(MODEL, objective_fn, param, tf, opt, [1, 4], KEY, schedule,
                                        transparency=True, engines=engines)
    assert sizes == (16, 20) and out.transparency.shape == (2, 1, 20, 20, 3)
    assert set(engines) == {(16, "transparency"), (20, "transparency")}  # kept apart from plain engines
    for i, c in enumerate([1, 4]):
        obj = objective_fn(c)
        state = init_cell(param, opt, jax.random.fold_in(KEY, c), transparency=True)
        for _ in range(3):
            state, _ = step_cell(MODEL, obj, param, tf, opt, MODEL.params, state)
        big = parameterisations.pixel(20, sd=0.2)
        state = octaves.carry(opt, KEY, 1, octaves.resize(state.params, 20), c,
                              octaves.resize(state.transparency, 20))
        stage0 = np.asarray(state.transparency)
        for _ in range(3):
            state, _ = step_cell(MODEL, obj, big, tf, opt, MODEL.params, state)
        np.testing.assert_allclose(out.transparency[i], state.transparency, rtol=1e-4, atol=1e-8)
        np.testing.assert_allclose(out.images[i], big.to_image(state.params), atol=1e-5)
        assert (np.asarray(state.transparency) > stage0).mean() > 0.5  # stage 1 added to the carried map
    plain, _ = octaves.render_octaves(MODEL, objective_fn, param, tf, opt, [1, 4], KEY, schedule)
    assert plain.transparency is None
    np.testing.assert_allclose(plain.images, out.images, atol=1e-6)  # the map changes no image


SHARDED = """
import json, jax, numpy as np, optax
from jax.sharding import Mesh
from jfv import objectives, octaves, parameterisations, transforms
from tiny_model import tiny_model
assert len(jax.devices()) == 4, jax.devices()
model, key = tiny_model(), jax.random.key(0)
args = (model, lambda c: objectives.channel("conv2", c), parameterisations.pixel(16, sd=0.2), transforms.identity(),
        optax.adam(0.05), [0, 1, 2, 3, 5], key, octaves.Octaves(2, 1.25, 2))
plain, _ = octaves.render_octaves(*args, transparency=True)
sharded, _ = octaves.render_octaves(*args, transparency=True, batch_size=4,
                                    mesh=Mesh(np.array(jax.devices()), ("channels",)))
print(json.dumps({"images": float(np.abs(plain.images - sharded.images).max()),
                  "map": float(np.abs(plain.transparency - sharded.transparency).max()),
                  "scale": float(np.abs(plain.transparency).max())}))
"""


def test_transparency_through_octaves_sharded_over_four_fake_devices_equals_unsharded():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", SHARDED], env=env, cwd=tests.parent, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    diffs = json.loads(res.stdout.strip().splitlines()[-1])
    assert diffs["images"] < 1e-5 and diffs["map"] <= 1e-5 * diffs["scale"] and diffs["scale"] > 0, diffs
