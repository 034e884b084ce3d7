"""Deletion and insertion curves (Petsiuk et al. 2018, "RISE"): does a map rank pixels well?

Rank the pixels by the map (largest first). Deletion replaces the top fraction t of pixels by a
baseline and records the target's score; insertion starts from the baseline and reveals the top
fraction t. A faithful map makes the deletion curve fall fast (low area under it) and the insertion
curve rise fast (high area). Areas are trapezoids over t in [0, 1]. All (image, step, curve)
copies run as one batched computation, chunked like occlusion.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jfv.attribution.targets import Target
from jfv.imageops import gaussian_blur, map_chunks, resize
from jfv.models.base import Model
from jfv.runtime import moved

Array = jax.Array

BLUR_SIGMA = 0.05  # insertion/deletion "blur" baseline: Gaussian sigma as a fraction of the image side


class Curves(NamedTuple):
    """fractions (S+1,); deletion, insertion (n, S+1) scores; deletion_auc, insertion_auc (n,)."""

    fractions: np.ndarray
    deletion: Array
    insertion: Array
    deletion_auc: Array
    insertion_auc: Array


def blurred_baseline(images: Array, sigma: float) -> Array:
    """The insertion/deletion baseline: separable Gaussian blur of (n, H, W, 3) images, sigma > 0 in pixels.

    ``imageops.gaussian_blur`` with this baseline's own settings, kept so its curves do not change:
    the kernel truncated at ``max(1, int(3 sigma))`` pixels and numpy's reflection at the edges
    (``d c b | a b c d``, the edge pixel not repeated).
    """
    return gaussian_blur(images, sigma, radius=max(1, int(3 * sigma)), mode="reflect")


def ranks(maps: Array) -> Array:
    """(n, H, W) maps -> (n, H, W) int ranks, 0 for the largest value (ties by position)."""
    n = maps.shape[0]
    order = jnp.argsort(-maps.reshape(n, -1), axis=1, stable=True)
    r = jnp.zeros_like(order).at[jnp.arange(n)[:, None], order].set(jnp.arange(order.shape[1])[None])
    return r.reshape(maps.shape)


@functools.partial(jax.jit, static_argnames=("model", "target"))
def _chunk(params, images, bases, rank, channels, index, counts, insert, *, model: Model, target: Target):
    def one(i, k, ins):
        top = (rank[i] < k)[..., None]
        keep_image = jnp.where(ins, top, ~top)
        return jnp.where(keep_image, images[i], bases[i])

    batch = jax.vmap(one)(index, counts, insert)
    return target.score(model.apply(params, batch), channels[index])


def deletion_insertion(
    model: Model,
    images: Array,
    target: Target,
    maps: Array,
    steps: int = 16,
    baseline: float | str = "blur",
    batch_size: int = 32,
) -> Curves:
    """Deletion and insertion curves of ``maps`` for ``target``.

    Args:
        images: (n, H, W, 3) in [0, 1].
        maps: (n, h, w) attribution maps; resized (bilinear) to the images' size when smaller.
        steps: S; the curves have S + 1 points at fractions 0, 1/S, ..., 1.
        baseline: what removed pixels become: a value in [0, 1] (0 = black), or "blur" (a blurred
            copy of the image, sigma = 5% of its side, as RISE uses for insertion).
    Returns: ``Curves``.
    """
    images = jnp.asarray(images, jnp.float32)
    n, h, w = images.shape[:3]
    maps = jnp.asarray(maps, jnp.float32)
    if maps.ndim != 3 or maps.shape[0] != n:
        raise ValueError(f"maps must be (n, h, w) with n = {n} images, got shape {tuple(maps.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    target.check(model, (h, w))
    if maps.shape[1:] != (h, w):
        maps = resize(maps, (h, w), channels=False)
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be a value in [0, 1] or 'blur', got {baseline!r}")
        bases = blurred_baseline(images, BLUR_SIGMA * max(h, w))
    else:
        bases = jnp.full_like(images, float(baseline))
    rank = ranks(maps)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.rint(fractions * h * w).astype(np.int32)
    idx, step, ins = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(steps + 1), np.array([0, 1]), indexing="ij"))
    channels = target.channels(n)
    run = lambda i, c, s: _chunk(model.params, images, bases, rank, channels, i, c, s, model=model.static, target=target)
    scores = map_chunks(run, idx.astype(np.int32), counts[step], ins.astype(bool),
                        batch=min(batch_size, idx.size)).reshape(n, steps + 1, 2)
    deletion, insertion = scores[..., 0], scores[..., 1]
    auc = lambda c: jnp.trapezoid(c, jnp.asarray(fractions, c.dtype), axis=-1)
    return Curves(fractions, deletion, insertion, auc(deletion), auc(insertion))


__getattr__ = moved.renamed(__name__)  # old names (jfv.runtime.moved.NAMES)
