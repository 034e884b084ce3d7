"""Zeiler & Fergus's deconvnet with the max-pool switches as explicit data.

    forward:  x -> conv -> ReLU -> ... -> max-pool (record switches s = argmax per window) -> ...
    reverse:  from one channel of a layer (others zeroed), back down to pixels:
              unpool with s  ->  ReLU (rectify the signal)  ->  transposed conv (flipped filters)

Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks", section 2.1. The
biases are not used on the way down, as in the paper. The result is the gradient with respect to
the [0, 1] image (so the input normalisation's 1/std is applied last) and equals
``gradients.deconvnet`` (the same projection as a gradient through deconvnet ReLUs) to float error.

Works on plain conv/ReLU/max-pool stacks: registry entries with a ``plain_stack`` (``VGG16Features``,
``AlexNetFeatures``) and wrapped models that declare one (``jfv.models.wrap(..., plain_stack=...)``).
The input normalisation is the model's own: the module's ``normalise(images)`` method (the built-in
stacks' ImageNet statistics, a wrapped model's ``mean``, ``std`` and ``input_range``), applied on the
way up and differentiated (its vector-Jacobian product) at the end of the way down. For other models
use the gradient formulation, which needs only the swappable ReLU.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jfv import models
from jfv.attribution.targets import Target
from jfv.models.base import Model
from jfv.models.plain import Op, conv, declared_steps, param_at, steps_of
from jfv.models.wrap import Wrapped

Array = jax.Array


class NoSwitchesError(ValueError, NotImplementedError):
    """A model that is not a declared plain conv/ReLU/max-pool stack; the message names the fix."""


class Switches(NamedTuple):
    """A max-pool's recorded switches: the argmax's index within each window, row-major."""

    index: Array  # (n, Ho, Wo, C) int32 in [0, window**2)
    input_shape: tuple[int, ...]  # static: the pool input's shape
    window: int
    stride: int


def layer_sequence(model: Model) -> tuple[Op, ...]:
    """The model as a sequence of convs, ReLUs and max-pools: a wrapped model's declared
    ``plain_stack``, else its registry entry's (``models.entry_of``); raises ``NoSwitchesError``
    naming the fix for other models."""
    module = model.module
    if declared_steps(model) is None:
        if isinstance(module, Wrapped):
            raise NoSwitchesError(
                f"model {model.name!r} declares no plain conv/ReLU/max-pool stack for deconvnet with explicit "
                f"switches: pass plain_stack=[('conv', name, kernel, stride, padding, params_path), ('relu', name), "
                f"('pool', name, window, stride), ...] to jfv.models.wrap (docs/models.md), or use "
                f"jfv.attribution.deconvnet (the gradient formulation) instead")
        plain = [e.name for e in models.ENTRIES.values() if e.plain_stack is not None]
        raise NoSwitchesError(
            f"deconvnet_switches handles plain conv/ReLU/max-pool stacks ({', '.join(plain)}, or a wrapped "
            f"model declaring plain_stack), not {model.name!r} ({type(module).__name__}); use "
            f"jfv.attribution.deconvnet (the gradient formulation) instead")
    ops = steps_of(model)
    if ops is None:
        raise NoSwitchesError(f"model {model.name!r} ({type(module).__name__}) has no normalise(images) method for "
                              f"deconvnet's switches: give the module one mapping [0, 1] images to its first conv's input")
    return ops


def to_image(model: Model, images: Array, down: Array) -> Array:
    """The signal at the normalised input, as a gradient with respect to the [0, 1] images: the
    vector-Jacobian product of the model's ``normalise`` (``down * (hi - lo) / std`` for its affine map)."""
    _, vjp = jax.vjp(model.module.normalise, images)
    return vjp(down.astype(images.dtype))[0]


def transposed_conv(y: Array, kernel: Array, stride: int, padding: int, input_hw: tuple[int, int]) -> Array:
    """The transpose of a conv (HWIO ``kernel``, square ``stride`` and ``padding``): the spatially
    flipped filters with in/out channels swapped, run over the stride-dilated signal.

    Returns: (n, *input_hw, I) for y of shape (n, Ho, Wo, O).
    """
    k = kernel.shape[0]
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)  # HWOI -> used as HWIO from O to I
    pads = []
    for size, out in zip(input_hw, y.shape[1:3]):
        lo = k - 1 - padding
        hi = size - (stride * (out - 1) + 1) - lo + k - 1
        pads.append((lo, hi))
    return lax.conv_general_dilated(y, flipped, (1, 1), pads, lhs_dilation=(stride, stride),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _windows(x: Array, window: int, stride: int) -> Array:
    """(n, H, W, C) -> (window**2, n, Ho, Wo, C): every window's elements, row-major."""
    ho = (x.shape[1] - window) // stride + 1
    wo = (x.shape[2] - window) // stride + 1
    return jnp.stack([
        x[:, dy : dy + stride * (ho - 1) + 1 : stride, dx : dx + stride * (wo - 1) + 1 : stride]
        for dy in range(window) for dx in range(window)
    ])


def pool_with_switches(x: Array, window: int, stride: int) -> tuple[Array, Switches]:
    """Max-pool (VALID) that also returns where each maximum came from (first one on ties)."""
    w = _windows(x, window, stride)
    index = jnp.argmax(w, axis=0).astype(jnp.int32)
    pooled = jnp.take_along_axis(w, index[None], axis=0)[0]
    return pooled, Switches(index, tuple(x.shape), window, stride)


def unpool(y: Array, s: Switches) -> Array:
    """Places each value of ``y`` at its window's recorded maximum; zeros elsewhere."""
    out = jnp.zeros(s.input_shape, y.dtype)
    ho, wo = y.shape[1:3]
    k, st = s.window, s.stride
    for dy in range(k):
        for dx in range(k):
            part = jnp.where(s.index == dy * k + dx, y, 0)
            out = out.at[:, dy : dy + st * (ho - 1) + 1 : st, dx : dx + st * (wo - 1) + 1 : st].add(part)
    return out


def forward(model: Model, params, images: Array, ops: tuple[Op, ...]):
    """The forward pass of a plain stack from the model's normalised input: named activations, and
    switches for every pool."""
    x = model.module.normalise(images)
    acts: dict[str, Array] = {}
    switches: dict[str, Switches] = {}
    for op in ops:
        if op.kind == "conv":
            p = param_at(params, op.param)
            x = conv(x, p["kernel"], op.stride, op.padding) + p["bias"]
        elif op.kind == "relu":
            x = jnp.maximum(x, 0)
        else:
            x, switches[op.name] = pool_with_switches(x, op.window, op.stride)
        acts[op.name] = x
    return acts, switches


def reverse(params, signal: Array, start: str, ops: tuple[Op, ...], switches, input_shapes) -> Array:
    """The deconvnet's reverse pass from ``signal`` at layer ``start`` down to normalised input."""
    names = [op.name for op in ops]
    for op in reversed(ops[: names.index(start) + 1]):
        if op.kind == "pool":
            signal = unpool(signal, switches[op.name])
        elif op.kind == "relu":
            signal = jnp.maximum(signal, 0)
        else:
            signal = transposed_conv(signal, param_at(params, op.param)["kernel"], op.stride, op.padding,
                                     input_shapes[op.name])
    return signal


def _input_shapes(images, ops, acts):
    """The spatial size of each conv's input, for the transposed conv's output size."""
    shapes, hw = {}, tuple(images.shape[1:3])
    for op in ops:
        if op.kind == "conv":
            shapes[op.name] = hw
        hw = tuple(acts[op.name].shape[1:3])
    return shapes


@functools.partial(jax.jit, static_argnames=("model",))  # target: a pytree, its channel traced
def _switches(params, images, target: Target, *, model: Model):
    ops = layer_sequence(model)
    acts, switches = forward(model, params, images, ops)
    # The top signal: d score / d layer, i.e. the chosen channel's map (others zero), with the
    # target's reduction (ones for "sum", a one-hot at the strongest position for "max", the
    # feature map itself for "square").
    seed = jax.grad(lambda a: target.score({target.layer: a}).sum())(acts[target.layer])
    down = reverse(params, seed, target.layer, ops, switches, _input_shapes(images, ops, acts))
    return to_image(model, images, down), switches


def deconvnet_switches(model: Model, images: Array, target: Target) -> tuple[Array, dict[str, Switches]]:
    """Deconvnet projection of ``target`` to pixels with explicit switches.

    Args:
        model: a plain conv/ReLU/max-pool stack (VGG16, AlexNet, a wrapped model declaring ``plain_stack``).
        images: (n, H, W, channels) in [0, 1].
        target: a channel of a conv, ReLU or pool layer; ``strongest(layer, c)`` projects only the
            strongest activation, ``Target(layer, c, "square")`` the whole feature map.

    Returns:
        (projection (n, H, W, channels), {pool name: Switches}) — the switches recorded on the way up.

    Example:
        >>> img, sw = deconvnet_switches(model, images, strongest("relu4_3", 12))
        >>> sw["pool1"].index.shape   # (n, H/2, W/2, 64)
    """
    layer_sequence(model)  # fail before tracing for unsupported models
    model.check_input(images)
    target.check(model, images.shape[1:3])
    if target.softmax:
        raise ValueError("deconvnet projects activations; a softmax target has no deconvnet")
    return _switches(model.params, jnp.asarray(images, jnp.float32), target, model=model.static)


@functools.partial(jax.jit, static_argnames=("model", "layers"))
def _best_per_block(params, images, *, model: Model, layers: tuple[str, ...]):
    ops = layer_sequence(model)
    acts, switches = forward(model, params, images, ops)
    shapes = _input_shapes(images, ops, acts)
    out = {}
    for layer in layers:
        a = acts[layer]
        peak = a.max(axis=(1, 2))  # (n, C): each channel's strongest activation
        best = jnp.argmax(peak, axis=-1)  # (n,)
        onehot = jax.nn.one_hot(best, a.shape[-1], dtype=a.dtype)[:, None, None, :]
        # Keep only the best channel's strongest activation (its value, as Z&F feed it down).
        mask = (a == peak[:, None, None, :]) * onehot
        first = jnp.cumsum(mask.reshape(a.shape[0], -1), axis=1).reshape(a.shape) == 1
        seed = jnp.where(first & (mask > 0), a, 0)
        down = reverse(params, seed, layer, ops, switches, shapes)
        out[layer] = (to_image(model, images, down), best, peak.max(-1))
    return out


def best_per_block(model: Model, images: Array, layers: tuple[str, ...] | None = None):
    """For each block, the deconvnet projection of its strongest channel's strongest activation.

    "The best feature map at each block": per image, the channel of ``layer`` with the largest
    activation anywhere, all else zeroed, projected down with the switches.

    Args:
        layers: the layers to project from; default the last ReLU of every block.

    Returns:
        {layer: (projection (n, H, W, channels), channel (n,), activation (n,))}.
    """
    ops = layer_sequence(model)
    model.check_input(images)
    if layers is None:
        layers = tuple(ops[i - 1].name for i, op in enumerate(ops) if op.kind == "pool")
    for layer in layers:
        model.check_layer(layer)
    return _best_per_block(model.params, jnp.asarray(images, jnp.float32), model=model.static, layers=tuple(layers))


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def _project_units(params, images, channels, positions, *, model: Model, layer: str):
    ops = layer_sequence(model)
    acts, switches = forward(model, params, images, ops)
    a = acts[layer]
    rows = jnp.arange(a.shape[0])
    value = a[rows, positions[:, 0], positions[:, 1], channels]
    seed = jnp.zeros_like(a).at[rows, positions[:, 0], positions[:, 1], channels].set(value)
    down = reverse(params, seed, layer, ops, switches, _input_shapes(images, ops, acts))
    return to_image(model, images, down), value


def project_units(model: Model, images: Array, layer: str, channels: Array, positions: Array) -> tuple[Array, Array]:
    """Deconvnet projections of single units, one per image (Zeiler & Fergus 2014, Fig. 2).

    For image ``n``, the activation of channel ``channels[n]`` at ``positions[n]`` alone (its own
    value; every other activation of the layer zeroed) is passed down with that image's switches.
    The projection is zero outside the unit's receptive field (``jfv.models.receptive.box``) and equals
    ``value * deconvnet_switches(model, image, neuron(layer, c, y, x))`` for a positive value.

    Args:
        images: (n, H, W, channels) in [0, 1]; channels: (n,) int; positions: (n, 2) int (row, column).

    Returns:
        (projection (n, H, W, channels), value (n,)) — the gradient-like signal at the [0, 1] image.
    """
    layer_sequence(model)  # fail before tracing for unsupported models
    model.check_input(images)
    model.check_layer(layer)
    return _project_units(model.params, jnp.asarray(images, jnp.float32), jnp.asarray(channels, jnp.int32),
                          jnp.asarray(positions, jnp.int32), model=model.static, layer=layer)
