"""``jfv.visualise``: one call from a model and a spec string to a picture. It equals
``render_channels`` with the same pieces, reads every spec form, shows itself as a labelled grid,
saves the channels recipe's files, and refuses bad input in one line each; and the ``jfv`` console
script runs the command line."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
from PIL import Image

import jfv
from jfv.models.base import ChannelOutOfRangeError, UnknownLayerError
from jfv.models.labels import UnknownClassError
from jfv.optvis import objectives as O
from jfv.optvis import parameterisations as pz
from jfv.optvis import transforms as T
from jfv.optvis.render import render_channels
from jfv.optvis.visualise import SpecError, Visualisation, parse_spec
from jfv.runtime.outputs import LABEL_HEIGHT, LABEL_PAD as TILE_PAD, LABEL_TILE_MIN as TILE_MIN
from jfv.runtime.outputs import WorkdirError, sprite
from tiny_model import tiny_classifier, tiny_model

REPO = Path(__file__).resolve().parents[2]
SMALL = {"steps": 2, "image_size": 16, "seed": 0, "progress": False}


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture(scope="module")
def labelled():
    """The tiny classifier with four class names: ``logits:cat`` is class 3."""
    return dataclasses.replace(tiny_classifier(), labels=("airplane", "automobile", "bird", "cat, kitty"))


@pytest.fixture(scope="module")
def three(tiny):
    """Channels 5, 1, 6 of conv2, in the spec's order."""
    return jfv.visualise(tiny, "conv2:5,1,6", **SMALL)


def test_is_public():
    assert "visualise" in jfv.__all__ and "Visualisation" in jfv.__all__
    assert jfv.visualise is jfv.optvis.visualise.visualise and jfv.Visualisation is Visualisation


def test_one_channel_equals_render_channels_with_the_same_pieces(tiny):
    v = jfv.visualise(tiny, "conv2:3", steps=2, image_size=16, seed=0)  # the progress bar too
    ref = render_channels(tiny, lambda c: O.channel("conv2", c), pz.image(16, fft=True, decorrelate=True),
                          T.standard(), optax.adam(0.05), [3], jax.random.key(0), 2)
    assert (v.model, v.layer, v.channels) == ("tiny", "conv2", (3,))
    assert v.images.shape == (1, 16, 16, 3) and v.images.dtype == np.float32
    assert np.array_equal(v.images, ref.images[:, 0])  # bit-equal
    assert np.array_equal(v.objectives, ref.objective) and np.array_equal(v.history, ref.history)
    assert 0.0 <= v.images.min() and v.images.max() <= 1.0
    assert v.objective == "channel(conv2, c)" and v.classes is None and v.transparency is None
    assert repr(v) == "Visualisation(tiny conv2, 1 channel(s) [3], 16 px, 2 steps)"


def test_options_reach_the_render(tiny):
    v = jfv.visualise(tiny, "conv1:2", steps=3, image_size=20, seed=5, learning_rate=0.1, batch_size=1, progress=False)
    ref = render_channels(tiny, lambda c: O.channel("conv1", c), pz.image(20), T.standard(), optax.adam(0.1), [2],
                          jax.random.key(5), 3)
    assert np.array_equal(v.images, ref.images[:, 0]) and v.history.shape == (1, 3)
    assert v.settings | {"spec": None} == {
        "spec": None, "model": "tiny", "layer": "conv1", "channels": "2", "objective": "channel", "steps": 3,
        "image_size": 20, "learning_rate": 0.1, "fft": True, "decorrelate": True, "transforms": "standard",
        "param": "lucid", "seed": 5, "batch_size": 1, "precision": "float32", "preset": "lucid"}


@pytest.mark.parametrize("spec, channels", [
    ("conv2:7", [7]), ("conv2:0:8", list(range(8))), ("conv2:2:5", [2, 3, 4]), ("conv2:5,1,6", [5, 1, 6]),
    (" conv2 : 4 , 0 ", [4, 0]), ("conv2", list(range(8))), ("conv1", list(range(8))),
])
def test_spec_forms(tiny, spec, channels):
    assert parse_spec(tiny, spec) == (spec.split(":")[0].strip(), channels)


def test_a_list_renders_its_channels_in_order_each_as_alone(tiny, three):
    assert three.channels == (5, 1, 6) and three.images.shape == (3, 16, 16, 3) and three.objectives.shape == (3,)
    alone = jfv.visualise(tiny, "conv2:1", **SMALL)
    np.testing.assert_allclose(three.images[1], alone.images[0], atol=1e-6)  # channel 1's key: fold_in(key, 1)
    assert three.settings["channels"] == "5,1,6"


def test_a_whole_layer_renders_every_channel(tiny):
    v = jfv.visualise(tiny, "conv2", **SMALL, batch_size=3)  # groups of 3: 3 + 3 + 2 (padded)
    assert v.channels == tuple(range(8)) and v.images.shape == (8, 16, 16, 3)
    assert np.all(np.isfinite(v.objectives)) and v.settings["channels"] == "0:8"


def test_a_class_by_name_or_index(labelled):
    v = jfv.visualise(labelled, "logits:Kitty", **SMALL)  # any synonym, any case
    ref = render_channels(labelled, lambda c: O.class_logit(c, "logits"), pz.image(16), T.standard(),
                          optax.adam(0.05), [3], jax.random.key(0), 2)
    assert v.channels == (3,) and v.classes == ("cat, kitty",) and v.objective == "class_logit(c)"
    assert np.array_equal(v.images, ref.images[:, 0]) and v.settings["objective"] == "class"
    assert parse_spec(labelled, "logits:cat") == parse_spec(labelled, "logits:3") == ("logits", [3])
    assert parse_spec(labelled, "logits:0:2") == ("logits", [0, 1])


def test_repr_png_is_the_labelled_grid(three):
    png = three._repr_png_()
    assert png.startswith(b"\x89PNG")
    im = Image.open(io.BytesIO(png))
    im.load()
    tile = max(16, TILE_MIN)  # 16 px images shown at 4x, 64 px
    cols = math.ceil(math.sqrt(3))  # 2 x 2, one empty
    assert im.mode == "RGB"
    assert im.size == (cols * (tile + TILE_PAD) - TILE_PAD, 2 * (tile + LABEL_HEIGHT + TILE_PAD) - TILE_PAD)
    a = np.asarray(im)
    assert np.array_equal(a[:tile:4, :tile:4], (np.clip(np.rint(three.images[0] * 255), 0, 255)).astype(np.uint8))
    label = a[tile:tile + LABEL_HEIGHT, :tile]
    assert label.min() < 100 and label.max() == 255  # dark text on white
    assert not np.array_equal(label, a[tile:tile + LABEL_HEIGHT, tile + TILE_PAD:2 * tile + TILE_PAD])  # conv2:5 vs conv2:1
    assert [three.label(i) for i in range(3)] == ["conv2:5", "conv2:1", "conv2:6"]


def test_a_grayscale_model_renders_gray_images(gray):
    v = jfv.visualise(gray, "conv1:0:2", steps=2, image_size=32, progress=False)  # plain colour, no decorrelation
    assert v.images.shape == (2, 32, 32, 1) and "decorrelate=False" in v.param and not v.settings["decorrelate"]
    assert Image.open(io.BytesIO(v._repr_png_())).mode == "RGB"
    with pytest.raises(SpecError, match=r"^model 'gray_cnn' has no class labels, so the class 'cat' cannot be "
                                        r"looked up: give the class by index, e.g. 'logits:0' \(0..9\)$"):
        jfv.visualise(gray, "logits:cat")
    with pytest.raises(ValueError, match="param='maco' needs an RGB model; gray_cnn takes 1-channel"):
        jfv.visualise(gray, "conv1:0", param="maco")


def test_a_token_layer(vit):
    v = jfv.visualise(vit, "block1:0:2", steps=2, image_size=32, progress=False)
    assert v.images.shape == (2, 32, 32, 3) and np.all(np.isfinite(v.objectives))


def test_save_writes_the_channels_recipe_files(three, tmp_path):
    out = tmp_path / "run"
    assert three.save(out) == out
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == ["channels/conv2_0001.png", "channels/conv2_0005.png", "channels/conv2_0006.png",
                     "index.html", "manifest.json", "sprite.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"] == "channels" and manifest["made_by"] == "jfv.visualise"
    assert (manifest["model"], manifest["layer"], manifest["objective"]) == ("tiny", "conv2", "channel(conv2, c)")
    assert manifest["sprite"] == "sprite.png" and manifest["gallery"] == "index.html"
    assert [e["channel"] for e in manifest["channels"]] == [5, 1, 6]
    assert [e["image"] for e in manifest["channels"]] == [f"channels/conv2_{c:04d}.png" for c in (5, 1, 6)]
    assert [e["objective"] for e in manifest["channels"]] == [round(float(x), 6) for x in three.objectives]
    assert manifest["settings"] == three.settings and "versions" in manifest
    png = np.asarray(Image.open(out / "channels/conv2_0001.png"))
    assert np.array_equal(png, np.clip(np.rint(three.images[1] * 255), 0, 255).astype(np.uint8))
    assert Image.open(out / "sprite.png").size[::-1] == sprite(list(three.images)).shape[:2]
    assert "conv2 ch 5" in (out / "index.html").read_text()
    # the score recipe reads it as a channels run
    from jfv.recipes.evaluation.scored_run import read_run, run_entries

    assert [e["channel"] for e in run_entries(read_run(str(out)), str(out))] == [5, 1, 6]


def test_save_refuses_a_directory_with_files_unless_overwrite(three, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(WorkdirError, match=r"run already holds files \(notes.txt\): save into a new directory, or "
                                           r"pass overwrite=True to move them to .*run.old-<time> first$"):
        three.save(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written
    three.save(out, overwrite=True)
    assert (out / "manifest.json").is_file() and not (out / "notes.txt").exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and (aside[0] / "notes.txt").read_text() == "mine"


def test_maco_saves_transparency_maps(tiny, tmp_path):
    v = jfv.visualise(tiny, "conv2:2", **SMALL, param="maco")
    assert v.transparency.shape == v.images.shape == (1, 16, 16, 3) and v.settings["param"] == "maco"
    v.save(tmp_path / "m")
    entry = json.loads((tmp_path / "m/manifest.json").read_text())["channels"][0]
    assert entry["alpha"] == "channels/conv2_0002_alpha.png"
    assert Image.open(tmp_path / "m" / entry["alpha"]).mode == "RGBA"


VALID_TINY = "Valid layers: conv1, conv2"


@pytest.mark.parametrize("spec, error, message", [
    ("conv3:1", UnknownLayerError, rf"^model 'tiny' has no layer 'conv3'\..*{VALID_TINY}$"),
    ("conv3", UnknownLayerError, rf"^model 'tiny' has no layer 'conv3'\..*{VALID_TINY}$"),
    ("conv2:8", ChannelOutOfRangeError, r"^channel\(s\) \[8\] out of range for tiny layer 'conv2', which has 8 "
                                        r"channels: use 0\.\.7 \(a range a:b with b <= 8\)$"),
    ("conv2:1,9", ChannelOutOfRangeError, r"channel\(s\) \[9\] out of range .* use 0\.\.7"),
    ("conv2:0:9", ChannelOutOfRangeError, r"^channels 0:9 out of range for tiny layer 'conv2', which has 8 "
                                          r"channels: use 0\.\.7 \(a range A:B with B <= 8\)$"),
    ("conv2:5:3", SpecError, r"^spec 'conv2:5:3': the range 5:3 is empty; use conv2:A:B with B > A, e.g. conv2:0:8$"),
    ("conv2:1,1", SpecError, r"^spec 'conv2:1,1' names channel\(s\) 1 more than once: name each once$"),
    ("conv2:", SpecError, r"^cannot read '' in spec 'conv2:': use LAYER:C \(one channel\), LAYER:A:B .*, "
                          r"e\.g\. 'conv2:0', 'conv2:0:8'$"),
    ("conv2:3-5", SpecError, r"^cannot read '3-5' in spec 'conv2:3-5'"),
    ("conv2:1:2:3", SpecError, r"^cannot read '1:2:3' in spec"),
    ("conv2:-1", SpecError, r"^cannot read '-1' in spec"),
    ("conv2:cat", SpecError, r"^cannot read 'cat' in spec 'conv2:cat': .*logits:CLASS \(a class by name or index\)"),
    (":3", SpecError, r"^spec ':3' names no layer: use LAYER:C"),
    ("", SpecError, r"^cannot read spec '': give a string"),
    (3, SpecError, r"^cannot read spec 3: give a string"),
])
def test_bad_specs_are_one_clear_error(tiny, spec, error, message):
    with pytest.raises(error, match=message) as e:
        jfv.visualise(tiny, spec)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec, error, message", [
    ("logits:dgo", UnknownClassError, r"^no class named 'dgo' among 4 classes\. All names with their indices: "
                                      r"0 airplane, 1 automobile, 2 bird, 3 cat, kitty$"),
    ("logits:4", UnknownClassError, r"^class index 4 is out of range: the classes are 0\.\.3$"),
])
def test_unknown_classes(labelled, spec, error, message):
    with pytest.raises(error, match=message):
        jfv.visualise(labelled, spec)


def test_a_class_on_a_model_without_labels(tiny):
    unlabelled = tiny_classifier()
    with pytest.raises(SpecError, match=r"^model 'tiny_classifier' has no class labels, so the class 'cat' cannot "
                                        r"be looked up: give the class by index, e.g. 'logits:0' \(0\.\.3\)$"):
        jfv.visualise(unlabelled, "logits:cat")
    assert parse_spec(unlabelled, "logits:2") == ("logits", [2])  # an index needs no labels


@pytest.mark.parametrize("model, what", [
    (nn.Conv(8, (3, 3)), r"a Flax module \(Conv\)"),
    ({"params": {"w": np.zeros(3)}}, "a dict"),
    (None, "a NoneType"),
])
def test_a_model_that_is_not_a_jfv_model_is_refused_with_how_to_wrap_it(model, what):
    with pytest.raises(TypeError, match=rf"^visualise takes a jfv Model or a registered model's name \(alexnet, .*\), "
                                        rf"not {what}: wrap your Flax module and its params first, model = "
                                        rf"jfv\.models\.wrap\(module, params, name='mynet'\), then "
                                        rf"jfv\.visualise\(model, 'LAYER:CHANNEL'\)$"):
        jfv.visualise(model, "conv1:0")


def test_an_unknown_model_name_lists_the_registered_ones():
    with pytest.raises(jfv.models.UnknownModelError, match=r"^unknown model 'vgg17'; valid models: alexnet, .*vgg16"):
        jfv.visualise("vgg17", "conv4_3:48")


@pytest.mark.parametrize("options, message", [
    ({"steps": 0}, r"^steps=0: give an integer >= 1$"),
    ({"image_size": 16.0}, r"^image_size=16\.0: give an integer >= 1$"),
    ({"batch_size": -1}, r"^batch_size=-1: give an integer >= 0 \(0 = all channels at once\)$"),
    ({"seed": True}, r"^seed=True: give an integer >= 0$"),
    ({"learning_rate": 0}, r"^learning_rate=0: give a positive number, e.g\. 0\.05$"),
    ({"learning_rate": float("nan")}, r"^learning_rate=nan: give a positive number"),
    ({"param": "cppn"}, r"^param='cppn': give one of lucid, maco$"),
])
def test_bad_options_name_the_argument(tiny, options, message):
    with pytest.raises(ValueError, match=message):
        jfv.visualise(tiny, "conv1:0", **options)


def test_five_lines_from_import_to_a_picture():
    """The README's notebook example, as a fresh interpreter runs it (a registry name, Lucid's defaults
    but the steps and size)."""
    code = ("import jfv; v = jfv.visualise('gray_cnn', 'conv2:3', steps=2, image_size=32, progress=False); "
            "print(len(v._repr_png_()) > 100, v.images.shape)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "(1,", "32,", "32,", "1)"]


# -- the console script ------------------------------------------------------------------------------


def test_pyproject_declares_the_console_script():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"jfv": "jfv.main:run"}
    from jfv.main import run

    assert callable(run)


@pytest.mark.skipif(shutil.which("jfv") is None, reason="the jfv script is not on PATH: pip install -e . installs it")
def test_the_console_script_runs_the_command_line(tmp_path):
    help_ = subprocess.run(["jfv", "--helpfull"], capture_output=True, text=True, timeout=120)
    assert "--config" in help_.stdout and "--workdir" in help_.stdout
    missing = tmp_path / "missing.py"
    out = subprocess.run(["jfv", f"--config={missing}", f"--workdir={tmp_path / 'w'}"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"jfv: error: config file {missing} does not exist; pass a config .py file, "
                                  f"e.g. --config=configs/vgg16_channels.py")
