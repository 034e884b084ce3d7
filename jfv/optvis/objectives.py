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

from jfv.imageops import check_sigma, gaussian_blur
from jfv.runtime import moved

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
        channel: ``(layer, index)`` when ``fn`` reads nothing of the model but channel ``index`` of
            ``layer`` (and possibly ``"input"``), else None. The engine then computes only that
            channel of the layer where the model allows (``jfv.models.plain``); composition keeps it
            while every part reads that same channel or no model layer.
    """

    fn: Callable[[Activations], Array] = dataclasses.field(repr=False)
    description: str
    layers: tuple[str, ...] = ()
    channel: tuple[str, Any] | None = dataclasses.field(default=None, compare=False)

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
            _join(self, other),
        )

    __radd__ = __add__

    def __neg__(self) -> "Objective":
        return Objective(lambda a: -self(a), f"-({self.description})", self.layers, self.channel)

    def __sub__(self, other: "Objective | float") -> "Objective":
        other = _lift(other)
        return Objective(
            lambda a: self(a) - other(a),
            f"{self.description} - {_paren(other.description)}",
            _union(self.layers, other.layers),
            _join(self, other),
        )

    def __rsub__(self, other: float) -> "Objective":
        return _lift(other) - self

    def __mul__(self, w: float) -> "Objective":
        if isinstance(w, Objective):
            return Objective(
                lambda a: self(a) * w(a),
                f"{_paren(self.description)} * {_paren(w.description)}",
                _union(self.layers, w.layers),
                _join(self, w),
            )
        return Objective(lambda a: w * self(a), f"{_fmt(w)} * {_paren(self.description)}", self.layers, self.channel)

    __rmul__ = __mul__

    def __truediv__(self, w: float) -> "Objective":
        return self * (1.0 / w)


def _fmt(w: Any) -> str:
    return f"{w:g}" if isinstance(w, (int, float)) else "w"


def _paren(s: str) -> str:
    return f"({s})" if (" + " in s or " - " in s) else s


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a + b))


def _reads_model(o: Objective) -> bool:
    return any(layer != INPUT for layer in o.layers)


def _same_index(i: Any, j: Any) -> bool:
    if i is j:
        return True
    return isinstance(i, int) and isinstance(j, int) and i == j


def _join(a: Objective, b: Objective) -> tuple[str, Any] | None:
    """The ``channel`` of a combination of ``a`` and ``b``: kept while both read that one channel
    of the model or one of them reads no model layer."""
    if a.channel is not None and b.channel is not None:
        same = a.channel[0] == b.channel[0] and _same_index(a.channel[1], b.channel[1])
        return a.channel if same else None
    if a.channel is not None and not _reads_model(b):
        return a.channel
    if b.channel is not None and not _reads_model(a):
        return b.channel
    return None


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
    return Objective(lambda a: jnp.mean(a[layer][..., index]), f"channel({layer}, {_index(index)})", (layer,),
                     (layer, index))


def neuron(layer: str, index: int | Array, x: int | None = None, y: int | None = None) -> Objective:
    """Activation of one channel at one position (the centre by default), averaged over the batch.

    ``mean_b A[b, y, x, index]``; Lucid's ``neuron``. On a token layer (N, T, D) it is
    ``token(layer, index, x)``: the middle token, or token ``x``.
    """

    def fn(a):
        t = a[layer]
        if t.ndim == 3:  # tokens (N, T, D): the middle token, or token x
            return jnp.mean(t[:, t.shape[1] // 2 if x is None else x, index])
        yy = t.shape[1] // 2 if y is None else y
        xx = t.shape[2] // 2 if x is None else x
        return jnp.mean(t[:, yy, xx, index])

    where = "centre" if x is None and y is None else f"x={x}, y={y}"
    return Objective(fn, f"neuron({layer}, {_index(index)}, {where})", (layer,), (layer, index))


def token(layer: str, index: int | Array, position: int | None = None) -> Objective:
    """Activation of one embedding dim at one token of a token layer (N, T, D), averaged over the
    batch: the per-token neuron of a Vision Transformer (the middle token by default).

    ``mean_b A[b, t, index]``. ``channel`` on a token layer averages over all tokens instead.

    Example:
        >>> objective = token("block2", 7, position=0)
    """

    def fn(a):
        t = a[layer]
        if t.ndim != 3:
            raise ValueError(f"token({layer}) needs a token layer (N, T, D), but {layer!r} has shape {t.shape}: "
                             f"use neuron() for spatial (N, H, W, C) layers")
        return jnp.mean(t[:, t.shape[1] // 2 if position is None else position, index])

    where = "middle" if position is None else f"t={position}"
    return Objective(fn, f"token({layer}, {_index(index)}, {where})", (layer,))


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


def gram_diversity(name: str) -> Objective:
    """An objective term: minus the mean pairwise cosine similarity of the batch's Gram matrices at layer ``name``.

    For a batch of n >= 2 images, ``-1/(n(n-1)) sum_{i != j} cos(G_i, G_j)`` with
    ``G_i = A_i^T A_i`` over positions. Weight it (e.g. ``channel(...) + 0.1 * gram_diversity(...)``)
    to push the images of one channel apart. Lucid's ``diversity``; Olah et al. 2017. It prints as ``diversity(name)``,
    as it always has; ``jfv.evaluation.diversity`` is a different thing, a measure of rendered images (LPIPS).
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


REDUCTIONS = ("mean", "sum")


def _reduce(values: Array, reduction: str, name: str) -> Array:
    if reduction == "mean":
        return jnp.mean(values)
    if reduction == "sum":
        return jnp.sum(values)
    raise ValueError(f"{name} reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _check_reduction(reduction: str, name: str, valid: tuple[str, ...] = REDUCTIONS) -> None:
    if reduction not in valid:
        raise ValueError(f"{name} reduction must be one of {', '.join(valid)}, got {reduction!r}")


# Penalties. Objectives are maximised, so a penalty R enters with a minus sign:
# ``channel(...) - w * R`` with w > 0. The seed's (Lucid-style) convention writes the same thing as
# ``channel + lambda * R`` with lambda < 0, so lambda = -w (lambda_tv = -0.005 is w = 0.005).
# Lucid sums over pixels ("sum"); jfv's default "mean" makes a weight independent of image size:
# w_mean = w_sum * (number of terms). See docs/regularisers.md.


def l1(constant: float = 0.5, reduction: str = "mean") -> Objective:
    """L1 distance of the input image from ``constant``, to be subtracted.

    ``mean |x - c|`` (``reduction="mean"``) or ``sum |x - c|`` (``"sum"``, Lucid's ``L1``) over the
    batch, pixels and colours. Gradient ``sign(x - c) / N`` (mean) or ``sign(x - c)`` (sum).
    """
    _check_reduction(reduction, "l1")
    return Objective(lambda a: _reduce(jnp.abs(a[INPUT] - constant), reduction, "l1"),
                     f"l1(c={constant:g}, {reduction})")


def l2(constant: float = 0.5, reduction: str = "mean") -> Objective:
    """L2 penalty on the input image's distance from ``constant``, to be subtracted.

    ``"mean"``: ``mean (x - c)^2``; ``"sum"``: ``sum (x - c)^2``; ``"norm"``: Lucid's ``L2``,
    ``sqrt(1e-6 + sum (x - c)^2)``; sums over the batch, pixels and colours. Simonyan et al. 2014
    (L2-regularised class models); the seed's lambda_L2.
    """
    _check_reduction(reduction, "l2", REDUCTIONS + ("norm",))

    def fn(a):
        sq = (a[INPUT] - constant) ** 2
        if reduction == "norm":
            return jnp.sqrt(LUCID_L2_EPSILON + jnp.sum(sq))
        return _reduce(sq, reduction, "l2")

    return Objective(fn, f"l2(c={constant:g}, {reduction})")


LUCID_L2_EPSILON = 1e-6  # lucid.optvis.objectives.L2
TV_FLOOR = 1e-8  # keeps the gradient of (.)^(beta/2) finite on flat regions when beta < 2


def total_variation(beta: float = 1.0, reduction: str = "mean") -> Objective:
    """Total variation of the input image with Mahendran & Vedaldi's exponent beta, to be subtracted.

    ``R = reduce_{n,y,x,c} ((x[y+1,x]-x[y,x])^2 + (x[y,x+1]-x[y,x])^2 + eps)^(beta/2)`` over the
    (H-1) x (W-1) positions that have both neighbours, each colour separately; ``reduce`` is a mean
    (default) or a sum (``reduction="sum"``), eps = 1e-8. beta = 1 is isotropic TV, beta = 2 the
    squared-gradient energy; Mahendran & Vedaldi 2015 ("Understanding Deep Image Representations by
    Inverting Them", eq. 3) use beta = 2 and recommend beta in [1, 2].
    """
    if not beta > 0:
        raise ValueError(f"total_variation beta must be > 0 (Mahendran & Vedaldi use 1 to 2), got {beta}")
    _check_reduction(reduction, "total_variation")

    def fn(a):
        x = a[INPUT]
        dy = x[:, 1:, :-1, :] - x[:, :-1, :-1, :]
        dx = x[:, :-1, 1:, :] - x[:, :-1, :-1, :]
        return _reduce((dy**2 + dx**2 + TV_FLOOR) ** (beta / 2.0), reduction, "total_variation")

    return Objective(fn, f"total_variation(beta={beta:g}, {reduction})")


def blur_penalty(sigma: float = 1.0, reduction: str = "mean") -> Objective:
    """Distance of the input image from its own Gaussian blur, to be subtracted.

    ``R = reduce (x - stopgrad(G_sigma * x))^2``, so the gradient ``2 (x - G_sigma * x) / N`` pulls
    every pixel towards its blurred neighbourhood: a soft, differentiable form of Yosinski et al.'s
    blur step. Lucid's ``blur_input_each_step`` is this with a 3x3 kernel, a factor 1/2 and a sum.
    """
    check_sigma(sigma, "blur_penalty sigma")
    _check_reduction(reduction, "blur_penalty")

    def fn(a):
        x = a[INPUT]
        target = jax.lax.stop_gradient(gaussian_blur(x, sigma))
        return _reduce((x - target) ** 2, reduction, "blur_penalty")

    return Objective(fn, f"blur_penalty(sigma={sigma:g}, {reduction})")


# Feature matching: objectives that compare a layer's activations with a target's (those of a natural
# image), for feature inversion, caricature and the feature-space penalty of accentuation.

MATCH_FLOOR = 1e-12  # keeps the normalisation finite for an all-zero target
COSINE_FLOOR = 0.1  # Lucid's dot_compare clamps its similarity at 0.1 before the power


def _target(layer: str, target: Array) -> Array:
    t = jnp.asarray(target, jnp.float32)
    if t.ndim < 1:
        raise ValueError(f"the target of {layer} must be an activation array (e.g. (H, W, C)), got a scalar")
    return t


def feature_distance(layer: str, target: Array) -> Objective:
    """Relative squared distance of a layer's activations from a target's, to be subtracted.

    ``mean_b ||A_b - T||^2 / ||T||^2`` with sums over positions and channels; 0 when the activations
    equal the target, 1 when they are all zero. ``T`` (one image's activations, e.g. (H, W, C))
    broadcasts over the batch and may be a traced array, so one objective can be vmapped over targets.
    Mahendran & Vedaldi 2015 ("Understanding Deep Image Representations by Inverting Them", eq. 1-2)
    minimise this normalised loss.

    Example:
        >>> target = model(photo[None])["conv3_1"][0]
        >>> objective = -feature_distance("conv3_1", target) - 0.05 * total_variation()
    """
    t = _target(layer, target)

    def fn(a):
        x = a[layer].astype(jnp.float32)
        axes = tuple(range(1, x.ndim))
        d = jnp.sum((x - t) ** 2, axis=axes)
        return jnp.mean(d) / (jnp.sum(t**2) + MATCH_FLOOR)

    return Objective(fn, f"feature_distance({layer})", (layer,))


def feature_match(layer: str, target: Array) -> Objective:
    """Feature inversion: ``-feature_distance(layer, target)``, maximal (0) when the activations match.

    Mahendran & Vedaldi 2015; Lucid's ``feature_inversion`` recipe (which matches by a dot product,
    see ``caricature``).
    """
    distance = feature_distance(layer, target)
    return Objective(lambda a: -distance(a), f"feature_match({layer})", (layer,))


def caricature(layer: str, target: Array, cossim_pow: float = 0.0) -> Objective:
    """Lucid's caricature: the dot product with the target's activations, times a cosine power.

    ``mean_b (<A_b, T> / ||T||^2) * max(0.1, cos(A_b, T))^p`` with sums over positions and channels.
    With p = 0 this amplifies whatever the target has (a larger ``<A, T>`` needs activations that
    go further along T: a caricature); a larger p keeps the direction closer to the target's, which
    is feature inversion by direction. The value is 1 at ``A = T``.

    Lucid's ``dot_compare`` divides the dot product by ``||T||`` only and calls that the cosine (a
    projection length, not an angle); jfv uses the true cosine, so p trades angle against magnitude,
    and normalises the dot product by ``||T||^2`` so that weights do not depend on the layer's scale.

    Olah et al., Lucid ``recipes/caricature.py`` (``feature_inversion(img, model, layer, cossim_pow)``).
    """
    t = _target(layer, target)

    def fn(a):
        x = a[layer].astype(jnp.float32)
        axes = tuple(range(1, x.ndim))
        tt = jnp.sum(t**2) + MATCH_FLOOR
        dot = jnp.sum(x * t, axis=axes)
        cos = dot / (jnp.sqrt(jnp.sum(x**2, axis=axes) * tt) + MATCH_FLOOR)
        return jnp.mean(dot / tt * jnp.maximum(COSINE_FLOOR, cos) ** cossim_pow)

    return Objective(fn, f"caricature({layer}, p={_fmt(cossim_pow)})", (layer,))


# Interpolation between two channels across a batch of frames, and the alignment penalty that keeps
# neighbouring frames alike. Olah et al. 2017 ("Feature Visualization", the interpolation figure);
# Lucid's ``objectives.channel_interpolate``, ``objectives.alignment`` and its
# ``aligned_interpolation`` notebook.

ALIGNMENT_DISTANCE = 4  # Lucid's alignment compares frames up to 4 apart


def interpolation_weights(n: int) -> Array:
    """``t_i = i / (n - 1)`` for i = 0..n-1: frame 0 is all channel A, frame n-1 all channel B."""
    if n < 2:
        raise ValueError(f"channel interpolation needs a batch of at least 2 frames, got {n}: set frames >= 2")
    return jnp.arange(n, dtype=jnp.float32) / (n - 1)


def channel_interpolate(layer_a: str, index_a: int | Array, layer_b: str, index_b: int | Array) -> Objective:
    """Interpolates from channel A to channel B across the batch: frame i weights A by 1 - t_i, B by t_i.

    ``sum_{i=0}^{n-1} (1 - t_i) mean_{y,x} A[i, y, x, a] + t_i mean_{y,x} B[i, y, x, b]`` with
    ``t_i = i / (n - 1)`` over a batch of n >= 2 frames: frame 0 maximises channel a of ``layer_a``
    alone, frame n-1 channel b of ``layer_b`` alone, the frames between a mix. A sum over frames (as
    Lucid), so each frame's gradient is that of its own weighted objective. Both indices may be
    traced (one objective vmapped over pairs).

    Args:
        layer_a: the layer of frame 0's channel.
        index_a: frame 0's channel.
        layer_b: the layer of the last frame's channel.
        index_b: the last frame's channel.

    Returns:
        An Objective; add ``- w * alignment(layer)`` to keep the frames alike.

    Example:
        >>> objective = channel_interpolate("conv4_3", 48, "conv4_3", 62) - 0.1 * alignment("conv4_3")

    Olah et al. 2017 (Distill, "Feature Visualization": interpolation); Lucid's ``channel_interpolate``.
    """

    def fn(a):
        xa, xb = a[layer_a][..., index_a], a[layer_b][..., index_b]
        t = interpolation_weights(xa.shape[0])
        ma = jnp.mean(xa.reshape(xa.shape[0], -1), axis=1)
        mb = jnp.mean(xb.reshape(xb.shape[0], -1), axis=1)
        return jnp.sum((1.0 - t) * ma + t * mb)

    name = lambda i, placeholder: str(int(i)) if isinstance(i, int) else placeholder
    return Objective(fn, f"channel_interpolate({layer_a}, {name(index_a, 'a')} -> {layer_b}, {name(index_b, 'b')})",
                     _union((layer_a,), (layer_b,)))


def alignment(layer: str, decay_ratio: float = 2.0) -> Objective:
    """How much neighbouring frames' activations differ, to be subtracted: keeps a strip aligned.

    ``R = sum_{d=1}^{4} sum_{i=0}^{n-1-d} mean_{y,x,c} (A_i - A_{i+d})^2 / decay_ratio^d`` over a
    batch of n frames: frames d apart are pulled together with weight ``decay_ratio^-d``. Zero when
    all frames are the same. Lucid's ``alignment`` returns ``-R`` (to be added); jfv's penalties are
    positive and subtracted, like ``total_variation``: ``objective - w * alignment(layer)``.

    Args:
        layer: the activations to compare (Lucid's notebook aligns two middle layers).
        decay_ratio: > 0; larger values care only about the nearest frames.

    Example:
        >>> objective = channel_interpolate("conv4_3", 48, "conv4_3", 62) - 0.1 * alignment("conv3_3", 5)

    Lucid's ``objectives.alignment`` and ``aligned_interpolation`` notebook.
    """
    if not decay_ratio > 0:
        raise ValueError(f"alignment decay_ratio must be > 0 (Lucid uses 2 to 5), got {decay_ratio}")

    def fn(a):
        x = a[layer].astype(jnp.float32)
        n = x.shape[0]
        total = jnp.zeros((), jnp.float32)
        for d in range(1, min(ALIGNMENT_DISTANCE, n - 1) + 1):
            diff = (x[d:] - x[:-d]).reshape(n - d, -1)
            total = total + jnp.sum(jnp.mean(diff**2, axis=1)) / decay_ratio**d
        return total

    return Objective(fn, f"alignment({layer}, decay={decay_ratio:g})", (layer,))


__all__ = [
    "Objective",
    "alignment",
    "channel_interpolate",
    "interpolation_weights",
    "INPUT",
    "channel",
    "class_logit",
    "deepdream",
    "direction",
    "gram_diversity",
    "blur_penalty",
    "caricature",
    "feature_distance",
    "feature_match",
    "l1",
    "l2",
    "layer",
    "neuron",
    "token",
    "total_variation",
]


__getattr__ = moved.renamed(__name__)  # old names (jfv.runtime.moved.NAMES)
