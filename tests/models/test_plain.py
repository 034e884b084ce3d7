"""jfv.models.plain: the channel-sliced forward pass of plain conv/ReLU/max-pool stacks, and the
engine's use of it for objectives that read one channel."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfv.optvis import objectives, parameterisations, transforms
from jfv.optvis.engine import Engine, activations
from jfv.models import plain


def images(n, size, channels=3, seed=3):
    return jax.random.uniform(jax.random.key(seed), (n, size, size, channels))


@pytest.mark.parametrize("layer", ["conv1_1", "relu2_2", "pool3", "conv4_3", "relu4_3", "pool4"])
def test_channel_equals_the_full_forward_pass_on_vgg16(vgg16, layer):
    """The sliced channel is the model's own value (to float rounding); earlier layers are complete."""
    x = images(2, 32)
    full = vgg16(x)
    for c in (0, 37, vgg16.layers[layer] - 1):
        acts = plain.channel_activations(vgg16, vgg16.params, x, layer, c)
        ref = full[layer][..., c]
        np.testing.assert_allclose(acts[layer][..., c], ref, rtol=0, atol=1e-5 * float(jnp.abs(ref).max()) + 1e-7,
                                   err_msg=f"{layer} {c}")
        others = np.delete(np.asarray(acts[layer]), c, axis=-1)
        assert not others.any()  # every other channel of the sliced layers is zero
    at = plain.sliced_conv_index(vgg16, layer)
    for op in plain.steps_of(vgg16)[:at]:
        np.testing.assert_array_equal(acts[op.name], full[op.name], err_msg=op.name)


def test_channel_equals_the_full_forward_pass_on_alexnet_and_a_wrapped_stack(alexnet, gray):
    """Overlapping 3x3 / stride-2 pools (AlexNet) and a wrapped 1-channel model's declared stack."""
    for model, x, layer, c in ((alexnet, images(1, 80), "pool5", 200), (alexnet, images(1, 80), "relu3", 5),
                               (gray, images(2, 32, channels=1), "relu3", 9)):
        got = plain.channel_activations(model, model.params, x, layer, c)[layer][..., c]
        np.testing.assert_allclose(got, model(x)[layer][..., c], rtol=1e-6, atol=1e-6, err_msg=f"{model.name} {layer}")


def test_vmapped_traced_channels_and_bfloat16(vgg16):
    x = images(1, 32)
    cs = jnp.asarray([3, 100, 511])
    got = jax.jit(jax.vmap(lambda c: plain.channel_activations(vgg16, vgg16.params, x, "conv4_3", c)["conv4_3"]))(cs)
    full = vgg16(x)["conv4_3"]
    for i, c in enumerate([3, 100, 511]):
        np.testing.assert_allclose(got[i][..., c], full[..., c], rtol=1e-5, atol=1e-5)
    bf = vgg16.with_precision("bfloat16")
    got = plain.channel_activations(bf, bf.params, x, "conv3_3", 7)["conv3_3"][..., 7]
    assert got.dtype == jnp.float32
    ref = bf(x)["conv3_3"][..., 7]
    np.testing.assert_allclose(got, ref, atol=2e-2 * float(jnp.abs(ref).max()))


def test_gradient_at_the_image_equals_the_full_pass(vgg16):
    """What AM differentiates: the channel objective's gradient with respect to the image."""
    x = images(2, 48)
    for obj in (objectives.channel("conv4_3", 71), objectives.neuron("conv3_3", 12),
                objectives.channel("pool2", 5) - 0.1 * objectives.total_variation()):
        assert obj.channel is not None

        def f(x, sliced, obj=obj):
            return obj(activations(vgg16, vgg16.params, x, x, obj if sliced else None))

        (v1, g1), (v0, g0) = (jax.value_and_grad(f)(x, s) for s in (True, False))
        np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5, err_msg=str(obj))
        scale = float(jnp.abs(g0).max())
        assert scale > 0
        np.testing.assert_allclose(g1, g0, atol=1e-6 * scale, err_msg=str(obj))


def test_which_objectives_are_sliced():
    c = objectives.channel("conv4_3", 3)
    assert c.channel == ("conv4_3", 3)
    assert (2.0 * c - 0.05 * objectives.total_variation()).channel == ("conv4_3", 3)
    assert (c + objectives.channel("conv4_3", 3)).channel == ("conv4_3", 3)
    assert (c + objectives.channel("conv4_3", 4)).channel is None  # two channels
    assert (c + objectives.channel("conv3_3", 3)).channel is None  # two layers
    assert (c - objectives.direction("conv4_3", np.ones(512))).channel is None  # the whole layer
    assert objectives.neuron("relu3_3", 5).channel == ("relu3_3", 5)
    assert objectives.direction("conv4_3", np.ones(512)).channel is None


def test_only_plain_stacks_after_a_conv_are_sliced(vgg16, vit):
    assert plain.sliced_conv_index(vgg16, "conv1_1") == 0
    assert plain.sliced_conv_index(vgg16, "pool4") == plain.sliced_conv_index(vgg16, "conv4_3")
    assert plain.sliced_conv_index(vgg16, "no_such_layer") is None
    assert plain.sliced_conv_index(vit, list(vit.layers)[1]) is None  # no plain stack: model.apply
    with pytest.raises(ValueError, match="compute it with model.apply"):
        plain.channel_activations(vit, vit.params, images(1, 32), list(vit.layers)[1], 0)


def _step_flops(model, layer, monkeypatch, full: bool) -> float:
    if full:
        monkeypatch.setenv(plain.FULL_LAYERS_ENV, "1")
    else:
        monkeypatch.delenv(plain.FULL_LAYERS_ENV, raising=False)
    engine = Engine.for_channels(model, lambda c: objectives.channel(layer, c), parameterisations.image(32),
                                 transforms.identity(), optax.adam(0.05))
    cs, vs = np.arange(2, dtype=np.int32), np.zeros(2, np.float32)
    state = engine.init(jax.random.key(0), cs, vs)
    compiled = engine._advance.lower(model.params, state, jnp.asarray(cs), jnp.asarray(vs), jnp.int32(1)).compile()
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])


def test_the_engine_computes_one_channel_and_the_switch_turns_it_off(vgg16, monkeypatch):
    """XLA's own count of the AM step's FLOPs: conv4_3 is 1.36 of VGG16's 10.7 GFLOP (forward, per
    image); without it, the forward and the input gradient shrink by about that share."""
    sliced = _step_flops(vgg16, "conv4_3", monkeypatch, full=False)
    full = _step_flops(vgg16, "conv4_3", monkeypatch, full=True)
    assert 0.80 < sliced / full < 0.92, (sliced, full)


def test_sliced_render_is_batch_independent(vgg16):
    """A channel's image depends on (seed, channel, settings) only, not on the other cells."""
    engine = Engine.for_channels(vgg16, lambda c: objectives.channel("conv3_3", c), parameterisations.image(32),
                                 transforms.standard(), optax.adam(0.05))
    many = engine.render([0, 3, 9], jax.random.key(1), 3, batch_size=3).images
    alone = engine.render([3], jax.random.key(1), 3, batch_size=1).images
    np.testing.assert_array_equal(many[1], alone[0])
