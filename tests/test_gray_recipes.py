"""The dataset recipes on a wrapped 1-channel model (``gray_cnn``), from their configs: the dataset is
given to it as ITU-R BT.601 luma; its top-k, activations and embeddings equal a brute-force pass of
the model over the same converted images; its pictures are 8-bit grayscale PNGs; its hits get
deconvnet projections with explicit switches; the atlas builds on them with every link resolving."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from jfv.analysis import datasets, embeddings, patches, topk
from jfv.runtime import outputs
from jfv import recipes
from jfv.recipes import photos
from jfv.models.base import LUMA_601

LUMA = np.asarray(LUMA_601, np.float32)


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


@pytest.fixture(scope="module")
def source(shared):
    return datasets.cifar10("test", per_class=3, archive=shared / datasets.CIFAR10_ARCHIVE)


@pytest.fixture(scope="module")
def luma(source):
    """The 30 test images at 32 px as luma computed here by hand: (30, 32, 32, 1)."""
    rgb = datasets.load(source, source.ids, 32)
    return np.stack([rgb[i] for i in range(len(source))]) @ LUMA[:, None]


@pytest.fixture(scope="module")
def tp(tmp_path_factory, shared):
    from configs import top_patches_gray_cnn

    out = tmp_path_factory.mktemp("top_patches_gray")
    c = top_patches_gray_cnn.get_config()
    c.shared_dir = str(shared)
    c.channels = "0:4"
    c.group_size = 4
    recipes.get("top_patches").run(c, str(out))
    return out


def test_top_k_equals_brute_force_over_the_luma(tp, gray, luma):
    acts = gray(luma)
    with np.load(tp / "topk.npz") as kept, np.load(tp / "scores.npz") as scores:
        for layer in ("relu2", "relu3"):
            flat = np.asarray(acts[layer]).reshape(len(luma), -1, gray.layers[layer])
            for reduce, values in (("max", flat.max(1)), ("mean", flat.mean(1))):
                np.testing.assert_allclose(scores[f"{layer}.{reduce}"], values, rtol=1e-5, atol=1e-5)
                want_v, want_i = topk.brute_force(values, np.arange(len(luma)), 4)
                np.testing.assert_array_equal(kept[f"{layer}.{reduce}.ids"], want_i)
                np.testing.assert_allclose(kept[f"{layer}.{reduce}.values"], want_v, rtol=1e-5, atol=1e-6)


def test_patches_are_grayscale_and_projected_with_switches(tp, luma):
    manifest = json.loads((tp / "manifest.json").read_text())
    assert manifest["projections"].startswith("deconvnet with switches")
    assert [b["layer"] for b in manifest["best_feature_map_per_block"]["blocks"]] == ["relu1", "relu2"]
    pngs = sorted(tp.rglob("*.png"))
    assert len(pngs) > 50
    assert {Image.open(p).mode for p in pngs if p.name != "blocks.png"} == {"L"}
    summary = json.loads((tp / "layers" / "relu3.json").read_text())
    assert summary["receptive_field"] == {"size": 18, "stride": 4, "offset": -7}  # 3 convs, 2 pools
    px = summary["patch_px"]
    for channel in summary["channels"]:
        for hit in channel["max"]:
            # the patch is the hit's luma image inside its box (the outside filled with the
            # normalisation's zero, 0.5), resized to patch_px
            crop = patches.crop(luma[hit["id"]][None], np.asarray([hit["box"]]), fill=np.float32([0.5]))
            want = outputs.to_uint8(patches.fit(crop, px)[0])
            np.testing.assert_array_equal(np.asarray(Image.open(tp / hit["patch"])), want)
            # the projected unit is the one the pass ranked: its activation is the hit's value
            assert hit["unit_activation"] == pytest.approx(hit["value"], rel=1e-5)
            assert Image.open(tp / hit["projection"]).size == (px, px)


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.refs += [a[k] for k in ("src", "href") if k in a and tag in ("img", "a")]


def test_atlas_of_the_grayscale_model(tp, tmp_path):
    """An AM run of gray_cnn (grayscale PNGs) beside its top patches: every page's links resolve."""
    from configs import atlas, gray_cnn_channels

    am = tmp_path / "am"
    c = gray_cnn_channels.get_config()
    c.channels, c.steps, c.image_size = "0:2", 4, 32
    recipes.get("channels").run(c, str(am))
    site = tmp_path / "site"
    c = atlas.get_config()
    c.top_patches_dir, c.am_dir = str(tp), str(am)
    manifest = recipes.get("atlas").run(c, str(site))
    assert manifest["channel_pages"] == 8 and manifest["am_channels"] == 2
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 1 + 2 + 8
    for page in pages:
        parser = Links()
        parser.feed(page.read_text())
        for ref in parser.refs:
            target = (page.parent / unquote(urlparse(ref).path)).resolve()
            assert target.is_file(), f"{page}: {ref} does not resolve"
    text = (site / "relu3" / "0001.html").read_text()
    assert "../am/channels/relu3_0001.png" in text and "_proj.png" in text
    assert Image.open(site / "am" / "channels" / "relu3_0001.png").mode == "L"


def test_activations_recipe_on_the_luma(gray, tmp_path):
    from configs import activations_gray_cnn

    c = activations_gray_cnn.get_config()
    c.image_size = 32
    manifest = recipes.get("activations").run(c, str(tmp_path))
    rgb = outputs.load_image(photos.default_image(), 32)
    seen = rgb @ LUMA[:, None]
    saved = Image.open(tmp_path / "input.png")
    assert saved.mode == "L"
    np.testing.assert_array_equal(np.asarray(saved), outputs.to_uint8(seen))
    maxima = np.asarray(gray(seen[None])["relu2"][0]).max(axis=(0, 1))
    top = manifest["top_channels"]
    assert [t["channel"] for t in top] == list(np.argsort(-maxima, kind="stable")[:4])
    np.testing.assert_allclose([t["max"] for t in top], np.sort(maxima)[::-1][:4], rtol=1e-5)


def test_embeddings_recipe_on_the_luma(gray, shared, tmp_path):
    from configs import embeddings_gray_cnn

    c = embeddings_gray_cnn.get_config()
    c.shared_dir = str(shared)
    c.per_class = 3
    c.batch_size = 16
    c.queries, c.neighbours, c.knn_k, c.tsne_perplexity = 2, 2, 3, 5.0
    manifest = recipes.get("embeddings").run(c, str(tmp_path))
    src = datasets.cifar10("test", per_class=3, archive=shared / datasets.CIFAR10_ARCHIVE)
    rgb = datasets.load(src, src.ids, 32)
    x = np.stack([rgb[i] for i in range(len(src))]) @ LUMA[:, None]
    with np.load(tmp_path / "features.npz") as f:
        np.testing.assert_array_equal(f["ids"], np.arange(30))
        np.testing.assert_allclose(f["features"], np.asarray(gray(x)["relu3"]).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert manifest["feature_dim"] == 32 and manifest["pooling"] == "mean over positions"


def test_token_layers_pool_over_tokens():
    a = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    np.testing.assert_allclose(embeddings.pool(a), a.sum(1) / 5)
