"""``jfv.attribute``: one call from a model, a photo and a target to attribution maps. Each map equals
the method's own on the same images and target, every target and photo form reads, the picture is a
labelled grid, ``save`` writes the attribute recipe's files byte for byte, and bad input is refused in
one line each."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np
import pytest
from PIL import Image

import jfv
from jfv import attribution as A
from jfv.attribution import pictures
from jfv.runtime.outputs import LABEL_HEIGHT, LABEL_PAD as TILE_PAD, LABEL_TILE_MIN as TILE_MIN
from jfv.attribution.attribute import (
    METHODS, Attribution, MethodError, PhotoError, default_grad_cam_layer, load_photos,
    parse_methods,
)
from jfv.models.base import ChannelOutOfRangeError, UnknownLayerError
from jfv.models.labels import UnknownClassError
from jfv.models.wrap import MissingFieldError
from jfv.runtime.outputs import ImageReadError, WorkdirError, load_image
from tiny_model import tiny_classifier, tiny_model

REPO = Path(__file__).resolve().parents[2]
SIZE = 16
LABELS = ("airplane", "automobile", "bird", "cat, kitty")


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-attr")


@pytest.fixture(scope="module")
def model():
    """The conformance classifier (GAP + dense head, a relu field) with four class names: 'cat' is 3."""
    return dataclasses.replace(tiny_classifier(), labels=LABELS)


@pytest.fixture(scope="module")
def photos():
    """Two 16 px RGB photos in [0, 1]."""
    return np.random.default_rng(0).random((2, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def every(model, photos):
    """Every method on both photos, for class 'cat'."""
    return jfv.attribute(model, photos, "cat", method="all")


def test_is_public_and_loads_lazily():
    assert {"attribute", "Attribution"} <= set(jfv.__all__)
    assert jfv.attribute is jfv.attribution.attribute.attribute and jfv.Attribution is Attribution
    code = ("import sys, jfv; before = 'jfv.attribution' in sys.modules; f = jfv.attribute; "
            "print(before, 'jfv.attribution.attribute' in sys.modules, callable(f))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]


def test_each_map_equals_the_methods_own(model, photos, every):
    images = jax.numpy.asarray(photos)
    target = A.label(3, softmax=True)  # a class: its probability, as the recipe's target=class
    assert every.methods == METHODS and every.target == target.description == "logits[3], sum, softmax"
    assert every.settings["grad_cam_layer"] == "relu2" and every.settings["cam_layer"] == "relu2"
    window = SIZE // 7
    own = {
        "saliency": A.saliency(model, images, target),
        "gradient_x_input": A.gradient_x_input(model, images, target),
        "smoothgrad": A.smoothgrad(model, images, target, jax.random.key(0), 8, 0.15),
        "grad_cam": A.grad_cam(model, images, target, "relu2"),
        "cam": A.cam(model, images, np.array([[3], [3]]), "relu2")[:, 0],
        "occlusion": A.occlusion(model, images, target, window, window // 2, 0.5, 16).heatmap,
    }
    for method, m in own.items():
        np.testing.assert_array_equal(every.raw[method], np.asarray(m), err_msg=method)
        resized = np.stack([pictures.resize_map(x, (SIZE, SIZE)) for x in np.asarray(m)])
        np.testing.assert_array_equal(every.maps[method], resized, err_msg=method)
        assert every.maps[method].shape == (2, SIZE, SIZE)
        overlay = pictures.overlay(photos[1], resized[1], 0.5)
        np.testing.assert_array_equal(every.pictures[method][1], overlay, err_msg=method)
    for method, f in (("guided_backprop", A.guided_backprop), ("deconvnet", A.deconvnet)):
        g = np.asarray(f(model, images, target))
        np.testing.assert_array_equal(every.raw[method], g)
        np.testing.assert_array_equal(every.maps[method], np.abs(g).max(-1))
        np.testing.assert_array_equal(every.pictures[method][0], pictures.signed_image(g[0], 2.0))
    assert every.raw["grad_cam"].shape == (2, SIZE // 2, SIZE // 2)  # at its layer's size


@pytest.mark.parametrize("target, description, classes", [
    ("cat", "logits[3], sum, softmax", ("cat, kitty",) * 2),
    ("Kitty", "logits[3], sum, softmax", ("cat, kitty",) * 2),
    (3, "logits[3], sum, softmax", ("cat, kitty",) * 2),
    ("3", "logits[3], sum, softmax", ("cat, kitty",) * 2),
    ("logits:cat", "logits[3], sum, softmax", ("cat, kitty",) * 2),
    ("logits:1", "logits[1], sum, softmax", ("automobile",) * 2),
    ("conv2:5", "conv2[5], sum", ("conv2:5",) * 2),
])
def test_target_forms(model, photos, target, description, classes):
    a = jfv.attribute(model, photos, target, method="saliency")
    assert (a.target, a.classes) == (description, classes)


def test_no_target_is_each_photos_top_class_and_a_layer_its_strongest_channel(model, photos):
    images = jax.numpy.asarray(photos)
    acts = model(images)
    top = tuple(int(c) for c in np.argmax(np.asarray(acts["logits"]), -1))
    a = jfv.attribute(model, photos, None, method="saliency")
    assert a.target == f"logits[{top}], sum, softmax" and a.settings["channel"] == -1
    np.testing.assert_array_equal(a.maps["saliency"], np.asarray(A.saliency(model, images, A.label(top, softmax=True))))
    strongest = tuple(int(c) for c in np.argmax(np.asarray(acts["conv2"]).max((1, 2)), -1))
    b = jfv.attribute(model, photos, "conv2", method="grad_cam")
    assert b.target == f"conv2[{strongest}], sum" and b.classes == tuple(f"conv2:{c}" for c in strongest)
    assert b.settings | {"images": None} == b.settings | {
        "images": None, "target": "channel", "layer": "conv2", "channel": -1, "grad_cam_layer": "relu1"}


def test_grad_cams_default_layer_is_the_recipes():
    vgg = jfv.models.load("vgg16")
    assert default_grad_cam_layer(vgg, "relu5_3", (224, 224)) == "relu4_3"  # configs/attribute_vgg16_channel.py
    assert default_grad_cam_layer(vgg, "conv4_3", (224, 224)) == "relu3_3"
    assert default_grad_cam_layer(vgg, "conv1_1", (224, 224)) == "conv1_1"  # nothing larger before it


@pytest.mark.parametrize("spelling, name", [
    ("gradcam", "grad_cam"), ("Grad-CAM", "grad_cam"), ("guided backprop", "guided_backprop"),
    ("InputXGradient", "gradient_x_input"), ("SmoothGrad", "smoothgrad"), (" occlusion ", "occlusion"),
])
def test_method_spellings(model, spelling, name):
    assert parse_methods(spelling, model) == [name]
    assert parse_methods(f"saliency,{spelling}", model) == ["saliency", name]


def test_all_is_every_method_the_model_supports():
    plain = tiny_model()  # no logits, no relu field
    assert parse_methods("all", plain) == ["saliency", "gradient_x_input", "smoothgrad", "grad_cam", "occlusion"]


def test_photo_forms_read_alike(model, tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (20, 24, 3), np.uint8)
    path = tmp_path / "shot.png"
    Image.fromarray(pixels).save(path)
    from_path, names, paths = load_photos(path, SIZE)
    assert names == ["shot"] and paths == [str(path)]
    np.testing.assert_array_equal(from_path[0], load_image(path, SIZE))  # the recipe's reader
    np.testing.assert_array_equal(load_photos(Image.open(path), SIZE)[0], from_path)  # a PIL image: the same
    assert load_photos(Image.open(path), SIZE)[1] == ["shot"]
    exact = load_image(path, SIZE)
    np.testing.assert_array_equal(load_photos(exact, SIZE)[0][0], exact)  # an array at the size: as it is
    np.testing.assert_array_equal(load_photos((exact * 255).round().astype(np.uint8), SIZE)[0][0], exact)
    grey = load_photos(exact.mean(-1), SIZE)[0][0]
    assert grey.shape == (SIZE, SIZE, 3) and np.allclose(grey[..., 0], grey[..., 2])
    resized = load_photos(pixels.astype(np.float32) / 255, SIZE)[0][0]  # fitted as the file is, in float
    np.testing.assert_allclose(resized, from_path[0], atol=2 / 255)
    images, names, _ = load_photos([path, exact, Image.fromarray(pixels)], SIZE)
    assert images.shape == (3, SIZE, SIZE, 3) and names == ["shot", "photo_1", "photo_2"]
    other = tmp_path / "b" / "shot.png"
    other.parent.mkdir()
    Image.fromarray(pixels).save(other)
    assert load_photos([path, other], SIZE)[1] == [f"{tmp_path.name}_shot", "b_shot"]  # the recipe's output_names


def test_repr_png_is_the_labelled_grid(every, photos):
    png = every._repr_png_()
    assert png.startswith(b"\x89PNG")
    im = Image.open(io.BytesIO(png))
    assert im.mode == "RGB"
    cols, rows = len(METHODS) + 1, 2
    width, height = im.size
    assert (width + TILE_PAD) % cols == 0
    tile = (width + TILE_PAD) // cols - TILE_PAD
    assert tile % SIZE == 0 and tile >= TILE_MIN  # an integer upscale, wide enough for 'gradient_x_input'
    assert height == rows * (tile + LABEL_HEIGHT + TILE_PAD) - TILE_PAD
    a = np.asarray(im)
    factor = tile // SIZE
    down, right = tile + LABEL_HEIGHT + TILE_PAD, tile + TILE_PAD
    assert np.array_equal(a[:tile:factor, :tile:factor], np.clip(np.rint(photos[0] * 255), 0, 255).astype(np.uint8))
    second = a[down: down + tile: factor, right: right + tile: factor]  # photo 1, saliency
    expected = np.clip(np.rint(every.pictures["saliency"][1] * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(second, expected)
    label = a[tile: tile + LABEL_HEIGHT, :tile]
    assert label.min() < 100 and label.max() == 255  # dark text on white
    assert repr(every).startswith("Attribution(tiny_classifier, target logits[3], sum, softmax, 2 photo(s) [photo_0, photo_1]")


def test_a_grayscale_model(gray):
    photo = np.random.default_rng(2).random((32, 32, 3)).astype(np.float32)
    a = jfv.attribute(gray, photo, 3, method=("saliency", "deconvnet", "grad_cam"))
    assert a.images.shape == (1, 32, 32, 1) and a.pictures["deconvnet"].shape == (1, 32, 32, 1)
    assert a.pictures["saliency"].shape == (1, 32, 32, 3) and a.classes == ("class 3",)
    assert Image.open(io.BytesIO(a._repr_png_())).mode == "RGB"


def files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_save_writes_the_attribute_recipes_files(tmp_path):
    """The recipe and the one call on the same photo and settings write the same files, the PNGs
    byte for byte (the page and the manifest differ only in timings and the settings' names)."""
    from configs import attribute_gray_cnn
    from jfv.recipes.attribution import attribute as recipe
    from jfv.recipes.photos import default_image

    c = attribute_gray_cnn.get_config()
    c.methods = "saliency,smoothgrad,guided_backprop,grad_cam,cam,occlusion"
    c.cam_layer, c.smoothgrad_samples, c.faithfulness_steps = "relu3", 2, 1
    c.image_size, c.occlusion_window, c.occlusion_stride = 32, 8, 4
    recipe.run(c, str(tmp_path / "recipe"))
    a = jfv.attribute("gray_cnn", default_image(), 3, method=c.methods, image_size=32, grad_cam_layer="relu2",
                      smoothgrad_samples=2, occlusion_window=8, occlusion_stride=4, faithfulness_steps=1)
    assert a.save(tmp_path / "one") == tmp_path / "one"
    mine, theirs = files(tmp_path / "one"), files(tmp_path / "recipe")
    assert sorted(mine) == sorted(theirs)
    assert [f for f in mine if mine[f] != theirs[f]] == ["index.html", "manifest.json"]
    m1 = json.loads((tmp_path / "one/manifest.json").read_text())
    m2 = json.loads((tmp_path / "recipe/manifest.json").read_text())
    assert [k for k in m1 if k != "made_by"] == list(m2) and m1["made_by"] == "jfv.attribute"
    for key in ("recipe", "model", "target", "methods", "grid", "grid_layout", "gallery", "images"):
        assert m1[key] == m2[key], key
    assert set(m1["settings"]) - set(m2["settings"]) == {"spec"}
    assert {k: m1["settings"][k] for k in ("image_size", "target", "channel", "grad_cam_layer", "occlusion_window")} == \
        {k: m2["settings"][k] for k in ("image_size", "target", "channel", "grad_cam_layer", "occlusion_window")}
    assert "deletion_auc" in m1["images"][0]["methods"]["occlusion"]


def test_save_refuses_a_folder_with_files_unless_overwrite(every, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(WorkdirError, match=r"run already holds files \(notes.txt\): save into a new directory, or "
                                           r"pass overwrite=True"):
        every.save(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    every.save(out, overwrite=True)
    assert (out / "manifest.json").is_file() and (out / "overlays/photo_0_cam.png").is_file()


VALID_TINY = "Valid layers: conv1, conv2"
VALID_CLASSIFIER = "Valid layers: conv1, relu1, pool1, conv2, relu2, logits"


@pytest.mark.parametrize("target, error, message", [
    ("conv9:1", UnknownLayerError, r"^model 'tiny_classifier' has no layer 'conv9'\..*" + VALID_CLASSIFIER + "$"),
    ("conv2:8", ChannelOutOfRangeError, r"^channel\(s\) \[8\] out of range for tiny_classifier layer 'conv2', which "
                                        r"has 8 channels: use 0\.\.7"),
    (4, UnknownClassError, r"^class index 4 is out of range: the classes are 0\.\.3$"),
    ("dgo", UnknownClassError, r"^no class named 'dgo' among 4 classes\. All names with their indices: 0 airplane"),
    ("logits:dgo", UnknownClassError, r"^no class named 'dgo'"),
    ("conv2:x", A.TargetError, r"^cannot read 'x' in target 'conv2:x': give a class name or index"),
    ("", A.TargetError, r"^cannot read target '': give a class name or index"),
    (2.5, A.TargetError, r"^cannot read target 2\.5: give"),
])
def test_bad_targets_are_one_line(model, photos, target, error, message):
    with pytest.raises(error, match=message) as e:
        jfv.attribute(model, photos, target)
    assert "\n" not in str(e.value)


def test_targets_a_model_cannot_have():
    plain = tiny_model()
    photo = np.zeros((SIZE, SIZE, 3), np.float32)
    with pytest.raises(A.TargetError, match=r"^tiny has no 'logits' layer \(no classifier head\), so it has no top "
                                            r"class to explain: give a target, a class name or index"):
        jfv.attribute(plain, photo)
    with pytest.raises(A.TargetError, match=rf"^target 'cat' is neither a layer of tiny nor a class name \(tiny has "
                                            rf"no 'logits' layer\): give .*{VALID_TINY}$"):
        jfv.attribute(plain, photo, "cat")
    with pytest.raises(A.TargetError, match=r"^model 'tiny_classifier' has no class labels, so the class 'cat' "
                                            r"cannot be looked up: give the class by index, e\.g\. 0 \(0\.\.3\)$"):
        jfv.attribute(tiny_classifier(), photo, "logits:cat")


@pytest.mark.parametrize("method, error, message", [
    ("lime", MethodError, r"^unknown method\(s\) 'lime'; valid: saliency, gradient_x_input, smoothgrad, "
                          r"guided_backprop, deconvnet, grad_cam, cam, occlusion \(or 'all': every method tiny supports\)$"),
    (("saliency", "shap"), MethodError, r"^unknown method\(s\) 'shap'; valid: saliency"),
    ("gradcam,grad_cam", MethodError, r"^method\(s\) grad_cam given more than once: name each once$"),
    ("", MethodError, r"^cannot read method '': give one of saliency"),
    ("cam", MethodError, r"^method 'cam' needs a classifier head \(global pooling \+ one dense layer giving "
                         r"'logits'\), which tiny has not: use 'grad_cam', which needs none$"),
    ("guided_backprop", MissingFieldError, r"^guided backprop swaps the model's ReLU, but tiny's module \(TinyNet\) "
                                           r"has no relu field"),
])
def test_bad_methods_list_the_methods(method, error, message):
    with pytest.raises(error, match=message) as e:
        jfv.attribute(tiny_model(), np.zeros((SIZE, SIZE, 3), np.float32), "conv2:0", method=method)
    assert "\n" not in str(e.value)


def test_unreadable_photos_name_the_file(model, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match=rf"^{broken} is not an image jfv can read: pass PNG, JPEG or BMP files$"):
        jfv.attribute(model, broken, "cat")
    missing = tmp_path / "missing.jpg"
    with pytest.raises(FileNotFoundError, match=rf"^photo '{missing}' does not exist: pass the path of an image file"):
        jfv.attribute(model, missing, "cat")
    with pytest.raises(PhotoError, match=r"^photo 0 has shape \(16, 16, 4\): pass an \(H, W, 3\) RGB array"):
        jfv.attribute(model, np.zeros((SIZE, SIZE, 4), np.float32), "cat")
    with pytest.raises(PhotoError, match=r"^photo 0 has values in \[255, 255\]: pass floats in \[0, 1\] \(divide"):
        jfv.attribute(model, np.full((SIZE, SIZE, 3), 255.0, np.float32), "cat")
    with pytest.raises(PhotoError, match=r"^photo 1 is a dict: pass a path, a PIL image"):
        jfv.attribute(model, [np.zeros((SIZE, SIZE, 3)), {}], "cat")
    with pytest.raises(PhotoError, match="is a folder"):
        jfv.attribute(model, tmp_path, "cat")


@pytest.mark.parametrize("value, what", [(nn.Conv(8, (3, 3)), r"a Flax module \(Conv\)"), (None, "a NoneType")])
def test_a_model_that_is_not_a_jfv_model_is_refused_with_how_to_wrap_it(value, what):
    with pytest.raises(TypeError, match=rf"^attribute takes a jfv Model or a registered model's name \(alexnet, .*\), "
                                        rf"not {what}: wrap your Flax module and its params first, model = "
                                        rf"jfv\.models\.wrap\(module, params, name='mynet'\), then "
                                        rf"jfv\.attribute\(model, photo, 'LAYER:CHANNEL', method='grad_cam'\)$"):
        jfv.attribute(value, np.zeros((SIZE, SIZE, 3)), "conv1:0")


@pytest.mark.parametrize("options, message", [
    ({"image_size": 8}, r"^image_size=8: give an integer >= 16 \(or None for the default\)$"),
    ({"batch_size": 0}, r"^batch_size=0: give an integer >= 1$"),
    ({"smoothgrad_samples": 1.5}, r"^smoothgrad_samples=1\.5: give an integer >= 1$"),
    ({"faithfulness_steps": -1}, r"^faithfulness_steps=-1: give an integer >= 0$"),
])
def test_bad_options_name_the_argument(model, options, message):
    with pytest.raises(ValueError, match=message):
        jfv.attribute(model, np.zeros((SIZE, SIZE, 3)), "cat", **options)
