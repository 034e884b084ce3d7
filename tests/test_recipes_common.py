"""Helpers shared by recipes (jfv/recipes/common.py): the config's transforms and objectives, and
that recipes take them from there rather than from each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jfv import objectives, transforms
from jfv.recipes import common

REPO = Path(__file__).resolve().parents[1]


def test_make_transforms_builds_the_named_ones():
    assert repr(common.make_transforms("standard")) == repr(transforms.standard())
    x = jax.random.uniform(jax.random.key(0), (16, 16, 3))
    np.testing.assert_array_equal(common.make_transforms("none")(jax.random.key(1), x), x)
    c = ml_collections.ConfigDict(dict(maco_crops=2, image_size=16, maco_box=(0.5, 0.7), maco_noise=0.05))
    assert repr(common.make_transforms("maco", c)) == repr(transforms.maco(2, 16, (0.5, 0.7), 0.05))


@pytest.mark.parametrize("call, message", [
    (lambda: common.make_transforms("jitter"), r"unknown transforms 'jitter'; valid: standard, none, maco"),
    (lambda: common.make_transforms("maco"), r"only available in the channels recipe"),
    (lambda: common.objective_factory("pixel", "conv1", 0.0), r"valid: channel, neuron, class"),
])
def test_bad_names_list_the_valid_ones(call, message):
    with pytest.raises(common.ConfigError, match=message):
        call()


def test_objective_factory_values():
    acts = {"conv1": jnp.arange(2 * 3 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 3, 4)}
    make = common.objective_factory("channel", "conv1", 0.0)
    assert float(make(2)(acts)) == float(objectives.channel("conv1", 2)(acts)) == float(acts["conv1"][..., 2].mean())
    with_div = common.objective_factory("neuron", "conv1", 0.5)(1)
    expect = objectives.neuron("conv1", 1)(acts) + 0.5 * objectives.diversity("conv1")(acts)
    np.testing.assert_allclose(float(with_div(acts)), float(expect), rtol=1e-6)


def test_sweep_and_layer_do_not_import_the_channels_recipe():
    code = "import sys, jfv.recipes.sweep, jfv.recipes.layer; print('jfv.recipes.channels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    from jfv.recipes import channels  # the old names still work

    assert channels.make_transforms is common.make_transforms and channels.objective_factory is common.objective_factory
