"""Figures of dataset-level analysis, as (H, W, 3) float arrays in [0, 1] (writing them is
``jfv.runtime.outputs``'s job): neighbours in feature space beside pixel space, 2-D maps of an embedding drawn
with thumbnails coloured by class, and a layer's most activated maps over the input.

matplotlib draws them off-screen (the Agg canvas) and returns the pixels, so the same figure can be
saved, tiled or compared in a test.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

CLASS_COLOURS = "tab10"  # matplotlib's ten categorical colours (repeats after ten classes)
SAME, OTHER = (0.1, 0.65, 0.1), (0.85, 0.1, 0.1)  # neighbour of the query's class / of another class


def _canvas(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba(), np.float32) / 255.0
    import matplotlib.pyplot as plt

    plt.close(fig)
    return np.ascontiguousarray(rgba[..., :3])


def class_colour(label: int) -> tuple[float, float, float]:
    from matplotlib import colormaps

    if label < 0:
        return (0.4, 0.4, 0.4)
    return tuple(float(v) for v in colormaps[CLASS_COLOURS](label % 10)[:3])


def _border(image: np.ndarray, colour, width: int) -> np.ndarray:
    out = np.asarray(image, np.float32).copy()
    if width > 0:
        out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def neighbours(queries: np.ndarray, feature: np.ndarray, pixel: np.ndarray, query_labels=None,
               feature_labels=None, pixel_labels=None, titles: Sequence[str] = ("query", "feature space", "pixel space"),
               border: int = 2) -> np.ndarray:
    """Seed 002's comparison: each row a query, its nearest images in feature space, then in pixel space.

    Args:
        queries: (Q, S, S, 3).
        feature: (Q, k, S, S, 3) neighbours in feature space, nearest first.
        pixel: (Q, k, S, S, 3) neighbours in pixel space, nearest first.
        query_labels: class labels (Q,) or None; with labels, a neighbour is framed green when it
            shares the query's class and red otherwise.
        feature_labels: class labels (Q, k) or None.
        pixel_labels: class labels (Q, k) or None.
        titles: the three column titles.
        border: the frame's width in pixels.

    Returns:
        (H, W, 3) in [0, 1].
    """
    import matplotlib.pyplot as plt

    queries, feature, pixel = (np.clip(np.asarray(a, np.float32), 0, 1) for a in (queries, feature, pixel))
    q, k = feature.shape[:2]
    cols = 1 + 2 * k
    fig, axes = plt.subplots(q, cols, figsize=(0.9 * cols + 0.6, 0.95 * q + 0.5), squeeze=False,
                             gridspec_kw={"wspace": 0.06, "hspace": 0.06})
    for r in range(q):
        cells = [(queries[r], None)]
        for group, labels in ((feature, feature_labels), (pixel, pixel_labels)):
            for j in range(k):
                colour = None
                if labels is not None and query_labels is not None:
                    colour = SAME if labels[r][j] == query_labels[r] else OTHER
                cells.append((group[r, j], colour))
        for c, (img, colour) in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(_border(img, colour, border) if colour is not None else img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(c == 0)
    axes[0, 0].set_title(titles[0], fontsize=8)
    axes[0, 1 + k // 2].set_title(titles[1], fontsize=8)
    axes[0, 1 + k + k // 2].set_title(titles[2], fontsize=8)
    return _canvas(fig)


def embedding_map(coords: np.ndarray, thumbnails: np.ndarray, labels=None, classes: Sequence[str] = (),
                  title: str = "", size: float = 10.0, zoom: float = 1.0, border: int = 3) -> np.ndarray:
    """A 2-D map of an embedding drawn with each image's thumbnail at its point, framed in its
    class's colour (a legend names the classes).

    Args:
        coords: (n, 2); thumbnails: (n, s, s, 3) in [0, 1]; labels: (n,) or None.

    Returns:
        (H, W, 3) in [0, 1], about ``size`` inches square at 100 dpi.
    """
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    from matplotlib.patches import Patch

    coords = np.asarray(coords, np.float64)
    thumbnails = np.clip(np.asarray(thumbnails, np.float32), 0, 1)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    lo, hi = coords.min(0), coords.max(0)
    pad = 0.06 * np.maximum(hi - lo, 1e-9)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    for i, (xy, thumb) in enumerate(zip(coords, thumbnails)):
        colour = class_colour(int(labels[i])) if labels is not None else (0.4, 0.4, 0.4)
        box = AnnotationBbox(OffsetImage(_border(thumb, colour, border), zoom=zoom), xy, frameon=False)
        ax.add_artist(box)
    if labels is not None and len(classes):
        present = sorted({int(v) for v in labels if v >= 0})
        ax.legend(handles=[Patch(color=class_colour(c), label=classes[c]) for c in present],
                  loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return _canvas(fig)


def top_maps(image: np.ndarray, maps: np.ndarray, channels: Sequence[int], values: Sequence[float],
             layer: str = "", alpha: float = 0.6, columns: int = 0) -> np.ndarray:
    """The input and the maps of its most activated channels over it (each map min-max scaled, jet),
    titled with channel and value: seed 003's "most activated filters of a layer".

    Args:
        image: (H, W, 3); maps: (h, w, C) of one image; channels, values: from
            ``jfv.analysis.activations.top_channels``.
    """
    import matplotlib.pyplot as plt

    from jfv.attribution import pictures

    n = len(channels) + 1
    cols = columns or min(n, 5)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.15 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(np.clip(image, 0, 1))
    axes[0, 0].set_title("input", fontsize=8)
    for i, (c, v) in enumerate(zip(channels, values), start=1):
        ax = axes[i // cols, i % cols]
        ax.imshow(pictures.overlay(image, np.asarray(maps)[..., int(c)], alpha))
        ax.set_title(f"{layer} {int(c)}: {float(v):.3g}", fontsize=8)
    fig.tight_layout()
    return _canvas(fig)


def projection_grid(inputs: np.ndarray, pictures: np.ndarray, rows: Sequence[str], columns: Sequence[str],
                    cells: Sequence[Sequence[str]] = (), tile_inches: float = 2.4) -> np.ndarray:
    """Projections of several layers side by side, seed 003's "deconvnet on each layer from the
    deepest one": a first row of the inputs, then a row per layer.

    Args:
        inputs: (C, H, W, 3), the input shown above each column (an image repeats over its methods).
        pictures: (R, C, H, W, 3) in [0, 1], row r = ``rows[r]``, column c = ``columns[c]``.
        cells: R rows of C captions (e.g. the checkerboard energy), or empty.
        tile_inches: each tile's side; at matplotlib's 100 dpi 2.4 in keeps a 224 px tile unshrunk.

    Returns:
        (H, W, 3) in [0, 1]; tiles drawn with nearest-neighbour sampling, so a pixel grid stays visible.
    """
    import matplotlib.pyplot as plt

    pictures = np.clip(np.asarray(pictures, np.float32), 0, 1)
    r, c = pictures.shape[:2]
    fig, axes = plt.subplots(r + 1, c, figsize=(tile_inches * c + 0.6, (tile_inches + 0.3) * (r + 1)), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for j in range(c):
        axes[0, j].imshow(np.clip(inputs[j], 0, 1), interpolation="nearest")
        axes[0, j].set_title(columns[j], fontsize=8)
    axes[0, 0].set_ylabel("input", fontsize=9)
    for i in range(r):
        axes[i + 1, 0].set_ylabel(rows[i], fontsize=9)
        for j in range(c):
            axes[i + 1, j].imshow(pictures[i, j], interpolation="nearest")
            if cells:
                axes[i + 1, j].set_title(cells[i][j], fontsize=8)
    fig.tight_layout()
    return _canvas(fig)


__all__ = ["CLASS_COLOURS", "class_colour", "embedding_map", "neighbours", "projection_grid", "top_maps"]


def pyplot():
    """matplotlib's pyplot on the off-screen Agg backend (no display needed), for recipes' plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig, dpi: int | None = None) -> bytes:
    """A matplotlib figure laid out tightly and encoded as PNG at ``dpi`` (the figure's own when
    None); the figure is closed. Plots go to ``Staging.write_bytes`` / ``Job.write_bytes``."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
