"""Attribution methods against hand-computed cases (CPU, no network; VGG16 cases at 32 px)."""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv import attribution as A
from jfv import models
from jfv.models import vgg
from jfv.models.base import ChannelOutOfRangeError, Model

KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def vgg16():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-attr")
    return models.load("vgg16")


@pytest.fixture(scope="module")
def images32():
    return jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))


class GapHead(nn.Module):
    """conv -> ReLU -> global average (or max) pooling -> dense: the CAM paper's head."""

    pooling: str = "avg"
    relu: object = nn.relu
    classes: int = 5

    @nn.compact
    def __call__(self, x):
        f = nn.Conv(6, (3, 3), name="conv")(x)
        r = self.relu(f)
        pooled = r.mean((1, 2)) if self.pooling == "avg" else r.max((1, 2))
        return {"conv": f, "relu": r, "pooled": pooled, "logits": nn.Dense(self.classes, name="fc")(pooled)}


def tiny(module, size=16, seed=0) -> Model:
    x = jnp.zeros((1, size, size, 3))
    params = module.init(jax.random.key(seed), x)["params"]
    out = jax.eval_shape(lambda p: module.apply({"params": p}, x), params)
    return Model("tiny", module, params, {k: v.shape[-1] for k, v in out.items()}, size)


# -- ReLUs -------------------------------------------------------------------------------------


def test_custom_relus_backward_by_hand():
    x = jnp.array([-1.0, 2.0, 3.0, -4.0])
    g = jnp.array([1.0, -1.0, 2.0, -2.0])
    for relu in (A.deconvnet_relu, A.guided_relu):
        np.testing.assert_array_equal(relu(x), jnp.maximum(x, 0))
    _, vjp = jax.vjp(A.deconvnet_relu, x)
    np.testing.assert_array_equal(vjp(g)[0], [1.0, 0.0, 2.0, 0.0])  # max(g, 0), whatever x
    _, vjp = jax.vjp(A.guided_relu, x)
    np.testing.assert_array_equal(vjp(g)[0], [0.0, 0.0, 2.0, 0.0])  # max(g, 0) * [x > 0]


# -- deconvnet ---------------------------------------------------------------------------------


def test_deconvnet_one_block_equals_transposed_conv_with_switches():
    """conv (3x3, pad 1) + ReLU + 2x2 max-pool, projected from pool channel 2 by hand in numpy."""
    module = vgg.VGG16Features(blocks=((4,),))
    model = tiny(module, size=6, seed=3)
    x = jax.random.uniform(jax.random.key(2), (1, 6, 6, 3))
    target = A.channel("pool1", 2)

    kernel = np.asarray(model.params["conv1_1"]["kernel"])  # (3, 3, 3, 4) HWIO
    relu = np.asarray(model(x)["relu1_1"])[0]  # (6, 6, 4)
    seed = np.zeros((3, 3, 4), np.float32)
    seed[..., 2] = 1.0  # d sum(pool1[..., 2]) / d pool1
    unpooled = np.zeros((6, 6, 4), np.float32)
    for i in range(3):
        for j in range(3):
            for c in range(4):
                win = relu[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
                dy, dx = np.unravel_index(np.argmax(win), (2, 2))  # the switch
                unpooled[2 * i + dy, 2 * j + dx, c] = seed[i, j, c]
    rectified = np.maximum(unpooled, 0)
    down = np.zeros((6, 6, 3), np.float32)  # transposed conv: scatter each output through the filter
    for y in range(6):
        for x_ in range(6):
            for dy in range(3):
                for dx in range(3):
                    yy, xx = y + dy - 1, x_ + dx - 1
                    if 0 <= yy < 6 and 0 <= xx < 6:
                        down[yy, xx] += kernel[dy, dx] @ rectified[y, x_]
    expected = down / np.asarray(vgg.IMAGENET_STD)

    explicit, switches = A.deconvnet_switches(model, x, target)
    np.testing.assert_allclose(explicit[0], expected, atol=1e-5)
    np.testing.assert_allclose(A.deconvnet(model, x, target)[0], expected, atol=1e-5)
    assert switches["pool1"].index.shape == (1, 3, 3, 4)


@pytest.mark.parametrize("target", [A.strongest("relu4_3", 12), A.Target("pool4", 7, "square")])
def test_switches_equal_gradient_formulation_on_vgg16(vgg16, images32, target):
    explicit, _ = A.deconvnet_switches(vgg16, images32, target)
    grad = A.deconvnet(vgg16, images32, target)
    scale = float(jnp.abs(grad).max())
    assert scale > 0
    np.testing.assert_allclose(explicit, grad, atol=1e-5 * scale)


def test_best_per_block(vgg16, images32):
    assert A.switches.layer_sequence(vgg16)[-2].name == "relu5_3"
    out = A.best_per_block(vgg16, images32, ("relu2_2", "relu3_3"))
    for layer, (img, best, peak) in out.items():
        assert img.shape == images32.shape and best.shape == (2,)
        acts = vgg16(images32)[layer]
        np.testing.assert_allclose(peak, acts.max(axis=(1, 2, 3)), rtol=1e-5)
        # the same as the strongest activation of that channel, projected by the gradient formulation
        ref = A.deconvnet(vgg16, images32[:1], A.strongest(layer, int(best[0]))) * peak[0]
        np.testing.assert_allclose(img[:1], ref, atol=1e-4 * float(jnp.abs(ref).max()))


def test_deconvnet_switches_refuses_other_models():
    with pytest.raises(NotImplementedError, match="gradient formulation"):
        A.deconvnet_switches(tiny(GapHead()), jnp.zeros((1, 16, 16, 3)), A.label(0))


# -- gradient methods --------------------------------------------------------------------------


def test_gradient_methods_shapes_and_relations(vgg16, images32):
    t = A.channel("conv4_3", 9)
    g = A.gradient(vgg16, images32, t)
    assert g.shape == images32.shape and bool(jnp.isfinite(g).all())
    np.testing.assert_allclose(A.saliency(vgg16, images32, t), jnp.abs(g).max(-1))
    np.testing.assert_allclose(A.gradient_x_input(vgg16, images32, t), (g * images32).sum(-1), rtol=1e-6)
    gb = A.guided_backprop(vgg16, images32, t)
    assert gb.shape == images32.shape and float(jnp.abs(gb - g).max()) > 0
    # one image alone gives the same map as in a batch
    np.testing.assert_allclose(A.gradient(vgg16, images32[1:], t)[0], g[1], atol=1e-5 * float(jnp.abs(g).max()))
    # no recompilation on a second call with the same shapes
    before = A.gradients._gradient._cache_size()
    A.gradient(vgg16, images32 * 0.5, t)
    assert A.gradients._gradient._cache_size() == before


def test_smoothgrad_same_key_same_map(vgg16, images32):
    t = A.channel("conv3_1", 4)
    a = A.smoothgrad(vgg16, images32, t, jax.random.key(7), samples=2)
    b = A.smoothgrad(vgg16, images32, t, jax.random.key(7), samples=2)
    c = A.smoothgrad(vgg16, images32, t, jax.random.key(8), samples=2)
    assert a.shape == (2, 32, 32)
    np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(a - c).max()) > 0
    # zero noise is the plain saliency
    np.testing.assert_allclose(A.smoothgrad(vgg16, images32, t, KEY, samples=2, noise=0.0),
                               A.saliency(vgg16, images32, t), rtol=1e-5, atol=1e-6)


# -- CAM and Grad-CAM --------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_cam_is_dense_weights_times_feature_maps(pooling):
    model = tiny(GapHead(pooling=pooling))
    x = jax.random.uniform(KEY, (3, 16, 16, 3))
    maps = A.cam(model, x, [0, 3], "relu")
    f = np.asarray(model(x)["relu"])
    w = np.asarray(model.params["fc"]["kernel"])  # (6, 5)
    expected = np.stack([np.einsum("nhwk,k->nhw", f, w[:, c]) for c in (0, 3)], axis=1)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
    if pooling == "avg":  # GAP: the map's mean plus the bias is the logit
        logits = model(x)["logits"]
        np.testing.assert_allclose(maps.mean((2, 3)) + model.params["fc"]["bias"][jnp.array([0, 3])],
                                   logits[:, jnp.array([0, 3])], rtol=1e-5, atol=1e-6)
    top, classes, probs = A.cam_top_k(model, x, 2, "relu")
    np.testing.assert_array_equal(classes, jnp.argsort(-model(x)["logits"], axis=1)[:, :2])
    np.testing.assert_allclose(top[:, 0], np.einsum("nhwk,kn->nhw", f, w[:, np.asarray(classes[:, 0])]), rtol=1e-5, atol=1e-6)
    assert A.upsample(top, (32, 32)).shape == (3, 2, 32, 32)


def test_grad_cam_of_gap_head_is_rectified_cam():
    """For GAP + dense, d logit_c / d f_k(x, y) = w[k, c] / (h w), so Grad-CAM = ReLU(CAM) / (h w)."""
    model = tiny(GapHead())
    x = jax.random.uniform(KEY, (2, 16, 16, 3))
    gc = A.grad_cam(model, x, A.label(1), "relu")
    cam = A.cam(model, x, 1, "relu")[:, 0]
    np.testing.assert_allclose(gc, jnp.maximum(cam, 0) / (16 * 16), rtol=1e-5, atol=1e-7)


def test_grad_cam_on_relu_conv_and_pool_layers(vgg16, images32):
    t = A.channel("conv5_1", 2)
    for layer, size in (("conv3_3", 8), ("relu3_3", 8), ("pool3", 4)):
        m = A.grad_cam(vgg16, images32, t, layer)
        assert m.shape == (2, size, size) and bool(jnp.isfinite(m).all()) and float(m.min()) >= 0
    # the gradient at relu4_1 by the tap equals the gradient obtained by hand through the rest of the net
    acts, g = A.activation_gradient(vgg16, vgg16.params, images32, "conv5_1", t.score)
    np.testing.assert_allclose(g, jnp.broadcast_to(jax.nn.one_hot(2, 512), g.shape), atol=0)


def test_cam_errors():
    model = tiny(GapHead())
    x = jnp.zeros((1, 16, 16, 3))
    with pytest.raises(A.TargetError, match="outside tiny's head, which has 5 classes"):
        A.cam(model, x, 5, "relu")
    with pytest.raises(A.NoSpatialExtentError, match="no spatial axes"):
        A.cam(model, x, 0, "pooled")
    with pytest.raises(A.NoSpatialExtentError):
        A.grad_cam(model, x, A.label(0), "logits")
    with pytest.raises(ChannelOutOfRangeError, match="use 0..4"):
        A.grad_cam(model, x, A.label(9), "relu")


# -- occlusion ---------------------------------------------------------------------------------


class Linear(nn.Module):
    relu: object = nn.relu

    @nn.compact
    def __call__(self, x):
        return {"logits": nn.Dense(4, name="fc")(x.reshape(x.shape[0], -1))}


def test_occlusion_of_linear_model_is_closed_form():
    model = tiny(Linear(), size=12)
    x = jax.random.uniform(KEY, (2, 12, 12, 3))
    occ = A.occlusion(model, x, A.label(2), window=5, stride=3, fill=0.5, batch_size=7)
    w = np.asarray(model.params["fc"]["kernel"])[:, 2].reshape(12, 12, 3)
    base = np.asarray(model(x)["logits"])[:, 2]
    np.testing.assert_array_equal(occ.ys, [0, 3, 6, 7])
    expected = np.zeros((2, 4, 4))
    for n in range(2):
        for i, y in enumerate(occ.ys):
            for j, x0 in enumerate(occ.xs):
                patch = np.asarray(x[n, y : y + 5, x0 : x0 + 5]) - 0.5
                expected[n, i, j] = base[n] - (w[y : y + 5, x0 : x0 + 5] * patch).sum()
    np.testing.assert_allclose(occ.scores, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(occ.baseline, base, rtol=1e-6)
    assert occ.heatmap.shape == (2, 12, 12)


def test_batched_occlusion_equals_window_loop(vgg16, images32):
    t = A.channel("conv4_3", 30)
    occ = A.occlusion(vgg16, images32, t, window=12, stride=10, batch_size=8)  # 9 positions x 2 images
    for n in range(2):
        for i, y in enumerate(occ.ys):
            for j, x0 in enumerate(occ.xs):
                img = images32[n].at[y : y + 12, x0 : x0 + 12].set(0.5)
                ref = t.score(vgg16(img[None]))[0]
                np.testing.assert_allclose(occ.scores[n, i, j], ref, rtol=1e-4)


def test_occlusion_errors(vgg16, images32):
    with pytest.raises(A.WindowError, match="larger than the 32 px image"):
        A.occlusion(vgg16, images32, A.channel("conv3_1", 0), window=40)
    with pytest.raises(ChannelOutOfRangeError):
        A.occlusion(vgg16, images32, A.channel("conv3_1", 256), window=8)


# -- deletion / insertion ----------------------------------------------------------------------


def test_deletion_insertion_on_toy_model_with_known_order():
    """score = sum(w * x); deleting pixels to 0 in the order of w removes the largest terms first."""
    model = tiny(Linear(), size=4)
    w = np.arange(16, dtype=np.float32)[::-1].reshape(4, 4)  # pixel (0, 0) matters most
    kernel = np.zeros((48, 4), np.float32)
    kernel[:, 0] = np.repeat(w.reshape(-1), 3)
    model = Model("toy", model.module, {"fc": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(4)}}, model.layers, 4)
    x = jnp.ones((1, 4, 4, 3))
    t = A.label(0)
    good = A.deletion_insertion(model, x, t, jnp.asarray(w)[None], steps=4, baseline=0.0, batch_size=5)
    order = np.sort(w.reshape(-1))[::-1] * 3
    total = order.sum()
    np.testing.assert_allclose(good.deletion[0], [total - order[: 4 * s].sum() for s in range(5)])
    np.testing.assert_allclose(good.insertion[0], [order[: 4 * s].sum() for s in range(5)])
    bad = A.deletion_insertion(model, x, t, -jnp.asarray(w)[None], steps=4, baseline=0.0)
    assert float(good.deletion_auc[0]) < float(bad.deletion_auc[0])
    assert float(good.insertion_auc[0]) > float(bad.insertion_auc[0])
    np.testing.assert_allclose(good.deletion_auc[0], np.trapezoid(good.deletion[0], good.fractions), rtol=1e-6)
