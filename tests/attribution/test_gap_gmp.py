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
from jfv.analysis import datasets
from jfv.recipes.attribution import gap_gmp
from jfv.recipes.common import ConfigError


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-attr")


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


def test_gray_cnn_config_puts_the_heads_on_a_wrapped_model(tmp_path, shared):
    from configs import gap_gmp_gray_cnn
    from jfv import attribution as A
    from jfv.attribution import heads
    from jfv import evaluation, models

    c = gap_gmp_gray_cnn.get_config()
    c.shared_dir = str(shared)
    c.examples = 1
    manifest = gap_gmp.run(c, str(tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert manifest["model"] == "gray_cnn" and results["map_size"] == [8, 8]
    for pool in ("gap", "gmp"):
        r = results["heads"][pool]
        assert len(r["losses"]) == c.epochs and np.all(np.isfinite(r["losses"]))
        assert r["deletion_auc"]["n"] == 10 and 0.0 <= r["insertion_auc"]["mean"] <= 1.0
    # the input picture is the grayscale (BT.601 luma) image the model saw, the CAM overlay colour
    from PIL import Image

    gray = np.asarray(Image.open(tmp_path / "examples/0000_airplane_input.png"))
    assert gray.ndim == 2 and np.asarray(Image.open(tmp_path / "examples/0000_airplane_gap.png")).shape == (32, 32, 3)
    x, _ = datasets.cifar10_subsets(shared / datasets.CIFAR10_ARCHIVE, {"test": 1})["test"]
    luma = x[0].astype(np.float32) / 255 @ np.asarray([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_array_equal(gray, np.clip(np.rint(luma * 255), 0, 255).astype(np.uint8))
    # the recipe's CAM of the first test image is sum_k w_k A_k of the heads trained the same way
    model = models.load("gray_cnn")
    data = datasets.cifar10_subsets(shared / datasets.CIFAR10_ARCHIVE, {"train": 4, "test": 2})
    xs = {k: (v[0].astype(np.float32) / 255 @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]
          for k, v in data.items()}
    f_train = heads.extract_features(model, xs["train"], "relu3", 32, 20)
    head = heads.PoolingHead(width=c.head_width, classes=10, pool="gap")
    trained = heads.train_head(head, f_train, data["train"][1], jax.random.key(c.seed), c.epochs, c.batch_size,
                               c.learning_rate)
    np.testing.assert_allclose(trained.losses, results["heads"]["gap"]["losses"], atol=1e-5)
    f_test = heads.extract_features(model, xs["test"], "relu3", 32, 20)
    out = heads.head_outputs(trained.params, jnp.asarray(f_test), head=head)
    pred = np.asarray(jnp.argmax(out["logits"], -1))
    w = np.asarray(trained.params["dense"]["kernel"])
    cams = np.einsum("nhwk,nk->nhw", np.asarray(out["head_relu"]), w[:, pred].T)  # sum_k w[k, c] A_k(x, y)
    cams = np.asarray(A.upsample(jnp.asarray(cams), (32, 32)))
    assert results["heads"]["gap"]["centre_fraction"]["mean"] == pytest.approx(evaluation.centre_fraction(cams).mean(), abs=1e-5)


def test_the_old_summary_name_still_works_with_a_deprecation_warning():
    from jfv import evaluation

    with pytest.warns(DeprecationWarning, match="jfv.evaluation.sample_stats"):
        old = gap_gmp.summary([1.0, 2.0, 4.0])
    assert old == evaluation.sample_stats([1.0, 2.0, 4.0])
