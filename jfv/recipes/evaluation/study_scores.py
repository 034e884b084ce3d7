"""The study's reference and scoring stages: the natural images of ``measures.md`` (``natural_images``),
the reference per channel (``reference_images``: ``REFERENCES``, described by ``REFERENCE_DOCS``) and
every rendered image scored in fixed-size batches (``scores``: LPIPS to the reference, activation,
high-frequency energy, TV, diversity across seeds and, with ``measures``, the trust measures). They
read the ``Plan`` of ``study_plan.py``; ``study_outputs.py`` writes what they return.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jfv import evaluation, imageops
from jfv.analysis import datasets, passes
from jfv.optvis import references
from jfv.recipes.common import ConfigError
from jfv.recipes.evaluation.study_plan import Plan

REFERENCES = ("lucid", "natural", "none")  # none: no reference, no scores (a sweep)
REFERENCE_SEED_OFFSET = 1000  # the reference's key differs from every rendered seed's
MEASURE_SEED_OFFSET = 2000  # the measures' trials and random baseline: one key for every experiment
REFERENCE_DOCS = {
    "lucid": "Lucid's recipe: Fourier + decorrelated colour + sigmoid, standard transforms, Adam 0.05, reference_steps",
    "natural": "the most activating window among the images of reference_images",
    "none": "no reference: the images are not scored (results.csv has the render's objective)",
}


def natural_images(p: Plan):
    """The natural images of ``measures.md`` (``passes.natural_pass``) and the processing path's layers."""
    config = p.config
    path_layers = evaluation.layers_up_to(p.model, p.layer)
    natural = passes.natural_pass(p.model, datasets.image_folder(config.measure_images), p.layer, p.channels,
                                   path_layers, config.image_size, config.score_batch)
    if len(natural.images) < 2:
        raise ConfigError(f"measures need at least 2 readable natural images in measure_images="
                          f"{config.measure_images!r}, found {len(natural.images)}: point it at a folder of photos")
    return natural, path_layers


def reference_images(p: Plan) -> tuple[np.ndarray, list[str]]:
    """The reference per channel (``references/``): the images and where each comes from."""
    config, size = p.config, p.config.image_size
    if config.reference == "lucid":
        ref = references.lucid_reference(p.model, p.layer, p.channels, jax.random.key(config.seed + REFERENCE_SEED_OFFSET),
                                         size, config.reference_steps, batch_size=config.batch_size or None)
        ref_images = np.asarray(ref.images[:, 0])
        ref_sources = [f"Lucid recipe, {config.reference_steps} steps, seed {config.seed + REFERENCE_SEED_OFFSET}"] * len(p.channels)
    else:
        patches = references.most_activating_patch(p.model, p.layer, p.channels, p.files, size)
        ref_images, ref_sources = patches.images, patches.sources
    return ref_images, ref_sources


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size:
        return img
    return np.asarray(imageops.resize(jnp.asarray(img), size))


def _score(fn, *arrays, chunk: int) -> np.ndarray:
    """``fn`` over the leading axis in fixed chunks (padded), so one compilation serves any length."""
    return np.asarray(imageops.map_chunks(fn, *arrays, batch=chunk))


class Scores(NamedTuple):
    """Every rendered image's scores, in the order of ``keys`` (experiment, value, channel, seed index, value index)."""

    keys: list[tuple]
    images: np.ndarray
    objective: list[float]
    lpips: np.ndarray
    hf_energy: np.ndarray
    tv: np.ndarray
    activation: np.ndarray
    diversity: dict
    trust: Any


def scores(p: Plan, rendered: dict, ref_images: np.ndarray, natural, path_layers) -> Scores:
    """Every image scored in fixed-size batches (the columns of ``results.csv``)."""
    config, size, channels = p.config, p.config.image_size, p.channels
    keys, imgs, refs, chan_idx, objs = p.cells(), [], [], [], []
    for e, v, c, s, j in keys:
        images, objective = rendered[(e, s)]
        i = channels.index(c)
        imgs.append(_resize(images[i][j], size))
        refs.append(ref_images[i])
        chan_idx.append(c)
        objs.append(float(objective[i, j]))
    imgs, refs = np.stack(imgs).astype(np.float32), np.stack(refs).astype(np.float32)
    chunk = config.score_batch
    net = config.lpips_net
    lp = _score(lambda a, b: evaluation.lpips(a, b, net), imgs, refs, chunk=chunk)
    hf = _score(lambda a: evaluation.high_frequency_energy(a, config.hf_cutoff), imgs, chunk=chunk)
    tv = _score(evaluation.total_variation, imgs, chunk=chunk)
    acts = references.channel_means(p.model, p.layer, imgs, chunk)[np.arange(len(imgs)), chan_idx]
    div = seed_diversity(config, keys, imgs) if config.seeds > 1 else {}
    trust = None
    if natural is not None:
        trust = evaluation.visualisation_measures(
            jax.random.key(config.seed + MEASURE_SEED_OFFSET), p.model, path_layers, imgs,
            [channels.index(c) for c in chan_idx], chan_idx, natural, trials=config.measure_trials,
            tail=config.measure_tail, path_top=config.path_top, path_random=config.path_random,
            similarity=config.similarity, net=net)
    return Scores(keys, imgs, objs, lp, hf, tv, acts, div, trust)


def seed_diversity(config, keys: list[tuple], imgs: np.ndarray) -> dict:
    """{(experiment, value index, channel): mean pairwise LPIPS across the cell's seeds}."""
    groups: dict = {}
    for n, (e, v, c, s, j) in enumerate(keys):
        groups.setdefault((e, j, c), []).append(n)
    order = list(groups)
    stacks = np.stack([imgs[groups[g]] for g in order])  # (cells, S, H, W, 3)
    pairs_i, pairs_j = evaluation.pair_indices(config.seeds)
    a = stacks[:, pairs_i].reshape((-1,) + imgs.shape[1:])
    b = stacks[:, pairs_j].reshape((-1,) + imgs.shape[1:])
    net = config.lpips_net
    d = _score(lambda x, y: evaluation.lpips(x, y, net), a, b, chunk=config.score_batch)
    d = d.reshape(len(order), -1).mean(axis=1)
    return dict(zip(order, d))
