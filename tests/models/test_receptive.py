"""Receptive fields: hand-computed sizes, strides and offsets; the declared geometry agrees with every
architecture's real output sizes; perturbing pixels outside a unit's box leaves it exactly unchanged
while each edge of the box matters; bad input fails with the fix."""

from __future__ import annotations

import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv import models
from jfv.models import receptive as R
from jfv.models import _layer_table, cifar_resnet, classifiers, resnet, vgg
from jfv.models.base import Model


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


def shapes_only(name, module, size=224) -> Model:
    """A Model with parameter shapes only (enough for geometry and output_shapes)."""
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    params = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    return Model(name, module, params, _layer_table(module, params, size), size)


# Hand computation, layer by layer: RF' = RF + (k - 1) * J, J' = J * s, offset' = offset - p * J.
# VGG16: 3x3/1/p1 convs and 2x2/2 pools. conv1_2 5, pool1 6 (J 2), conv2_2 14, pool2 16 (J 4),
# conv3_3 40, pool3 44 (J 8), conv4_3 92, pool4 100 (J 16), conv5_3 196, pool5 212 (J 32).
# (212 is pool5's size; conv5_3's is 196, at stride 16.)
# AlexNet (torchvision): conv1 11/4/p2 (11, J 4, -2), pool1 3/2 (19, J 8), conv2 5/1/p2 (51, -18),
# pool2 (67, J 16), conv3, conv4, conv5 3/1/p1 (99, 131, 163; -34, -50, -66), pool5 (195, J 32).
# ResNet-18: conv1 7/2/p3 (7, J 2, -3), maxpool 3/2/p1 (11, J 4, -5), each basic block +2*2*J,
# the first of stages 2-4 strided: layer2.0 = 43 + 2*4 + 2*8 = 67 (J 8); the 1x1 stride-2
# shortcut reads a subset, so the union is the main branch. layer4 = 435 at J 32.
# CIFAR ResNet-20: 3x3 stem (3), 3 blocks of +4J per stage: layer1 15, layer2 37 (J 2), layer3 81 (J 4).
HAND = {
    "vgg16": {"conv1_1": (3, 1, -1), "pool1": (6, 2, -2), "conv3_3": (40, 4, -18), "conv4_3": (92, 8, -42),
              "pool4": (100, 16, -42), "conv5_3": (196, 16, -90), "relu5_3": (196, 16, -90), "pool5": (212, 32, -90)},
    "alexnet": {"conv1": (11, 4, -2), "pool1": (19, 8, -2), "conv2": (51, 8, -18), "pool2": (67, 16, -18),
                "conv3": (99, 16, -34), "conv5": (163, 16, -66), "pool5": (195, 32, -66)},
    "resnet18": {"conv1": (7, 2, -3), "maxpool": (11, 4, -5), "layer1.0": (27, 4, -13), "layer1": (43, 4, -21),
                 "layer2.0": (67, 8, -33), "layer3.1": (211, 16, -105), "layer4": (435, 32, -217)},
    "cifar_resnet20": {"conv1": (3, 1, -1), "layer1": (15, 1, -7), "layer2.0": (21, 2, -10),
                       "layer2": (37, 2, -18), "layer3": (81, 4, -40)},
}
MODULES = {
    "vgg16": vgg.VGG16Features, "alexnet": vgg.AlexNetFeatures, "resnet18": lambda: resnet.resnet(18),
    "resnet50": lambda: resnet.resnet(50), "cifar_resnet20": lambda: cifar_resnet.cifar_resnet(20),
    "vgg16_classifier": classifiers.VGG16, "alexnet_classifier": classifiers.AlexNet,
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_receptive_fields_equal_hand_computation(name):
    module = MODULES[name]()
    for layer, want in HAND[name].items():
        assert R.receptive_field(module, layer) == R.ReceptiveField(*want), layer


@pytest.mark.parametrize("name", sorted(MODULES))
def test_declared_geometry_matches_the_module_at_several_sizes(name):
    model = shapes_only(name, MODULES[name]())
    assert list(R.geometry(model)) == list(model.layers)  # every named output, in network order
    for size in (224, 97, 64) if "cifar" not in name else (32, 33, 17):
        R.check(model, size)


def test_check_catches_a_wrong_declaration():
    real = shapes_only("vgg", vgg.VGG16Features(blocks=((4,), (4,))), 32)
    wrong = dict(R.geometry(real))
    wrong["pool2"] = R.Layer("relu2_1", (R.Window(3, 2),))  # the module pools 2x2

    class Declared:  # a module whose geometry() is wrong about pool2
        geometry = staticmethod(lambda: wrong)

    fake = types.SimpleNamespace(name="fake", module=Declared(), output_shapes=real.output_shapes)
    with pytest.raises(R.GeometryError, match="gives 'pool2' size 7 at image size 32, the module 8x8"):
        R.check(fake, 32)


def test_boxes_unclipped_step_by_the_stride_and_clipped_cut_to_the_image():
    b = R.boxes(vgg.VGG16Features(), "conv5_3", 224)
    assert b.rows.shape == (14, 2)
    np.testing.assert_array_equal(b.rows[:, 0], 16 * np.arange(14) - 90)
    np.testing.assert_array_equal(b.rows[:, 1] - b.rows[:, 0], 196)
    np.testing.assert_array_equal(b.clipped_rows, np.clip(b.rows, 0, 224))
    assert R.box(vgg.VGG16Features(), "conv5_3", (3, 4), 224) == R.Box(0, 0, 154, 170)
    assert R.box(vgg.VGG16Features(), "conv5_3", (3, 4), 224, clip=False) == R.Box(-42, -26, 154, 170)
    # Clipping layer by layer is tighter than clipping at the end: AlexNet at 60 px, pool1 drops
    # conv1's last row, so image rows 57..59 reach no unit of conv2.
    b = R.boxes(vgg.AlexNetFeatures(), "conv2", 60)
    assert tuple(b.rows[4]) == (14, 65) and tuple(b.clipped_rows[4]) == (14, 57)


def test_adaptive_pool_bins():
    module = classifiers.VGG16()
    same = R.boxes(module, "avgpool", 224)  # pool5 is 7x7: the adaptive pool is the identity
    np.testing.assert_array_equal(same.rows, R.boxes(module, "pool5", 224).rows)
    b = R.boxes(module, "avgpool", 256)  # pool5 8x8 -> 7 bins [floor(8i/7), ceil(8(i+1)/7))
    pool5 = R.boxes(module, "pool5", 256).rows
    for i in range(7):
        lo, hi = (8 * i) // 7, -(-8 * (i + 1) // 7) - 1
        assert tuple(b.rows[i]) == (pool5[lo, 0], pool5[hi, 1])
    with pytest.raises(R.GeometryError, match="adaptive pool.*boxes"):
        R.receptive_field(module, "avgpool")


def _perturbation(model, layer, size, position, seed=0):
    """(unchanged outside?, channels changed by noise on each edge row/column of the box)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(1, size, size, 3)).astype(np.float32)
    noise = rng.uniform(size=x.shape).astype(np.float32)
    b = R.box(model, layer, position, size)
    f = jax.jit(lambda im: model(im)[layer][0, position[0], position[1], :])
    before = np.asarray(f(x))
    outside = np.ones((size, size), bool)
    outside[b.top : b.bottom, b.left : b.right] = False
    y = x.copy()
    y[0][outside] = noise[0][outside]
    unchanged = np.array_equal(np.asarray(f(y)), before)
    edges = {"top": (slice(b.top, b.top + 1), slice(b.left, b.right)),
             "bottom": (slice(b.bottom - 1, b.bottom), slice(b.left, b.right)),
             "left": (slice(b.top, b.bottom), slice(b.left, b.left + 1)),
             "right": (slice(b.top, b.bottom), slice(b.right - 1, b.right))}
    changed = {}
    for edge, where in edges.items():
        y = x.copy()
        y[0][where] = noise[0][where]
        changed[edge] = int((np.asarray(f(y)) != before).sum())
    return b, unchanged, changed


@pytest.mark.parametrize("layer,size,position", [("conv5_3", 240, (7, 7)), ("pool5", 256, (4, 3)), ("conv3_3", 64, (0, 15))])
def test_perturbing_outside_the_box_leaves_vgg16_unchanged(vgg16, layer, size, position):
    b, unchanged, changed = _perturbation(vgg16, layer, size, position)
    assert unchanged, b
    assert all(v > 0 for v in changed.values()), changed  # the box is tight on every side


@pytest.mark.parametrize("layer,size,position", [("conv5", 224, (6, 6)), ("conv2", 60, (4, 4))])
def test_perturbing_outside_the_box_leaves_alexnet_unchanged(alexnet, layer, size, position):
    b, unchanged, changed = _perturbation(alexnet, layer, size, position)
    assert unchanged and all(v > 0 for v in changed.values()), (b, changed)
    if layer == "conv2":
        assert b == R.Box(14, 14, 57, 57)  # tighter than the unclipped box cut to the image


@pytest.mark.parametrize("name,layer,size,position", [
    ("resnet18", "layer2.1", 128, (8, 8)),
    ("resnet18", "layer3.0", 96, (0, 5)),
    ("cifar_resnet20", "layer2.0", 32, (8, 8)),
    ("cifar_resnet20", "layer3.0", 32, (7, 0)),
])
def test_perturbing_outside_the_box_leaves_resnets_unchanged(name, layer, size, position):
    model = models.load(name, pretrained=False, seed=1)
    b, unchanged, changed = _perturbation(model, layer, size, position)
    assert unchanged and all(v > 0 for v in changed.values()), (b, changed)


def test_errors_name_the_fix():
    undeclared = types.SimpleNamespace(name="tiny", module=object())  # a module without geometry()
    with pytest.raises(R.GeometryError, match="model 'tiny' .* declares no geometry: give its module a geometry"):
        R.receptive_field(undeclared, "conv1")
    with pytest.raises(R.GeometryError, match="no spatial extent"):
        R.boxes(resnet.resnet(18), "avgpool", 224)
    with pytest.raises(R.GeometryError, match="off 'conv5_3''s 14x14 map.*0 <= i < 14"):
        R.box(vgg.VGG16Features(), "conv5_3", (14, 0), 224)
    with pytest.raises(R.GeometryError, match="valid layers"):
        R.receptive_field(vgg.VGG16Features(), "conv6_1")
    with pytest.raises(R.GeometryError, match="no positions at image size 16"):
        R.boxes(vgg.VGG16Features(), "pool5", 16)


def test_padded_crop_fills_outside_the_image():
    image = np.arange(4 * 5 * 1, dtype=np.float32).reshape(4, 5, 1)
    got = R.padded_crop(image, R.Box(-1, 3, 2, 7), fill=-1)
    want = np.array([[-1, -1, -1, -1], [3, 4, -1, -1], [8, 9, -1, -1]], np.float32)[..., None]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(R.padded_crop(image, R.Box(1, 1, 3, 3)), image[1:3, 1:3])
