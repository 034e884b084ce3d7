"""CIFAR-10 ResNet-20/32/44/56 with option-A shortcuts, laid out as akamaster/pytorch_resnet_cifar10.

Three stages of ``n = (depth - 2) / 6`` basic blocks at 16, 32 and 64 channels on 32x32 input; the
first block of stages 2 and 3 halves the resolution. Option-A shortcuts carry no parameters: the
input is subsampled with stride 2 and zero-padded with ``planes // 4`` channels on each side, as
that repository's ``LambdaLayer``:

    F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))

Input is RGB in [0, 1], NHWC; the network normalises with ``mean`` and ``std`` (fields). The
default is the normalisation the pretrained weights were trained with, which akamaster's
``trainer.py`` sets to torchvision's ImageNet statistics, not the CIFAR-10 ones; on the 20 lossless
foolbox PNGs and the 10,000 JPEG test images the ImageNet statistics score higher (see
``benchmarks/models.md``).

Named activations: ``conv1`` (pre-BN), ``bn1``, ``relu``, ``layerS.B`` (block outputs after their
ReLU), ``layerS`` (stage outputs; ``layer3`` is the map before the pool), ``avgpool`` (N, 64) and
``logits`` (N, 10).

He et al. 2016, "Deep Residual Learning for Image Recognition", section 4.2.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jfv.models import labels as labels_lib
from jfv.models.registry import Entry, TorchWeights, cifar10_labels
from jfv.models.resnet import BatchNorm
from jfv.models.vgg import IMAGENET_MEAN, IMAGENET_STD
from jfv.models.receptive import GLOBAL, Layer, Residual, Window

Array = jax.Array

CIFAR_DEPTHS = (20, 32, 44, 56)  # He et al. 2016, table 6; akamaster's released checkpoints
CIFAR_STAGE_WIDTHS = (16, 32, 64)  # He et al. 2016, section 4.2
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 training set per-channel mean
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # CIFAR-10 training set per-channel std
# akamaster/pytorch_resnet_cifar10 trainer.py normalises with torchvision's ImageNet statistics.
TRAINED_MEAN = IMAGENET_MEAN
TRAINED_STD = IMAGENET_STD
CIFAR10_CLASSES_N = 10


def conv3x3(features: int, stride: int, name: str) -> nn.Conv:
    """torch ``Conv2d(k=3, stride, padding=1, bias=False)``; kaiming-normal init as akamaster's."""
    return nn.Conv(
        features,
        (3, 3),
        strides=(stride, stride),
        padding=((1, 1), (1, 1)),
        use_bias=False,
        kernel_init=nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
        name=name,
    )


def shortcut_a(x: Array, planes: int) -> Array:
    """Option-A shortcut on NHWC: ``x[:, ::2, ::2, :]`` zero-padded by ``planes // 4`` channels a side."""
    x = x[:, ::2, ::2, :]
    p = planes // 4
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (p, p)))


class CifarBlock(nn.Module):
    """akamaster ``BasicBlock``: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut_a(x))."""

    planes: int
    stride: int = 1
    relu: Callable[[Array], Array] = nn.relu
    train: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        y = conv3x3(self.planes, self.stride, "conv1")(x)
        y = self.relu(BatchNorm(train=self.train, name="bn1")(y))
        y = conv3x3(self.planes, 1, "conv2")(y)
        y = BatchNorm(train=self.train, name="bn2")(y)
        if self.stride != 1 or x.shape[-1] != self.planes:
            x = shortcut_a(x, self.planes)
        return self.relu(y + x)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet: 3x3 stem (16), 3 stages of ``blocks`` basic blocks, GAP, linear.

    Attributes:
        blocks: basic blocks per stage, ``(depth - 2) // 6``.
        num_classes: width of ``linear``.
        mean, std: input normalisation, ``(x - mean) / std`` on RGB in [0, 1].
        relu: the ReLU used everywhere (a field so attribution can swap it).
        train: batch statistics in every BatchNorm, running ones in ``batch_stats`` (training);
            False reads them from params (inference, the layout of converted weights).

    Returns (from ``__call__``):
        dict of NHWC activations; ``layer3`` is (N, 8, 8, 64) at 32 px, ``logits`` (N, 10).
    """

    blocks: int = 3
    num_classes: int = CIFAR10_CLASSES_N
    mean: Sequence[float] = TRAINED_MEAN
    std: Sequence[float] = TRAINED_STD
    relu: Callable[[Array], Array] = nn.relu
    train: bool = False

    @nn.compact
    def __call__(self, images: Array) -> dict[str, Array]:
        out: dict[str, Array] = {}
        x = (images - jnp.asarray(self.mean, images.dtype)) / jnp.asarray(self.std, images.dtype)
        x = out["conv1"] = conv3x3(CIFAR_STAGE_WIDTHS[0], 1, "conv1")(x)
        x = out["bn1"] = BatchNorm(train=self.train, name="bn1")(x)
        x = out["relu"] = self.relu(x)
        for s, planes in enumerate(CIFAR_STAGE_WIDTHS, start=1):
            for b in range(self.blocks):
                stride = 2 if (b == 0 and s > 1) else 1
                x = CifarBlock(planes, stride, self.relu, self.train, name=f"layer{s}_{b}")(x)
                out[f"layer{s}.{b}"] = x
            out[f"layer{s}"] = x
        # akamaster: F.avg_pool2d(out, out.size()[3]), a global average on square inputs.
        x = out["avgpool"] = jnp.mean(x, axis=(1, 2))
        out["logits"] = nn.Dense(
            self.num_classes, kernel_init=nn.initializers.variance_scaling(2.0, "fan_in", "normal"), name="linear"
        )(x)
        return out

    def geometry(self) -> dict[str, Layer]:
        """Each named layer's parent and the steps between them (``jfv.models.receptive``), as ``__call__``.

        The option-A shortcut ``x[:, ::2, ::2]`` reads input ``2 i``: a 1x1 window with stride 2.
        """
        geo = {"conv1": Layer(None, (Window(3, 1, 1),)), "bn1": Layer("conv1"), "relu": Layer("bn1")}
        last, channels = "relu", CIFAR_STAGE_WIDTHS[0]
        for s, planes in enumerate(CIFAR_STAGE_WIDTHS, start=1):
            for b in range(self.blocks):
                stride = 2 if (b == 0 and s > 1) else 1
                shortcut = (Window(1, 2),) if (stride != 1 or channels != planes) else ()
                main = (Window(3, stride, 1), Window(3, 1, 1))
                geo[f"layer{s}.{b}"] = Layer(last, (Residual((main, shortcut)),))
                last, channels = f"layer{s}.{b}", planes
            geo[f"layer{s}"] = Layer(last)
        geo["avgpool"] = Layer(last, (GLOBAL,))
        geo["logits"] = Layer("avgpool")
        return geo


def cifar_resnet(depth: int, **fields) -> CifarResNet:
    """The CIFAR ResNet of the given depth (20, 32, 44, 56; any 6n + 2 works)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (e.g. {CIFAR_DEPTHS}), not {depth}")
    return CifarResNet(blocks=(depth - 2) // 6, **fields)


def checkpoint_hint(stem: str) -> str:
    """akamaster's pretrained ``<stem>-*.th`` in ``../shared``, or a placeholder path."""
    shared = labels_lib.shared_dir()
    if shared is not None:
        found = sorted((shared / "weights" / "cifar10-resnet").glob(f"{stem}-*.th"))
        if found:
            return str(found[0])
    return f"PATH/TO/{stem}-HASH.th"  # akamaster/pytorch_resnet_cifar10 pretrained_models


# The registry entries (``jfv.models.registry``): akamaster's CIFAR-10 checkpoints, converted (or a
# jfv training run: ``configs/cifar10_train_resnet20.py``).
ENTRIES = tuple(
    Entry(
        name=f"cifar_resnet{depth}", module=functools.partial(cifar_resnet, depth), image_size=32,
        labels=cifar10_labels, normalisation="ImageNet mean and std (as akamaster trained them), inside the module",
        weights=TorchWeights(
            checkpoint=functools.partial(checkpoint_hint, f"resnet{depth}"),  # the shared folder may move: looked up late
            reference="jfv.models.torch_reference:cifar_resnet", reference_args=(depth,),
        ),
    )
    for depth in CIFAR_DEPTHS
)
