"""Embeddings: pooling, distances and nearest neighbours equal numpy brute force, k-NN accuracy is 1.0
on a separable case (and the tie rule holds), PCA equals numpy's SVD up to sign, t-SNE is seeded,
and features stream through a model."""

from __future__ import annotations

import types

import numpy as np
import pytest

from jfv.analysis import datasets as D
from jfv.analysis import embeddings as E
from tiny_model import tiny_model


def brute_distances(q, x, metric):
    q, x = q.astype(np.float64), x.astype(np.float64)
    if metric == "l2":
        return np.sqrt(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return 1 - (q @ x.T) / (np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(x, axis=1)[None, :])


def brute_nearest(q, x, k, metric, exclude=None):
    d = brute_distances(q, x, metric)
    if exclude is not None:
        d[np.arange(len(q)), exclude] = np.inf
    index = np.stack([np.lexsort((np.arange(x.shape[0]), row))[:k] for row in d])
    return index, np.take_along_axis(d, index, 1)


@pytest.mark.parametrize("metric", E.METRICS)
def test_nearest_neighbours_equal_brute_force(metric):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 16)).astype(np.float32)
    x[7] = x[3]  # an exact duplicate: the tie goes to the lower index
    q = x[:10] + 0.01 * rng.standard_normal((10, 16)).astype(np.float32)
    index, dist = E.nearest(q, x, 6, metric)
    want_i, want_d = brute_nearest(q, x, 6, metric)
    np.testing.assert_array_equal(index, want_i)
    np.testing.assert_allclose(dist, want_d, rtol=1e-4, atol=1e-4)
    assert list(index[3][:2]) == [3, 7]
    np.testing.assert_allclose(np.asarray(E.distances(q, x, metric)), brute_distances(q, x, metric), rtol=1e-4, atol=1e-4)
    index, _ = E.nearest(x[:10], x, 3, metric, exclude=np.arange(10))  # leave-one-out
    np.testing.assert_array_equal(index, brute_nearest(x[:10], x, 3, metric, np.arange(10))[0])
    assert all(i not in row for i, row in enumerate(index))


def test_knn_is_perfect_on_separable_classes():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    y = np.repeat(np.arange(4), 15)
    x = centres[y] + rng.uniform(-1, 1, (60, 2)).astype(np.float32)
    assert E.knn_leave_one_out(x, y, k=5) == 1.0
    train, test = np.arange(60) % 3 != 0, np.arange(60) % 3 == 0
    assert E.knn_accuracy(x[train], y[train], x[test], y[test], k=3) == 1.0
    assert E.knn_accuracy(x[train], (y[train] + 1) % 4, x[test], y[test], k=3) == 0.0


def test_cosine_knn_sees_directions_not_lengths():
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(4), 12)
    angle = y * np.pi / 2 + rng.uniform(-0.2, 0.2, 48)
    length = rng.uniform(0.2, 20, 48)
    x = np.stack([np.cos(angle), np.sin(angle)], 1) * length[:, None]
    assert E.knn_leave_one_out(x, y, k=3, metric="cosine") == 1.0
    assert E.knn_leave_one_out(x, y, k=3, metric="l2") < 1.0  # short vectors of all classes crowd the origin


def test_vote_majority_then_nearest_member():
    labels = np.array([[2, 1, 1, 2, 0],   # 2 and 1 tie (two each): 2's member is nearer
                       [0, 1, 1, 1, 0],   # 1 has three
                       [3, 3, 2, 2, 2]])  # 2 has three
    np.testing.assert_array_equal(np.asarray(E.vote(labels, 4)), [2, 1, 2])


def test_pca_equals_numpy_svd_up_to_sign():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 6)) @ rng.standard_normal((6, 6)) + 3.0
    got = E.pca(x, 3)
    centred = x - x.mean(0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    sign = np.sign(np.sum(got.components * vt[:3], axis=1))
    np.testing.assert_allclose(got.components * sign[:, None], vt[:3], atol=1e-8)
    np.testing.assert_allclose(got.coords * sign[None, :], u[:, :3] * s[:3], atol=1e-8)
    np.testing.assert_allclose(got.explained_variance_ratio, s[:3] ** 2 / np.sum(s ** 2), rtol=1e-10)
    np.testing.assert_allclose(got.mean, x.mean(0))


def test_tsne_is_seeded():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, (15, 8)), rng.normal(8, 1, (15, 8))])
    a, b = (E.tsne(x, seed=0, perplexity=5, iterations=300) for _ in range(2))
    assert a.shape == (30, 2)
    np.testing.assert_array_equal(a, b)
    assert E.knn_leave_one_out(a, np.repeat([0, 1], 15), k=3) == 1.0  # the two clusters stay apart


def test_features_stream_through_a_model():
    model = tiny_model()
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(5, 16, 16, 3)).astype(np.float32)
    mask = np.array([True, True, True, False, False])
    batches = [D.PaddedBatch(images[:3], np.array([10, 11, 12], np.int32), np.array([0, 1, 0], np.int32), np.ones(3, bool)),
               D.PaddedBatch(images[3:] * 0, np.array([13, -1], np.int32), np.array([1, -1], np.int32), np.array([True, False]),
                       (("bad.jpg", "OSError: broken"),))]
    feats = E.extract(model, "conv2", batches)
    np.testing.assert_array_equal(feats.ids, [10, 11, 12, 13])
    np.testing.assert_array_equal(feats.labels, [0, 1, 0, 1])
    want = np.asarray(model(images[:3])["conv2"]).mean((1, 2))
    np.testing.assert_allclose(feats.values[:3], want, rtol=1e-5, atol=1e-6)
    assert feats.skipped == (("bad.jpg", "OSError: broken"),)
    assert E.pixels(images).shape == (5, 768) and mask.sum() == 3


def test_bad_input_names_the_fix():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(E.EmbeddingError, match="k must be in 1..3"):
        E.nearest(x, x, 4, exclude=np.arange(4))
    with pytest.raises(E.EmbeddingError, match="k must be in 1..4"):
        E.nearest(x, x, 0)
    with pytest.raises(E.EmbeddingError, match="unknown metric 'manhattan'"):
        E.nearest(x, x, 1, "manhattan")
    with pytest.raises(E.EmbeddingError, match="must share D"):
        E.nearest(x, np.zeros((4, 2)), 1)
    with pytest.raises(E.EmbeddingError, match="unlabelled"):
        E.knn_leave_one_out(x, np.array([-1, -1, 0, 0]), 1)
    with pytest.raises(E.EmbeddingError, match="perplexity < n points"):
        E.tsne(x, perplexity=30)
    with pytest.raises(E.EmbeddingError, match="iterations >= 250"):
        E.tsne(x, perplexity=2, iterations=100)
    with pytest.raises(E.EmbeddingError, match="no readable images"):
        E.extract(types.SimpleNamespace(check_layer=lambda layer: 8), "conv1", [])
