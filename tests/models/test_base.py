"""``Model.static``: compiled programs key on a parameter-free copy, so they keep no parameters alive."""

from __future__ import annotations

import gc
import weakref

import jax
import numpy as np

from jfv import attribution, evaluation
from jfv.analysis import topk
from tiny_model import tiny_classifier


def test_static_is_one_parameter_free_copy_per_model():
    model = tiny_classifier()
    spec = model.static
    assert spec is model.static and spec.params is None
    assert spec.module is model.module and spec.layers == model.layers and spec.precision == model.precision
    assert tiny_classifier().static is not spec  # another model, another program key


def test_compiled_programs_keep_no_parameters_alive():
    """After module-level jitted functions ran on a model, dropping the model frees its parameters
    (a static argument stays in jax's compilation cache for the life of the process)."""
    model = tiny_classifier(seed=3)
    refs = [weakref.ref(leaf) for leaf in jax.tree.leaves(model.params)]
    images = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    states = topk.init_states(model, ["conv2"], 2)
    topk.step(model, states, images, np.arange(2), np.ones(2, bool))
    attribution.saliency(model, images, attribution.label(np.array([0, 1])))
    evaluation.confidence(model, images, np.array([0, 1]))
    evaluation.activation_profiles(model, images, ["conv1", "conv2"])
    del model, states
    gc.collect()
    assert all(r() is None for r in refs)
