"""Objectives: what activation maximisation maximises, with Lucid's arithmetic.

An Objective wraps ``activations -> scalar``. ``activations`` is the model's dict of named
activations for a batch of ``n`` images (leading axis n) plus ``"input"``: the untransformed images
(n, H, W, 3) in [0, 1], so image penalties are objectives too. Objectives are maximised; a penalty
is subtracted: ``channel("conv4_3", 7) - 0.05 * total_variation()``.

A channel index may be a traced integer, so one objective can be vmapped over channels.

Olah et al. 2017, "Feature Visualization" (Distill); Lucid's ``optvis.objectives``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

Array = jax.Array
Activations = Mapping[str, Array]

INPUT = "input"  # key of the untransformed images in the activations dict


@dataclasses.dataclass(frozen=True)
class Objective:
    """A scalar function of activations, with ``+ - *`` and ``/`` by numbers.

    Attributes:
        fn: activations -> scalar.
        description: what it computes, shown in manifests and galleries.
        layers: the activation names ``fn`` reads (checked against the model before compiling).
    """

    fn: Callable[[Activations], Array] = dataclasses.field(repr=False)
    description: str
    layers: tuple[str, ...] = ()

    def __call__(self, acts: Activations) -> Array:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.description})"

    def __add__(self, other: "Objective | float") -> "Objective":
        other = _lift(other)
        return Objective(
            lambda a: self(a) + other(a),
            f"{self.description} + {other.description}",
            _union(self.layers, other.layers),
        )

    __radd__ = __add__

    def __neg__(self) -> "Objective":
        return Objective(lambda a: -self(a), f"-({self.description})", self.layers)

    def __sub__(self, other: "Objective | float") -> "Objective":
        other = _lift(other)
        return Objective(
            lambda a: self(a) - other(a),
            f"{self.description} - {_paren(other.description)}",
            _union(self.layers, other.layers),
        )

    def __rsub__(self, other: float) -> "Objective":
        return _lift(other) - self

    def __mul__(self, w: float) -> "Objective":
        if isinstance(w, Objective):
            return Objective(
                lambda a: self(a) * w(a),
                f"{_paren(self.description)} * {_paren(w.description)}",
                _union(self.layers, w.layers),
            )
        return Objective(lambda a: w * self(a), f"{_fmt(w)} * {_paren(self.description)}", self.layers)

    __rmul__ = __mul__

    def __truediv__(self, w: float) -> "Objective":
        return self * (1.0 / w)


def _fmt(w: Any) -> str:
    return f"{w:g}" if isinstance(w, (int, float)) else "w"


def _paren(s: str) -> str:
    return f"({s})" if (" + " in s or " - " in s) else s


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a + b))


def _lift(x: "Objective | float") -> Objective:
    if isinstance(x, Objective):
        return x
    return Objective(lambda a: jnp.asarray(x, jnp.float32), _fmt(x))


def _index(i: Any) -> str:
    return str(int(i)) if isinstance(i, int) else "c"


def channel(layer: str, index: int | Array) -> Objective:
    """Mean activation of one channel over the batch and all positions.

    ``mean_{b,y,x} A[b, y, x, index]``; Lucid's ``channel``.

    Example:
        >>> objective = channel("conv4_3", 73)
    """
    return Objective(lambda a: jnp.mean(a[layer][..., index]), f"channel({layer}, {_index(index)})", (layer,))


def neuron(layer: str, index: int | Array, x: int | None = None, y: int | None = None) -> Objective:
    """Activation of one channel at one position (the centre by default), averaged over the batch.

    ``mean_b A[b, y, x, index]``; Lucid's ``neuron``.
    """

    def fn(a):
        t = a[layer]
        yy = t.shape[1] // 2 if y is None else y
        xx = t.shape[2] // 2 if x is None else x
        return jnp.mean(t[:, yy, xx, index])

    where = "centre" if x is None and y is None else f"x={x}, y={y}"
    return Objective(fn, f"neuron({layer}, {_index(index)}, {where})", (layer,))


def layer(name: str) -> Objective:
    """DeepDream: the mean squared activation of a whole layer, ``mean(A**2)``.

    Mordvintsev et al. 2015, "Inceptionism".
    """
    return Objective(lambda a: jnp.mean(a[name] ** 2), f"deepdream({name})", (name,))


deepdream = layer


def direction(name: str, vector: Array) -> Objective:
    """Mean over batch and positions of the dot product of the activation with ``vector`` (C,).

    ``mean_{b,y,x} <A[b, y, x, :], v>``; Lucid's ``direction``.
    """
    v = jnp.asarray(vector, jnp.float32)
    return Objective(lambda a: jnp.mean(jnp.tensordot(a[name], v, axes=[[-1], [0]])), f"direction({name})", (name,))


def class_logit(index: int | Array, name: str = "logits") -> Objective:
    """The pre-softmax score of one class, averaged over the batch: ``mean_b z[b, index]``."""
    return Objective(lambda a: jnp.mean(a[name][..., index]), f"class_logit({_index(index)})", (name,))


def diversity(name: str) -> Objective:
    """Minus the mean pairwise cosine similarity of the batch's Gram matrices at layer ``name``.

    For a batch of n >= 2 images, ``-1/(n(n-1)) sum_{i != j} cos(G_i, G_j)`` with
    ``G_i = A_i^T A_i`` over positions. Weight it (e.g. ``channel(...) + 0.1 * diversity(...)``)
    to push the images of one channel apart. Lucid's ``diversity``; Olah et al. 2017.
    """

    def fn(a):
        t = a[name]
        n = t.shape[0]
        if n < 2:
            raise ValueError(f"diversity({name}) needs a batch of at least 2 images per channel, got {n}")
        flat = t.reshape(n, -1, t.shape[-1])
        gram = jnp.einsum("npc,npd->ncd", flat, flat).reshape(n, -1)
        gram = gram / (jnp.linalg.norm(gram, axis=-1, keepdims=True) + 1e-8)
        sim = gram @ gram.T
        off = jnp.sum(sim) - jnp.trace(sim)
        return -off / (n * (n - 1))

    return Objective(fn, f"diversity({name})", (name,))


def l1(constant: float = 0.5) -> Objective:
    """Mean absolute deviation of the input image from ``constant``: ``mean |x - c|``."""
    return Objective(lambda a: jnp.mean(jnp.abs(a[INPUT] - constant)), "l1(input)")


def l2(constant: float = 0.5) -> Objective:
    """Mean squared deviation of the input image from ``constant``: ``mean (x - c)^2``."""
    return Objective(lambda a: jnp.mean((a[INPUT] - constant) ** 2), "l2(input)")


def total_variation(beta: float = 1.0) -> Objective:
    """Total variation of the input image, to be subtracted.

    ``mean_{y,x} ((x[y+1,x]-x[y,x])^2 + (x[y,x+1]-x[y,x])^2)^(beta/2)`` over the batch and colours,
    summed over colours. beta = 1 is the isotropic TV norm; Mahendran & Vedaldi 2015 use beta = 2.
    """

    def fn(a):
        x = a[INPUT]
        dy = x[:, 1:, :-1, :] - x[:, :-1, :-1, :]
        dx = x[:, :-1, 1:, :] - x[:, :-1, :-1, :]
        sq = dy**2 + dx**2
        # A small floor keeps the gradient of the square root finite on flat regions.
        return jnp.mean(jnp.sum((sq + 1e-8) ** (beta / 2.0), axis=-1))

    return Objective(fn, f"total_variation(beta={beta:g})")


__all__ = [
    "Objective",
    "INPUT",
    "channel",
    "class_logit",
    "deepdream",
    "direction",
    "diversity",
    "l1",
    "l2",
    "layer",
    "neuron",
    "total_variation",
]
