"""Patches of top-k hits: each hit's receptive-field crop from its image, and its deconvnet projection.

A *hit* is one entry of a ``jfv.analysis.topk.TopK`` state: (channel, rank, image id, position, value). Its
patch is the image inside the unit's box (``jfv.models.receptive``):

- ``clip=False`` (default): the unclipped box, the same size for every position of the layer (the
  receptive field, e.g. 196 px for VGG16 ``conv5_3``), so patches tile into a sheet. Where the box
  reaches past the image the patch holds ``fill``; the default is the ImageNet mean colour, the pixel
  value the first convolution's zero padding of the normalised input stands for (deeper layers' zero
  padding has no pixel equivalent).
- ``clip=True``: only the pixels the unit can see (variable size near the border); ``fit`` resizes
  them to one size for display, as Girshick et al.'s Fig. 4 crops.

Its projection is Zeiler & Fergus's deconvnet of the hit alone (``jfv.attribution.project_units``):
the unit's activation, everything else in the layer zeroed, passed down with the switches of the same
image. It is zero outside the box, so it is cropped with the same box (fill 0).

Example:
    >>> hits = gather(state, channels=[48])             # state: topk.TopK of VGG16 conv5_3
    >>> images = datasets.load(source, hits.ids, 64)    # {id: (64, 64, 3)}
    >>> stack = np.stack([images[i] for i in hits.ids])
    >>> crops = crop(stack, boxes(model, "conv5_3", hits.positions, 64))
    >>> proj, values = project(model, stack, "conv5_3", hits.channels, hits.positions)

Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks", Fig. 2; Girshick et
al. 2014, "Rich feature hierarchies", Fig. 4.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
from PIL import Image

from jfv.models import receptive
from jfv.attribution import pictures
from jfv.attribution.switches import project_units
from jfv.models.vgg import IMAGENET_MEAN
from jfv.analysis.topk import EMPTY, TopK

DEFAULT_FILL = IMAGENET_MEAN  # what the first conv's zero padding of the normalised input looks like


class PatchError(ValueError):
    """A layer whose units have no patch (no spatial extent), or hits that do not fit the images."""


class Hits(NamedTuple):
    """Flattened top-k entries, N of them: channels (N,), ranks (N,), ids (N,), positions (N, 2), values (N,)."""

    channels: np.ndarray
    ranks: np.ndarray
    ids: np.ndarray
    positions: np.ndarray
    values: np.ndarray


def check_layer(model: Any, layer: str, image_size: int | tuple[int, int]) -> receptive.ReceptiveField | None:
    """Raises PatchError naming the fix when ``layer``'s units have no patch at ``image_size``.

    Returns the layer's receptive field (None after an adaptive pool, whose boxes vary in size).
    """
    model.check_layer(layer)
    geo = receptive.geometry(model)
    if not receptive.has_extent(geo, layer):
        spatial = [name for name in geo if receptive.has_extent(geo, name)]
        raise PatchError(
            f"layer {layer!r} of {model.name} has no spatial extent, so its units have no image patch: "
            f"pick a convolution or pool layer (e.g. {spatial[-1]!r})"
        )
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    sizes = [receptive.map_sizes(geo, layer, n)[-1] for n in (h, w)]
    if any(s is None or s < 1 for s in sizes):
        raise PatchError(f"layer {layer!r} has no positions at image size {image_size}: use a larger image_size")
    try:
        return receptive.receptive_field(model, layer)
    except receptive.GeometryError:
        return None


def gather(state: TopK, channels: Sequence[int] | None = None) -> Hits:
    """The kept entries of ``channels`` (default all), channel-major then rank; empty slots left out."""
    values, ids, positions = (np.asarray(x) for x in state)
    chans = range(values.shape[0]) if channels is None else [int(c) for c in channels]
    rows = [(c, r) for c in chans for r in range(values.shape[1]) if ids[c, r] != EMPTY]
    if not rows:
        return Hits(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32),
                    np.zeros((0, 2), np.int32), np.zeros(0, np.float32))
    c, r = (np.asarray(v, np.int32) for v in zip(*rows))
    return Hits(c, r, ids[c, r].astype(np.int32), positions[c, r].astype(np.int32), values[c, r].astype(np.float32))


def boxes(model: Any, layer: str, positions: np.ndarray, image_size: int | tuple[int, int], clip: bool = False) -> np.ndarray:
    """(N, 4) boxes (top, left, bottom, right), half-open, of the units at ``positions`` (N, 2)."""
    check_layer(model, layer, image_size)
    b = receptive.boxes(model, layer, image_size)
    rows, cols = (b.clipped_rows, b.clipped_cols) if clip else (b.rows, b.cols)
    p = np.asarray(positions, np.int64).reshape(-1, 2)
    if len(p) and (p.min() < 0 or p[:, 0].max() >= len(rows) or p[:, 1].max() >= len(cols)):
        raise PatchError(f"positions off {layer!r}'s {len(rows)}x{len(cols)} map at image size {image_size}")
    return np.concatenate([rows[p[:, 0], :1], cols[p[:, 1], :1], rows[p[:, 0], 1:], cols[p[:, 1], 1:]], axis=1)


def crop(images: np.ndarray, box_array: np.ndarray, fill: Any = DEFAULT_FILL) -> np.ndarray | list[np.ndarray]:
    """``images[n]`` inside ``box_array[n]``, the part outside the image set to ``fill``.

    Returns an (N, h, w, C) array when every box has the same size, else a list of arrays.
    """
    images = np.asarray(images)
    if len(images) != len(box_array):
        raise PatchError(f"{len(images)} images but {len(box_array)} boxes: pass one box per image")
    out = [receptive.padded_crop(im, receptive.Box(*(int(v) for v in b)), fill) for im, b in zip(images, box_array)]
    if out and len({o.shape for o in out}) == 1:
        return np.stack(out)
    return out


def fit(patches: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Patches of any sizes resized (bilinear) to (N, size, size, C) float32 for sheets."""
    out = []
    for p in patches:
        p = np.asarray(p, np.float32)
        if p.shape[:2] != (size, size):
            chans = [np.asarray(Image.fromarray(p[..., c], mode="F").resize((size, size), Image.BILINEAR))
                     for c in range(p.shape[-1])]
            p = np.stack(chans, axis=-1)
        out.append(p)
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.float32)


def project(model: Any, images: np.ndarray, layer: str, channels: np.ndarray, positions: np.ndarray,
            batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Deconvnet projections of hits, one per image: (N, H, W, 3) and the hits' values (N,).

    Runs ``jfv.attribution.project_units`` in batches of ``batch_size`` (the last padded, so one
    compiled program serves all).
    """
    images = np.asarray(images, np.float32)
    n = len(images)
    if not (len(channels) == len(positions) == n):
        raise PatchError(f"{n} images, {len(channels)} channels and {len(positions)} positions: pass one of each per hit")
    if batch_size < 1:
        raise PatchError(f"batch_size must be >= 1, got {batch_size}")
    if n == 0:
        return np.zeros((0,) + images.shape[1:], np.float32), np.zeros(0, np.float32)
    check_layer(model, layer, images.shape[1:3])
    b = min(batch_size, n)
    projections, values = [], []
    for s in range(0, n, b):
        x, c, p = images[s : s + b], np.asarray(channels[s : s + b]), np.asarray(positions[s : s + b])
        m = len(x)
        if m < b:
            x = np.concatenate([x, np.zeros((b - m,) + x.shape[1:], np.float32)])
            c = np.concatenate([c, np.zeros(b - m, c.dtype)])
            p = np.concatenate([p, np.zeros((b - m, 2), p.dtype)])
        proj, val = project_units(model, x, layer, c, p)
        projections.append(np.asarray(proj)[:m])
        values.append(np.asarray(val)[:m])
    return np.concatenate(projections), np.concatenate(values)


def sheet(patches: np.ndarray, projections: np.ndarray | None = None, columns: int = 3, pad: int = 2) -> np.ndarray:
    """Zeiler & Fergus's Fig. 2 layout for one channel: the projections' grid (each scaled to its own
    largest magnitude, grey = 0) left of the patches' grid. (N, S, S, C) -> (H, W, C) in [0, 1], C 3 or 1.

    Crop the projections with the patches' boxes (``crop(projections, boxes, fill=0)``) first.
    """
    from jfv.runtime.outputs import sprite

    patches = np.clip(np.asarray(patches, np.float32), 0, 1)
    right = sprite(list(patches), columns=columns, pad=pad)
    if projections is None:
        return right
    if np.shape(projections) != patches.shape:
        raise PatchError(f"projections {np.shape(projections)} and patches {patches.shape} differ: crop both with the same boxes")
    left = sprite([pictures.signed_image(p) for p in projections], columns=columns, pad=pad)
    gap = np.ones((left.shape[0], 3 * pad + 2, left.shape[-1]), np.float32)  # 1 channel for grayscale sheets
    return np.concatenate([left, gap, right], axis=1)


__all__ = ["DEFAULT_FILL", "Hits", "PatchError", "boxes", "check_layer", "crop", "fit", "gather", "project", "sheet"]
