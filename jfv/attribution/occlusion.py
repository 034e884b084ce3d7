"""Occlusion sensitivity (Zeiler & Fergus 2014, section 4.2): slide a grey square over the image and
record the target's score with each part hidden.

All window positions of all images are one batched computation: the (image, position) pairs are
flattened, cut into chunks of ``batch_size``, and each chunk builds its occluded images with
``vmap`` and runs the model once, under one jit-compiled function (the last chunk is padded, so
nothing recompiles). The chunks are a Python loop over that compiled function rather than a
``lax.map``, because XLA:CPU runs convolutions inside loops about 2x slower (jax#12868).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfv.attribution.targets import Target
from jfv.imageops import map_chunks
from jfv.models.base import Model

Array = jax.Array

GREY = 0.5  # Zeiler & Fergus's grey square, on [0, 1] images


class WindowError(ValueError):
    """An occlusion window or stride that does not fit the images."""


class Occlusion(NamedTuple):
    """What ``occlusion`` returns.

    scores: (n, Py, Px) the target's score with the window's top-left corner at (ys[i], xs[j]).
    baseline: (n,) the score of the unoccluded image.
    heatmap: (n, H, W) per pixel, the mean drop (baseline - score) over the windows covering it.
    ys, xs: the window positions (top-left corners), in pixels.
    """

    scores: Array
    baseline: Array
    heatmap: Array
    ys: np.ndarray
    xs: np.ndarray


def window_positions(size: int, window: int, stride: int) -> np.ndarray:
    """Top-left corners 0, stride, ... with the window inside the image; the last one flush with
    the edge, so every pixel is covered."""
    if window > size:
        raise WindowError(f"occlusion window {window} px is larger than the {size} px image: use window <= {size}")
    if window < 1 or stride < 1:
        raise WindowError(f"occlusion window and stride must be >= 1, got window={window}, stride={stride}")
    pos = list(range(0, size - window + 1, stride))
    if pos[-1] != size - window:
        pos.append(size - window)
    return np.asarray(pos, np.int32)


def occlude(image: Array, y: Array, x: Array, window: int, fill: Array) -> Array:
    """One image (H, W, 3) with the window at (y, x) set to ``fill`` (a scalar or an RGB triple)."""
    rows = jnp.arange(image.shape[0])
    cols = jnp.arange(image.shape[1])
    inside = ((rows >= y) & (rows < y + window))[:, None] & ((cols >= x) & (cols < x + window))[None, :]
    return jnp.where(inside[..., None], jnp.broadcast_to(fill, image.shape).astype(image.dtype), image)


@functools.partial(jax.jit, static_argnames=("model", "window"))  # target: a pytree, its channel traced
def occlusion_chunk(params, images, channels, index, ys, xs, fill, *, model: Model, target: Target, window: int):
    """Scores of ``len(index)`` occluded copies: image ``index[i]`` with the window at (ys[i], xs[i])."""
    batch = jax.vmap(lambda i, y, x: occlude(images[i], y, x, window, fill))(index, ys, xs)
    return target.score(model.apply(params, batch), channels[index])


@functools.partial(jax.jit, static_argnames=("model",))
def _scores(params, images, channels, *, model: Model, target: Target):
    return target.score(model.apply(params, images), channels)


def occlusion(
    model: Model,
    images: Array,
    target: Target,
    window: int = 32,
    stride: int = 16,
    fill: float | Sequence[float] = GREY,
    batch_size: int = 32,
) -> Occlusion:
    """The target's score with a ``window`` x ``window`` square of ``fill`` at every position.

    Args:
        images: (n, H, W, 3) in [0, 1].
        target: e.g. ``label(c, softmax=True)`` (class probability) or ``channel("conv5_3", 7)``.
        window: the square's side, in pixels.
        stride: the square's step, in pixels.
        fill: the square's value in [0, 1], a scalar or RGB; grey by default.
        batch_size: occluded images per model call (memory).
    Returns: an ``Occlusion`` (scores per position, baseline, pixel heatmap of the drop).

    Example:
        >>> occ = occlusion(model, images, channel("conv5_3", 7), window=32, stride=16)
        >>> occ.scores.shape   # (n, 13, 13) at 224 px
    """
    images = jnp.asarray(images, jnp.float32)
    model.check_input(images)
    n, h, w = images.shape[:3]
    ys, xs = window_positions(h, window, stride), window_positions(w, window, stride)
    target.check(model, (h, w))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    fill = jnp.asarray(fill, jnp.float32)
    channels = target.channels(n)
    grid_i, grid_y, grid_x = (a.ravel() for a in np.meshgrid(np.arange(n), ys, xs, indexing="ij"))
    grid = [a.astype(np.int32) for a in (grid_i, grid_y, grid_x)]
    run = lambda i, y, x: occlusion_chunk(model.params, images, channels, i, y, x, fill, model=model.static, target=target,
                                          window=window)
    scores = map_chunks(run, *grid, batch=min(batch_size, grid_i.size)).reshape(n, len(ys), len(xs))
    baseline = _scores(model.params, images, channels, model=model.static, target=target)
    return Occlusion(scores, baseline, pixel_map(baseline[:, None, None] - scores, ys, xs, window, (h, w)), ys, xs)


def pixel_map(values: Array, ys: np.ndarray, xs: np.ndarray, window: int, size: tuple[int, int]) -> Array:
    """(n, Py, Px) values per window position -> (n, H, W): each pixel's mean over its windows."""
    ry = (np.arange(size[0])[:, None] >= ys[None]) & (np.arange(size[0])[:, None] < ys[None] + window)  # (H, Py)
    rx = (np.arange(size[1])[:, None] >= xs[None]) & (np.arange(size[1])[:, None] < xs[None] + window)  # (W, Px)
    ry, rx = jnp.asarray(ry, jnp.float32), jnp.asarray(rx, jnp.float32)
    total = jnp.einsum("hp,npq,wq->nhw", ry, values, rx)
    count = jnp.einsum("hp,wq->hw", ry, rx)
    return total / count
