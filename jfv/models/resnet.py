"""ImageNet ResNets laid out exactly as torchvision's (v1.5: the stride sits on the 3x3 conv).

Input is RGB in [0, 1], NHWC; the network normalises with torchvision's ImageNet statistics. The
output is a dict of named activations, named after torchvision's modules:

    conv1 (pre-BN) -> bn1 (pre-ReLU) -> relu -> maxpool -> layer1.0 ... layer4.2 -> avgpool -> logits

``layerS.B`` is residual block B of stage S after its closing ReLU; ``layerS`` is the stage's output
(the same array as its last block), so ``layer4`` is the feature map before the global pool.
``avgpool`` is the pooled (N, C) vector, ``logits`` the (N, 1000) pre-softmax scores.

Every padding is explicit and symmetric as in torch: Flax's ``'SAME'`` pads stride-2 convolutions
asymmetrically and would shift every feature map by half a pixel. BatchNorm runs in inference mode
with its running statistics stored as ordinary parameters (torchvision's ``FrozenBatchNorm2d``), so
``Model.apply(params, x)`` needs no mutable collections.

The ReLU and the max-pool are module fields, so attribution can swap them (guided backprop,
deconvnet) without global overrides.

He et al. 2016, "Deep Residual Learning for Image Recognition"; torchvision.models.resnet.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jfv.models.registry import Entry, TorchWeights, imagenet_labels
from jfv.models.vgg import imagenet_normalise, max_pool
from jfv.models.receptive import GLOBAL, Layer, Residual, Window

Array = jax.Array

BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d default

# Blocks per stage, torchvision.models.resnet{18,34,50,101,152}.
RESNET_STAGES: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)  # torchvision: planes per stage
BOTTLENECK_EXPANSION = 4  # torchvision Bottleneck.expansion
IMAGENET_CLASSES = 1000


class BatchNorm(nn.Module):
    """BatchNorm over the last axis: ``(x - mean) / sqrt(var + eps) * scale + bias``.

    Inference (the default): ``mean`` and ``var`` are torch's ``running_mean`` / ``running_var``,
    held as params, so a loaded model needs no mutable collections. Training (``train=True``):
    the batch's statistics normalise, and the running ones live in the ``batch_stats`` collection
    and move as torch's do, ``running = (1 - momentum) * running + momentum * batch`` (the unbiased
    variance); ``merge_batch_stats`` turns a trained (params, batch_stats) pair into the inference
    params.

    Ioffe & Szegedy 2015, "Batch Normalization".
    """

    epsilon: float = BN_EPSILON
    train: bool = False
    momentum: float = 0.1  # torch's BatchNorm2d default: the weight of the new batch

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        if not self.train:
            mean = self.param("mean", nn.initializers.zeros, (c,), jnp.float32)
            var = self.param("var", nn.initializers.ones, (c,), jnp.float32)
        else:
            running_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
            running_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
            axes = tuple(range(x.ndim - 1))
            n = x.size // c
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - mean), axes)
            if not self.is_initializing():
                m = self.momentum
                running_mean.value = (1 - m) * running_mean.value + m * jax.lax.stop_gradient(mean)
                running_var.value = (1 - m) * running_var.value + m * jax.lax.stop_gradient(var) * (n / max(n - 1, 1))
        return (x - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias


def merge_batch_stats(params: Mapping[str, Any], batch_stats: Mapping[str, Any]) -> dict:
    """Inference params from a trained pair: each BatchNorm's running ``mean`` / ``var`` moved from
    ``batch_stats`` into its params (the layout ``BatchNorm(train=False)`` reads)."""
    out = dict(params)
    for k, v in batch_stats.items():
        leaf = set(v) == {"mean", "var"} and not isinstance(v["mean"], Mapping)
        out[k] = dict(params[k], **v) if leaf else merge_batch_stats(params[k], v)
    return out


def conv(features: int, kernel: int, stride: int = 1, padding: int = 0, name: str | None = None) -> nn.Conv:
    """torch's ``Conv2d(bias=False)`` with symmetric explicit padding, on NHWC input."""
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        use_bias=False,
        kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),  # torchvision's init
        name=name,
    )


class ResidualBlock(nn.Module):
    """What torchvision's two blocks share: their fields and ``relu(y + shortcut(x))``, the shortcut a
    strided 1x1 conv and BatchNorm (``downsample_0``, ``downsample_1``) when ``downsample``."""

    planes: int
    stride: int = 1
    downsample: bool = False
    relu: Callable[[Array], Array] = nn.relu

    def residual(self, y: Array, x: Array) -> Array:
        """``relu(y + shortcut(x))``, the shortcut widened to ``y``'s channels; called from ``__call__``."""
        if self.downsample:
            x = conv(y.shape[-1], 1, self.stride, 0, name="downsample_0")(x)
            x = BatchNorm(name="downsample_1")(x)
        return self.relu(y + x)


class BasicBlock(ResidualBlock):
    """torchvision ``BasicBlock``: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); 3x3, 3x3."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        y = conv(self.planes, 3, self.stride, 1, name="conv1")(x)
        y = self.relu(BatchNorm(name="bn1")(y))
        y = conv(self.planes, 3, 1, 1, name="conv2")(y)
        y = BatchNorm(name="bn2")(y)
        return self.residual(y, x)


class Bottleneck(ResidualBlock):
    """torchvision ``Bottleneck`` (v1.5): 1x1 -> 3x3 (stride here) -> 1x1 to 4x planes, + shortcut."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        y = conv(self.planes, 1, name="conv1")(x)
        y = self.relu(BatchNorm(name="bn1")(y))
        y = conv(self.planes, 3, self.stride, 1, name="conv2")(y)
        y = self.relu(BatchNorm(name="bn2")(y))
        y = conv(self.planes * BOTTLENECK_EXPANSION, 1, name="conv3")(y)
        y = BatchNorm(name="bn3")(y)
        return self.residual(y, x)


class ResNet(nn.Module):
    """torchvision ResNet: 7x7/2 stem, 3x3/2 max-pool, four stages of residual blocks, GAP, fc.

    Attributes:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50/101/152).
        stages: blocks per stage, e.g. ``(3, 4, 6, 3)``.
        num_classes: width of ``fc``.
        relu: the ReLU used everywhere (a field so attribution can swap it).
        pool: ``(x, window, stride, padding) -> x``, the stem's max-pool.

    Returns (from ``__call__``):
        dict of NHWC activations ``conv1, bn1, relu, maxpool, layerS.B, layerS`` and ``avgpool``
        (N, C), ``logits`` (N, num_classes). At 224 px ``layer4`` is (N, 7, 7, 512 or 2048).
    """

    block: str = "bottleneck"
    stages: Sequence[int] = (3, 4, 6, 3)
    num_classes: int = IMAGENET_CLASSES
    relu: Callable[[Array], Array] = nn.relu
    pool: Callable[..., Array] = max_pool

    @nn.compact
    def __call__(self, images: Array) -> dict[str, Array]:
        if self.block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', not {self.block!r}")
        Block = BasicBlock if self.block == "basic" else Bottleneck
        expansion = 1 if self.block == "basic" else BOTTLENECK_EXPANSION
        out: dict[str, Array] = {}
        x = imagenet_normalise(images)
        x = out["conv1"] = conv(64, 7, 2, 3, name="conv1")(x)
        x = out["bn1"] = BatchNorm(name="bn1")(x)
        x = out["relu"] = self.relu(x)
        x = out["maxpool"] = self.pool(x, 3, 2, 1)
        in_channels = 64
        for s, (n_blocks, planes) in enumerate(zip(self.stages, STAGE_WIDTHS), start=1):
            for b in range(n_blocks):
                stride = 2 if (b == 0 and s > 1) else 1
                downsample = b == 0 and (stride != 1 or in_channels != planes * expansion)
                x = Block(planes, stride, downsample, self.relu, name=f"layer{s}_{b}")(x)
                out[f"layer{s}.{b}"] = x
                in_channels = planes * expansion
            out[f"layer{s}"] = x
        x = out["avgpool"] = jnp.mean(x, axis=(1, 2))
        out["logits"] = nn.Dense(self.num_classes, name="fc")(x)
        return out

    def geometry(self) -> dict[str, Layer]:
        """Each named layer's parent and the steps between them (``jfv.models.receptive``), as ``__call__``."""
        expansion = 1 if self.block == "basic" else BOTTLENECK_EXPANSION
        geo = {"conv1": Layer(None, (Window(7, 2, 3),)), "bn1": Layer("conv1"), "relu": Layer("bn1"),
               "maxpool": Layer("relu", (Window(3, 2, 1),))}
        last, in_channels = "maxpool", 64
        for s, (n_blocks, planes) in enumerate(zip(self.stages, STAGE_WIDTHS), start=1):
            for b in range(n_blocks):
                stride = 2 if (b == 0 and s > 1) else 1
                downsample = b == 0 and (stride != 1 or in_channels != planes * expansion)
                if self.block == "basic":
                    main = (Window(3, stride, 1), Window(3, 1, 1))
                else:
                    main = (Window(1), Window(3, stride, 1), Window(1))
                shortcut = (Window(1, stride),) if downsample else ()
                geo[f"layer{s}.{b}"] = Layer(last, (Residual((main, shortcut)),))
                last, in_channels = f"layer{s}.{b}", planes * expansion
            geo[f"layer{s}"] = Layer(last)
        geo["avgpool"] = Layer(last, (GLOBAL,))
        geo["logits"] = Layer("avgpool")
        return geo


def resnet(depth: int, **fields) -> ResNet:
    """The torchvision ResNet of the given depth (18, 34, 50, 101 or 152)."""
    if depth not in RESNET_STAGES:
        raise ValueError(f"no ResNet-{depth}; torchvision's depths are {sorted(RESNET_STAGES)}")
    block, stages = RESNET_STAGES[depth]
    return ResNet(block=block, stages=stages, **fields)


# The registry entries (``jfv.models.registry``): torchvision's ImageNet state dicts, converted.
ENTRIES = tuple(
    Entry(
        name=f"resnet{depth}", module=functools.partial(resnet, depth), image_size=224, labels=imagenet_labels,
        weights=TorchWeights(
            checkpoint=lambda depth=depth: f"PATH/TO/resnet{depth}-HASH.pth",  # torchvision's ImageNet state dict
            reference="jfv.models.torch_reference:resnet", reference_args=(depth,),
        ),
    )
    for depth in RESNET_STAGES
)
