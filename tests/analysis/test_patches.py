"""Patches of top-k hits: crops are the receptive-field boxes (fill outside the image), and a hit's
deconvnet projection equals the switches implementation on that image, zero outside its box."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv import attribution as A
from jfv.analysis import datasets as D
from jfv import models
from jfv.analysis import patches as P, topk as T
from jfv.models import receptive as R
from jfv.models import _layer_table, classifiers
from jfv.models.base import Model


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


@pytest.fixture(scope="module")
def cifar64(shared):
    source = D.cifar10("test", per_class=2, archive=shared / D.CIFAR10_ARCHIVE)
    return source, list(D.batches(source, 64, 20))


def test_gather_flattens_channel_major_and_drops_empty_slots():
    state = T.TopK(values=jnp.array([[3.0, 1.0], [2.0, -jnp.inf]]), ids=jnp.array([[5, 9], [4, -1]], jnp.int32),
                   positions=jnp.array([[[0, 1], [2, 2]], [[1, 0], [-1, -1]]], jnp.int32))
    hits = P.gather(state)
    np.testing.assert_array_equal(hits.channels, [0, 0, 1])
    np.testing.assert_array_equal(hits.ranks, [0, 1, 0])
    np.testing.assert_array_equal(hits.ids, [5, 9, 4])
    np.testing.assert_array_equal(hits.positions, [[0, 1], [2, 2], [1, 0]])
    np.testing.assert_array_equal(P.gather(state, [1]).ids, [4])


def test_crops_are_the_receptive_field_boxes(vgg16, cifar64):
    source, batches = cifar64
    state = T.run(vgg16, ["conv4_3"], batches, k=3, reductions=("max",))["conv4_3"]["max"]
    hits = P.gather(state, [0, 100, 200])
    images = D.load(source, hits.ids, 64)
    stack = np.stack([images[i] for i in hits.ids])
    boxes = P.boxes(vgg16, "conv4_3", hits.positions, 64)
    crops = P.crop(stack, boxes)
    assert crops.shape == (9, 92, 92, 3)  # conv4_3's receptive field, 92 px, for every hit
    for n, (i, j) in enumerate(hits.positions):
        b = R.box(vgg16, "conv4_3", (i, j), 64, clip=False)
        assert tuple(boxes[n]) == b
        np.testing.assert_array_equal(crops[n], R.padded_crop(stack[n], b, P.DEFAULT_FILL))
        inside = R.box(vgg16, "conv4_3", (i, j), 64)  # the image part of the crop
        np.testing.assert_array_equal(crops[n][inside.top - b.top : inside.bottom - b.top, inside.left - b.left : inside.right - b.left],
                                      stack[n][inside.top : inside.bottom, inside.left : inside.right])
    clipped = P.crop(stack, P.boxes(vgg16, "conv4_3", hits.positions, 64, clip=True))
    assert all(c.shape[0] <= 64 and c.shape[1] <= 64 for c in clipped)
    assert P.fit(clipped, 32).shape == (9, 32, 32, 3)
    sheet = P.sheet(crops[:3], P.crop(stack[:3] * 0, boxes[:3], fill=0))
    assert sheet.shape[0] == 92 and sheet.min() >= 0 and sheet.max() <= 1


@pytest.fixture(scope="module")
def states(cifar64, vgg16, alexnet):
    """One top-1 pass per model over the 20 images (both VGG16 layers in the same pass)."""
    _, batches = cifar64
    return {"vgg16": T.run(vgg16, ["relu4_3", "pool4"], batches, k=1, reductions=("max",)),
            "alexnet": T.run(alexnet, ["relu5"], batches, k=1, reductions=("max",))}


@pytest.mark.parametrize("name,layer,channels", [("vgg16", "relu4_3", [3, 77]), ("vgg16", "pool4", [200]),
                                                 ("alexnet", "relu5", [50])])
def test_projection_equals_the_switches_implementation(name, layer, channels, request, cifar64, states):
    model = request.getfixturevalue(name)
    source, _ = cifar64
    hits = P.gather(states[name][layer]["max"], channels)  # each deconvnet_switches target below compiles once
    images = D.load(source, hits.ids, 64)
    stack = np.stack([images[i] for i in hits.ids])
    proj, values = P.project(model, stack, layer, hits.channels, hits.positions, batch_size=4)
    np.testing.assert_allclose(values, hits.values, rtol=1e-5)
    clipped = P.boxes(model, layer, hits.positions, 64, clip=True)
    for n in range(len(hits.ids)):
        c, (i, j) = int(hits.channels[n]), hits.positions[n]
        ref, _ = A.deconvnet_switches(model, stack[n : n + 1], A.neuron(layer, c, int(i), int(j)))
        ref = np.asarray(ref[0]) * values[n]  # the seed is the activation's value (Zeiler & Fergus)
        scale = float(np.abs(ref).max())
        assert scale > 0
        np.testing.assert_allclose(proj[n], ref, atol=1e-5 * scale)
        top, left, bottom, right = clipped[n]
        outside = np.ones(proj.shape[1:3], bool)
        outside[top:bottom, left:right] = False
        assert not proj[n][outside].any()  # exactly zero outside the receptive field


def test_layers_without_patches_fail_with_the_fix(vgg16):
    resnet = models.load("cifar_resnet20", pretrained=False)
    with pytest.raises(P.PatchError, match="'avgpool' of cifar_resnet20 has no spatial extent.*pick a convolution or pool layer"):
        P.boxes(resnet, "avgpool", np.zeros((1, 2), int), 32)
    with pytest.raises(P.PatchError, match="no positions at image size 16: use a larger image_size"):
        P.check_layer(vgg16, "pool5", 16)
    with pytest.raises(P.PatchError, match="positions off 'conv5_3''s 2x2 map"):
        P.boxes(vgg16, "conv5_3", np.array([[2, 0]]), 32)
    with pytest.raises(NotImplementedError, match="gradient formulation"):
        P.project(resnet, np.zeros((1, 32, 32, 3)), "layer2", np.zeros(1, int), np.zeros((1, 2), int))
    with pytest.raises(P.PatchError, match="one of each per hit"):
        P.project(vgg16, np.zeros((2, 32, 32, 3)), "conv5_3", np.zeros(1, int), np.zeros((2, 2), int))


def test_adaptive_pool_boxes_vary_in_size():
    module = classifiers.VGG16()
    x = jax.ShapeDtypeStruct((1, 288, 288, 3), jnp.float32)
    params = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    model = Model("vgg16_classifier", module, params, _layer_table(module, params, 288), 288)
    assert P.check_layer(model, "avgpool", 288) is None  # no single receptive field
    # pool5 is 9x9 at 288 px; 7 adaptive bins [floor(9i/7), ceil(9(i+1)/7)) span 2 or 3 positions
    boxes = P.boxes(model, "avgpool", np.array([[0, 0], [3, 3]]), 288)
    crops = P.crop(np.zeros((2, 288, 288, 3), np.float32), boxes)
    assert isinstance(crops, list) and crops[0].shape != crops[1].shape
