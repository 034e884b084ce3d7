"""Measures of attribution maps: how much of a map sits in the image centre, and how much of the image it covers
(the gap_gmp recipe's CAM comparison, Zhou et al. 2016)."""

from __future__ import annotations

import numpy as np


CENTRE_SIDE = 0.5  # the centre box's side as a fraction of the image's (a quarter of its area)
EXTENT_THRESHOLD = 0.2  # Zhou et al. 2016, section 3: boxes around pixels above 20% of the CAM's max


def centre_fraction(maps: np.ndarray, side: float = CENTRE_SIDE) -> np.ndarray:
    """Share of each min-max normalised map's mass inside the central square of ``side`` x the image's.

    With m = (map - min) / (max - min), ``sum_{box} m / sum m``; a flat map (normalised to zeros)
    counts as spread evenly (``side**2``). For centred objects (CIFAR-10's) higher is better.

    Args:
        maps: (n, H, W) heatmaps.
    Returns: (n,) float64 in [0, 1].

    Example:
        >>> centre_fraction(np.ones((1, 4, 4)))   # flat: a quarter of the area
        array([0.25])
    """
    maps = np.asarray(maps, np.float64)
    n, h, w = maps.shape
    lo = maps.reshape(n, -1).min(1)[:, None, None]
    hi = maps.reshape(n, -1).max(1)[:, None, None]
    m = np.where(hi > lo, (maps - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    bh, bw = round(h * side), round(w * side)
    top, left = (h - bh) // 2, (w - bw) // 2
    inside = m[:, top : top + bh, left : left + bw].sum((1, 2))
    return inside / m.sum((1, 2))


def extent(maps: np.ndarray, threshold: float = EXTENT_THRESHOLD) -> np.ndarray:
    """Fraction of pixels with map >= lo + threshold * (max - lo) (min-max normalised), (n, H, W) -> (n,).

    Zhou et al. 2016 draw boxes around the pixels above 20% of the CAM's maximum; the fraction is
    descriptive (how much of the image a map covers), neither better nor worse.
    """
    maps = np.asarray(maps, np.float64)
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return (flat >= lo + threshold * (hi - lo)).mean(1)
