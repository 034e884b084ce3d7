"""Measures of whether a visualisation can be trusted (``docs/trust.md``; the recipe ``score``):

- ``two_afc(key, references, images, scores)``: an automated two-alternative test in the spirit of
  MIS (Zimmermann et al. 2024): how often the natural query more similar (LPIPS) to the
  visualisations is the more activating one; fraction correct with its binomial standard error.
- ``class_probabilities`` / ``class_margins``: a model's softmax probability of, and logit margin
  for, each image's target class (plausibility with the rendering model, transferability with others).
- ``processing_path(references, top, random, layers)``: Geirhos et al. 2024's check, per layer: the
  rank correlation (or cosine) of spatially averaged activations with the channel's top natural
  images against random ones.

See ``docs/trust.md``; LPIPS and the image measures are ``jfv.evaluation.perceptual``.
"""


from __future__ import annotations

import functools
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfv.evaluation.perceptual import lpips

Array = jax.Array

# -- measures that say whether a visualisation can be trusted ----------------------------------------
#
# Three measures, each a pure, batched function (the recipe ``score`` feeds them):
#
# - ``two_afc``: an automated two-alternative forced-choice test in the spirit of Zimmermann et al.'s
#   MIS (NeurIPS 2024) and Borowski et al. 2021: how often the natural query image more similar to
#   the visualisation (by LPIPS) is the more activating one.
# - ``class_probabilities``: plausibility (the model's own softmax probability of the target class)
#   and transferability (another model's).
# - ``processing_path``: Geirhos et al. (ICML 2024)'s check, layer by layer: how similar are the
#   visualisation's activations to those of the channel's top natural images, against random ones.

TWO_AFC_TAIL = 20  # queries come from each channel's 20 most / 20 least activating natural images
TWO_AFC_TRIALS = 100  # trials per channel: a binomial standard error of at most 0.05
SIMILARITIES = ("spearman", "cosine")  # how processing_path compares two activation profiles
LPIPS_BATCH = 256  # image pairs per compiled LPIPS call (memory)


class TwoAFC(NamedTuple):
    """Per channel, the two-alternative test's result.

    accuracy: (C,) the fraction of trials answered correctly (a tie counts one half).
    stderr: (C,) its binomial standard error, ``sqrt(p (1 - p) / trials)``.
    outcomes: (C, trials) 1 correct, 0 wrong, 0.5 tie.
    """

    accuracy: Array
    stderr: Array
    outcomes: Array


def binomial_stderr(p: Array, n: int) -> Array:
    """The standard error ``sqrt(p (1 - p) / n)`` of a fraction ``p`` of ``n`` independent trials."""
    p = jnp.asarray(p, jnp.float32)
    return jnp.sqrt(jnp.clip(p * (1.0 - p), 0.0, None) / n)


@functools.partial(jax.jit, static_argnames=("tail",))
def tail_indices(scores: Array, tail: int) -> tuple[Array, Array]:
    """Each channel's ``tail`` most and least activating images: (N, C) -> top (C, tail), bottom (C, tail).

    Top is ordered by score descending, bottom by score ascending; ties by image index ascending
    (stable sorts), so the result does not depend on anything but the scores.
    """
    s = jnp.asarray(scores, jnp.float32)
    top = jnp.argsort(-s, axis=0, stable=True)[:tail].T
    bottom = jnp.argsort(s, axis=0, stable=True)[:tail].T
    return top.astype(jnp.int32), bottom.astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("trials", "tail"))
def two_afc_trials(key: Array, channel_ids: Array, trials: int, tail: int) -> tuple[Array, Array]:
    """The trials' queries: for each channel, ``trials`` (top, bottom) pairs of tail positions.

    Each position is drawn uniformly (with replacement) from ``0 .. tail-1``, with the channel's key
    ``fold_in(key, channel)``: channel 73's trials are the same whether it is scored alone or in a
    layer. Returns top (C, trials), bottom (C, trials) int32 positions in the tails.
    """

    def one(c):
        kt, kb = jax.random.split(jax.random.fold_in(key, c))
        return (jax.random.randint(kt, (trials,), 0, tail), jax.random.randint(kb, (trials,), 0, tail))

    return jax.vmap(one)(jnp.asarray(channel_ids, jnp.int32))


@jax.jit
def two_afc_outcomes(d_top: Array, d_bottom: Array, top: Array, bottom: Array) -> Array:
    """Each trial's outcome from the references' distances to the tails' images.

    Args:
        d_top, d_bottom: (C, tail) the mean distance of the channel's references to each of its
            top / bottom images.
        top, bottom: (C, trials) the trials' positions in the tails (``two_afc_trials``).
    Returns:
        (C, trials): 1 when the top query is nearer the references than the bottom one, 0 when it
        is farther, 0.5 on a tie (the observer guesses).
    """
    a = jnp.take_along_axis(d_top, top, axis=1)
    b = jnp.take_along_axis(d_bottom, bottom, axis=1)
    return jnp.where(a < b, 1.0, jnp.where(a > b, 0.0, 0.5))


def lpips_pairs(a: Array, b: Array, net: str = "alexnet", batch: int = LPIPS_BATCH) -> Array:
    """``lpips(a, b)`` for (P, H, W, 3) pairs in chunks of ``batch`` (one compiled shape: the last
    chunk is padded), so a layer's worth of pairs fits in memory. -> (P,)."""
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    from jfv.imageops import map_chunks

    return map_chunks(lambda x, y: lpips(x, y, net), a, b, batch=min(batch, a.shape[0]))


def reference_distances(references: Array, queries: Array, net: str = "alexnet",
                        batch: int = LPIPS_BATCH) -> Array:
    """The mean LPIPS from each channel's references to each of its queries.

    Args:
        references: (C, R, H, W, 3) the channel's visualisations (R per channel, e.g. seeds).
        queries: (C, Q, H, W, 3) natural images, the same size.
    Returns:
        (C, Q): ``d[c, q] = mean_r LPIPS(references[c, r], queries[c, q])``.
    """
    references = jnp.asarray(references, jnp.float32)
    queries = jnp.asarray(queries, jnp.float32)
    c, r = references.shape[:2]
    q = queries.shape[1]
    if references.shape[2:] != queries.shape[2:] or queries.shape[0] != c:
        raise ValueError(f"references {tuple(references.shape)} and queries {tuple(queries.shape)} must be "
                         f"(C, R, H, W, 3) and (C, Q, H, W, 3) of the same C and image size: resize one first")
    a = jnp.broadcast_to(references[:, :, None], (c, r, q) + references.shape[2:]).reshape((-1,) + references.shape[2:])
    b = jnp.broadcast_to(queries[:, None], (c, r, q) + queries.shape[2:]).reshape((-1,) + queries.shape[2:])
    return lpips_pairs(a, b, net, batch).reshape(c, r, q).mean(axis=1)


def two_afc(key: Array, references: Array, images: Array, scores: Array, channel_ids: Array | None = None,
            trials: int = TWO_AFC_TRIALS, tail: int = TWO_AFC_TAIL, net: str = "alexnet",
            batch: int = LPIPS_BATCH) -> TwoAFC:
    """An automated two-alternative test of how informative each channel's visualisation is.

    For channel c, each trial draws a query ``q+`` uniformly from the ``tail`` natural images that
    activate c most and a query ``q-`` from the ``tail`` that activate it least; the observer picks the
    query more similar to the references (the channel's R visualisations), by mean LPIPS:

        correct(t) = [ mean_r d(v_r, q+_t) < mean_r d(v_r, q-_t) ]      (a tie counts 1/2)
        accuracy_c = mean_t correct(t),   stderr_c = sqrt(acc (1 - acc) / trials)

    Chance is 0.5; a reference identical to every top image scores 1. This is the human task of
    Borowski et al. 2021 with a machine observer, as in Zimmermann et al. 2024's MIS, with three
    differences: LPIPS instead of DreamSim (not available offline); only maximally activating
    references (an AM run renders no minimally activating ones); and the hard fraction correct instead
    of MIS's sigmoid of the similarity difference.

    Args:
        key: the trials' key (per channel ``fold_in(key, channel_ids[c])``).
        references: (C, R, H, W, 3) visualisations in [0, 1], the natural images' size.
        images: (N, H, W, 3) natural images in [0, 1].
        scores: (N, C) each image's activation score for each channel (e.g. ``topk.scores``).
        channel_ids: (C,) the channels' indices in their layer (default 0..C-1), for the keys.
        trials: trials per channel; tail: images in each tail (<= N / 2, so the tails are disjoint).
        net: the LPIPS backbone (``NETS``).
    Returns:
        ``TwoAFC`` (accuracy (C,), stderr (C,), outcomes (C, trials)).

    Example:
        >>> res = two_afc(jax.random.key(0), vis[:, None], images, scores, trials=100, tail=20)
        >>> res.accuracy, res.stderr

    Borowski et al. 2021, "Exemplary natural images explain CNN activations better than
    state-of-the-art feature visualization"; Zimmermann, Klindt & Brendel 2024, "Measuring
    Mechanistic Interpretability at Scale Without Humans"; Zhang et al. 2018 (LPIPS).
    """
    references = jnp.asarray(references, jnp.float32)
    images = jnp.asarray(images, jnp.float32)
    scores = jnp.asarray(scores, jnp.float32)
    n, c = scores.shape
    if references.ndim != 5 or references.shape[0] != c:
        raise ValueError(f"references must be (C, R, H, W, 3) with C = {c} (the scores' channels), got "
                         f"{tuple(references.shape)}")
    if images.shape[0] != n:
        raise ValueError(f"images ({images.shape[0]}) and scores ({n}) must have one row per natural image")
    if not (1 <= int(tail) <= n // 2):
        raise ValueError(f"tail must be in 1..{n // 2} (half the {n} natural images, so the top and bottom "
                         f"tails are disjoint), got {tail}: lower tail or use more images")
    if int(trials) < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    ids = jnp.arange(c, dtype=jnp.int32) if channel_ids is None else jnp.asarray(channel_ids, jnp.int32)
    top, bottom = tail_indices(scores, int(tail))
    d_top = reference_distances(references, images[top], net, batch)
    d_bottom = reference_distances(references, images[bottom], net, batch)
    pos, neg = two_afc_trials(key, ids, int(trials), int(tail))
    outcomes = two_afc_outcomes(d_top, d_bottom, pos, neg)
    accuracy = outcomes.mean(axis=1)
    return TwoAFC(accuracy, binomial_stderr(accuracy, int(trials)), outcomes)


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def _probabilities(params, images, targets, *, model, layer):
    logits = model.apply(params, images)[layer]
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(p, targets[:, None], axis=1)[:, 0]


def class_probabilities(model, images: Array, targets: Array, layer: str = "logits") -> Array:
    """The model's softmax probability of each image's target class: (N, H, W, 3), (N,) -> (N,).

    ``p_n = exp(z_n[t_n]) / sum_k exp(z_n[k])`` with ``z = model(images)[layer]``. With the model that
    rendered a class visualisation it measures plausibility (did the optimisation reach the class?);
    with another model trained on the same labels (ResNet-32/44/56 scoring ResNet-20's classes) it
    measures transferability: whether the image shows the class, or one network's quirks.

    Example:
        >>> class_probabilities(models.load("cifar_resnet32"), vis, jnp.arange(10))   # (10,)

    Nguyen, Yosinski & Clune 2016 (transfer of class visualisations between networks); Fel et al.
    2023 (MACO) report plausibility and transferability of this kind.
    """
    targets = _class_targets(model, images, targets, layer)
    return _probabilities(model.params, jnp.asarray(images, jnp.float32), targets, model=model.static, layer=layer)


def _class_targets(model, images: Array, targets: Array, layer: str) -> Array:
    """``targets`` as (N,) int32, one in-range class per image; ValueError naming the range otherwise."""
    n = model.check_layer(layer)
    targets = jnp.asarray(targets, jnp.int32)
    if targets.ndim != 1 or targets.shape[0] != np.shape(images)[0]:
        raise ValueError(f"targets must be (N,) with one class per image, got {tuple(targets.shape)}")
    bad = [int(t) for t in np.asarray(targets) if not 0 <= t < n]
    if bad:
        raise ValueError(f"targets {bad[:5]} are out of range for {model.name} {layer!r} ({n} classes): use 0..{n - 1}")
    return targets


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def _margins(params, images, targets, *, model, layer):
    z = model.apply(params, images)[layer].astype(jnp.float32)
    target = jnp.take_along_axis(z, targets[:, None], axis=1)[:, 0]
    others = jnp.where(jax.nn.one_hot(targets, z.shape[-1], dtype=bool), -jnp.inf, z)
    return target - others.max(axis=-1)


def class_margins(model, images: Array, targets: Array, layer: str = "logits") -> Array:
    """The target logit's margin over the best other class: (N, H, W, 3), (N,) -> (N,).

    ``m_n = z_n[t_n] - max_{k != t_n} z_n[k]``: > 0 when the target wins. Unlike the probability it
    does not saturate (a class visualisation's logits reach ~150, where float32's softmax is 1.0), so
    it still ranks visualisations that every model classifies with certainty.
    """
    targets = _class_targets(model, images, targets, layer)
    return _margins(model.params, jnp.asarray(images, jnp.float32), targets, model=model.static, layer=layer)


def spatial_mean(activations: Array) -> Array:
    """(N, H, W, C) or a token layer's (N, T, C) -> (N, C), the mean over positions or tokens (as
    ``objectives.channel`` reads a channel); (N, C) stays as it is."""
    a = jnp.asarray(activations, jnp.float32)
    return a.mean(axis=tuple(range(1, a.ndim - 1))) if a.ndim > 2 else a.reshape(a.shape[0], -1)


@functools.partial(jax.jit, static_argnames=("model", "layers"))
def _profiles(params, images, *, model, layers):
    acts = model.apply(params, images)
    return {layer: spatial_mean(acts[layer]) for layer in layers}


def activation_profiles(model, images: Array, layers: Sequence[str]) -> dict[str, Array]:
    """Each image's spatially averaged activations at every layer: {layer: (N, C_layer)}, one program."""
    for layer in layers:
        model.check_layer(layer)
    return _profiles(model.params, jnp.asarray(images, jnp.float32), model=model.static, layers=tuple(layers))


def average_ranks(x: Array) -> Array:
    """Ranks 1..D along the last axis, ties given their average rank (as ``scipy.stats.rankdata``)."""
    x = jnp.asarray(x, jnp.float32)
    less = (x[..., None, :] < x[..., :, None]).sum(-1)
    equal = (x[..., None, :] == x[..., :, None]).sum(-1)
    return less + (equal + 1) / 2.0


@functools.partial(jax.jit, static_argnames=("kind",))
def profile_similarity(a: Array, b: Array, kind: str = "spearman") -> Array:
    """Similarity of every row of ``a`` (N, D) to every row of ``b`` (M, D) -> (N, M).

    ``cosine``: ``<a, b> / (|a| |b|)``. ``spearman``: the Pearson correlation of the rows' average
    ranks (Spearman's rho; 0 where a row is constant). Both are 1 for a row compared with itself.
    """
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    if kind == "spearman":
        a, b = average_ranks(a), average_ranks(b)
        a = a - a.mean(-1, keepdims=True)
        b = b - b.mean(-1, keepdims=True)
    elif kind != "cosine":
        raise ValueError(f"unknown similarity {kind!r}; valid: {', '.join(SIMILARITIES)}")
    na = jnp.linalg.norm(a, axis=-1, keepdims=True)
    nb = jnp.linalg.norm(b, axis=-1, keepdims=True)
    den = na * nb.T
    return jnp.where(den > 0, (a @ b.T) / jnp.where(den > 0, den, 1.0), 0.0)


class PathScores(NamedTuple):
    """The processing-path check, per reference and layer.

    top: (V, L) the mean similarity of reference v's activations to those of its channel's top
        natural images, at each layer. random: (V, L) the same against random natural images.
    gap: (V,) ``mean_l (top - random)``: how much nearer the top images than random ones the
        reference's path runs, averaged over layers.
    """

    top: Array
    random: Array
    gap: Array


def processing_path(references: Mapping[str, Array], top: Mapping[str, Array], random: Mapping[str, Array],
                    layers: Sequence[str], kind: str = "spearman") -> PathScores:
    """Layer by layer, how similar a visualisation's activations are to its channel's top natural images.

        top[v, l] = mean_k s(f_l(x_v), f_l(n_{v,k})),   random[v, l] = mean_m s(f_l(x_v), f_l(r_m))

    with ``f_l`` layer l's spatially averaged activations (``activation_profiles``), ``s`` Spearman's
    rank correlation (or cosine), ``n_{v,k}`` the K natural images that activate reference v's channel
    most and ``r_m`` random natural images. A visualisation processed like its channel's natural
    images has top > random from the early layers on; Geirhos et al. found feature visualisations
    meet their natural images' path only near the unit's own layer. The natural image itself scores
    1 at every layer.

    Args:
        references: {layer: (V, D)} profiles of the visualisations.
        top: {layer: (V, K, D)} profiles of each reference's top natural images.
        random: {layer: (M, D)} profiles of random natural images (one set for all references).
        layers: the layers to report, in network order.
        kind: ``spearman`` or ``cosine``.
    Returns:
        ``PathScores`` (top (V, L), random (V, L), gap (V,)).

    Geirhos, Zimmermann, Bilodeau, Brendel & Kim 2024, "Don't trust your eyes: on the
    (un)reliability of feature visualizations" (ICML), the processing-path sanity check.
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; valid: {', '.join(SIMILARITIES)}")
    tops, randoms = [], []
    for layer in layers:
        ref = jnp.asarray(references[layer], jnp.float32)
        nat = jnp.asarray(top[layer], jnp.float32)
        sims = jax.vmap(lambda r, n: profile_similarity(r[None], n, kind)[0])(ref, nat)  # (V, K)
        tops.append(sims.mean(axis=1))
        randoms.append(profile_similarity(ref, jnp.asarray(random[layer], jnp.float32), kind).mean(axis=1))
    t, r = jnp.stack(tops, axis=1), jnp.stack(randoms, axis=1)
    return PathScores(t, r, (t - r).mean(axis=1))


# -- the measures of many visualisations (the score and study recipes) ------------------------------


def layers_up_to(model, layer: str) -> list[str]:
    """The model's named layers, in network order, up to and including ``layer`` (the processing path's)."""
    model.check_layer(layer)
    names = list(model.layers)
    return names[: names.index(layer) + 1]


class NaturalPass(NamedTuple):
    """One stream of natural images through a model (``jfv.analysis.passes.natural_pass`` makes it).

    images: (N, S, S, 3) in [0, 1]; scores: (N, C) each image's score for each channel (``topk.scores``);
    profiles: {layer: (N, D)} spatially averaged activations (``spatial_mean``).
    """

    images: np.ndarray
    scores: np.ndarray
    profiles: dict



class VisualisationMeasures(NamedTuple):
    """Per visualisation: ``two_afc`` (V,) accuracy and ``two_afc_se`` (V,) its standard error;
    ``path`` the PathScores against its channel's top natural images and random ones."""

    two_afc: np.ndarray
    two_afc_se: np.ndarray
    path: PathScores


def visualisation_measures(key: Array, model, layers: Sequence[str], visualisations: Array, columns: Sequence[int],
                           channel_ids: Sequence[int], natural: NaturalPass, *, trials: int = TWO_AFC_TRIALS,
                           tail: int = TWO_AFC_TAIL, path_top: int = 8, path_random: int = 16,
                           similarity: str = "spearman", net: str = "alexnet") -> VisualisationMeasures:
    """The two-alternative test and the processing path of each of V single visualisations.

    Visualisation v shows channel ``channel_ids[v]``, whose scores are column ``columns[v]`` of
    ``natural.scores``. With ``(k_afc, k_path) = split(key)``:

        two_afc[v] = two_afc(k_afc, visualisations[v][None], natural.images, natural.scores[:, columns[v]],
                             channel_ids[v]).accuracy       (the same trials for every v of one channel)
        path[v]    = processing_path(profiles(v), its channel's top ``path_top`` natural images,
                                     ``path_random`` random natural images drawn with k_path)

    so visualisations of one channel by different recipes meet the same queries and baselines.
    ``tail`` is capped at N // 2 and ``path_top`` at N - 1.

    Args:
        visualisations: (V, S, S, 3) in [0, 1], at the natural images' size.
        columns, channel_ids: (V,) ints. Others: as in ``two_afc`` and ``processing_path``.
    Returns:
        VisualisationMeasures(two_afc (V,), two_afc_se (V,), path PathScores (V, L)).

    Zimmermann et al. 2024 (MIS), Borowski et al. 2021; Geirhos et al. 2024 (processing path).
    """
    n = len(natural.images)
    tail = min(int(tail), n // 2)
    if tail < 1:
        raise ValueError(f"the two-alternative test needs at least 2 natural images, got {n}: give more images")
    k_afc, k_path = jax.random.split(key)
    columns = np.asarray(columns, np.int32)
    vis = jnp.asarray(visualisations, jnp.float32)
    afc = two_afc(k_afc, vis[:, None], natural.images, natural.scores[:, columns], jnp.asarray(channel_ids, jnp.int32),
                  int(trials), tail, net)
    k = min(int(path_top), n - 1)
    top, _ = tail_indices(natural.scores, k)
    top = np.asarray(top)[columns]  # (V, k)
    rand_ids = np.asarray(jax.random.choice(k_path, n, (min(int(path_random), n),), replace=False))
    path = processing_path(activation_profiles(model, vis, layers),
                           {name: natural.profiles[name][top] for name in layers},
                           {name: natural.profiles[name][rand_ids] for name in layers}, layers, similarity)
    return VisualisationMeasures(np.asarray(afc.accuracy), np.asarray(afc.stderr), path)
