"""The render engine: render_channels equals a loop of render, chunking and batching do not change
results, sharding over 4 fake CPU devices equals one device, and a second call does not recompile."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest

from jfv.optvis import objectives as O
from jfv.optvis import parameterisations as pz
from jfv.optvis import transforms as T
from compile_count import compiles
from jfv.optvis.engine import Engine
from jfv.optvis.render import channel_key, render, render_channels

LAYER = "conv3_1"


def objective_fn(c):
    return O.channel(LAYER, c)


PARAM = pz.image(32)
TRANSFORMS = T.standard()
OPTIMISER = optax.adam(0.05)


@pytest.fixture(scope="module")
def sweep(vgg16):
    return render_channels(vgg16, objective_fn, PARAM, TRANSFORMS, OPTIMISER, [7, 3, 11], jax.random.key(0), steps=3, batch_size=2)


def test_shapes_and_ranges(sweep):
    assert sweep.images.shape == (3, 1, 32, 32, 3)
    assert sweep.objective.shape == (3,) and sweep.history.shape == (3, 3)
    assert 0.0 <= sweep.images.min() and sweep.images.max() <= 1.0


def test_render_channels_equals_a_loop_of_render(vgg16, sweep):
    for i, c in enumerate([7, 3, 11]):
        one = render(vgg16, O.channel(LAYER, c), PARAM, TRANSFORMS, OPTIMISER, channel_key(jax.random.key(0), c), steps=3)
        np.testing.assert_allclose(sweep.images[i], one.images, atol=2e-4)
        np.testing.assert_allclose(sweep.history[i], one.history, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(sweep.objective[i], one.objective, rtol=1e-3, atol=1e-3)


def test_a_channel_is_the_same_alone_or_in_a_sweep(vgg16, sweep):
    alone = render_channels(vgg16, objective_fn, PARAM, TRANSFORMS, OPTIMISER, [11], jax.random.key(0), steps=3)
    np.testing.assert_allclose(alone.images[0], sweep.images[2], atol=2e-4)


def test_chunking_does_not_change_the_result(vgg16):
    args = (vgg16, objective_fn, PARAM, TRANSFORMS, OPTIMISER, [5], jax.random.key(1))
    a = render_channels(*args, steps=6, chunk=1)
    b = render_channels(*args, steps=6, chunk=4)  # a scan of 4, then 2 steps and 2 masked ones
    np.testing.assert_allclose(a.images, b.images, atol=2e-4)
    np.testing.assert_allclose(a.history, b.history, rtol=1e-3, atol=1e-3)


def test_same_key_same_image_different_key_different_image(vgg16):
    run = lambda k: render(vgg16, O.channel(LAYER, 5), PARAM, TRANSFORMS, OPTIMISER, jax.random.key(k), steps=2)
    a, b, c = run(4), run(4), run(5)
    np.testing.assert_array_equal(a.images, b.images)
    assert np.abs(np.asarray(a.images) - np.asarray(c.images)).max() > 1e-3


def test_second_call_does_not_recompile(vgg16):
    engine = Engine.for_channels(vgg16, objective_fn, PARAM, TRANSFORMS, OPTIMISER)
    engine.render([1, 2], jax.random.key(0), steps=2)
    assert compiles(lambda: engine.render([5, 9], jax.random.key(3), steps=2)) == 0


def test_progress_reports_channel_steps(vgg16):
    seen = []
    render_channels(vgg16, objective_fn, PARAM, TRANSFORMS, OPTIMISER, [1, 2, 3], jax.random.key(0), steps=2,
                    batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 6), (4, 6), (5, 6), (6, 6)]


def test_unknown_layer_is_refused_before_compiling(vgg16):
    from jfv.models import UnknownLayerError

    with pytest.raises(UnknownLayerError, match="conv3_1"):
        render_channels(vgg16, lambda c: O.channel("conv9", c), PARAM, TRANSFORMS, OPTIMISER, [0], jax.random.key(0), 1)


SHARDED = textwrap.dedent(
    """
    import json, sys
    import jax, optax, numpy as np
    from jax.sharding import Mesh
    from jfv import models, objectives as O, parameterisations as pz, transforms as T
    from jfv.optvis.render import render_channels, render_sweep
    assert len(jax.devices()) == 4, jax.devices()
    model = models.load("vgg16")
    fn = lambda c: O.channel("conv3_1", c)
    args = (model, fn, pz.image(32), T.standard(), optax.adam(0.05), [0, 5, 9, 2, 7, 4], jax.random.key(0))
    mesh = Mesh(np.array(jax.devices()), ("channels",))
    plain = render_channels(*args, steps=2)
    sharded = render_channels(*args, steps=2, mesh=mesh, batch_size=4)
    make = lambda c, v: (O.channel("conv3_1", c) + v * O.total_variation(), optax.adam(0.05))
    sweep_args = (model, make, pz.image(32), T.standard(), [5, 9], [-0.1, -0.01, 0.0], jax.random.key(0))
    sweep_plain = render_sweep(*sweep_args, 2)
    sweep_sharded = render_sweep(*sweep_args, 2, mesh=mesh, batch_size=4)
    from jfv import octaves
    oct_args = (model, fn, pz.pixel(24), T.identity(), optax.adam(0.05), [5, 9, 2], jax.random.key(0),
                octaves.Octaves(2, 1.25, 1))
    oct_plain, _ = octaves.render_octaves(*oct_args)
    oct_sharded, _ = octaves.render_octaves(*oct_args, mesh=mesh, batch_size=4)
    print(json.dumps({"max_diff": float(np.abs(plain.images - sharded.images).max()),
                      "octave_diff": float(np.abs(oct_plain.images - oct_sharded.images).max()),
                      "obj_diff": float(np.abs(plain.objective - sharded.objective).max()),
                      "sweep_diff": float(np.abs(sweep_plain.images - sweep_sharded.images).max())}))
    """
)


def test_sharded_over_four_fake_devices_equals_unsharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = str(Path(__file__).resolve().parents[2])
    res = subprocess.run([sys.executable, "-c", SHARDED], env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    diffs = json.loads(res.stdout.strip().splitlines()[-1])
    assert diffs["max_diff"] < 2e-4 and diffs["obj_diff"] < 1e-2 and diffs["sweep_diff"] < 2e-4, diffs
    assert diffs["octave_diff"] < 2e-4, diffs
