"""Checkerboard analysis: deconvnet and guided-backprop projections of each layer's strongest
channel, and how much of each sits on the unpooling grid.

For each layer and image the channel with the largest activation anywhere is kept and every other
channel of the layer zeroed (Zeiler & Fergus 2014; seed 003: "nullify all channels but one and feed
in the deconvnet"), then the signal is passed down to the pixels twice, through the model's ReLU
swapped for the deconvnet ReLU and for the guided one (``jfv.attribution.gradients``):

    deconvnet ReLU      g_in = max(g_out, 0)                 (Zeiler & Fergus 2014)
    guided ReLU         g_in = max(g_out, 0) * [x > 0]       (Springenberg et al. 2015)

Max-pools route the signal through their forward argmax (the switches) either way, so the two
differ only at the ReLUs. What is passed down (``reduce``):

- ``square``: the channel's whole feature map (the gradient of 0.5 sum m^2 is m), seed 003's figure;
- ``max``: only its strongest activation, as Zeiler & Fergus's figures project.

The checkerboard energy of a projection (``jfv.evaluation.checkerboard_energy``) is the share of its
power on the frequencies of a period-s grid: s = 2 is the grid of one 2x2 unpooling; the layer's
total stride S (``total_stride``: 2 per pool of VGG16, so 32 at ``pool5``) is the grid of all the
unpoolings below it, whose bins include the s = 2 ones.

Example:
    >>> model = jfv.models.load("vgg16")
    >>> p = project(model, images, ("pool5", "pool1"))      # deepest first
    >>> p["pool5"].deconvnet.shape                          # (n, H, W, 3)
    >>> measure(p["pool5"], 2)["deconvnet"]                 # (n,) in [0, 1]

Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks"; Springenberg,
Dosovitskiy, Brox & Riedmiller 2015, "Striving for Simplicity: The All Convolutional Net"; Odena,
Dumoulin & Olah 2016, "Deconvolution and Checkerboard Artifacts".
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfv import evaluation
from jfv.models import receptive
from jfv.attribution.gradients import check_relu, deconvnet_relu, guided_relu
from jfv.attribution.targets import Target
from jfv.models.base import Model

Array = jax.Array

METHODS = {"deconvnet": deconvnet_relu, "guided_backprop": guided_relu}  # method -> the ReLU swapped in
REDUCTIONS = ("square", "max")  # the channel's whole map | its strongest activation only
PROBE_SIZE = 1024  # image side at which a model without declared geometry is measured for its stride


class CheckerboardError(ValueError):
    """A layer or model the analysis cannot use: no spatial map, no swappable ReLU, a bad setting."""


class Projections(NamedTuple):
    """One layer's projections of each image's strongest channel."""

    layer: str
    channels: np.ndarray  # (n,) int: each image's strongest channel
    peaks: np.ndarray  # (n,) its largest activation
    deconvnet: np.ndarray  # (n, H, W, C): d score / d pixels through deconvnet ReLUs (C: the model's channels)
    guided_backprop: np.ndarray  # (n, H, W, C): through guided ReLUs


def check_layer(model: Model, layer: str) -> None:
    """Raises (naming the fix) unless ``layer`` is a spatial layer of ``model``."""
    model.check_layer(layer)
    shape = model.output_shapes(PROBE_SIZE)[layer]
    if len(shape) != 4:
        spatial = [k for k, s in model.output_shapes(PROBE_SIZE).items() if len(s) == 4]
        raise CheckerboardError(f"layer {layer!r} of {model.name} has no spatial map (shape {shape[1:]}): "
                                f"pick a convolution, ReLU or pool layer such as {', '.join(spatial[-3:])}")


def total_stride(model: Model, layer: str) -> int:
    """The layer's total stride: input pixels between neighbouring positions of its map.

    From the model's declared geometry (``jfv.models.receptive.receptive_field``) where it has one; else
    ``round(P / size(P))`` with ``size(P)`` the layer's map side at a ``P = PROBE_SIZE`` input,
    exact for any stack of windows whose borders trim fewer than ``P / S**2`` pixels (the CIFAR
    convnet's 2x2 whitening conv trims one). 1 for a layer before any downsampling.
    """
    check_layer(model, layer)
    try:
        return int(receptive.receptive_field(model, layer).stride)
    except receptive.GeometryError:
        side = model.output_shapes(PROBE_SIZE)[layer][1]
        return max(1, round(PROBE_SIZE / side))


@functools.partial(jax.jit, static_argnames=("model", "layers", "reduce"))
def _project(params, images, *, model: Model, layers: tuple[str, ...], reduce: str):
    acts = model.apply(params, images)
    out = {}
    for layer in layers:
        peak = acts[layer].max(axis=(1, 2))  # (n, C): each channel's strongest activation
        channels = jnp.argmax(peak, axis=-1).astype(jnp.int32)
        target = Target(layer, 0, reduce)  # the channel is overridden per image below
        maps = []
        for relu in METHODS.values():
            m = model.with_module(relu=relu)
            maps.append(jax.grad(lambda x, m=m: target.score(m.apply(params, x), channels).sum())(images))
        out[layer] = (channels, peak.max(-1), *maps)
    return out


def project(model: Model, images: Array, layers: Sequence[str], reduce: str = "square") -> dict[str, Projections]:
    """Deconvnet and guided-backprop projections of each layer's strongest channel, per image.

    One compiled program for all layers and both methods (the same layers again do not recompile).

    Args:
        model: a Model whose module has a ``relu`` field (VGG16, AlexNet, the CIFAR convnet, ...).
        images: (n, H, W, C) in [0, 1], C the model's input channels (``model.from_rgb(photos)``).
        layers: spatial layers, e.g. ``("pool5", "pool4")``.
        reduce: ``square`` (the channel's whole map, seed 003) | ``max`` (its strongest activation).

    Returns:
        {layer: Projections} in the order of ``layers``.
    """
    images = jnp.asarray(images, jnp.float32)
    model.check_input(images)  # (n, H, W, model.channels), else InputChannelsError naming the fix
    if reduce not in REDUCTIONS:
        raise CheckerboardError(f"unknown reduce {reduce!r}; valid: {', '.join(REDUCTIONS)}")
    check_relu(model, "the checkerboard analysis (deconvnet and guided backprop)")  # MissingFieldError naming the fix
    layers = tuple(layers)
    if not layers:
        raise CheckerboardError("no layers to project from: name at least one, e.g. pool5")
    for layer in layers:
        check_layer(model, layer)
    shapes = model.output_shapes(tuple(images.shape[1:3]))
    small = [layer for layer in layers if min(shapes[layer][1:3]) < 1]
    if small:
        raise CheckerboardError(f"images of {images.shape[1]}x{images.shape[2]} pixels leave no positions in "
                                f"{', '.join(small)} of {model.name}: use larger images or shallower layers")
    raw = _project(model.params, images, model=model.static, layers=layers, reduce=reduce)
    return {layer: Projections(layer, *(np.asarray(v) for v in raw[layer])) for layer in layers}


def measure(p: Projections, stride: int = evaluation.CHECKERBOARD_STRIDE) -> dict[str, np.ndarray]:
    """The checkerboard energy of every image's projection by each method: {method: (n,)}."""
    return {method: np.asarray(evaluation.checkerboard_energies(getattr(p, method), stride)) for method in METHODS}


__all__ = ["CheckerboardError", "METHODS", "Projections", "REDUCTIONS", "check_layer", "measure", "project",
           "total_stride"]
