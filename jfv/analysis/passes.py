"""Passes of a dataset through a model: every image once, in padded batches, keeping what a step returns.

``natural_pass`` streams natural images for the trust measures (``jfv.evaluation.trust``): each
image's score for some channels and its spatially averaged activations at some layers.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfv.analysis import datasets, topk
from jfv.evaluation.trust import NaturalPass, spatial_mean


def natural_pass(model, source, layer: str, channels: Sequence[int], layers: Sequence[str], size: int,
                 batch_size: int, reduce: str = "mean") -> NaturalPass:
    """Streams ``source`` (a ``datasets.Source``) once through ``model`` at ``size`` px, in batches.

    Returns NaturalPass(images (N, S, S, model channels) as the model saw them (``Model.from_rgb``),
    scores (N, C) of ``channels`` of ``layer`` under
    ``topk.scores(reduce)``, {name: (N, D)} profiles of ``layers``); the unreadable images are dropped.
    """
    chans = jnp.asarray(channels, jnp.int32)
    layers = list(layers)

    @jax.jit
    def step(params, images):
        acts = model.apply(params, images)
        a = acts[layer]
        a = a[:, :, None, :] if a.ndim == 3 else a  # a token layer (N, T, D): its tokens as positions
        values, _ = topk.scores(a, reduce)
        return values[:, chans], {name: spatial_mean(acts[name]) for name in layers}

    images, scores, profiles = [], [], {name: [] for name in layers}
    # the model's input: the RGB images, or their BT.601 luma for a grayscale model (Model.from_rgb)
    for batch in datasets.batches(source, size, batch_size, prefetch_batches=0, convert=model.from_rgb):
        real = np.asarray(batch.mask)
        if not real.any():
            continue
        s, p = step(model.params, jnp.asarray(batch.images))
        images.append(np.asarray(batch.images)[real])
        scores.append(np.asarray(s)[real])
        for name in layers:
            profiles[name].append(np.asarray(p[name])[real])
    if not images:
        raise datasets.DatasetError(f"no readable image in {source.description}: point dataset at readable images")
    return NaturalPass(np.concatenate(images), np.concatenate(scores), {k: np.concatenate(v) for k, v in profiles.items()})
