"""Reference images for LPIPS evaluation of AM: the two choices the regulariser study offers.

The seed scores each regulariser by the LPIPS distance of its AM images to "a reference image" per
channel without saying how that reference was made. jfv states it:

- ``lucid_reference``: a strong-prior visualisation of the channel, Lucid's recipe (Fourier
  parameterisation with 1/f scaling, decorrelated colour, sigmoid, Lucid's standard transforms,
  Adam 0.05) run for many steps. It answers "how close does a weaker regulariser come to the
  best-known prior?" and favours recipes that share its prior.
- ``most_activating_patch``: the natural-image patch, among windows of a set of image files, on
  which the channel's mean activation is highest (Erhan et al. 2009 / Zeiler & Fergus 2014's
  "top patches"). It answers "how natural does the AM image look for this channel?".

Example:
    >>> ref = lucid_reference(model, "conv4_3", [48, 62], jax.random.key(1000), size=64, steps=256)
    >>> ref.images.shape                                   # (2, 1, 64, 64, 3)
    >>> patches = most_activating_patch(model, "conv4_3", [48, 62], image_files("../shared/data/images"), 64)
    >>> patches.images.shape, patches.sources              # (2, 64, 64, 3), ["...owl.jpg@(32, 0)", ...]
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import jax
import numpy as np
import optax

from jfv.optvis import objectives, parameterisations, transforms
from jfv.models.base import Model
from jfv.models.stream import map_images
from jfv.runtime.outputs import load_image
from jfv.optvis.render import ProgressFn, Rendered, render_channels

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LUCID_LEARNING_RATE = 0.05  # lucid.optvis.render.render_vis: Adam(0.05)


def lucid_reference(model: Model, layer: str, channels: Sequence[int], key: jax.Array, size: int, steps: int,
                    *, batch_size: int | None = None, progress: ProgressFn | None = None) -> Rendered:
    """Lucid's recipe for each channel: ``image(size)`` (Fourier + decorrelated colour + sigmoid),
    ``transforms.standard()``, ``optax.adam(0.05)``, ``steps`` steps; ``render_channels`` output."""
    return render_channels(model, _channel_fn(layer), parameterisations.image(size), transforms.standard(),
                           optax.adam(LUCID_LEARNING_RATE), channels, key, steps,
                           batch_size=batch_size, progress=progress)


@functools.lru_cache(maxsize=None)
def _channel_fn(layer: str):
    return lambda c: objectives.channel(layer, c)  # one object per layer, so compilations are reused


def image_files(directory: str | os.PathLike) -> list[Path]:
    """Every .jpg/.jpeg/.png/.bmp under ``directory`` (recursively), sorted; errors if none."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"reference image directory {root} does not exist; pass a directory of "
                                f"jpg/png/bmp files (e.g. ../shared/data/images)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} files under {root}")
    return files


def windows(image: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Every ``size`` x ``size`` window of an (H, W, 3) image at ``stride``: (K, size, size, 3), corners."""
    h, w = image.shape[:2]
    ys = list(range(0, h - size + 1, stride)) or [0]
    xs = list(range(0, w - size + 1, stride)) or [0]
    corners = [(y, x) for y in ys for x in xs]
    return np.stack([image[y : y + size, x : x + size] for y, x in corners]), corners


class Patches(NamedTuple):
    """The most activating patch per channel: images (C, size, size, model channels), activation (C,) (the
    channel's mean over positions, as ``objectives.channel``), sources ("file@(y, x)") per channel."""

    images: np.ndarray
    activation: np.ndarray
    sources: list[str]


@dataclasses.dataclass(frozen=True)
class ChannelMeans:
    """The pass step (``jfv.models.stream``) of ``channel_means``: output ``means`` (B, channels)."""

    layer: str

    def __call__(self, model, params, carry, images, ids, mask):
        a = model.apply(params, images)[self.layer]  # (N, H, W, C), a token layer's (N, T, D) or a vector's (N, C)
        return carry, {"means": a.mean(axis=tuple(range(1, a.ndim - 1)))}  # objectives.channel's mean


def channel_means(model: Model, layer: str, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Mean activation of every channel of ``layer`` on each image: (N, H, W, C) -> (N, channels)
    (over positions, or a token layer's tokens, as ``objectives.channel``).

    ``jfv.models.stream.map_images`` of ``ChannelMeans(layer)``: fixed batches of ``batch`` (the
    last padded), so one compilation serves any N."""
    return map_images(model, ChannelMeans(layer), np.asarray(images, np.float32), batch)["means"]


def most_activating_patch(model: Model, layer: str, channels: Sequence[int], files: Sequence[str | os.PathLike],
                          size: int, *, context: int | None = None, stride: int | None = None,
                          batch: int = 32) -> Patches:
    """For each channel, the window of the images that maximises the channel's mean activation.

    Each file is loaded with its shorter side resized to ``context`` (default ``2 * size``) and
    centre-cropped square (``outputs.load_image``); every ``size`` window at ``stride`` (default
    ``size // 2``) is scored for all channels in one batched forward pass. The files are RGB; the
    windows are the model's input, ``model.from_rgb`` (a grayscale model's: their ITU-R BT.601 luma),
    so the patches have the model's channels.
    """
    context = context or 2 * size
    stride = stride or max(1, size // 2)
    patches, sources = [], []
    for f in files:
        wins, corners = windows(model.from_rgb(load_image(f, context)), size, stride)
        patches.append(wins)
        sources += [f"{Path(f).name}@{c}" for c in corners]
    patches = np.concatenate(patches)
    means = channel_means(model, layer, patches, batch)[:, list(channels)]  # (K, C)
    best = means.argmax(axis=0)
    return Patches(patches[best], means[best, np.arange(len(channels))], [sources[i] for i in best])


__all__ = ["ChannelMeans", "Patches", "channel_means", "image_files", "lucid_reference", "most_activating_patch", "windows"]
