"""The GAP/GMP recipe: the heads' CAM and logits match hand computations, training learns, the tiny
config writes every output, and bad input fails with a clear message."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import gap_gmp_tiny
from jfv import attribution as A
from jfv import datasets
from jfv.recipes import gap_gmp
from jfv.recipes.common import ConfigError


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-attr")


def _head(pool, width=5, classes=3, hw=4, channels=6, seed=0):
    head = gap_gmp.PoolingHead(width=width, classes=classes, pool=pool)
    feats = jax.random.normal(jax.random.key(seed + 1), (2 * hw * hw * channels,)).reshape(2, hw, hw, channels)
    params = head.init(jax.random.key(seed), feats)["params"]
    return head, params, np.asarray(feats)


def _hand_maps(params, feats):
    """3x3 conv with zero padding 1, then ReLU, in numpy loops."""
    k, b = np.asarray(params["conv"]["kernel"]), np.asarray(params["conv"]["bias"])
    n, h, w, _ = feats.shape
    x = np.pad(feats, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, k.shape[-1]))
    for y in range(h):
        for xx in range(w):
            out[:, y, xx] = np.einsum("nijc,ijco->no", x[:, y : y + 3, xx : xx + 3], k) + b
    return np.maximum(out, 0)


@pytest.mark.parametrize("pool", ["gap", "gmp"])
def test_logits_are_pooled_maps_times_dense_weights(pool):
    head, params, feats = _head(pool)
    out = head.apply({"params": params}, feats)
    maps = _hand_maps(params, feats)
    np.testing.assert_allclose(out["head_relu"], maps, rtol=1e-5, atol=1e-5)
    pooled = maps.mean((1, 2)) if pool == "gap" else maps.max((1, 2))
    w, b = np.asarray(params["dense"]["kernel"]), np.asarray(params["dense"]["bias"])
    np.testing.assert_allclose(out["pooled"], pooled, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["logits"], pooled @ w + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", ["gap", "gmp"])
def test_cam_is_dense_weights_times_head_maps(pool):
    head, params, feats = _head(pool)
    classes = np.array([2, 0])
    got = np.asarray(gap_gmp.head_cam(head, params, feats, classes))
    maps = _hand_maps(params, feats)
    w = np.asarray(params["dense"]["kernel"])
    want = np.stack([maps[i] @ w[:, c] for i, c in enumerate(classes)])  # sum_k w[k, c] f_k(x, y)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if pool == "gap":  # the CAM's mean over positions is the class logit less its bias
        logits = np.asarray(head.apply({"params": params}, feats)["logits"])
        b = np.asarray(params["dense"]["bias"])
        np.testing.assert_allclose(want.mean((1, 2)), logits[[0, 1], classes] - b[classes], rtol=1e-5, atol=1e-5)


def test_training_lowers_the_loss_on_a_synthetic_problem():
    # class c lights up channel c at a class-specific position; everything else is noise
    n, hw, channels, classes = 48, 4, 6, 3
    noise = 0.3 * np.random.default_rng(3).standard_normal((n, hw, hw, channels))
    labels = np.arange(n, dtype=np.int32) % classes
    feats = noise.copy()
    for i, c in enumerate(labels):
        feats[i, c, (i // classes) % hw, c] += 3.0
    for pool in ("gap", "gmp"):
        head = gap_gmp.PoolingHead(width=8, classes=classes, pool=pool)
        result = gap_gmp.train_head(head, feats.astype(np.float32), labels, jax.random.key(0), epochs=8,
                                    batch_size=20, learning_rate=0.03)
        assert result.losses.shape == (8,)
        assert result.losses[-1] < 0.5 * result.losses[0], (pool, result.losses)
        pred = np.argmax(gap_gmp.head_outputs(result.params, jnp.asarray(feats), head=head)["logits"], -1)
        assert np.mean(pred == labels) > 0.9, pool


def test_same_key_same_init_and_order_for_both_pools():
    feats = np.ones((5, 3, 3, 4), np.float32)
    labels = np.zeros(5, np.int32)
    a = gap_gmp.train_head(gap_gmp.PoolingHead(4, 3, "gap"), feats, labels, jax.random.key(1), 0, 2, 0.1)
    b = gap_gmp.train_head(gap_gmp.PoolingHead(4, 3, "gmp"), feats, labels, jax.random.key(1), 0, 2, 0.1)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_map_measures_by_hand():
    m = np.zeros((2, 4, 4))
    m[0, 1:3, 1:3] = 1.0  # all mass in the central 2x2 box
    m[1] = np.arange(16).reshape(4, 4)
    np.testing.assert_allclose(gap_gmp.centre_fraction(m[:1]), [1.0])
    mm = m[1] / 15.0
    np.testing.assert_allclose(gap_gmp.centre_fraction(m[1:]), [mm[1:3, 1:3].sum() / mm.sum()])
    np.testing.assert_allclose(gap_gmp.centre_fraction(np.ones((1, 4, 4))), [0.25])  # flat: evenly spread
    np.testing.assert_allclose(gap_gmp.extent(m), [4 / 16, 13 / 16])  # values >= 0.2 * 15 = 3 of 0..15
    s = gap_gmp.summary([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0 and s["n"] == 3


def test_recipe_cam_equals_library_cam_on_the_combined_model(vgg16):
    # a head on relu2_2 keeps the compiled network small (XLA drops the unused deeper layers)
    head, params, _ = _head("gap", width=7, classes=10, hw=1, channels=128)
    images = np.asarray(jax.random.uniform(jax.random.key(2), (2 * 16 * 16 * 3,))).reshape(2, 16, 16, 3)
    full = gap_gmp.with_head(vgg16, "relu2_2", head, params)
    assert full.layers["logits"] == 10 and full.layers["head_relu"] == 7
    classes = np.array([[3], [8]])
    want = A.cam(full, images, classes, "head_relu")[:, 0]  # the head's dense kernel found in the params
    feats = jax.jit(lambda p, x: full.apply(p, x)["relu2_2"])(full.params, images)
    np.testing.assert_allclose(gap_gmp.head_cam(head, params, feats, classes[:, 0]), want, rtol=1e-4, atol=1e-4)


def test_tiny_config_end_to_end(tmp_path, shared):
    c = gap_gmp_tiny.get_config()
    c.shared_dir = str(shared)
    manifest = gap_gmp.run(c, str(tmp_path))
    for rel in ("results.md", "results.json", "grid.png", "index.html", "manifest.json",
                "examples/0000_airplane_input.png", "examples/0000_airplane_gap.png", "examples/0000_airplane_gmp.png"):
        assert (tmp_path / rel).is_file(), rel
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jfv-staging")]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["train_images"] == 40 and results["test_images"] == 20 and results["map_size"] == [3, 3]
    for pool in ("gap", "gmp"):
        r = results["heads"][pool]
        assert 0.0 <= r["test_accuracy"] <= 1.0 and 0.0 <= r["train_accuracy"] <= 1.0
        assert len(r["losses"]) == c.epochs and np.all(np.isfinite(r["losses"]))
        assert 0.0 <= r["centre_fraction"]["mean"] <= 1.0 and r["centre_fraction"]["n"] == 20
        assert r["deletion_auc"]["n"] == 10 and np.isfinite(r["insertion_auc"]["mean"])
        assert manifest["test_accuracy"][pool] == r["test_accuracy"]
    table = (tmp_path / "results.md").read_text()
    assert "| test accuracy" in table and "| GAP | GMP |" in table
    assert "GAP versus GMP" in (tmp_path / "index.html").read_text()


def _fake_cifar(path, per_class=3):
    """A CIFAR-10-shaped tar.gz: split/class/NNNN.jpg, pixel value = 20 * index + class."""
    import io
    import tarfile

    from PIL import Image

    with tarfile.open(path, "w:gz") as tar:
        for split in ("test", "train"):
            for c, cls in reversed(list(enumerate(datasets.CIFAR10_CLASSES))):  # not in label order
                for i in reversed(range(per_class)):
                    buf = io.BytesIO()
                    Image.fromarray(np.full((32, 32, 3), 20 * i + c, np.uint8)).save(buf, "PNG")
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")  # PIL reads by content
                    info.size = len(buf.getvalue())
                    buf.seek(0)
                    tar.addfile(info, buf)
    return path


def test_cifar_subsets_are_balanced_class_major_and_deterministic(tmp_path):
    archive = _fake_cifar(tmp_path / "c.tar.gz")
    data = datasets.cifar10_subsets(archive, {"train": 2, "test": 1})
    x, y = data["train"]
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(x[:, 0, 0, 0], [20 * i + c for c in range(10) for i in range(2)])
    assert data["test"][0].shape == (10, 32, 32, 3)
    with pytest.raises(datasets.DatasetError, match="use test_per_class <= 3"):
        datasets.cifar10_subsets(archive, {"test": 4})
    with pytest.raises(datasets.DatasetError, match="not found"):
        datasets.cifar10_subsets(tmp_path / "missing.tar.gz", {"test": 1})


@pytest.mark.parametrize("key,value,match", [
    ("train_per_class", 0, "train_per_class must be >= 1"),
    ("test_per_class", -1, "test_per_class must be >= 1"),
    ("image_size", 16, "image_size must be >= 32"),
    ("faithfulness_per_class", 9, "faithfulness_per_class must be in 0..test_per_class"),
    ("learning_rate", 0.0, "learning_rate must be > 0"),
])
def test_bad_config_fails_before_any_work(tmp_path, key, value, match):
    c = gap_gmp_tiny.get_config()
    c[key] = value
    with pytest.raises(ConfigError, match=match):
        gap_gmp.run(c, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_unknown_layer_and_missing_shared_fail_clearly(tmp_path, shared):
    c = gap_gmp_tiny.get_config()
    c.shared_dir = str(shared)
    c.layer = "conv6_1"
    with pytest.raises(ValueError, match="no layer 'conv6_1'.*Valid layers: conv1_1"):
        gap_gmp.run(c, str(tmp_path))
    c.layer = "relu5_3"
    c.shared_dir = str(tmp_path / "nowhere")
    with pytest.raises(datasets.DatasetError, match="shared folder not found.*shared_dir"):
        gap_gmp.run(c, str(tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name != "nowhere"]
