"""First-layer filters as pictures: the convolution that reads the image, one tile per filter.

Only the first layer's filters are directly interpretable (they live in pixel space): AlexNet's
64 x 3 x 11 x 11 (oriented edges, colour blobs), ResNet's 64 x 3 x 7 x 7, VGG16's 64 x 3 x 3 x 3.
Each filter is rescaled on its own to [0, 1],

    tile_f = (w_f - min(w_f)) / (max(w_f) - min(w_f))        (over its kh x kw x 3 weights)

as in the cs231n / Krizhevsky et al. figures of seed 002 (``normalise="layer"`` uses one min and max
for the whole bank instead, which keeps the filters' relative strength). The weights act on the
network's normalised input ((x - mean) / std), so a tile's colours are those of the normalised image.
A model with other input channels (``Model.channels``) has kernels (kh, kw, C, O): a grayscale
model's tiles are grey, and other counts than 1 and 3 are shown as the mean over their input
channels (``filter_grid``, as ``jfv.analysis.datasets.displayable`` shows such images).

Example:
    >>> name, kernel = first_conv(jfv.models.load("alexnet"))   # "conv1", (11, 11, 3, 64) HWIO
    >>> grid = filter_grid(normalise_filters(kernel), columns=8, scale=4)   # (H, W, 3) in [0, 1]

Krizhevsky et al. 2012, Fig. 3; Zeiler & Fergus 2014, Fig. 6.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jfv.models import receptive

Array = jax.Array
NORMALISATIONS = ("filter", "layer")


class FilterError(ValueError):
    """A model without a convolution on the RGB image, or an unknown normalisation."""


def first_conv(model: Any) -> tuple[str, np.ndarray]:
    """The convolution that reads the image: (its params key, its kernel (kh, kw, C, O) HWIO).

    Found as the one 4-D ``kernel`` with the model's input channels ``C`` (``model.channels``: 3
    for RGB, 1 for a grayscale model); where several exist, the one the declared geometry
    (``jfv.models.receptive``) puts first.
    """
    cin = int(getattr(model, "channels", 3))
    found = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(model.params)[0]:
        keys = [getattr(p, "key", str(p)) for p in path]
        if keys[-1] == "kernel" and np.ndim(leaf) == 4 and np.shape(leaf)[2] == cin:
            found["/".join(str(k) for k in keys[:-1])] = np.asarray(leaf, np.float32)
    if len(found) > 1:
        try:
            roots = [name for name, layer in receptive.geometry(model).items() if layer.parent is None]
        except receptive.GeometryError:
            roots = []
        found = {k: v for k, v in found.items() if k in roots} or found
    if not found:
        plural = "s" if cin != 1 else ""
        raise FilterError(f"model {model.name!r} has no convolution kernel with {cin} input channel{plural} (HWIO), the "
                          f"channels of its input: its first layer is not a convolution, so it has no filters to show")
    name = sorted(found)[0] if len(found) > 1 else next(iter(found))
    return name, found[name]


def normalise_filters(kernel: Array, normalise: str = "filter") -> Array:
    """(kh, kw, C, O) HWIO kernel -> (O, kh, kw, C) tiles in [0, 1]; a constant filter becomes 0.5."""
    if normalise not in NORMALISATIONS:
        raise FilterError(f"unknown normalise {normalise!r}; valid: {', '.join(NORMALISATIONS)}")
    w = jnp.moveaxis(jnp.asarray(kernel, jnp.float32), -1, 0)
    axes = (1, 2, 3) if normalise == "filter" else (0, 1, 2, 3)
    lo, hi = w.min(axis=axes, keepdims=True), w.max(axis=axes, keepdims=True)
    span = hi - lo
    return jnp.where(span > 0, (w - lo) / jnp.where(span > 0, span, 1.0), 0.5)


def upscale(tiles: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of (N, h, w, C) tiles by an integer ``scale``."""
    if int(scale) < 1:
        raise FilterError(f"scale must be >= 1, got {scale}")
    return np.repeat(np.repeat(np.asarray(tiles), scale, axis=1), scale, axis=2)


def filter_grid(tiles: np.ndarray, columns: int | None = None, scale: int = 1, pad: int = 1,
                background: float = 1.0) -> np.ndarray:
    """Tiles (N, h, w, C) enlarged by ``scale`` on one sheet, row-major, ``columns`` wide
    (default: the square root, rounded up). Returns (H, W, C) in [0, 1] for C = 1 (grey) or 3, and
    (H, W, 1), the mean over channels, for other counts."""
    from jfv.analysis.datasets import displayable
    from jfv.runtime.outputs import sprite

    tiles = upscale(displayable(np.asarray(tiles, np.float32)), scale)
    return sprite(list(tiles), columns=columns, pad=pad, background=background)


__all__ = ["FilterError", "NORMALISATIONS", "filter_grid", "first_conv", "normalise_filters", "upscale"]
