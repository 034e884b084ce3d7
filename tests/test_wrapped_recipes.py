"""The photo and dataset recipes on wrapped models: a 1-channel ``gray_cnn`` is given the ITU-R BT.601
luma of the RGB photos (``Model.from_rgb``) by filters, invert, accentuate, checkerboard, sensitivity,
score and the study's natural reference; what each writes equals a direct library call on the luma
computed here by hand, and its pictures are 8-bit grayscale. ``vit_tiny``: accentuation of a token
layer, and the checkerboard's one-line refusal of a model without a ``relu`` field."""

from __future__ import annotations

import csv
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from configs import (accentuate_gray_cnn, checkerboard_tiny, cifar10_sensitivity, filters as filters_config,
                     gray_cnn_channels, invert_gray_cnn, score_tiny)
from jfv import attribution as A
from jfv.analysis import checkerboard as C
from jfv.analysis import datasets, filters, passes
from jfv.runtime import errors
from jfv.optvis import inversion, parameterisations, references
from jfv import evaluation
from jfv.attribution import pictures
from jfv.runtime.outputs import load_image, to_uint8
from jfv.recipes.optvis import channels, invert
from jfv.recipes.attribution import checkerboard, sensitivity
from jfv.recipes.evaluation import score, scored_run
from jfv.recipes.analysis import filters as filters_recipe

BT601 = np.asarray([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma weights, written out here
SIZE = 32


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 40 x 48 RGB photo of smooth colour gradients and noise (not square: load_image crops)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:48] / 48.0
    rgb = np.stack([x, y, 1 - x * y], -1) * 0.7 + 0.3 * rng.random((40, 48, 3))
    path = tmp_path_factory.mktemp("photos") / "photo.png"
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path


def luma(rgb: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb, np.float32) @ BT601[:, None]).astype(np.float32)


def png(path) -> np.ndarray:
    im = Image.open(path)
    assert im.mode == "L", f"{path} is {im.mode}, not an 8-bit grayscale PNG"
    return np.asarray(im)


def test_filters_of_the_one_channel_kernel(tmp_path, gray):
    c = filters_config.get_config()
    c.model = "gray_cnn"
    manifest = filters_recipe.run(c, str(tmp_path))
    kernel = np.asarray(gray.params["conv1"]["kernel"])  # (3, 3, 1, 16)
    assert manifest["layer"] == "conv1" and manifest["kernel_shape"] == "16x1x3x3"
    np.testing.assert_allclose(manifest["filter_l2_norms"], np.sqrt((kernel**2).sum((0, 1, 2))), atol=1e-6)
    tiles = filters.normalise_filters(kernel, c.normalise)
    layout = manifest["grid_layout"]
    grid = filters.filter_grid(np.asarray(tiles), columns=layout["columns"], scale=layout["tile_px"] // 3, pad=c.pad)
    np.testing.assert_array_equal(png(tmp_path / "filters.png"), to_uint8(grid))


def test_invert_gray_cnn_equals_the_library_on_the_luma(tmp_path, gray, photo):
    c = invert_gray_cnn.get_config()
    c.images, c.layers, c.image_size, c.steps, c.progress = str(photo), "conv1,relu2", SIZE, 3, False
    manifest = invert.run(c, str(tmp_path))
    seen = luma(load_image(photo, SIZE))[None]  # (1, 32, 32, 1)
    np.testing.assert_array_equal(png(tmp_path / "images/photo.png"), to_uint8(seen[0]))
    param = parameterisations.image(SIZE, fft=True, decorrelate=False, channels=1)
    for layer in ("conv1", "relu2"):
        direct = inversion.invert(gray, layer, seen, param, optax.adam(c.learning_rate), jax.random.key(c.seed),
                                  c.steps, mode=c.mode, cossim_pow=c.cossim_pow, tv=c.tv)
        got = manifest["images"][0]["layers"][layer]
        assert got["objective"] == pytest.approx(float(direct.objective[0]), abs=1e-5)
        written = png(tmp_path / f"images/photo_{layer}.png").astype(int)
        assert np.abs(written - to_uint8(direct.images[0, 0]).astype(int)).max() <= 1
    assert png(tmp_path / "grid.png").shape[0] == SIZE  # one row: the photo, then the layers


def test_invert_refuses_rgb_only_settings_on_a_gray_model(tmp_path, photo):
    c = invert_gray_cnn.get_config()
    c.images, c.image_size, c.steps = str(photo), SIZE, 1
    c.decorrelate = True
    with pytest.raises(ValueError, match="set --config.decorrelate=False"):
        invert.run(c, str(tmp_path / "a"))
    c.decorrelate, c.param = False, "cppn"
    with pytest.raises(ValueError, match="param=cppn draws RGB images"):
        invert.run(c, str(tmp_path / "b"))


def test_accentuate_gray_cnn_equals_the_library_on_the_luma(tmp_path, gray, photo):
    c = accentuate_gray_cnn.get_config()
    c.images, c.channels, c.image_size, c.steps, c.progress = str(photo), "0,3", SIZE, 3, False
    manifest = invert.run(c, str(tmp_path))  # the invert recipe, registered as accentuate too
    seen = luma(load_image(photo, SIZE))[None]
    np.testing.assert_array_equal(png(tmp_path / "images/photo.png"), to_uint8(seen[0]))
    param = parameterisations.image(SIZE, fft=c.fft, decorrelate=False, channels=1)
    direct = inversion.accentuate(gray, c.layer, [0, 3], seen, param, optax.adam(c.learning_rate),
                                  jax.random.key(c.seed), c.steps, reg_layer=c.reg_layer, penalties=[c.penalty],
                                  norm=c.norm, eps=c.eps)
    for j, cell in enumerate(manifest["images"][0]["channels"]):
        assert cell["objective"] == pytest.approx(float(direct.objective[0, j, 0]), abs=1e-5)
        assert cell["pixel_linf"] <= c.eps + 1e-5
        written = png(tmp_path / f"images/photo_{c.layer}_{cell['channel']:04d}.png").astype(int)
        assert np.abs(written - to_uint8(direct.images[0, j, 0, 0]).astype(int)).max() <= 1


def test_accentuate_a_vit_token_layer(vit):
    """The channel term is over the seed's RMS over every non-batch axis (tokens x dims here)."""
    seeds = np.asarray(jax.random.uniform(jax.random.key(1), (2, SIZE, SIZE, 3)))
    param = parameterisations.image(SIZE)
    out = inversion.accentuate(vit, "block1", [0, 5], seeds, param, optax.adam(0.05), jax.random.key(0), 2,
                               reg_layer="patch_embed", penalties=[0.5])
    assert out.images.shape == (2, 2, 1, 1, SIZE, SIZE, 3) and np.isfinite(out.objective).all()
    seed_acts = vit(jnp.asarray(seeds))
    for i in range(2):
        rms = float(np.sqrt(np.mean(np.asarray(seed_acts["block1"][i], np.float64) ** 2)))
        for j, ch in enumerate((0, 5)):
            o = inversion.accentuation_objective("block1", ch, "patch_embed", seed_acts["patch_embed"][i], 0.5, rms)
            want = float(o(vit(jnp.asarray(out.images[i, j, 0]))))
            assert float(out.objective[i, j, 0]) == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_checkerboard_gray_cnn_projects_the_luma(tmp_path, gray, photo):
    c = checkerboard_tiny.get_config()
    c.model, c.images, c.layers = "gray_cnn", str(photo), "relu2,relu3"
    manifest = checkerboard.run(c, str(tmp_path))
    seen = luma(load_image(photo, SIZE))[None]
    np.testing.assert_array_equal(png(tmp_path / "inputs/photo.png"), to_uint8(seen[0]))
    direct = C.project(gray, jnp.asarray(seen), ("relu3", "relu2"), c.reduce)
    assert manifest["layers"] == ["relu3", "relu2"]
    for entry in manifest["projections"]:
        p = direct[entry["layer"]]
        assert entry["channel"] == int(p.channels[0])
        for method in C.METHODS:
            want = to_uint8(pictures.signed_image(getattr(p, method)[0], c.gain)).astype(int)
            got = png(tmp_path / entry["methods"][method]["picture"]).astype(int)
            assert np.abs(got - want).max() <= 1


def test_checkerboard_refuses_a_model_without_relu_in_one_line(tmp_path, capsys, photo):
    c = checkerboard_tiny.get_config()
    c.model, c.images, c.layers = "vit_tiny", str(photo), "patch_embed"
    assert errors.report("jfv", checkerboard.run, c, str(tmp_path)) == errors.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jfv: error: ") and "has no relu field" in err
    assert "relu: Callable = nn.relu" in err
    assert not (tmp_path / "manifest.json").exists()


def test_sensitivity_gray_cnn_occludes_the_luma(tmp_path, gray, shared):
    c = cifar10_sensitivity.get_config()
    c.model, c.shared_dir, c.test_per_class, c.window, c.stride, c.batch_size = "gray_cnn", str(shared), 1, 8, 8, 16
    manifest = sensitivity.run(c, str(tmp_path))
    x, y = datasets.cifar10_subsets(shared / datasets.CIFAR10_ARCHIVE, {"test": 1})["test"]
    seen = jnp.asarray(luma(x.astype(np.float32) / 255))
    occ = A.occlusion(gray, seen, A.label(tuple(int(v) for v in y), softmax=True), 8, 8, 0.5, 16)
    with np.load(tmp_path / "maps.npz") as z:
        np.testing.assert_allclose(z["maps"], np.asarray(occ.scores), atol=1e-5)
        np.testing.assert_allclose(z["baseline"], np.asarray(occ.baseline), atol=1e-5)
    assert manifest["images"] == 10


def test_score_gray_cnn_sees_the_luma(tmp_path, gray, shared):
    run_dir, out = tmp_path / "run", tmp_path / "scores"
    c = gray_cnn_channels.get_config()
    c.channels, c.image_size, c.steps, c.progress = "0:2", SIZE, 3, False
    channels.run(c, str(run_dir))
    s = score_tiny.get_config()
    s.run_dir, s.shared_dir, s.per_class, s.batch_size, s.trials, s.tail = str(run_dir), str(shared), 2, 20, 10, 3
    s.path_layers, s.path_top, s.path_random = "relu1,relu2,relu3", 2, 4
    manifest = score.run(s, str(out))
    assert manifest["natural_images"]["read"] == 20

    entries = scored_run.run_entries(scored_run.read_run(str(run_dir)), str(run_dir))
    refs = luma(scored_run.load_references(entries, SIZE))  # the grayscale PNGs read as RGB, then their luma
    source = datasets.cifar10("test", per_class=2, shared=str(shared))
    natural = passes.natural_pass(gray, source, "relu3", [0, 1], ["relu1", "relu2", "relu3"], SIZE, 20)
    rgb = datasets.load(source, source.ids, SIZE)
    np.testing.assert_allclose(natural.images, luma(np.stack([rgb[i] for i in source.ids])), atol=1e-6)
    k_afc, _ = jax.random.split(jax.random.key(s.seed))
    afc = evaluation.two_afc(k_afc, np.repeat(refs, 3, -1), np.repeat(natural.images, 3, -1), natural.scores,
                          jnp.asarray([0, 1]), s.trials, s.tail, s.lpips_net)
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    np.testing.assert_allclose([float(r["two_afc"]) for r in rows], np.asarray(afc.accuracy), atol=1e-6)


def test_natural_reference_patches_are_luma_windows(gray, photo):
    """The study's natural reference (``reference = natural``) scores windows of the photo's luma."""
    patches = references.most_activating_patch(gray, "relu2", [0, 3], [photo], 16)
    assert patches.images.shape == (2, 16, 16, 1)
    context = luma(load_image(photo, SIZE))  # context = 2 x 16 px
    for k, src in enumerate(patches.sources):
        y, x = (int(v) for v in src.split("@(")[1].rstrip(")").split(","))
        np.testing.assert_allclose(patches.images[k], context[y : y + 16, x : x + 16], atol=1e-6)
    means = np.asarray(gray(jnp.asarray(patches.images))["relu2"]).mean((1, 2))
    np.testing.assert_allclose(patches.activation, means[[0, 1], [0, 3]], rtol=1e-5, atol=1e-6)


def test_n_channel_images_are_refused_naming_from_rgb(gray):
    with pytest.raises(inversion.InversionError, match=r"\(N, H, H, 1\).*model.from_rgb"):
        inversion.check_images(np.zeros((1, 8, 8, 3)), channels=gray.channels)


def test_natural_reference_on_a_vit_token_layer(vit, photo):
    """A token layer's channel is an embedding dim averaged over tokens, as objectives.channel."""
    patches = references.most_activating_patch(vit, "block1", [0, 7], [photo], 16)
    assert patches.images.shape == (2, 16, 16, 3)
    means = np.asarray(vit(jnp.asarray(patches.images))["block1"]).mean(1)  # (2, 32): over the tokens
    np.testing.assert_allclose(patches.activation, means[[0, 1], [0, 7]], rtol=1e-5, atol=1e-6)


def test_natural_pass_scores_a_token_layer_over_its_tokens(vit, photo):
    """score and the study's measures rank natural images by a token layer's channel: its mean over tokens."""
    natural = passes.natural_pass(vit, datasets.image_folder(str(photo.parent)), "block1", [0, 7], ["block1"], SIZE, 4)
    assert natural.images.shape == (1, SIZE, SIZE, 3)
    means = np.asarray(vit(jnp.asarray(natural.images))["block1"]).mean(1)
    np.testing.assert_allclose(natural.scores, means[:, [0, 7]], rtol=1e-5, atol=1e-6)
    # the processing path's profile of a token layer: one value per channel, over the tokens too
    assert natural.profiles["block1"].shape == (1, 32)
    np.testing.assert_allclose(natural.profiles["block1"], means, rtol=1e-5, atol=1e-6)
    profiles = evaluation.activation_profiles(vit, jnp.asarray(natural.images), ["tokens", "block1", "logits"])
    assert {k: v.shape for k, v in profiles.items()} == {"tokens": (1, 32), "block1": (1, 32), "logits": (1, 10)}
