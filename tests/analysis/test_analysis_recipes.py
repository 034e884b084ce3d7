"""End-to-end: the filters, activations and embeddings recipes on tiny configs write every output with
the right numbers in their manifests, and bad input fails with one line naming the fix, leaving the
workdir empty."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from configs import activations_tiny, embeddings_tiny, filters as filters_config
from jfv.analysis import datasets, embeddings as E, filters
from jfv import recipes
from jfv.recipes.analysis import activations, embeddings
from jfv.recipes.common import ConfigError

REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _no_staging(path):
    return not [p for p in path.iterdir() if p.name.startswith(".jfv-staging")]


def test_recipes_are_registered():
    for name in ("filters", "activations", "embeddings"):
        assert recipes.get(name).__name__ == f"jfv.recipes.analysis.{name}"


def test_filters_recipe(tmp_path, alexnet):
    manifest = recipes.get("filters").run(filters_config.get_config(), str(tmp_path))
    assert manifest["layer"] == "conv1" and manifest["kernel_shape"] == "64x3x11x11"
    grid = _png(tmp_path / "filters.png")
    assert grid.shape == (8 * 45 - 1, 8 * 45 - 1, 3)  # 8 x 8 tiles of 11 px x 4, 1 px apart
    tiles = np.asarray(filters.normalise_filters(alexnet.params["conv1"]["kernel"]))
    np.testing.assert_array_equal(grid[:44:4, :44:4], np.clip(np.rint(tiles[0] * 255), 0, 255).astype(np.uint8))
    norms = np.sqrt((np.asarray(alexnet.params["conv1"]["kernel"]) ** 2).sum((0, 1, 2)))
    np.testing.assert_allclose(manifest["filter_l2_norms"], norms, rtol=1e-5)
    assert json.loads((tmp_path / "manifest.json").read_text())["gallery"] == "index.html"
    assert (tmp_path / "index.html").exists() and _no_staging(tmp_path)


def test_activations_recipe(tmp_path, vgg16):
    c = activations_tiny.get_config()
    manifest = activations.run(c, str(tmp_path))
    for rel in ("input.png", "grid.png", "top.png", "index.html", "manifest.json"):
        assert (tmp_path / rel).exists(), rel
    image = _png(tmp_path / "input.png").astype(np.float32) / 255
    maps = np.asarray(vgg16(image[None])[c.layer][0])  # the saved input is what the model saw, to 1/255
    want = maps.max((0, 1))
    got = {t["channel"]: t["max"] for t in manifest["top_channels"]}
    assert len(got) == 4 and manifest["map_shape"] == [16, 16, 256]
    order = np.argsort(-want)[:4]
    assert list(got) == [int(i) for i in order]
    np.testing.assert_allclose(list(got.values()), want[order], rtol=0.05)
    assert _png(tmp_path / "grid.png").shape == (16 * 17 - 1, 16 * 17 - 1, 3)  # 256 maps, 16 columns
    assert _no_staging(tmp_path)


def test_embeddings_recipe(tmp_path, shared):
    c = embeddings_tiny.get_config()
    c.shared_dir = str(shared)
    manifest = embeddings.run(c, str(tmp_path))
    for rel in ("neighbours.png", "pca.png", "tsne.png", "features.npz", "index.html", "manifest.json"):
        assert (tmp_path / rel).exists(), rel
    assert manifest["images"] == 40 and manifest["skipped"] == 0 and manifest["feature_dim"] == 512
    with np.load(tmp_path / "features.npz") as z:
        feats, labels, pca = z["features"], z["labels"], z["pca"]
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 4))
    knn = manifest["knn_accuracy"]
    assert knn["feature"] == E.knn_leave_one_out(feats, labels, 3, "cosine")
    assert 0 <= knn["pixel"] <= 1 and knn["chance"] == 0.1
    np.testing.assert_allclose(np.abs(pca), np.abs(E.pca(feats, 2).coords), rtol=1e-4, atol=1e-4)
    q = manifest["queries"][0]
    assert q["id"] == 0 and len(q["feature_neighbours"]) == 3 and 0 not in q["feature_neighbours"]
    idx, _ = E.nearest(feats[:1], feats, 3, "cosine", exclude=[0])
    assert q["feature_neighbours"] == [int(i) for i in idx[0]]
    rows = _png(tmp_path / "neighbours.png")
    assert rows.shape[0] > 100 and rows.shape[1] > 3 * rows.shape[0] // 2
    assert _no_staging(tmp_path)


def test_embeddings_of_an_image_folder_counts_the_unreadable(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for cls, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(rng.normal(colour, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    (root / "blue" / "broken.png").write_bytes(b"\x89PNG broken")
    c = embeddings_tiny.get_config()
    c.dataset, c.image_size, c.pixel_size, c.tsne_perplexity = str(root), 32, 16, 3.0
    manifest = embeddings.run(c, str(tmp_path / "out"))
    assert manifest["images"] == 12 and manifest["skipped"] == 1
    assert manifest["skipped_images"][0]["name"].endswith("broken.png")
    assert manifest["classes"] == ["blue", "red"] and manifest["knn_accuracy"]["pixel"] == 1.0


@pytest.mark.parametrize("recipe,key,value,match", [
    ("embeddings", "dataset", "/nonexistent/images", "does not exist: pass a folder"),
    ("embeddings", "knn_k", 0, "knn_k must be >= 1"),
    ("embeddings", "neighbours", 40, r"neighbours \(40\) and knn_k \(3\) <= 39"),
    ("embeddings", "metric", "manhattan", "metric must be one of l2, cosine"),
    ("activations", "top", 0, "top must be >= 1"),
    ("activations", "layer", "conv9_9", "has no layer 'conv9_9'"),
    ("activations", "image", "/nonexistent.jpg", "not found: pass --config.image=PATH"),
])
def test_bad_config_fails_before_writing(tmp_path, shared, recipe, key, value, match):
    c = {"embeddings": embeddings_tiny, "activations": activations_tiny}[recipe].get_config()
    if recipe == "embeddings":
        c.shared_dir = str(shared)
    c[key] = value
    with pytest.raises(ValueError, match=match):
        recipes.get(recipe).run(c, str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_command_line_error_is_one_line_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jfv", "--config=configs/embeddings_tiny.py",
                          f"--workdir={tmp_path / 'run'}", "--config.dataset=/nonexistent/images"],
                         cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jfv: error: dataset folder /nonexistent/images does not exist")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_datasets_module_is_what_the_recipe_reads(shared):
    c = embeddings_tiny.get_config()
    c.shared_dir = str(shared)
    source = embeddings.make_source(c)
    assert len(source) == 40 and source.classes == datasets.CIFAR10_CLASSES
    with pytest.raises(ConfigError):
        embeddings.check(type(c)({**c.to_dict(), "tsne_iterations": 10}))
