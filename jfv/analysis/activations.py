"""Activations of a whole layer for one image: the DeepVis grid, and the channels that respond most.

``activation_grid`` lays every channel's map out as one grey tile (Yosinski et al.'s Deep
Visualization Toolbox: a layer at a glance), scaled to [0, 1] by

- ``normalise="layer"``: one min and max over the whole layer, so a weak channel looks dark
  (the toolbox's default: channels compare);
- ``normalise="channel"``: each map on its own, so every map's pattern shows.

``top_channels`` ranks channels by their maximum (or mean) over positions, ties to the lower channel:
seed 003's "most activated filters of layer 1 / layer 4".

Example:
    >>> maps = model(image[None])["conv5_3"][0]            # (H, W, C)
    >>> sheet = activation_grid(maps, columns=32)          # (rows*(H+1)-1, 32*(W+1)-1, 3)
    >>> channels, values = top_channels(maps, 9)

Yosinski et al. 2015, "Understanding Neural Networks Through Deep Visualization".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
NORMALISATIONS = ("layer", "channel")
REDUCTIONS = ("max", "mean")


class ActivationError(ValueError):
    """A layer without a spatial map, n outside 1..C, or an unknown option."""


def _maps(maps) -> Array:
    a = jnp.asarray(maps, jnp.float32)
    if a.ndim != 3:
        raise ActivationError(
            f"expected one image's maps (H, W, C), got shape {tuple(a.shape)}: pass model(images)[layer][0] of a spatial layer"
        )
    return a


def normalise_maps(maps, normalise: str = "layer") -> Array:
    """(H, W, C) -> (C, H, W) in [0, 1]; a constant map (or layer) becomes zeros."""
    if normalise not in NORMALISATIONS:
        raise ActivationError(f"unknown normalise {normalise!r}; valid: {', '.join(NORMALISATIONS)}")
    a = jnp.moveaxis(_maps(maps), -1, 0)
    axes = (1, 2) if normalise == "channel" else (0, 1, 2)
    lo, hi = a.min(axis=axes, keepdims=True), a.max(axis=axes, keepdims=True)
    span = hi - lo
    return jnp.where(span > 0, (a - lo) / jnp.where(span > 0, span, 1.0), 0.0)


def activation_grid(maps, normalise: str = "layer", columns: int | None = None, scale: int = 1,
                    pad: int = 1) -> np.ndarray:
    """Every channel of one image's (H, W, C) maps as grey tiles on one sheet, channel order row-major.

    Returns (rows*(scale*H+pad)-pad, columns*(scale*W+pad)-pad, 3) in [0, 1], the gaps white.
    """
    from jfv.analysis.filters import filter_grid

    tiles = np.asarray(normalise_maps(maps, normalise))[..., None].repeat(3, axis=-1)
    return filter_grid(tiles, columns=columns, scale=scale, pad=pad)


def channel_scores(maps, reduce: str = "max") -> Array:
    """(H, W, C) -> (C,): each channel's maximum or mean over positions."""
    if reduce not in REDUCTIONS:
        raise ActivationError(f"unknown reduce {reduce!r}; valid: {', '.join(REDUCTIONS)}")
    a = _maps(maps)
    return a.max(axis=(0, 1)) if reduce == "max" else a.mean(axis=(0, 1))


def top_channels(maps, n: int, reduce: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` channels with the largest score (``channel_scores``), best first, ties to the lower
    channel: (channels (n,) int, values (n,) float)."""
    scores = np.asarray(channel_scores(maps, reduce))
    if not 1 <= int(n) <= len(scores):
        raise ActivationError(f"n must be in 1..{len(scores)} (the layer's channels), got {n}")
    order = np.lexsort((np.arange(len(scores)), -scores))[: int(n)]
    return order.astype(np.int32), scores[order]


__all__ = ["ActivationError", "NORMALISATIONS", "REDUCTIONS", "activation_grid", "channel_scores",
           "normalise_maps", "top_channels"]
