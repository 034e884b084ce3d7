"""The measures the ``score`` recipe adds to its rows, one stage per measure: the processing path
(every visualisation), the two-alternative test (channels of a hidden layer), plausibility,
confidence and transferability (classes). Each stage adds its columns of ``scores.csv`` to the
rows and their names to the summary's measures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv import evaluation, models
from jfv.analysis import datasets
from jfv.recipes.common import ConfigError

NOISE_STREAM = 2  # fold_in(key, .) of the noise images of the plausibility baseline (split(key) uses 0, 1)


def lpips_rgb(images: np.ndarray) -> np.ndarray:
    """Model-input images (..., C) as the RGB LPIPS compares: as they are for 3 channels, else their
    grey picture (``datasets.displayable``) repeated into three channels."""
    images = np.asarray(images, np.float32)
    return images if images.shape[-1] == 3 else np.repeat(datasets.displayable(images), 3, axis=-1)


def path_rows(config: ml_collections.ConfigDict, model: models.Model, layer: str, channels: list[int], layers: list[str],
              references: np.ndarray, scores: np.ndarray, nat_profiles: dict, n: int, k_rand: jax.Array) -> tuple:
    """Processing path: each visualisation (its first image) against its channel's top natural images.
    (one row per channel with the ``path_*`` columns of ``scores.csv``, the visualisations' path, the
    natural top-1's path, top k, the random baseline's ids)."""
    k = min(int(config.path_top), n - 1)
    top, _ = evaluation.tail_indices(scores, k + 1)  # (C, k + 1): rank 0 is the natural reference
    top = np.asarray(top)
    rand_ids = np.asarray(jax.random.choice(k_rand, n, (min(int(config.path_random), n),), replace=False))
    vis_profiles = evaluation.activation_profiles(model, references[:, 0], layers)
    random_p = {name: nat_profiles[name][rand_ids] for name in layers}
    vis_path = evaluation.processing_path(vis_profiles, {name: nat_profiles[name][top[:, :k]] for name in layers},
                                       random_p, layers, config.similarity)
    nat_path = evaluation.processing_path({name: nat_profiles[name][top[:, 0]] for name in layers},
                                       {name: nat_profiles[name][top[:, 1:]] for name in layers},
                                       random_p, layers, config.similarity)
    rows = [{"layer": layer, "channel": c} for c in channels]
    for i, r in enumerate(rows):
        r["path_top"] = float(vis_path.top[i].mean())
        r["path_random"] = float(vis_path.random[i].mean())
        r["path_gap"] = float(vis_path.gap[i])
        r["path_gap_natural"] = float(nat_path.gap[i])
        r["path_deficit"] = float((nat_path.top[i] - vis_path.top[i]).mean())
    return rows, vis_path, nat_path, k, rand_ids


def add_class_scores(model: models.Model, channels: list[int], references: np.ndarray, pictures: np.ndarray,
                     transfer: dict, rows: list[dict], measures: list[str]) -> None:
    """Classes: confidence (``confidence_own``, ``margin_own``: the rendering model's p(class) and margin) and
    transferability (``confidence_<model>``, ``margin_<model>``) added to ``rows``, their names to ``measures``."""
    targets = jnp.asarray(channels, jnp.int32)
    own = np.asarray(evaluation.confidence(model, references[:, 0], targets))
    own_margin = np.asarray(evaluation.class_margins(model, references[:, 0], targets))
    for i, r in enumerate(rows):
        r["confidence_own"], r["margin_own"] = float(own[i]), float(own_margin[i])
    measures += ["confidence_own", "margin_own"]
    for name, other in transfer.items():
        seen = other.from_rgb(pictures[:, 0])  # each transfer model's own input
        p = np.asarray(evaluation.confidence(other, seen, targets))
        margin = np.asarray(evaluation.class_margins(other, seen, targets))
        for i, r in enumerate(rows):
            r[f"confidence_{name}"], r[f"margin_{name}"] = float(p[i]), float(margin[i])
        measures += [f"confidence_{name}", f"margin_{name}"]


def natural_rgb(source: datasets.Source, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The natural images in RGB at ``size`` px (unreadable ones dropped) and their labels:
    (N, S, S, 3) float32, (N,) int32."""
    loaded = datasets.load(source, source.ids, size)
    keep = [i for i, n in enumerate(source.ids) if int(n) in loaded]
    images = np.stack([loaded[int(source.ids[i])] for i in keep]).astype(np.float32)
    return images, source.labels[keep]


def add_plausibility(key: jax.Array, model: models.Model, channels: list[int], references: np.ndarray,
                     pictures: np.ndarray, transfer: dict, source: datasets.Source, size: int, rows: list[dict],
                     measures: list[str]) -> dict | None:
    """Classes: plausibility (``plausibility_own``, ``plausibility_<model>``: ``evaluation.plausibility`` in the
    penultimate feature space of the rendering model and of each transfer model) added to ``rows`` and
    ``measures``. Returns, per model, its feature layer and two baselines on the same scale: ``natural``
    (each natural image against the others of its class, mean) and ``noise`` (uniform noise images, one per
    visualisation, against the same classes, mean; None where no class has two images); None (nothing
    added) when the natural images are not labelled with the model's classes. A visualised class without
    natural images is a ConfigError naming it."""
    if not source.classes or tuple(source.classes) != tuple(model.labels or ()):
        return None
    nat_rgb, labels = natural_rgb(source, size)
    targets = np.asarray(channels, np.int32)
    missing = sorted({int(t) for t in targets} - {int(y) for y in labels})
    if missing:
        raise ConfigError(f"plausibility compares each class visualisation with natural images of its class, and classes "
                          f"{missing[:10]} have none among the {len(labels)} natural images read: raise per_class or limit")
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)
    pairs = counts[labels] >= 2  # the natural baseline leaves each image out of its class: classes of 2+ images
    noise = np.asarray(jax.random.uniform(jax.random.fold_in(key, NOISE_STREAM), pictures[:, 0].shape, jnp.float32))
    baselines = {}
    for name, m, vis in [("own", model, references[:, 0])] + [(n, o, o.from_rgb(pictures[:, 0])) for n, o in transfer.items()]:
        nat = evaluation.class_features(m, m.from_rgb(nat_rgb))
        p = np.asarray(evaluation.plausibility(evaluation.class_features(m, vis), nat, labels, targets))
        for i, r in enumerate(rows):
            r[f"plausibility_{name}"] = float(p[i])
        measures.append(f"plausibility_{name}")
        noise_p = evaluation.plausibility(evaluation.class_features(m, m.from_rgb(noise)), nat, labels, targets)
        natural = float(np.mean(evaluation.natural_plausibility(nat[pairs], labels[pairs]))) if pairs.any() else None
        baselines[name] = {"model": m.name, "layer": evaluation.feature_layer(m),
                           "natural": natural, "noise": float(np.mean(noise_p))}
    return baselines


def add_two_afc(config: ml_collections.ConfigDict, channels: list[int], references: np.ndarray, images: np.ndarray,
                scores: np.ndarray, k_afc: jax.Array, rows: list[dict], measures: list[str]) -> tuple:
    """Channels: the two-alternative test (``two_afc``, ``two_afc_se``: its binomial standard error over trials,
    ``two_afc_p``: its permutation p-value against chance, ``two_afc_ci_low`` / ``_high``: its 95% bootstrap
    interval, ``two_afc_null_sd``: the null's spread; with ``swaps`` and 2+ channels ``two_afc_swap``: the mean
    accuracy of other channels' visualisations on the same test and ``two_afc_swap_p``: the own accuracy's
    rank p-value among them) added to ``rows``; ``two_afc`` (and ``two_afc_swap``) to ``measures``;
    (the test's result, the tails' size)."""
    n = len(images)
    tail = min(int(config.tail), n // 2)
    if tail < 1:
        raise ConfigError(f"the two-alternative test needs at least 2 natural images, got {n}: use more (per_class, limit)")
    afc = evaluation.two_afc(k_afc, lpips_rgb(references), lpips_rgb(images), scores, jnp.asarray(channels),
                          int(config.trials), tail, config.lpips_net, resamples=int(config.resamples),
                          swaps=int(config.swaps))
    for i, r in enumerate(rows):
        r["two_afc"] = float(afc.accuracy[i])
        r["two_afc_se"] = float(afc.stderr[i])
        r["two_afc_p"] = float(afc.p_value[i])
        r["two_afc_ci_low"] = float(afc.ci_low[i])
        r["two_afc_ci_high"] = float(afc.ci_high[i])
        r["two_afc_null_sd"] = float(afc.null_sd[i])
        if afc.swap_accuracy is not None:
            r["two_afc_swap"] = float(afc.swap_accuracy[i].mean())
            r["two_afc_swap_p"] = float(afc.swap_p_value[i])
    measures.insert(0, "two_afc")
    if afc.swap_accuracy is not None:
        measures.insert(1, "two_afc_swap")
    return afc, tail


def path_per_layer(layers: list[str], vis_path: evaluation.PathScores, nat_path: evaluation.PathScores) -> list[dict]:
    """``scores.md``'s processing path per layer (mean over visualisations)."""
    return [{"layer": name, "vis_top": float(vis_path.top[:, j].mean()),
             "vis_random": float(vis_path.random[:, j].mean()), "nat_top": float(nat_path.top[:, j].mean()),
             "nat_random": float(nat_path.random[:, j].mean())} for j, name in enumerate(layers)]
