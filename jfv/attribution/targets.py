"""Targets: what an attribution method explains, as a score per image.

A Target names a layer, a channel (or one channel per image) and how the channel's map becomes one
number: the sum over positions, the mean, the strongest position (Zeiler & Fergus's "strongest
activation"), one neuron at a given position, or half the squared norm (whose gradient is the
feature map itself: Zeiler & Fergus's "pass the feature map down"). Class targets are channels of
``logits``; ``softmax=True`` scores the class probability instead of the logit.

Targets are frozen pytrees whose channel is data (layer, reduction, position and softmax are
static): a jitted method takes the target as an ordinary argument, so looping over 1,000 classes
compiles once. They are hashable too (with concrete channels), to key caches as static arguments.

Example:
    >>> t = channel("conv4_3", 7)                  # sum of channel 7's map
    >>> t = strongest("relu5_3", 12)               # its strongest activation only
    >>> t = neuron("conv4_3", 7, y=3, x=5)
    >>> t = label(281, softmax=True)               # class probability of "tabby cat"
    >>> t.score(model(images)).shape               # (n,)
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from jfv.models.base import ChannelOutOfRangeError, Model

Array = jax.Array

REDUCTIONS = ("sum", "mean", "max", "square", "neuron")


class TargetError(ValueError):
    """A target the model cannot score: unknown layer, channel outside it, position off the map."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One channel (a class is a channel of ``logits``) reduced to one score per image.

    Attributes:
        layer: a name in the model's layer table.
        channel: an int, or a tuple with one channel per image (e.g. each image's top class).
        reduce: ``sum`` | ``mean`` | ``max`` | ``square`` (0.5 * sum of squares) | ``neuron``.
        position: (y, x) on the layer's map, for ``reduce="neuron"``.
        softmax: score softmax(activations)[channel] (class probability) instead of the raw value.
    """

    layer: str
    channel: int | tuple[int, ...]
    reduce: str = "sum"
    position: tuple[int, int] | None = None
    softmax: bool = False

    def __post_init__(self):
        if self.reduce not in REDUCTIONS:
            raise TargetError(f"unknown reduce {self.reduce!r}; valid: {', '.join(REDUCTIONS)}")
        if (self.reduce == "neuron") != (self.position is not None):
            raise TargetError("reduce='neuron' needs position=(y, x), and position needs reduce='neuron'")

    def __repr__(self) -> str:
        extra = f", position={self.position}" if self.position is not None else ""
        sm = ", softmax" if self.softmax else ""
        return f"Target({self.layer}[{self.channel}], {self.reduce}{extra}{sm})"

    @property
    def description(self) -> str:
        return repr(self)[len("Target(") : -1]

    def channels(self, n: int) -> Array:
        """The channel of each of ``n`` images, shape (n,) int32."""
        if isinstance(self.channel, tuple):
            if len(self.channel) != n:
                raise TargetError(f"target has {len(self.channel)} channels but there are {n} images")
            return jnp.asarray(self.channel, jnp.int32)
        return jnp.full((n,), self.channel, jnp.int32)

    def score_map(self, a: Array, channels: Array | None = None) -> Array:
        """The channel's activations: (n, C) -> (n,), (n, H, W, C) -> (n, H, W).

        ``channels`` (n,) overrides the target's channel per image (used when images are occluded
        or masked copies of others, each scored for its original's channel).
        """
        if self.softmax:
            a = jax.nn.softmax(a, axis=-1)
        idx = self.channels(a.shape[0]) if channels is None else channels
        idx = idx.reshape((-1,) + (1,) * (a.ndim - 1))
        return jnp.take_along_axis(a, idx, axis=-1)[..., 0]

    def reduce_map(self, m: Array) -> Array:
        """(n, ...) channel activations -> (n,) scores."""
        if m.ndim == 1:
            return m
        axes = tuple(range(1, m.ndim))
        if self.reduce == "sum":
            return m.sum(axes)
        if self.reduce == "mean":
            return m.mean(axes)
        if self.reduce == "max":
            return m.max(axes)
        if self.reduce == "square":
            return 0.5 * jnp.square(m).sum(axes)
        y, x = self.position
        return m[:, y, x]

    def score(self, acts: Mapping[str, Array], channels: Array | None = None) -> Array:
        """Named activations (batch n) -> scores, shape (n,)."""
        return self.reduce_map(self.score_map(acts[self.layer], channels))

    def check(self, model: Model, image_size: int | tuple[int, int]) -> None:
        """Raises TargetError (or the model's layer error) naming the fix when this target is invalid."""
        n = model.check_layer(self.layer)
        chans = self.channel if isinstance(self.channel, tuple) else (self.channel,)
        bad = [int(c) for c in chans if not 0 <= int(c) < n]
        if bad:
            what = "class" if self.layer == "logits" else "channel"
            raise ChannelOutOfRangeError(
                f"target {what}(es) {bad} outside {model.name} layer {self.layer!r}, which has {n} "
                f"{'classes' if what == 'class' else 'channels'}: use 0..{n - 1}"
            )
        if self.position is not None:
            hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
            shape = model.output_shapes(hw)[self.layer]
            if len(shape) != 4:
                raise TargetError(f"layer {self.layer!r} has no spatial map, so a neuron position cannot be used")
            y, x = self.position
            if not (0 <= y < shape[1] and 0 <= x < shape[2]):
                raise TargetError(
                    f"neuron position (y={y}, x={x}) is off the {shape[1]}x{shape[2]} map of {self.layer!r} "
                    f"at image size {hw[0]}x{hw[1]}: use 0 <= y < {shape[1]}, 0 <= x < {shape[2]}"
                )


jax.tree_util.register_dataclass(
    Target, data_fields=["channel"], meta_fields=["layer", "reduce", "position", "softmax"])


def channel(layer: str, index: int | Sequence[int], reduce: str = "sum") -> Target:
    """The sum (or ``reduce``) of one channel's map; ``index`` may hold one channel per image."""
    return Target(layer, _static(index), reduce)


def strongest(layer: str, index: int | Sequence[int]) -> Target:
    """One channel's strongest activation (its maximum over positions), as Zeiler & Fergus project."""
    return Target(layer, _static(index), "max")


def neuron(layer: str, index: int | Sequence[int], y: int, x: int) -> Target:
    """The activation of one channel at one position (y, x) of the layer's map."""
    return Target(layer, _static(index), "neuron", (int(y), int(x)))


def label(index: int | Sequence[int], softmax: bool = False, layer: str = "logits") -> Target:
    """A class: its logit, or with ``softmax=True`` its probability."""
    return Target(layer, _static(index), "sum", None, softmax)


def _static(index) -> int | tuple[int, ...]:
    if isinstance(index, (int,)) or (hasattr(index, "ndim") and getattr(index, "ndim") == 0):
        return int(index)
    return tuple(int(i) for i in index)
