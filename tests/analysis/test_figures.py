"""jfv.analysis.figures: the recipes' plots as PNG bytes (Agg, no display); the analysis figures (top_maps,
neighbours, embedding_map, projection_grid) are drawn by the activations, embeddings and checkerboard
recipes' end-to-end tests, which check only that they are written."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from jfv.analysis import figures


def test_png_bytes_is_the_figure_at_its_dpi_and_closes_it():
    plt = figures.pyplot()
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
    fig, ax = plt.subplots(figsize=(2.0, 1.5))
    ax.imshow(np.zeros((4, 4)), cmap="gray")
    data = figures.png_bytes(fig, dpi=50)
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG" and im.size == (100, 75)  # inches x dpi
    assert not plt.fignum_exists(fig.number)
    fig2, _ = plt.subplots(figsize=(1.0, 1.0), dpi=40)
    assert Image.open(io.BytesIO(figures.png_bytes(fig2))).size == (40, 40)  # the figure's own dpi

