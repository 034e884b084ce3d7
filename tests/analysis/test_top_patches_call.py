"""``jfv.top_patches``: one call from a model, a spec string and a folder of images to each channel's
top patches. Its top-k equals numpy's brute force over the model's own activations, ``save`` writes the
top_patches recipe's files byte for byte, the picture is a labelled grid of the channels' sheets, and
bad input is refused in one line each."""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import numpy as np
import pytest
from PIL import Image

import jfv
from jfv.analysis import datasets, patches, topk
from jfv.analysis.top_patches import TopPatches, top_patches
from jfv.runtime.outputs import LABEL_HEIGHT, LABEL_PAD as TILE_PAD
from jfv.models.base import ChannelOutOfRangeError, UnknownLayerError
from jfv.optvis.visualise import SpecError

REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 12
SIZE = 32


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Twelve 40x48 noise PNGs, flat."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), np.uint8)).save(root / f"img{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def found(gray, folder):
    """gray_cnn relu2 channels 0..3, the top 4 of the folder at 32 px (patches and projections)."""
    return top_patches(gray, "relu2:0:4", folder, k=4, image_size=SIZE, progress=False)


def test_is_public_and_loads_lazily():
    assert {"top_patches", "TopPatches"} <= set(jfv.__all__)
    assert jfv.top_patches is top_patches and jfv.TopPatches is TopPatches
    assert jfv.analysis.top_patches.top_patches is top_patches
    code = ("import sys, jfv; before = 'jfv.analysis' in sys.modules; f = jfv.top_patches; "
            "print(before, 'jfv.analysis.top_patches' in sys.modules, callable(f))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]


def test_top_k_equals_numpy_over_the_models_activations(gray, folder, found):
    source = datasets.image_folder(folder)
    images = np.stack([datasets.load(source, [i], SIZE, convert=gray.from_rgb)[i] for i in range(N_IMAGES)])
    acts = np.asarray(gray(images)["relu2"])  # (n, 16, 16, 32)
    values = acts.reshape(N_IMAGES, -1, acts.shape[-1]).max(1)
    want_v, want_i = topk.brute_force(values, np.arange(N_IMAGES), 4)
    np.testing.assert_array_equal(found.state.ids, want_i)  # every channel of the layer is ranked
    np.testing.assert_allclose(found.state.values, want_v, rtol=1e-6)
    np.testing.assert_allclose(found.scores, values, rtol=1e-6)
    assert found.channels == (0, 1, 2, 3) and found.scores.shape == (N_IMAGES, 32)
    for i, c in enumerate(found.channels):
        assert [h["id"] for h in found.hits[i]] == list(want_i[c])
        assert [h["name"] for h in found.hits[i]] == [source.name(j) for j in want_i[c]]
        y, x = found.hits[i][0]["position"]
        assert acts[want_i[c][0], y, x, c] == pytest.approx(want_v[c][0], rel=1e-6)  # where the map peaks
    assert found.patches[0].shape[0] == 4 and found.projections[0].shape == found.patches[0].shape
    assert found.sheets[0].ndim == 3 and found.projection_note == ""


def test_patches_equal_the_full_apis(gray, folder, found):
    source = datasets.image_folder(folder)
    hits = patches.gather(found.state, [2])
    stack = np.stack([datasets.load(source, [i], SIZE, convert=gray.from_rgb)[int(i)] for i in hits.ids])
    rf = patches.check_layer(gray, "relu2", SIZE)
    boxes = patches.boxes(gray, "relu2", hits.positions, SIZE, clip=True)
    crops = patches.fit(patches.crop(stack, boxes, fill=np.array([0.5], np.float32)), min(rf.size, SIZE))
    np.testing.assert_array_equal(found.patches[2], crops)
    assert [h["box"] for h in found.hits[2]] == boxes.tolist()


def files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_save_writes_the_top_patches_recipes_files(folder, found, tmp_path):
    """The recipe and the one call on the same folder and settings write the same files byte for
    byte, but for the recipe's job files (job.json, records/) and its blocks.png figure; the page and
    the manifest differ in timings and settings only."""
    from configs import top_patches_gray_cnn
    from jfv.recipes.analysis import top_patches as recipe

    c = top_patches_gray_cnn.get_config()
    c.dataset, c.layers, c.channels, c.reductions, c.project, c.batch_size = str(folder), "relu2", "0:4", "max", "max", 5
    recipe.run(c, str(tmp_path / "recipe"))
    assert found.save(tmp_path / "one") == tmp_path / "one"
    mine, theirs = files(tmp_path / "one"), files(tmp_path / "recipe")
    assert sorted(set(theirs) - set(mine)) == ["blocks.png", "job.json", "records/pass.json",
                                               "records/patches_relu2_g0000.json"]
    assert set(mine) <= set(theirs)
    assert sorted(f for f in mine if mine[f] != theirs[f]) == ["index.html", "manifest.json"]
    assert "sheets/relu2_0003_max.png" in mine and "patches/relu2/0001/max_3_proj.png" in mine
    m1 = json.loads((tmp_path / "one/manifest.json").read_text())
    m2 = json.loads((tmp_path / "recipe/manifest.json").read_text())
    assert [k for k in m1 if k != "made_by"] == list(m2) and m1["made_by"] == "jfv.top_patches"
    for key in ("recipe", "model", "dataset", "images", "read", "skipped", "layers", "reductions", "k", "projections",
                "topk", "scores", "gallery"):
        assert m1[key] == m2[key], key


def test_repr_png_is_the_labelled_grid_of_sheets(found):
    im = Image.open(io.BytesIO(found._repr_png_()))
    assert im.mode == "RGB"
    h, w = found.sheets[0].shape[:2]
    factor = math.ceil(48 / found.patches[0].shape[1])  # patches shown at least 48 px
    tile_w, tile_h = w * factor, h * factor + LABEL_HEIGHT
    assert im.size == (2 * (tile_w + TILE_PAD) - TILE_PAD, 2 * (tile_h + TILE_PAD) - TILE_PAD)  # 4 sheets, 2 x 2
    a = np.asarray(im)
    sheet = np.clip(np.rint(found.sheets[1] * 255), 0, 255).astype(np.uint8)[..., 0]  # grayscale
    assert np.array_equal(a[:h * factor:factor, tile_w + TILE_PAD: tile_w + TILE_PAD + w * factor: factor, 0], sheet)
    assert found.label(1) == f"relu2:1 top {found.hits[1][0]['value']:.3g}"
    assert repr(found) == "TopPatches(gray_cnn relu2, 4 channel(s) [0, 1, 2, 3], top 4 of 12 images by max, 32 px)"


def test_a_list_of_paths_a_limit_and_an_unreadable_image(gray, folder, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    paths = sorted(folder.glob("*.png"))[:5] + [broken]
    t = top_patches(gray, "relu3:7", paths, k=2, image_size=SIZE, reduce="mean", project=False, progress=False)
    assert t.images == 6 and [n for n, _ in t.skipped] == [str(broken)] and t.projections is None
    assert t.channels == (7,) and t.state.ids.shape == (32, 2) and t.projection_note.startswith("projections off")
    limited = top_patches(gray, "relu3:7", folder, k=2, image_size=SIZE, limit=5, project=False, progress=False)
    assert limited.images == 5 and set(np.unique(limited.state.ids)) <= set(range(5))


def test_a_model_without_switches_gets_patches_only(vit, folder):
    t = top_patches(vit, "patch_embed:0:2", folder, k=3, image_size=SIZE, progress=False)
    assert t.projections is None and t.projection_note.endswith("patches only")
    assert t.patches[0].shape == (3, 4, 4, 3)  # 4x4 patches


@pytest.mark.parametrize("spec, error, message", [
    ("relu9:0", UnknownLayerError, r"^model 'gray_cnn' has no layer 'relu9'\..* Valid layers: conv1, relu1, conv2, "),
    ("relu2:32", ChannelOutOfRangeError, r"^channel\(s\) \[32\] out of range for gray_cnn layer 'relu2', which has 32 "
                                         r"channels: use 0\.\.31"),
    ("relu2:0:40", ChannelOutOfRangeError, r"^channels 0:40 out of range for gray_cnn layer 'relu2'"),
    ("relu2:x", SpecError, r"^cannot read 'x' in spec 'relu2:x'"),
    ("logits:0", patches.PatchError, r"^layer 'logits' of gray_cnn has no spatial extent, so its units have no image "
                                     r"patch: pick a convolution or pool layer"),
])
def test_bad_specs_are_one_line(gray, folder, spec, error, message):
    with pytest.raises(error, match=message) as e:
        top_patches(gray, spec, folder, progress=False)
    assert "\n" not in str(e.value)


def test_bad_images_and_options(gray, tmp_path):
    with pytest.raises(datasets.DatasetError, match=rf"^dataset folder {tmp_path / 'nowhere'} does not exist"):
        top_patches(gray, "relu2:0", tmp_path / "nowhere", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DatasetError, match=r"holds no images"):
        top_patches(gray, "relu2:0", tmp_path / "empty", progress=False)
    with pytest.raises(datasets.DatasetError, match=r"^cannot read images from a int: pass a folder of images"):
        top_patches(gray, "relu2:0", 3, progress=False)
    with pytest.raises(ValueError, match=r"^k=0: give an integer >= 1$"):
        top_patches(gray, "relu2:0", tmp_path, k=0)
    with pytest.raises(ValueError, match=r"^reduce='median': give one of max, mean$"):
        top_patches(gray, "relu2:0", tmp_path, reduce="median")


@pytest.mark.parametrize("value, what", [(nn.Conv(8, (3, 3)), r"a Flax module \(Conv\)"), ({}, "a dict")])
def test_a_model_that_is_not_a_jfv_model_is_refused_with_how_to_wrap_it(value, what, tmp_path):
    with pytest.raises(TypeError, match=rf"^top_patches takes a jfv Model or a registered model's name \(alexnet, "
                                        rf".*\), not {what}: wrap your Flax module and its params first, model = "
                                        rf"jfv\.models\.wrap\(module, params, name='mynet'\), then "
                                        rf"jfv\.top_patches\(model, 'LAYER:A:B', 'path/to/photos'\)$"):
        top_patches(value, "conv1:0", tmp_path)
