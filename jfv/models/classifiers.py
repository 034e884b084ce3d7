"""Full VGG16 and AlexNet, convolutions and classifier heads, laid out exactly as torchvision's.

The convolution stacks are ``VGG16Features`` / ``AlexNetFeatures`` (same parameter names). Then, as
torchvision: ``AdaptiveAvgPool2d`` to 7x7 (VGG16) or 6x6 (AlexNet), a flatten in **NCHW** order
(feature ``c * h * w + y * w + x``), and three dense layers; dropout is the identity at inference.

Named activations, after the feature ones (``conv5_3``, ``relu5_3``, ``pool5``...): ``avgpool``
(N, 7, 7, 512), ``fc6`` (pre-ReLU), ``relu6``, ``fc7``, ``relu7`` (N, 4096) and ``logits`` (N, 1000).

Simonyan & Zisserman 2015; Krizhevsky et al. 2012; torchvision.models.vgg / alexnet.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jfv.models.vgg import (VGG16_BLOCKS, alexnet_features, alexnet_geometry, imagenet_normalise, max_pool,
                            vgg_features, vgg_geometry)
from jfv.models.registry import Entry, TorchWeights, imagenet_labels
from jfv.models.receptive import GLOBAL, Adaptive, Layer

Array = jax.Array

VGG_POOLED = 7  # torchvision VGG: AdaptiveAvgPool2d((7, 7))
ALEXNET_POOLED = 6  # torchvision AlexNet: AdaptiveAvgPool2d((6, 6))
HIDDEN = 4096  # torchvision's classifier width
IMAGENET_CLASSES = 1000


def _adaptive_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) averaging weights of torch's adaptive pool: bin i is [floor(i n/m), ceil((i+1) n/m))."""
    m = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x: Array, size: int) -> Array:
    """torch ``AdaptiveAvgPool2d(size)`` on NHWC: (N, H, W, C) -> (N, size, size, C), exact bins."""
    rows = jnp.asarray(_adaptive_matrix(x.shape[1], size), x.dtype)
    cols = jnp.asarray(_adaptive_matrix(x.shape[2], size), x.dtype)
    return jnp.einsum("ih,jw,nhwc->nijc", rows, cols, x)


def flatten_nchw(x: Array) -> Array:
    """torch's ``flatten(1)`` of the NCHW tensor, from NHWC: (N, H, W, C) -> (N, C * H * W)."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


def _head(module: nn.Module, x: Array, pooled: int, out: dict[str, Array]) -> None:
    x = out["avgpool"] = adaptive_avg_pool(x, pooled)
    x = flatten_nchw(x)
    x = out["fc6"] = nn.Dense(HIDDEN, name="fc6")(x)
    x = out["relu6"] = module.relu(x)
    x = out["fc7"] = nn.Dense(HIDDEN, name="fc7")(x)
    x = out["relu7"] = module.relu(x)
    out["logits"] = nn.Dense(module.num_classes, name="fc8")(x)


def head_geometry(features: dict[str, Layer], last: str, pooled: int) -> dict[str, Layer]:
    """``_head``'s geometry after the feature layers: the adaptive pool, then dense (no extent)."""
    geo = dict(features)
    geo["avgpool"] = Layer(last, (Adaptive(pooled),))
    geo["fc6"] = Layer("avgpool", (GLOBAL,))
    for name, parent in (("relu6", "fc6"), ("fc7", "relu6"), ("relu7", "fc7"), ("logits", "relu7")):
        geo[name] = Layer(parent)
    return geo


class VGG16(nn.Module):
    """torchvision ``vgg16()``: ``VGG16Features``, 7x7 adaptive average pool, fc6/fc7 (4096), fc8.

    Returns (from ``__call__``): the feature activations plus ``avgpool`` (N, 7, 7, 512), ``fc6``,
    ``relu6``, ``fc7``, ``relu7`` (N, 4096) and ``logits`` (N, num_classes).
    """

    relu: Callable[[Array], Array] = nn.relu
    pool: Callable[..., Array] = max_pool
    blocks: Sequence[Sequence[int]] = VGG16_BLOCKS
    num_classes: int = IMAGENET_CLASSES

    @nn.compact
    def __call__(self, images: Array) -> dict[str, Array]:
        out: dict[str, Array] = {}
        x = vgg_features(imagenet_normalise(images), self.blocks, self.relu, self.pool, out)
        _head(self, x, VGG_POOLED, out)
        return out

    def geometry(self) -> dict[str, Layer]:
        """Each named layer's parent and the steps between them (``jfv.models.receptive``)."""
        return head_geometry(vgg_geometry(self.blocks), f"pool{len(self.blocks)}", VGG_POOLED)


class AlexNet(nn.Module):
    """torchvision ``alexnet()``: ``AlexNetFeatures``, 6x6 adaptive average pool, fc6/fc7 (4096), fc8.

    Returns (from ``__call__``): the feature activations plus ``avgpool`` (N, 6, 6, 256), ``fc6``,
    ``relu6``, ``fc7``, ``relu7`` (N, 4096) and ``logits`` (N, num_classes).
    """

    relu: Callable[[Array], Array] = nn.relu
    pool: Callable[..., Array] = max_pool
    num_classes: int = IMAGENET_CLASSES

    @nn.compact
    def __call__(self, images: Array) -> dict[str, Array]:
        out: dict[str, Array] = {}
        x = alexnet_features(imagenet_normalise(images), self.relu, self.pool, out)
        _head(self, x, ALEXNET_POOLED, out)
        return out

    def geometry(self) -> dict[str, Layer]:
        """Each named layer's parent and the steps between them (``jfv.models.receptive``)."""
        return head_geometry(alexnet_geometry(), "pool5", ALEXNET_POOLED)


def vgg16_torch_modules() -> dict[str, str]:
    """Flax module name -> torchvision's index in ``nn.Sequential`` (``conv4_3`` -> ``features.28``)."""
    names, index = {}, 0
    for b, widths in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, len(widths) + 1):
            names[f"conv{b}_{i}"] = f"features.{index}"
            index += 2  # conv, relu
        index += 1  # max-pool
    names.update({"fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"})
    return names


ALEXNET_TORCH_MODULES = {
    "conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
    "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6",
}

# The registry entries (``jfv.models.registry``): torchvision's ImageNet state dicts, converted.
VGG16_CLASSIFIER = Entry(
    name="vgg16_classifier", module=VGG16, image_size=224, labels=imagenet_labels,
    weights=TorchWeights(
        checkpoint=lambda: "PATH/TO/vgg16-397923af.pth",  # torchvision's ImageNet state dict
        reference="jfv.models.torch_reference:VGG16", torch_modules=vgg16_torch_modules(),
    ),
)
ALEXNET_CLASSIFIER = Entry(
    name="alexnet_classifier", module=AlexNet, image_size=224, labels=imagenet_labels,
    weights=TorchWeights(
        checkpoint=lambda: "PATH/TO/alexnet-owt-7be5be79.pth",  # torchvision's ImageNet state dict
        reference="jfv.models.torch_reference:AlexNet", torch_modules=ALEXNET_TORCH_MODULES,
    ),
)
ENTRIES = (VGG16_CLASSIFIER, ALEXNET_CLASSIFIER)
