"""Pictures of attributions: maps to colours, overlays on the input, gradient images.

Pure numpy functions from arrays to (H, W, 3) floats in [0, 1]; writing them is ``jfv.runtime.outputs``'s job.
"""

from __future__ import annotations

import numpy as np

COLOURMAP = "jet"  # the heatmap colours of the CAM and Grad-CAM papers


def normalise(m) -> np.ndarray:
    """A map (H, W) rescaled to [0, 1] (min to 0, max to 1; a constant map becomes zeros)."""
    m = np.asarray(m, np.float32)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def colourise(m, colourmap: str = COLOURMAP) -> np.ndarray:
    """A map (H, W) -> (H, W, 3) colours after ``normalise``."""
    from matplotlib import colormaps

    return colormaps[colourmap](normalise(m))[..., :3].astype(np.float32)


def resize_map(m, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (h, w) map to ``size``."""
    from jfv.imageops import resize

    m = np.asarray(m, np.float32)
    if m.shape == tuple(size):
        return m
    return np.asarray(resize(m, tuple(size), channels=False))


def overlay(image, m, alpha: float = 0.5, colourmap: str = COLOURMAP) -> np.ndarray:
    """The map, resized to the image and coloured, blended over the image: (H, W, 3) in [0, 1]."""
    image = np.asarray(image, np.float32)
    heat = colourise(resize_map(m, image.shape[:2]), colourmap)
    return np.clip((1 - alpha) * image + alpha * heat, 0, 1)


def signed_image(g, gain: float = 1.0) -> np.ndarray:
    """A signed (H, W, 3) projection (deconvnet, guided backprop) as an image: 0 maps to grey,
    the largest magnitude to 0 or 1 (times ``gain``, clipped)."""
    g = np.asarray(g, np.float32)
    scale = float(np.abs(g).max()) or 1.0
    return np.clip(0.5 + 0.5 * gain * g / scale, 0, 1)
