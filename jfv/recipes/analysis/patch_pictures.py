"""The ``top_patches`` recipe's figure of seed 003's best feature map per block (``blocks.png``). Not
a recipe: ``jfv/recipes/analysis/top_patches.py`` writes it. The hits' patches and projections are
``jfv.analysis.top_patches.hit_pictures``' (``jfv.top_patches`` draws them too).
"""

from __future__ import annotations

import numpy as np

from jfv.analysis import datasets
from jfv.attribution import pictures


def blocks_figure(model, image: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """The input and, per block, the deconvnet projection of its strongest channel's strongest
    activation (``attribution.best_per_block``), titled with layer, channel and activation."""
    import matplotlib.pyplot as plt

    from jfv.attribution import best_per_block
    from jfv.analysis.figures import _canvas

    def show(ax, picture):  # a grayscale picture (H, W, 1) as grey, not as matplotlib's colour map
        picture = datasets.displayable(picture)
        if picture.shape[-1] == 1:
            ax.imshow(picture[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(picture)

    image = model.from_rgb(image)  # the photo as the model sees it (BT.601 luma for a grayscale model)
    out = best_per_block(model, image[None])
    n = len(out) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.0 * n, 2.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    show(axes[0, 0], np.clip(image, 0, 1))
    axes[0, 0].set_title("input", fontsize=8)
    rows = []
    for j, (layer, (proj, channel, value)) in enumerate(out.items(), start=1):
        show(axes[0, j], pictures.signed_image(np.asarray(proj)[0], gain=2.0))
        axes[0, j].set_title(f"{layer} ch {int(channel[0])}: {float(value[0]):.3g}", fontsize=8)
        rows.append({"layer": layer, "channel": int(channel[0]), "activation": float(value[0])})
    fig.tight_layout()
    return _canvas(fig), rows
