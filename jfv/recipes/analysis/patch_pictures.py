"""The pictures of the ``top_patches`` recipe: each hit's receptive-field patch and deconvnet
projection at the display size (patches reaching past the image filled with what the model's zero
padding looks like), and seed 003's best feature map per block (``blocks.png``). Not a recipe:
``jfv/recipes/analysis/top_patches.py`` writes them.
"""

from __future__ import annotations

import numpy as np

from jfv.analysis import datasets, patches
from jfv import models
from jfv.attribution import pictures


def patch_size(model, layer: str, config) -> int:
    """Display side of patches: ``patch_px``, else the receptive field's size capped at the image."""
    if int(config.patch_px):
        return int(config.patch_px)
    rf = patches.check_layer(model, layer, int(config.image_size))
    return min(rf.size if rf is not None else int(config.image_size), int(config.image_size))


def padding_fill(model) -> np.ndarray:
    """The [0, 1] pixel value the model's normalisation maps to 0, per channel: what its first conv's
    zero padding looks like, and so the fill of patches reaching past the image. A wrapped model's
    ``(mean - lo) / (hi - lo)``; ``patches.DEFAULT_FILL`` (the ImageNet mean every built-in RGB
    model subtracts) otherwise. Shaped as ``datasets.displayable`` pictures."""
    module = model.module
    if isinstance(module, models.Wrapped):
        lo, hi = module.input_range
        mean = np.broadcast_to(np.asarray(module.mean, np.float64), (model.channels,))
        fill = np.clip((mean - lo) / (hi - lo), 0, 1)
    else:
        fill = np.broadcast_to(np.asarray(patches.DEFAULT_FILL if model.channels == 3 else 0.5), (model.channels,))
    return datasets.displayable(np.asarray(fill, np.float32))


def hit_pictures(model, layer, stack, hits, config, project: bool):
    """Patches (N, s, s, C) and projections (N, s, s, C) as pictures (or None), with the boxes and
    the unit's activation at each hit's position (None without projections). ``stack`` holds the
    model's input images; C is their channels for 1 (grayscale) or 3, else 1 (their mean:
    ``datasets.displayable``)."""
    size, px = int(config.image_size), patch_size(model, layer, config)
    bx = patches.boxes(model, layer, hits.positions, size, clip=bool(config.clip))
    crops = patches.fit(patches.crop(datasets.displayable(stack), bx, fill=padding_fill(model)) if len(stack) else [], px)
    if not project or not len(stack):
        return crops, None, bx, None
    proj, unit = patches.project(model, stack, layer, hits.channels, hits.positions, int(config.project_batch))
    cropped = patches.fit(patches.crop(datasets.displayable(proj), bx, fill=0.0), px)
    return crops, cropped, bx, unit


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
