"""The CAM head (jfv.attribution.heads): logits and CAM match hand computations, training learns, and the head sits
on any model's layer, a built-in one and one made with jfv.models.wrap."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv import attribution as A
from jfv.attribution import heads
from jfv import models


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-attr")


def _head(pool, width=5, classes=3, hw=4, channels=6, seed=0):
    head = heads.PoolingHead(width=width, classes=classes, pool=pool)
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
    got = np.asarray(heads.head_cam(head, params, feats, classes))
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
        head = heads.PoolingHead(width=8, classes=classes, pool=pool)
        result = heads.train_head(head, feats.astype(np.float32), labels, jax.random.key(0), epochs=8,
                                    batch_size=20, learning_rate=0.03)
        assert result.losses.shape == (8,)
        assert result.losses[-1] < 0.5 * result.losses[0], (pool, result.losses)
        pred = np.argmax(heads.head_outputs(result.params, jnp.asarray(feats), head=head)["logits"], -1)
        assert np.mean(pred == labels) > 0.9, pool


def test_same_key_same_init_and_order_for_both_pools():
    feats = np.ones((5, 3, 3, 4), np.float32)
    labels = np.zeros(5, np.int32)
    a = heads.train_head(heads.PoolingHead(4, 3, "gap"), feats, labels, jax.random.key(1), 0, 2, 0.1)
    b = heads.train_head(heads.PoolingHead(4, 3, "gmp"), feats, labels, jax.random.key(1), 0, 2, 0.1)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_recipe_cam_equals_library_cam_on_the_combined_model(vgg16):
    # a head on relu2_2 keeps the compiled network small (XLA drops the unused deeper layers)
    head, params, _ = _head("gap", width=7, classes=10, hw=1, channels=128)
    images = np.asarray(jax.random.uniform(jax.random.key(2), (2 * 16 * 16 * 3,))).reshape(2, 16, 16, 3)
    full = heads.with_head(vgg16, "relu2_2", head, params)
    assert full.layers["logits"] == 10 and full.layers["head_relu"] == 7
    classes = np.array([[3], [8]])
    want = A.cam(full, images, classes, "head_relu")[:, 0]  # the head's dense kernel found in the params
    feats = jax.jit(lambda p, x: full.apply(p, x)["relu2_2"])(full.params, images)
    np.testing.assert_allclose(heads.head_cam(head, params, feats, classes[:, 0]), want, rtol=1e-4, atol=1e-4)



@pytest.mark.parametrize("pool", ["gap", "gmp"])
def test_head_on_a_wrapped_model_gives_the_hand_cam_and_logits(pool):
    model = models.load("gray_cnn")  # jfv.models.wrap around a linen module (random weights)
    assert not isinstance(model.module, __import__("flax").linen.Module)
    images = np.asarray(jax.random.uniform(jax.random.key(4), (2 * 32 * 32,))).reshape(2, 32, 32, 1)
    feats = np.asarray(model(jnp.asarray(images))["relu3"])  # (2, 8, 8, 32)
    head = heads.PoolingHead(width=5, classes=4, pool=pool)
    params = head.init(jax.random.key(5), feats)["params"]
    full = heads.with_head(model, "relu3", head, params)
    assert full.channels == 1 and full.layers["logits"] == 4 and full.layers["head_relu"] == 5
    acts = full(jnp.asarray(images))
    np.testing.assert_allclose(acts["relu3"], feats, rtol=1e-6, atol=1e-6)  # the wrapped model's own layers stay
    maps = _hand_maps(params, feats)
    w, b = np.asarray(params["dense"]["kernel"]), np.asarray(params["dense"]["bias"])
    pooled = maps.mean((1, 2)) if pool == "gap" else maps.max((1, 2))
    np.testing.assert_allclose(acts["logits"], pooled @ w + b, rtol=1e-4, atol=1e-5)
    classes = np.array([[1], [3]])
    want = np.stack([maps[i] @ w[:, c] for i, c in enumerate(classes[:, 0])])  # sum_k w[k, c] A_k(x, y)
    got = np.asarray(A.cam(full, images, classes, "head_relu")[:, 0])  # the kernel found in the params
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_relu_swaps_reach_the_wrapped_model_under_the_head():
    model = models.load("gray_cnn")
    images = jnp.asarray(jax.random.uniform(jax.random.key(6), (2 * 32 * 32,)).reshape(2, 32, 32, 1))
    head = heads.PoolingHead(width=4, classes=3)
    params = head.init(jax.random.key(7), model(images)["relu2"])["params"]
    full = heads.with_head(model, "relu2", head, params)
    assert full.module.relu is model.module.relu  # fields read through to the wrapped module
    target = A.label(2)
    sal = np.asarray(A.saliency(full, images, target))
    # the saliency equals the gradient of the composition written out by hand
    def score(x):
        return heads.PoolingHead(width=4, classes=3).apply({"params": params}, model(x)["relu2"])["logits"][:, 2].sum()
    np.testing.assert_allclose(sal, np.abs(np.asarray(jax.grad(score)(images))).max(-1), rtol=1e-4, atol=1e-6)
    guided = np.asarray(A.guided_backprop(full, images, target))
    plain = np.asarray(A.gradient(full, images, target))
    assert guided.shape == plain.shape == images.shape and np.isfinite(guided).all()
    assert not np.allclose(guided, plain)  # the guided ReLU replaced the wrapped module's ReLU


def test_extract_features_equals_the_model_on_each_upsampled_image_and_compiles_once():
    """``extract_features`` (the one pass, over images in memory): uint8 images divided by 255 and
    upsampled, ``layer`` per image, whatever the batch; another count of images compiles nothing."""
    from compile_count import compiles
    from tiny_model import tiny_classifier

    model = tiny_classifier(seed=1)
    x = (np.random.default_rng(2).uniform(size=(5, 8, 8, 3)) * 255).astype(np.uint8)
    got = heads.extract_features(model, x, "relu2", 16, batch_size=2)
    assert got.shape == (5, 8, 8, 8) and got.dtype == np.float32
    for i in range(5):
        want = model(heads.upsample_images(x[i : i + 1], 16))["relu2"]
        np.testing.assert_allclose(got[i], np.asarray(want)[0], rtol=1e-5, atol=1e-6)
    assert compiles(lambda: heads.extract_features(model, x[:3], "relu2", 16, batch_size=2)) == 0
