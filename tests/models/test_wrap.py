"""jfv.models.wrap: a user's Flax module as a Model. A wrapped VGG16 equals the built-in one
(activations, AM images, attributions); the ViT and grayscale examples render and attribute end to
end; attribution targets are traced (10 classes, one compilation); bad input fails in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from compile_count import compiles
from configs import attribute_gray_cnn, attribute_vit_tiny, gray_cnn_channels, vit_tiny_channels
from jfv import attribution as A
from jfv import models
from jfv.optvis import objectives, parameterisations, transforms
from jfv.runtime import outputs
from jfv.models import examples
from jfv.recipes.attribution import attribute
from jfv.recipes.optvis import channels
from jfv.optvis.render import render_channels

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wrapped_vgg16(vgg16):
    return models.wrap(vgg16.module, vgg16.params, name="vgg16_wrapped", image_size=vgg16.image_size)


@pytest.fixture(scope="module")
def images32():
    return jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))


# --- a wrapped copy of VGG16 is the built-in one ------------------------------------------------


def test_wrapped_vgg16_same_layers_and_activations(vgg16, wrapped_vgg16, images32):
    assert list(wrapped_vgg16.layers.items()) == list(vgg16.layers.items())
    ours, ref = wrapped_vgg16(images32), vgg16(images32)
    for name in vgg16.layers:
        np.testing.assert_allclose(ours[name], ref[name], rtol=1e-6, atol=1e-6, err_msg=name)
    assert wrapped_vgg16.output_shapes(32) == vgg16.output_shapes(32)
    assert wrapped_vgg16.module.geometry() == vgg16.module.geometry()  # receptive fields carry over


def test_wrapped_vgg16_same_am_images(vgg16, wrapped_vgg16):
    def run(model):
        return render_channels(model, lambda c: objectives.channel("conv3_1", c), parameterisations.image(32),
                               transforms.standard(), optax.adam(0.05), [3, 5], jax.random.key(0), 2)

    ours, ref = run(wrapped_vgg16), run(vgg16)
    np.testing.assert_allclose(ours.images, ref.images, atol=1e-5)
    np.testing.assert_allclose(ours.objective, ref.objective, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet", "grad_cam"])
def test_wrapped_vgg16_same_attributions(vgg16, wrapped_vgg16, images32, method):
    target = A.channel("conv4_3", 7)
    if method == "grad_cam":
        ours, ref = (A.grad_cam(m, images32, target, "conv3_3") for m in (wrapped_vgg16, vgg16))
    else:
        ours, ref = (getattr(A, method)(m, images32, target) for m in (wrapped_vgg16, vgg16))
    assert float(jnp.abs(ref).max()) > 0
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6 * float(jnp.abs(ref).max()))


# --- deconvnet with explicit switches on a wrapped model -----------------------------------------


class PlainVGG16(nn.Module):
    """VGG16's convolutions on an already normalised input (the wrapper normalises): a user's copy."""

    @nn.compact
    def __call__(self, x):
        out = {}
        models.vgg.vgg_features(x, models.vgg.VGG16_BLOCKS, nn.relu, models.vgg.max_pool, out)
        return out


@pytest.fixture(scope="module")
def plain_vgg16(vgg16):
    stack = models.vgg.vgg_plain_stack(models.vgg.VGG16Features())
    return models.wrap(PlainVGG16(), vgg16.params, name="my_vgg16", mean=models.vgg.IMAGENET_MEAN,
                       std=models.vgg.IMAGENET_STD, image_size=32, plain_stack=stack)


def test_wrapped_vgg16_same_explicit_switches(vgg16, plain_vgg16, images32):
    """A user's VGG16 copy that declares its plain stack and ImageNet normalisation to wrap gets the
    built-in model's switch-based deconvnet, unit projections and best feature map per block."""
    target = A.strongest("relu4_3", 12)
    (ours, sw_ours), (ref, sw_ref) = (A.deconvnet_switches(m, images32, target) for m in (plain_vgg16, vgg16))
    scale = float(jnp.abs(ref).max())
    assert scale > 0
    np.testing.assert_allclose(ours, ref, atol=1e-5 * scale)
    np.testing.assert_array_equal(sw_ours["pool3"].index, sw_ref["pool3"].index)
    channels, positions = jnp.asarray([3, 9]), jnp.asarray([[1, 2], [3, 0]])
    (p_ours, v_ours), (p_ref, v_ref) = (A.project_units(m, images32, "conv3_3", channels, positions)
                                        for m in (plain_vgg16, vgg16))
    np.testing.assert_allclose(v_ours, v_ref, rtol=1e-5)
    np.testing.assert_allclose(p_ours, p_ref, atol=1e-5 * float(jnp.abs(p_ref).max()))
    b_ours, b_ref = (A.best_per_block(m, images32, ("relu2_2",))["relu2_2"] for m in (plain_vgg16, vgg16))
    np.testing.assert_array_equal(b_ours[1], b_ref[1])
    np.testing.assert_allclose(b_ours[0], b_ref[0], atol=1e-5 * float(jnp.abs(b_ref[0]).max()))


def test_gray_cnn_switches_equal_gradient_formulation(gray):
    """gray_cnn declares its plain stack: its activations are the module's, and the explicit-switch
    deconvnet equals the ReLU-swap one through the wrapper's (x - 0.5) / 0.25, 1-channel."""
    x = jax.random.uniform(jax.random.key(4), (2, 32, 32, 1))
    acts, _ = A.switches.forward(gray, gray.params, x, A.switches.layer_sequence(gray))
    full = gray(x)
    for name in ("conv1", "relu1", "conv2", "relu2", "conv3", "relu3"):
        np.testing.assert_allclose(acts[name], full[name], rtol=1e-6, atol=1e-6, err_msg=name)
    for target in (A.strongest("relu3", 5), A.Target("relu2", 7, "square")):
        explicit, switches = A.deconvnet_switches(gray, x, target)
        grad = A.deconvnet(gray, x, target)
        assert explicit.shape == (2, 32, 32, 1) and switches["pool1"].index.shape == (2, 16, 16, 16)
        scale = float(jnp.abs(grad).max())
        assert scale > 0
        np.testing.assert_allclose(explicit, grad, atol=1e-5 * scale)
    # the normalisation's Jacobian (1 / std = 4) is applied on the way down, by hand: a unit seed at
    # conv1's (0, 0) channel 0 projects to 4 * its kernel (the bias is not used on the way down)
    down = A.switches.to_image(gray, x[:1], jnp.ones((1, 32, 32, 1)))
    np.testing.assert_allclose(down, 4.0 * np.ones((1, 32, 32, 1)), rtol=1e-6)


def test_wrapped_model_without_plain_stack_gets_the_clear_error(wrapped_vgg16, vit, images32):
    for model, x in ((wrapped_vgg16, images32), (vit, jnp.zeros((1, 32, 32, 3)))):
        with pytest.raises(A.switches.NoSwitchesError, match=r"pass plain_stack=.*to jfv.models.wrap") as e:
            A.deconvnet_switches(model, x, A.strongest(list(model.layers)[1], 0))
        one_line(e)
    module = examples.GrayCNN()
    params = module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))["params"]
    with pytest.raises(models.WrapError, match="reads params 'conv9', which has no 4-D kernel") as e:
        models.wrap(module, params, channels=1, image_size=32, plain_stack=[("conv", "conv1", 3, 1, 1, "conv9")])
    one_line(e)
    with pytest.raises(models.WrapError, match="kind in conv, relu, pool"):
        models.wrap(module, params, channels=1, image_size=32, plain_stack=[("avgpool", "p", 2, 2)])


# --- what the wrapper does, by hand -------------------------------------------------------------


class Probe(nn.Module):
    """Sows its input (to check the normalisation) and returns a 1x1 conv of it."""

    @nn.compact
    def __call__(self, x):
        self.sow("intermediates", "seen", x)
        return nn.Conv(2, (1, 1), name="mix")(x)


def test_input_range_and_normalisation_by_hand():
    module = Probe()
    params = module.init(jax.random.key(0), jnp.zeros((1, 4, 4, 5)))["params"]
    mean, std = (10.0, 20.0, 30.0, 40.0, 50.0), (2.0, 4.0, 5.0, 8.0, 10.0)
    m = models.wrap(module, params, channels=5, mean=mean, std=std, input_range=(0, 255), image_size=4)
    assert m.channels == 5 and m.layers == {"seen": 5, "mix": 2, "output": 2}
    x = jax.random.uniform(jax.random.key(1), (3, 4, 4, 5))
    acts = m(x)
    np.testing.assert_allclose(acts["seen"], (255.0 * x - np.asarray(mean)) / np.asarray(std), rtol=1e-6)
    np.testing.assert_allclose(acts["output"], acts["mix"])
    only = models.wrap(module, params, channels=5, layers=["logits", "mix"], output="logits", image_size=4)
    assert list(only.layers) == ["mix", "logits"] and set(only(x)) == {"mix", "logits"}  # network order
    assert set(models.wrap(module, params, channels=5, layers=["mix"], image_size=4)(x)) == {"mix"}


class BNNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.BatchNorm(use_running_average=True, name="bn")(nn.Conv(4, (3, 3), name="conv")(x))


def test_batch_stats_as_state():
    module = BNNet()
    variables = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    stats = {"batch_stats": {"bn": {"mean": jnp.arange(4.0), "var": jnp.full((4,), 4.0)}}}
    with pytest.raises(models.WrapError, match="state="):
        models.wrap(module, variables["params"], image_size=8)
    m = models.wrap(module, variables["params"], state=stats, image_size=8)
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    acts = m(x)
    np.testing.assert_allclose(acts["bn"], (acts["conv"] - jnp.arange(4.0)) / jnp.sqrt(4.0 + 1e-5), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["output"], module.apply({**variables, **stats}, x), rtol=1e-6)


def test_token_objectives_by_hand():
    a = {"t": jnp.arange(2 * 5 * 4, dtype=jnp.float32).reshape(2, 5, 4)}
    assert float(objectives.token("t", 1, 2)(a)) == pytest.approx(float(a["t"][:, 2, 1].mean()))
    assert float(objectives.token("t", 3)(a)) == pytest.approx(float(a["t"][:, 2, 3].mean()))  # middle token
    assert float(objectives.neuron("t", 3, x=4)(a)) == pytest.approx(float(a["t"][:, 4, 3].mean()))
    assert float(objectives.channel("t", 1)(a)) == pytest.approx(float(a["t"][..., 1].mean()))  # over tokens
    with pytest.raises(ValueError, match="token layer"):
        objectives.token("s", 0)({"s": jnp.zeros((1, 2, 2, 3))})


def test_one_channel_param_and_png(tmp_path):
    p = parameterisations.image(16, 2, decorrelate=False, channels=1)
    img = p.to_image(p.init(jax.random.key(0)))
    assert img.shape == (2, 16, 16, 1) and float(img.min()) >= 0 and float(img.max()) <= 1
    outputs.save_png(img[0], tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), outputs.to_uint8(img[0]))
    with pytest.raises(ValueError, match="set decorrelate=False"):
        parameterisations.image(16, channels=1)


@pytest.mark.filterwarnings("ignore:Using 'Module.sow\\(\\)' outside:DeprecationWarning")  # flax 0.12's NNX sow
def test_nnx_module_through_the_bridge():
    from flax import nnx

    class NNXNet(nnx.Module):
        def __init__(self, width: int, rngs: nnx.Rngs):
            self.conv = nnx.Conv(1, width, (3, 3), rngs=rngs)
            self.head = nnx.Linear(width, 10, rngs=rngs)

        def __call__(self, x):
            h = nnx.relu(self.conv(x))
            self.sow(nnx.Intermediate, "relu1", h)
            return self.head(h.mean((1, 2)))

    trained = NNXNet(4, nnx.Rngs(3))
    params = nnx.to_pure_dict(nnx.state(trained, nnx.Param))
    with pytest.raises(models.WrapError, match=r"nnx.bridge.to_linen\(NNXNet"):
        models.wrap(trained, params, channels=1, image_size=8)
    m = models.wrap(nnx.bridge.to_linen(NNXNet, 4), params, channels=1, image_size=8, output="logits")
    assert m.layers == {"relu1": 4, "logits": 10}
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
    np.testing.assert_allclose(m(x)["logits"], trained(x), rtol=1e-6, atol=1e-6)


# --- the examples, end to end -------------------------------------------------------------------


@pytest.mark.parametrize("config,layer,mode", [(gray_cnn_channels, "relu3", "L"), (vit_tiny_channels, "block2", "RGB")])
def test_examples_render_end_to_end(tmp_path, config, layer, mode):
    c = config.get_config()
    c.channels, c.steps, c.image_size, c.progress = "0,1", 2, 32, False
    c.objective = "neuron"  # the ViT's per-token neuron: objectives.token
    manifest = channels.run(c, str(tmp_path))
    assert [e["image"] for e in manifest["channels"]] == [f"channels/{layer}_0000.png", f"channels/{layer}_0001.png"]
    with Image.open(tmp_path / manifest["channels"][0]["image"]) as im:
        assert im.mode == mode and im.size == (32, 32)
    assert all(np.isfinite(e["objective"]) for e in manifest["channels"])
    assert (tmp_path / "sprite.png").exists() and (tmp_path / "index.html").exists()


@pytest.mark.parametrize("config", [attribute_gray_cnn, attribute_vit_tiny])
def test_examples_attribute_end_to_end(tmp_path, config):
    c = config.get_config()
    c.image_size, c.smoothgrad_samples, c.faithfulness_steps = 32, 2, 1
    manifest = attribute.run(c, str(tmp_path))
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["grid_layout"]["columns"] == ["input"] + c.methods.split(",")
    for method in manifest["methods"]:
        info = manifest["images"][0]["methods"][method]
        assert (tmp_path / info["picture"]).exists() and np.isfinite(info["deletion_auc"])


def test_traced_class_equals_direct_gradient(gray):
    x = jax.random.uniform(jax.random.key(2), (2, 32, 32, 1))
    for k in (0, 7):
        ref = jax.grad(lambda im: gray(im)["logits"][:, k].sum())(x)
        np.testing.assert_allclose(A.gradient(gray, x, A.label(k)), ref, rtol=1e-5, atol=1e-7)


def test_ten_classes_compile_once():
    x = jax.random.uniform(jax.random.key(2), (2, 32, 32, 1))
    A.gradient(examples.gray_cnn(seed=1), x, A.label(0)).block_until_ready()  # eager helpers compiled
    fresh = examples.gray_cnn(seed=2)  # a new Model: a new jit cache entry
    assert compiles(lambda: [A.gradient(fresh, x, A.label(k)).block_until_ready() for k in range(10)]) == 1
    assert compiles(lambda: [A.grad_cam(fresh, x, A.label(k), "relu2").block_until_ready() for k in range(10)]) == 1


def test_missing_relu_field_gets_the_clear_error(vit):
    x = jnp.zeros((1, 32, 32, 3))
    for method in (A.deconvnet, A.guided_backprop):
        with pytest.raises(models.MissingFieldError, match=r"add 'relu: Callable = nn.relu'"):
            method(vit, x, A.label(0))
    with pytest.raises(models.MissingFieldError, match="no field 'relu'"):
        vit.with_module(relu=A.guided_relu)
    assert A.saliency(vit, x, A.label(0)).shape == (1, 32, 32)  # what needs no ReLU still runs


# --- bad input: one line naming the fix ---------------------------------------------------------


class Opaque(nn.Module):
    """No submodules, nothing sown, a scalar returned: nothing to capture."""

    @nn.compact
    def __call__(self, x):
        return jnp.sum(x * self.param("w", nn.initializers.ones, (3,)))


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


def test_module_without_activations():
    module = Opaque()
    params = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    with pytest.raises(models.WrapError, match=r"exposes no activations.*self.sow") as e:
        models.wrap(module, params, image_size=8)
    one_line(e)
    with pytest.raises(models.WrapError, match="takes a flax.linen.Module"):
        models.wrap(lambda x: x, {}, image_size=8)


def test_unknown_layer_path_lists_the_valid_ones():
    module = examples.GrayCNN()
    params = module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))["params"]
    with pytest.raises(models.WrapError, match=r"no layer path\(s\) 'conv9'.*valid paths: conv1, relu1, conv2") as e:
        models.wrap(module, params, channels=1, layers=["conv1", "conv9"], image_size=32)
    one_line(e)
    with pytest.raises(models.WrapError, match="mean has 3 values but the model takes 1 channel"):
        models.wrap(module, params, channels=1, mean=(0.5, 0.5, 0.5), image_size=32)


def test_wrong_number_of_input_channels(gray, vit):
    with pytest.raises(models.InputChannelsError, match=r"\(n, H, W, 1\).*convert them to grayscale") as e:
        A.saliency(gray, jnp.zeros((1, 32, 32, 3)), A.label(0))
    one_line(e)
    with pytest.raises(models.InputChannelsError, match="give 3-channel images"):
        vit(jnp.zeros((1, 32, 32, 1)))
    with pytest.raises(models.InputChannelsError, match=r"add the batch axis, e.g. images\[None\]"):
        gray(jnp.zeros((32, 32, 1)))
    with pytest.raises(models.InputChannelsError):
        A.occlusion(gray, np.zeros((1, 32, 32, 3), np.float32), A.label(0), window=8, stride=8)


def test_cli_grayscale_with_colour_decorrelation(tmp_path):
    workdir = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "jfv", "--config=configs/gray_cnn_channels.py", f"--workdir={workdir}",
                          "--config.decorrelate=True", "--config.steps=1", "--config.image_size=32"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jfv: error: decorrelate") and "--config.decorrelate=False" in lines[0]
    assert not workdir.exists() or not any(workdir.iterdir())


def test_example_geometries_match_their_shapes(gray, vit):
    """gray_cnn and vit_tiny declare geometry() (receptive fields, top_patches): it agrees with the
    modules' output shapes at two sizes; the ViT's patch embedding has 4x4 patches, its tokens none."""
    from jfv.models import receptive

    for model in (gray, vit):
        for size in (32, 48):
            receptive.check(model, size)
    assert receptive.receptive_field(gray, "relu3") == receptive.ReceptiveField(size=18, stride=4, offset=-7)
    assert receptive.receptive_field(vit, "patch_embed") == receptive.ReceptiveField(size=4, stride=4, offset=0)
    assert not receptive.has_extent(receptive.geometry(vit), "block1")
