"""Measures of whether a visualisation can be trusted (``docs/trust.md``; the recipe ``score``):

- ``two_afc(key, references, images, scores)``: an automated two-alternative test in the spirit of
  MIS (Zimmermann et al. 2024): how often the natural query more similar (LPIPS) to the
  visualisations is the more activating one; fraction correct with a calibrated p-value (a
  permutation null over the tails' labels) and interval (a bootstrap over references and tail
  images), and, for comparison, the binomial standard error over trials alone.
- ``plausibility`` / ``class_plausibility``: Fel et al. 2023 (MACO)'s plausibility: how close a
  class visualisation is to natural images of its class in a model's feature space (cosine of
  spatially averaged penultimate-layer activations), best measured with a model other than the one
  visualised.
- ``confidence`` / ``class_margins``: a model's softmax probability of, and logit margin for, each
  image's target class (confidence with the rendering model, transferability with others).
- ``processing_path(references, top, random, layers)``: Geirhos et al. 2024's check, per layer: the
  rank correlation (or cosine) of spatially averaged activations with the channel's top natural
  images against random ones.

See ``docs/trust.md``; LPIPS and the image measures are ``jfv.evaluation.perceptual``.
"""


from __future__ import annotations

import functools
import warnings
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfv.evaluation.perceptual import lpips, lpips_between, lpips_feature_bytes, lpips_features

Array = jax.Array

# -- measures that say whether a visualisation can be trusted ----------------------------------------
#
# Four measures, each a pure, batched function (the recipe ``score`` feeds them):
#
# - ``two_afc``: an automated two-alternative forced-choice test in the spirit of Zimmermann et al.'s
#   MIS (NeurIPS 2024) and Borowski et al. 2021: how often the natural query image more similar to
#   the visualisation (by LPIPS) is the more activating one, with a permutation p-value.
# - ``plausibility``: Fel et al. 2023 (MACO): cosine similarity, in a model's penultimate feature
#   space, of a class visualisation to the natural images of its class.
# - ``confidence``: the model's own softmax probability of the target class, and transferability
#   (another model's).
# - ``processing_path``: Geirhos et al. (ICML 2024)'s check, layer by layer: how similar are the
#   visualisation's activations to those of the channel's top natural images, against random ones.

TWO_AFC_TAIL = 20  # queries come from each channel's 20 most / 20 least activating natural images
TWO_AFC_TRIALS = 100  # trials per channel: a binomial standard error of at most 0.05 (trials only)
TWO_AFC_RESAMPLES = 1000  # permutations of the null and bootstrap resamples per channel
TWO_AFC_LEVEL = 0.95  # the bootstrap interval's coverage
NULL_STREAM, BOOTSTRAP_STREAM, SWAP_STREAM = 2, 3, 4  # fold_in(channel key, .): apart from the trials' (0, 1)
TWO_AFC_SWAPS = 19  # other channels' visualisations per channel in the swap control (p down to 1/20)
SIMILARITIES = ("spearman", "cosine")  # how processing_path compares two activation profiles
LPIPS_BATCH = 256  # image pairs (or images, for the backbone) per compiled LPIPS call (memory)
FEATURE_BYTES = 1 << 30  # LPIPS features reference_distance_matrix holds at once (a block of channels)
NULL_CHANNEL_BATCH = 16  # channels per vmapped step of the null and bootstrap (memory: ~B * resamples * trials)
CLASS_LAYER = "logits"  # the classifier's layer, whose predecessor is the plausibility feature space


class TwoAFC(NamedTuple):
    """Per channel, the two-alternative test's result.

    Attributes:
        accuracy: (C,) the fraction of trials answered correctly (a tie counts one half).
        stderr: (C,) its binomial standard error, ``sqrt(p (1 - p) / trials)``: the spread from the
            trials alone, not from which tail images and references were drawn (too small; see p_value).
        outcomes: (C, trials) 1 correct, 0 wrong, 0.5 tie.
        p_value: (C,) two-sided permutation p-value of ``accuracy`` against chance: the fraction of
            ``resamples`` shufflings of the 2 * tail query images' top/bottom labels (same trials) whose
            accuracy is at least as far from 1/2, ``(1 + #{|a* - 1/2| >= |a - 1/2|}) / (1 + resamples)``.
        null_sd: (C,) the standard deviation of accuracy under that null (~0.10 for 20-image tails and
            100 trials, twice the binomial standard error).
        ci_low: (C,) the lower end of the ``level`` percentile bootstrap interval of the accuracy,
            resampling the references, both tails' images and the trials.
        ci_high: (C,) its upper end.
        swap_accuracy: (C, M) with ``swaps`` > 0: the accuracy, on channel c's test (same tails, same
            trials), of M other channels' references (``swap_channels``); None otherwise.
        swap_channels: (C, M) int: which of the C channels (positions in the call) they are.
        swap_p_value: (C,) the one-sided rank p-value of the channel's own accuracy among them,
            ``(1 + #{m : swap_accuracy[c, m] >= accuracy[c]}) / (1 + M)``: exact when the channel's
            visualisation is no more telling of its channel than the others' are (at least 1 / (1 + M)).
    """

    accuracy: Array
    stderr: Array
    outcomes: Array
    p_value: Array | None = None
    null_sd: Array | None = None
    ci_low: Array | None = None
    ci_high: Array | None = None
    swap_accuracy: Array | None = None
    swap_channels: Array | None = None
    swap_p_value: Array | None = None


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


def _outcome(a: Array, b: Array) -> Array:
    """1 where the top query's distance ``a`` is smaller, 0 where larger, 1/2 on a tie."""
    return jnp.where(a < b, 1.0, jnp.where(a > b, 0.0, 0.5))


@jax.jit
def two_afc_outcomes(d_top: Array, d_bottom: Array, top: Array, bottom: Array) -> Array:
    """Each trial's outcome from the references' distances to the tails' images.

    Args:
        d_top: (C, tail) the mean distance of the channel's references to each of its top images.
        d_bottom: (C, tail) the same for its bottom images.
        top: (C, trials) the trials' positions in the top tail (``two_afc_trials``).
        bottom: (C, trials) the trials' positions in the bottom tail.

    Returns:
        (C, trials): 1 when the top query is nearer the references than the bottom one, 0 when it
        is farther, 0.5 on a tie (the observer guesses).
    """
    a = jnp.take_along_axis(d_top, top, axis=1)
    b = jnp.take_along_axis(d_bottom, bottom, axis=1)
    return _outcome(a, b)


def _stream_keys(key: Array, channel_ids: Array, stream: int) -> Array:
    """Per channel ``fold_in(fold_in(key, channel), stream)``: the trials use streams 0 and 1
    (``split`` of the channel key is ``fold_in`` 0 and 1), the null 2, the bootstrap 3, the swap
    control's choice of channels 4."""
    return jax.vmap(lambda c: jax.random.fold_in(jax.random.fold_in(key, c), stream))(jnp.asarray(channel_ids, jnp.int32))


@functools.partial(jax.jit, static_argnames=("resamples",))
def two_afc_null(key: Array, channel_ids: Array, d_top: Array, d_bottom: Array, top: Array, bottom: Array,
                 resamples: int = TWO_AFC_RESAMPLES) -> Array:
    """The accuracy's permutation null: (C, resamples) accuracies with the tails' labels shuffled.

    For channel c, each resample permutes the 2 * tail query images (the top tail's distances
    ``d_top[c]`` and the bottom's ``d_bottom[c]`` pooled), calls the first ``tail`` of them "top" and
    the rest "bottom", and replays the same trials (positions ``top[c]``, ``bottom[c]``) on them.
    Under the hypothesis that the references are no nearer the channel's top images than its bottom
    ones, the observed labelling is one of these, so the observed accuracy is a draw from this
    distribution: it holds the spread from which images fell in each tail (which the binomial error
    ignores) as well as the trials'. Keys: ``fold_in(fold_in(key, channel), NULL_STREAM)``.

    Args:
        key: the test's key; channel_ids: (C,); d_top, d_bottom: (C, tail); top, bottom: (C, trials).

    Returns:
        (C, resamples) null accuracies.
    """
    tail = d_top.shape[1]
    keys = _stream_keys(key, channel_ids, NULL_STREAM)

    def one(args):
        k, dt, db, pos, neg = args
        pooled = jnp.concatenate([dt, db])
        # one uniform draw per channel, argsorted into ``resamples`` permutations (compiles in well
        # under a second; a vmapped jax.random.permutation takes several)
        shuffled = pooled[jnp.argsort(jax.random.uniform(k, (resamples, 2 * tail)), axis=1)]
        return _outcome(shuffled[:, :tail][:, pos], shuffled[:, tail:][:, neg]).mean(axis=1)

    args = (keys, d_top.astype(jnp.float32), d_bottom.astype(jnp.float32), top, bottom)
    return jax.lax.map(one, args, batch_size=min(NULL_CHANNEL_BATCH, d_top.shape[0]))


@functools.partial(jax.jit, static_argnames=("trials", "resamples"))
def two_afc_bootstrap(key: Array, channel_ids: Array, dist_top: Array, dist_bottom: Array, trials: int,
                      resamples: int = TWO_AFC_RESAMPLES) -> Array:
    """The accuracy's bootstrap distribution: (C, resamples), resampling what varies between runs.

    Each resample draws, with replacement, R of the channel's R references, ``tail`` of its top
    images and ``tail`` of its bottom images, and ``trials`` fresh trials on those tails, and scores
    them as ``two_afc`` does (mean distance over the drawn references). Its percentiles are an
    interval for the accuracy the channel's visualisations would get on other top / bottom images
    and other renders (with R = 1 only the images and trials vary). Keys:
    ``fold_in(fold_in(key, channel), BOOTSTRAP_STREAM)``.

    Args:
        key: the test's key.
        channel_ids: (C,).
        dist_top: (C, R, tail) each reference's distance to each top tail image
            (``reference_distance_matrix``).
        dist_bottom: (C, R, tail) the same for the bottom tail.

    Returns:
        (C, resamples) bootstrap accuracies.
    """
    r, tail = dist_top.shape[1:]
    keys = _stream_keys(key, channel_ids, BOOTSTRAP_STREAM)
    # every index of a resample from one uniform draw: R references, tail top and tail bottom
    # images, trials top and trials bottom positions (one draw compiles fast; five randint don't)
    sizes = jnp.concatenate([jnp.full(r, r), jnp.full(2 * tail + 2 * trials, tail)]).astype(jnp.float32)
    cuts = np.cumsum([r, tail, tail, trials])

    def one(args):
        k, dt, db = args
        u = jax.random.uniform(k, (resamples, sizes.shape[0]))
        idx = jnp.minimum((u * sizes).astype(jnp.int32), sizes.astype(jnp.int32) - 1)
        refs, top, bottom, pos, neg = jnp.split(idx, cuts, axis=1)
        a = jnp.take_along_axis(dt[refs].mean(axis=1), top, axis=1)  # (resamples, tail)
        b = jnp.take_along_axis(db[refs].mean(axis=1), bottom, axis=1)
        return _outcome(jnp.take_along_axis(a, pos, axis=1), jnp.take_along_axis(b, neg, axis=1)).mean(axis=1)

    args = (keys, dist_top.astype(jnp.float32), dist_bottom.astype(jnp.float32))
    return jax.lax.map(one, args, batch_size=min(NULL_CHANNEL_BATCH, dist_top.shape[0]))


def permutation_p_value(accuracy: Array, null: Array) -> Array:
    """Two-sided p-value of ``accuracy`` (C,) against chance under ``null`` (C, K) accuracies:

        p_c = (1 + #{k : |null[c, k] - 1/2| >= |accuracy[c] - 1/2|}) / (1 + K)

    (the observed labelling counted as one of the permutations, so p >= 1 / (1 + K) and the test
    is exact: under the null, P(p <= alpha) <= alpha). Accuracies are multiples of 1 / (2 trials), so
    "as far" is compared with a tolerance of 1e-6.
    """
    accuracy = jnp.asarray(accuracy, jnp.float32)
    null = jnp.asarray(null, jnp.float32)
    extreme = jnp.abs(null - 0.5) >= jnp.abs(accuracy[:, None] - 0.5) - 1e-6
    return (1.0 + extreme.sum(axis=1)) / (1.0 + null.shape[1])


def lpips_pairs(a: Array, b: Array, net: str = "alexnet", batch: int = LPIPS_BATCH) -> Array:
    """``lpips(a, b)`` for (P, H, W, 3) pairs in chunks of ``batch`` (one compiled shape: the last
    chunk is padded), so a layer's worth of pairs fits in memory. -> (P,)."""
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    from jfv.imageops import map_chunks

    return map_chunks(lambda x, y: lpips(x, y, net), a, b, batch=min(batch, a.shape[0]))


def reference_distance_matrix(references: Array, queries: Array, net: str = "alexnet",
                              batch: int = LPIPS_BATCH) -> Array:
    """LPIPS from each of a channel's references to each of its queries.

    Each image runs LPIPS's backbone once (``lpips_features``), not once per pair: C (R + Q) backbone
    passes for the C R Q distances (``lpips_between``), in blocks of channels whose features fit in
    ``FEATURE_BYTES``.

    Args:
        references: (C, R, H, W, 3) the channel's visualisations (R per channel, e.g. seeds).
        queries: (C, Q, H, W, 3) natural images, the same size.

    Returns:
        (C, R, Q): ``d[c, r, q] = LPIPS(references[c, r], queries[c, q])``.
    """
    references = jnp.asarray(references, jnp.float32)
    queries = jnp.asarray(queries, jnp.float32)
    c, r = references.shape[:2]
    q = queries.shape[1]
    if references.shape[2:] != queries.shape[2:] or queries.shape[0] != c:
        raise ValueError(f"references {tuple(references.shape)} and queries {tuple(queries.shape)} must be "
                         f"(C, R, H, W, 3) and (C, Q, H, W, 3) of the same C and image size: resize one first")
    per_channel = (r + q) * lpips_feature_bytes(*references.shape[2:4], net)
    block = max(1, min(c, FEATURE_BYTES // max(per_channel, 1)))
    out = []
    for start in range(0, c, block):
        refs, qs = references[start : start + block], queries[start : start + block]
        k = refs.shape[0]
        fa = lpips_features(refs.reshape((-1,) + refs.shape[2:]), net, batch)
        fb = lpips_features(qs.reshape((-1,) + qs.shape[2:]), net, batch)
        cc, rr, qq = np.meshgrid(np.arange(k), np.arange(r), np.arange(q), indexing="ij")
        out.append(lpips_between(fa, fb, (cc * r + rr).ravel(), (cc * q + qq).ravel(), net, batch).reshape(k, r, q))
    return jnp.concatenate(out)


def reference_distances(references: Array, queries: Array, net: str = "alexnet",
                        batch: int = LPIPS_BATCH) -> Array:
    """The mean LPIPS from each channel's references to each of its queries: ``reference_distance_matrix``
    (the same arguments) averaged over the references.

    Returns:
        (C, Q): ``d[c, q] = mean_r LPIPS(references[c, r], queries[c, q])``.
    """
    return reference_distance_matrix(references, queries, net, batch).mean(axis=1)


def swap_channels(key: Array, channel_ids: Array, swaps: int) -> np.ndarray:
    """For each of C channels, ``min(swaps, C - 1)`` others (positions 0..C-1, never itself): all the
    others in order when ``swaps >= C - 1``, else a draw without replacement keyed by
    ``fold_in(fold_in(key, channel), SWAP_STREAM)``. -> (C, M) int32."""
    ids = np.asarray(channel_ids, np.int32).reshape(-1)
    c = ids.shape[0]
    m = min(int(swaps), c - 1)
    if m < 1:
        return np.zeros((c, 0), np.int32)
    if m == c - 1:
        return np.asarray([[j for j in range(c) if j != i] for i in range(c)], np.int32)
    keys = _stream_keys(key, jnp.asarray(ids), SWAP_STREAM)
    order = np.asarray(jax.vmap(lambda k: jax.random.permutation(k, c - 1))(keys))[:, :m]  # among the c - 1 others
    return (order + (order >= np.arange(c)[:, None])).astype(np.int32)  # skip the channel itself


def swap_p_value(accuracy: Array, swap_accuracy: Array) -> Array:
    """One-sided rank p-value of each channel's own accuracy (C,) among other references' (C, M):
    ``(1 + #{m : swap[c, m] >= accuracy[c] - 1e-6}) / (1 + M)`` (ties count against the channel)."""
    accuracy = jnp.asarray(accuracy, jnp.float32)
    swap_accuracy = jnp.asarray(swap_accuracy, jnp.float32)
    return (1.0 + (swap_accuracy >= accuracy[:, None] - 1e-6).sum(axis=1)) / (1.0 + swap_accuracy.shape[1])


def _swap_accuracy(references: Array, images: Array, top: Array, bottom: Array, pos: Array, neg: Array,
                   others: np.ndarray, net: str, batch: int) -> Array:
    """(C, M): channel c's test (tails ``top[c]``, ``bottom[c]``, trials ``pos[c]``, ``neg[c]``) answered
    with the references of channels ``others[c]``; one channel at a time (memory), each of its M R
    references and 2 tail queries through LPIPS's backbone once."""
    tail = top.shape[1]
    out = []
    for i in range(others.shape[0]):
        refs = references[others[i]]  # (M, R, H, W, 3)
        queries = images[jnp.concatenate([top[i], bottom[i]])]
        d = reference_distance_matrix(refs.reshape((1, -1) + refs.shape[2:]), queries[None], net, batch)
        d = d.reshape(refs.shape[0], refs.shape[1], 2 * tail).mean(axis=1)  # (M, 2 tail)
        m = refs.shape[0]
        out.append(two_afc_outcomes(d[:, :tail], d[:, tail:], jnp.broadcast_to(pos[i], (m, pos.shape[1])),
                                    jnp.broadcast_to(neg[i], (m, neg.shape[1]))).mean(axis=1))
    return jnp.stack(out)


def two_afc(key: Array, references: Array, images: Array, scores: Array, channel_ids: Array | None = None,
            trials: int = TWO_AFC_TRIALS, tail: int = TWO_AFC_TAIL, net: str = "alexnet",
            batch: int = LPIPS_BATCH, *, resamples: int = TWO_AFC_RESAMPLES,
            level: float = TWO_AFC_LEVEL, swaps: int = 0) -> TwoAFC:
    """An automated two-alternative test of how informative each channel's visualisation is.

    For channel c, each trial draws a query ``q+`` uniformly from the ``tail`` natural images that
    activate c most and a query ``q-`` from the ``tail`` that activate it least; the observer picks the
    query more similar to the references (the channel's R visualisations), by mean LPIPS:

        correct(t) = [ mean_r d(v_r, q+_t) < mean_r d(v_r, q-_t) ]      (a tie counts 1/2)
        accuracy_c = mean_t correct(t),   stderr_c = sqrt(acc (1 - acc) / trials)

    Chance is 0.5; a reference identical to every top image scores 1. The binomial ``stderr`` counts
    only the trials' randomness: the trials reuse 2 * tail images, so even with references that carry
    no information about the tails the accuracies spread about twice as widely (sd ~0.10 for tails of
    20 and 100 trials). Significance therefore comes from resampling what varies (``resamples`` each):

    - ``p_value``: a permutation test (``two_afc_null``): the 2 * tail query images' top/bottom labels
      shuffled, the same trials replayed; two-sided, exact under the null that the references are
      no nearer the top images than the bottom ones (``permutation_p_value``); ``null_sd`` its spread.
    - ``ci_low``, ``ci_high``: a ``level`` percentile bootstrap interval (``two_afc_bootstrap``) over
      the references, both tails' images and the trials.
    - with ``swaps`` > 0, the swap control: the same test answered with up to ``swaps`` other
      channels' references (``swap_accuracy``) and the rank of the channel's own accuracy among
      them (``swap_p_value``). The permutation test asks whether the references are nearer the top
      images than the bottom ones at all; a visualisation can be, without being about its channel
      (AM images as a kind may sit nearer one tail: docs/trust.md measures it for VGG16). The swap
      control asks whether it is nearer than other channels' visualisations are, at ``swaps`` times
      the test's LPIPS distances (each image still runs LPIPS's backbone once per channel).

    This is the human task of Borowski et al. 2021 with a machine observer, as in Zimmermann et al.
    2024's MIS, with three differences: LPIPS instead of DreamSim (not available offline); only
    maximally activating references (an AM run renders no minimally activating ones); and the hard
    fraction correct instead of MIS's sigmoid of the similarity difference.

    Args:
        key: the test's key (per channel ``fold_in(key, channel_ids[c])``: trials from its streams 0
            and 1, the null from 2, the bootstrap from 3, the swapped channels from 4), so a channel's
            accuracy, p-value and interval are the same alone or in a layer, and the same key gives
            the same result.
        references: (C, R, H, W, 3) visualisations in [0, 1], the natural images' size.
        images: (N, H, W, 3) natural images in [0, 1].
        scores: (N, C) each image's activation score for each channel (e.g. ``topk.scores``).
        channel_ids: (C,) the channels' indices in their layer (default 0..C-1), for the keys.
        trials: trials per channel; tail: images in each tail (<= N / 2, so the tails are disjoint).
        net: the LPIPS backbone (``NETS``).
        resamples: permutations of the null and bootstrap resamples per channel (>= 1; the smallest
            p-value is 1 / (1 + resamples)).
        level: the bootstrap interval's coverage, in (0, 1).
        swaps: other channels' references per channel in the swap control (0: none; at most C - 1
            are used; the pool is the channels of this call).

    Returns:
        ``TwoAFC`` (accuracy, stderr, outcomes (C, trials), p_value, null_sd, ci_low, ci_high, and
        swap_accuracy (C, M), swap_channels, swap_p_value with ``swaps``).

    Example:
        >>> res = two_afc(jax.random.key(0), vis[:, None], images, scores, trials=100, tail=20)
        >>> res.accuracy, res.p_value, (res.ci_low, res.ci_high)

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
    if int(resamples) < 1:
        raise ValueError(f"resamples must be >= 1 (permutations and bootstrap draws per channel), got {resamples}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1) (the bootstrap interval's coverage, e.g. 0.95), got {level}")
    if int(swaps) < 0:
        raise ValueError(f"swaps must be >= 0 (other channels' references per channel; 0 = no swap control), got {swaps}")
    ids = jnp.arange(c, dtype=jnp.int32) if channel_ids is None else jnp.asarray(channel_ids, jnp.int32)
    top, bottom = tail_indices(scores, int(tail))
    dist = reference_distance_matrix(references, images[jnp.concatenate([top, bottom], axis=1)], net, batch)
    dist_top, dist_bottom = dist[..., : int(tail)], dist[..., int(tail) :]  # (C, R, tail) each
    d_top, d_bottom = dist_top.mean(axis=1), dist_bottom.mean(axis=1)
    pos, neg = two_afc_trials(key, ids, int(trials), int(tail))
    outcomes = two_afc_outcomes(d_top, d_bottom, pos, neg)
    accuracy = outcomes.mean(axis=1)
    null = two_afc_null(key, ids, d_top, d_bottom, pos, neg, int(resamples))
    boot = two_afc_bootstrap(key, ids, dist_top, dist_bottom, int(trials), int(resamples))
    alpha = 1.0 - float(level)
    low, high = jnp.quantile(boot, jnp.array([alpha / 2, 1 - alpha / 2]), axis=1)
    swap = others = swap_p = None
    if int(swaps) > 0 and c > 1:
        others = swap_channels(key, ids, int(swaps))
        swap = _swap_accuracy(references, images, top, bottom, pos, neg, others, net, batch)
        swap_p = swap_p_value(accuracy, swap)
    return TwoAFC(accuracy, binomial_stderr(accuracy, int(trials)), outcomes, permutation_p_value(accuracy, null),
                  null.std(axis=1), low, high, swap, others, swap_p)


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def _probabilities(params, images, targets, *, model, layer):
    logits = model.apply(params, images)[layer]
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(p, targets[:, None], axis=1)[:, 0]


def confidence(model, images: Array, targets: Array, layer: str = CLASS_LAYER) -> Array:
    """The model's softmax probability of each image's target class: (N, H, W, 3), (N,) -> (N,).

    ``p_n = exp(z_n[t_n]) / sum_k exp(z_n[k])`` with ``z = model(images)[layer]``. With the model that
    rendered a class visualisation it measures confidence (did the optimisation reach the class? a
    finished class visualisation is 1.000: it says nothing about how natural the image is, which is
    ``plausibility``); with another model trained on the same labels (ResNet-32/44/56 scoring
    ResNet-20's classes) it measures transferability: whether the image shows the class, or one
    network's quirks. jfv reported the own-model value as "plausibility" before issue 28.

    Example:
        >>> confidence(models.load("cifar_resnet32"), vis, jnp.arange(10))   # (10,)

    Nguyen, Yosinski & Clune 2016 (transfer of class visualisations between networks); Fel et al.
    2023 (MACO) report transferability of this kind.
    """
    targets = _class_targets(model, images, targets, layer)
    return _probabilities(model.params, jnp.asarray(images, jnp.float32), targets, model=model.static, layer=layer)


def class_probabilities(model, images: Array, targets: Array, layer: str = CLASS_LAYER) -> Array:
    """Deprecated: ``confidence`` (the same function; the name issue 28 gave p(class))."""
    warnings.warn("jfv.evaluation.class_probabilities is deprecated: use jfv.evaluation.confidence, the same "
                  "function", DeprecationWarning, stacklevel=2)
    return confidence(model, images, targets, layer)


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


# -- plausibility (Fel et al. 2023, MACO) -------------------------------------------------------------


def feature_layer(model) -> str:
    """The plausibility feature space of ``model``: the layer just before ``logits`` in its layer
    table (a classifier's penultimate layer, e.g. CIFAR ResNets' ``avgpool``), else its last layer."""
    names = list(model.layers)
    if CLASS_LAYER in names and names.index(CLASS_LAYER) > 0:
        return names[names.index(CLASS_LAYER) - 1]
    return names[-1]


def class_features(model, images: Array, layer: str | None = None, batch: int = 64) -> Array:
    """Each image's spatially averaged activations at ``layer`` (default ``feature_layer(model)``):
    (N, H, W, C_in) -> (N, D), in chunks of ``batch`` images (one compiled shape)."""
    layer = feature_layer(model) if layer is None else layer
    model.check_layer(layer)
    images = jnp.asarray(images, jnp.float32)
    from jfv.imageops import map_chunks

    return map_chunks(lambda x: _profiles(model.params, x, model=model.static, layers=(layer,))[layer], images,
                      batch=max(1, min(int(batch), images.shape[0])))


def _unit(x: Array) -> Array:
    """Rows scaled to unit length (a zero row, e.g. a dead ReLU profile, stays zero: cosine 0)."""
    x = jnp.asarray(x, jnp.float32)
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.where(norm > 0, norm, 1.0)


def _class_counts(natural_labels: np.ndarray, wanted: np.ndarray, what: str) -> None:
    """ValueError naming the classes of ``wanted`` that have no (or, for leave-one-out, one) natural image."""
    labels = np.asarray(natural_labels).reshape(-1)
    need = 2 if what == "leave-one-out" else 1
    missing = sorted({int(t) for t in np.asarray(wanted).reshape(-1) if (labels == t).sum() < need})
    if missing:
        raise ValueError(f"classes {missing[:10]} have {'fewer than 2' if need == 2 else 'no'} natural images "
                         f"({what} plausibility compares with the natural images of the class): give natural "
                         f"images of every class scored")


@functools.partial(jax.jit, static_argnames=("classes",))
def _class_sums(natural_features, natural_labels, *, classes):
    """(classes, D) the sum of each class's unit natural features and (classes,) its count."""
    w = _unit(natural_features)
    sums = jax.ops.segment_sum(w, natural_labels, num_segments=classes)
    counts = jax.ops.segment_sum(jnp.ones_like(natural_labels, jnp.float32), natural_labels, num_segments=classes)
    return w, sums, counts


@functools.partial(jax.jit, static_argnames=("classes",))
def _plausibility(features, natural_features, natural_labels, targets, *, classes):
    _, sums, counts = _class_sums(natural_features, natural_labels, classes=classes)
    return (_unit(features) * sums[targets]).sum(-1) / counts[targets]


def plausibility(features: Array, natural_features: Array, natural_labels: Array, targets: Array) -> Array:
    """Fel et al. (2023, MACO)'s plausibility: how close each visualisation is, in a model's feature
    space, to the natural images of its class.

        plausibility_v = mean_{n : y_n = t_v} cos(f(x_v), f(x_n))

    with ``f`` a model's features (in jfv: the spatially averaged activations of the layer before the
    logits, ``class_features``; a zero feature vector has cosine 0). 1 means the visualisation is,
    to that model, where its class's natural images are on average. Read it against the baselines on
    the same scale: natural images of the class (``natural_plausibility``: 0.81 for CIFAR-10 test in
    ResNet-56's ``avgpool`` space) and noise (0.42 there); it rewards class-typical features, so a
    class visualisation can score as high as a photo (docs/trust.md).
    MACO measures it with models other than the one visualised, as jfv's ``score`` does with its
    transfer models: the rendering model's own feature space rewards what the optimisation pushed.

    Args:
        features: (V, D) the visualisations' features.
        natural_features: (N, D) natural images' features, in the same space.
        natural_labels: (N,) their classes; targets: (V,) each visualisation's class.

    Returns:
        (V,) plausibility in [-1, 1] (in [0, 1] for post-ReLU features).

    Fel, Boissin, Boutin, Picard, Novello, Colin, Linsley, Rousseau, Cadène, Goetschalckx, Gardes &
    Serre 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude Constrained
    Optimization" (NeurIPS): plausibility as similarity to the class's natural images in a model's
    representation; the choice of layer and the mean over the class are ours (docs/trust.md).
    """
    targets = np.asarray(targets, np.int32).reshape(-1)
    natural_labels = np.asarray(natural_labels, np.int32).reshape(-1)
    features, natural_features = jnp.asarray(features, jnp.float32), jnp.asarray(natural_features, jnp.float32)
    if features.ndim != 2 or natural_features.ndim != 2 or features.shape[1] != natural_features.shape[1]:
        raise ValueError(f"features {tuple(features.shape)} and natural_features {tuple(natural_features.shape)} must "
                         f"be (V, D) and (N, D) in one feature space")
    if targets.shape[0] != features.shape[0] or natural_labels.shape[0] != natural_features.shape[0]:
        raise ValueError(f"need one target per visualisation ({features.shape[0]}, got {targets.shape[0]}) and one "
                         f"label per natural image ({natural_features.shape[0]}, got {natural_labels.shape[0]})")
    _class_counts(natural_labels, targets, "mean")
    if natural_labels.min() < 0:
        raise ValueError(f"natural_labels must be class indices >= 0, got {int(natural_labels.min())} (an unlabelled "
                         f"image): give labelled natural images")
    classes = int(max(natural_labels.max(), targets.max())) + 1
    return _plausibility(features, natural_features, jnp.asarray(natural_labels), jnp.asarray(targets), classes=classes)


@functools.partial(jax.jit, static_argnames=("classes",))
def _natural_plausibility(natural_features, natural_labels, *, classes):
    w, sums, counts = _class_sums(natural_features, natural_labels, classes=classes)
    own = (w * w).sum(-1)  # 1, or 0 for a zero row
    return ((w * sums[natural_labels]).sum(-1) - own) / (counts[natural_labels] - 1.0)


def natural_plausibility(natural_features: Array, natural_labels: Array) -> Array:
    """``plausibility`` of each natural image, left out of its own class: (N, D), (N,) -> (N,).

        natural_v = mean_{n != v : y_n = y_v} cos(f(x_v), f(x_n))

    The value a natural image of the class gets: the scale against which a visualisation's
    plausibility reads (every class needs at least two images).
    """
    natural_labels = np.asarray(natural_labels, np.int32).reshape(-1)
    natural_features = jnp.asarray(natural_features, jnp.float32)
    if natural_features.ndim != 2 or natural_labels.shape[0] != natural_features.shape[0]:
        raise ValueError(f"natural_features must be (N, D) with one label per row, got "
                         f"{tuple(natural_features.shape)} and {natural_labels.shape[0]} labels")
    if natural_labels.size and natural_labels.min() < 0:
        raise ValueError(f"natural_labels must be class indices >= 0, got {int(natural_labels.min())} (an unlabelled "
                         f"image): give labelled natural images")
    _class_counts(natural_labels, natural_labels, "leave-one-out")
    return _natural_plausibility(natural_features, jnp.asarray(natural_labels), classes=int(natural_labels.max()) + 1)


def class_plausibility(model, images: Array, targets: Array, natural_images: Array, natural_labels: Array,
                       layer: str | None = None, batch: int = 64) -> Array:
    """``plausibility`` of class visualisations in ``model``'s feature space: (V, H, W, C), (V,), (N, H, W, C),
    (N,) -> (V,).

    ``f`` is ``class_features(model, ., layer)``: the spatially averaged activations of ``layer``,
    by default the layer before the logits (``feature_layer``). Pass a model other than the one that
    rendered the images (as MACO does): in its own feature space the optimisation pushed the image.

    Example:
        >>> class_plausibility(models.load("cifar_resnet56"), vis, jnp.arange(10), cifar_images, cifar_labels)
    """
    return plausibility(class_features(model, images, layer, batch), class_features(model, natural_images, layer, batch),
                        natural_labels, targets)


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

    Attributes:
        top: (V, L) the mean similarity of reference v's activations to those of its channel's top
            natural images, at each layer.
        random: (V, L) the same against random natural images.
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
    """Per visualisation: ``two_afc`` (V,) accuracy and ``two_afc_se`` (V,) its binomial standard error;
    ``path`` the PathScores against its channel's top natural images and random ones; ``two_afc_p``
    (V,) the accuracy's permutation p-value against chance (``TwoAFC.p_value``)."""

    two_afc: np.ndarray
    two_afc_se: np.ndarray
    path: PathScores
    two_afc_p: np.ndarray | None = None


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
        columns: (V,) ints: visualisation v's column of ``natural.scores``.
        channel_ids: (V,) ints: its channel's id (``two_afc``'s ``channel_ids``).

    The other arguments are as in ``two_afc`` and ``processing_path``.

    Returns:
        VisualisationMeasures(two_afc (V,), two_afc_se (V,), path PathScores (V, L), two_afc_p (V,)).

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
    return VisualisationMeasures(np.asarray(afc.accuracy), np.asarray(afc.stderr), path, np.asarray(afc.p_value))
