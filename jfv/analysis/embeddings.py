"""Embeddings: pooled features of a dataset, nearest neighbours, PCA / t-SNE maps, k-NN accuracy.

Seed 002's "last layer" slides: the fc7 code of many images, their nearest neighbours in feature
space beside those in pixel space, 2-D maps by PCA and t-SNE, read here for any layer:

- **features**: a spatial layer is pooled by the global average over positions, (n, H, W, C) -> (n, C)
  (``pool``); a vector layer (``avgpool``, ``fc7``, ``logits``) is taken as it is.
- **distances** (brute force, one matrix product): ``l2`` the Euclidean distance
  ``sqrt(max(|q|^2 + |x|^2 - 2 q.x, 0))``; ``cosine`` one minus the cosine similarity,
  ``1 - q.x / (|q| |x|)`` (a zero vector is at distance 1 from everything).
- **nearest** neighbours: the k smallest distances, ties to the lower index; ``exclude`` leaves one
  database row out per query (the query itself, for leave-one-out).
- **k-NN accuracy**: each query takes the majority class of its k nearest neighbours; a tie goes to the
  tied class whose nearest member ranks first. ``knn_leave_one_out`` classifies every point by the
  others; ``knn_accuracy`` a test set by a training set.
- **PCA** (scikit-learn, exact SVD) and **t-SNE** (scikit-learn, PCA initialisation, a fixed seed).

Example:
    >>> feats = extract(model, "pool5", datasets.batches(source, 64, 32))
    >>> idx, dist = nearest(feats.values[:8], feats.values, k=5, metric="cosine", exclude=np.arange(8))
    >>> knn_leave_one_out(feats.values, feats.labels, k=10)

Krizhevsky et al. 2012, Fig. 4 (fc7 neighbours); van der Maaten & Hinton 2008 (t-SNE).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jfv.models import stream as model_stream

Array = jax.Array
METRICS = ("l2", "cosine")


class EmbeddingError(ValueError):
    """Bad shapes, k outside its range, an unknown metric, or too few points for t-SNE."""


class Features(NamedTuple):
    """ids (n,), labels (n,) (-1 unlabelled) and values (n, D) float32 of the images read, in id
    order; skipped: ((name, reason), ...) of the images that could not be read."""

    ids: np.ndarray
    labels: np.ndarray
    values: np.ndarray
    skipped: tuple = ()


def pool(activations: Array) -> Array:
    """(n, H, W, C) -> (n, C) by the mean over positions; (n, T, D) tokens (a ViT's) -> (n, D) by
    the mean over tokens (as a mean-pooled ViT head sees them); (n, C) unchanged."""
    a = jnp.asarray(activations)
    if a.ndim == 4:
        return a.mean(axis=(1, 2))
    if a.ndim == 3:
        return a.mean(axis=1)
    if a.ndim == 2:
        return a
    raise EmbeddingError(f"activations must be (n, H, W, C), (n, T, D) or (n, C), got shape {tuple(a.shape)}")


@dataclasses.dataclass(frozen=True)
class Pooled:
    """The pass step (``jfv.models.stream``) of features: ``pool`` of ``layer``, output ``values``."""

    layer: str

    def __call__(self, model, params, carry, images, ids, mask):
        return carry, {"values": pool(model.apply(params, jnp.asarray(images, jnp.float32))[self.layer])}


def extract(model: Any, layer: str, stream: Iterable[Any], progress: Callable[[int], None] = lambda n: None) -> Features:
    """Pooled ``layer`` features of every valid image of a stream of ``jfv.analysis.datasets.PaddedBatch``:
    ``jfv.models.stream.run`` of ``Pooled(layer)``, the images read in id order.

    ``progress`` gets the count of images consumed (read or skipped), before the first batch and after each.
    (``jfv.analysis.passes.run(model, source, Pooled(layer), ...)`` is the same pass over a ``datasets.Source``,
    with checkpoints.)"""
    model.check_layer(layer)
    state = model_stream.run(model, Pooled(layer), stream, progress=lambda done, total: progress(done))
    ids = np.flatnonzero(state.read)
    if not len(ids):
        raise EmbeddingError(f"the stream held no readable images ({len(state.skipped)} skipped): check the dataset")
    return Features(ids.astype(np.int32), state.labels[ids], state.outputs["values"][ids].astype(np.float32),
                    tuple(state.skipped))


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise EmbeddingError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")


@functools.partial(jax.jit, static_argnames=("metric",))
def distances(queries: Array, database: Array, metric: str = "l2") -> Array:
    """(Q, D) x (N, D) -> (Q, N) distances (see the module docstring)."""
    _check_metric(metric)
    q = jnp.asarray(queries, jnp.float32)
    x = jnp.asarray(database, jnp.float32)
    dots = q @ x.T
    if metric == "l2":
        sq = jnp.sum(q * q, axis=1)[:, None] + jnp.sum(x * x, axis=1)[None, :] - 2.0 * dots
        return jnp.sqrt(jnp.maximum(sq, 0.0))
    nq = jnp.linalg.norm(q, axis=1)[:, None]
    nx = jnp.linalg.norm(x, axis=1)[None, :]
    denom = nq * nx
    return 1.0 - jnp.where(denom > 0, dots / jnp.where(denom > 0, denom, 1.0), 0.0)


@functools.partial(jax.jit, static_argnames=("k", "metric"))
def _nearest(queries, database, exclude, *, k: int, metric: str):
    d = distances(queries, database, metric)
    index = jnp.broadcast_to(jnp.arange(d.shape[1], dtype=jnp.int32)[None, :], d.shape)
    d = jnp.where(index == exclude[:, None], jnp.inf, d)
    d, index = lax.sort((d, index), dimension=1, num_keys=2)
    return index[:, :k], d[:, :k]


def nearest(queries, database, k: int, metric: str = "l2", exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database rows of each query, nearest first, ties to the lower index.

    Args:
        queries: (Q, D); database: (N, D); k: 1..N (N - 1 with ``exclude``).
        exclude: (Q,) a database index to leave out per query (e.g. the query itself), or None.

    Returns:
        (indices (Q, k) int32 into the database, distances (Q, k) float32).
    """
    _check_metric(metric)
    q, x = np.asarray(queries), np.asarray(database)
    if q.ndim != 2 or x.ndim != 2 or q.shape[1] != x.shape[1]:
        raise EmbeddingError(f"queries (Q, D) and database (N, D) must share D, got {q.shape} and {x.shape}")
    most = x.shape[0] - (exclude is not None)
    if not 1 <= int(k) <= most:
        raise EmbeddingError(f"k must be in 1..{most} (the database's rows{' less the excluded one' if exclude is not None else ''}), got {k}")
    ex = np.full(q.shape[0], -1, np.int32) if exclude is None else np.asarray(exclude, np.int32)
    index, dist = _nearest(jnp.asarray(q), jnp.asarray(x), jnp.asarray(ex), k=int(k), metric=metric)
    return np.asarray(index), np.asarray(dist)


def vote(neighbour_labels, classes: int) -> Array:
    """(Q, k) labels of neighbours, nearest first -> (Q,) the majority class; a tie goes to the tied
    class whose nearest member comes first."""
    lab = jnp.asarray(neighbour_labels, jnp.int32)
    k = lab.shape[1]
    onehot = lab[..., None] == jnp.arange(classes)[None, None, :]  # (Q, k, classes)
    counts = onehot.sum(axis=1)
    first = jnp.where(onehot.any(axis=1), jnp.argmax(onehot, axis=1), k)  # rank of the nearest member
    return jnp.argmax(counts * (k + 1) + (k - first), axis=1).astype(jnp.int32)


def _check_labels(labels: np.ndarray, n: int) -> int:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise EmbeddingError(f"need one label per row ({n}), got shape {labels.shape}")
    if labels.min() < 0:
        raise EmbeddingError("k-NN accuracy needs labels >= 0 (this dataset is unlabelled: use a class-folder dataset)")
    return int(labels.max()) + 1


def knn_predict(train_x, train_y, test_x, k: int, metric: str = "l2", exclude=None) -> np.ndarray:
    """The k-NN vote (``vote``) of each test row among the training rows: (Q,) predicted classes."""
    classes = _check_labels(train_y, len(train_x))
    index, _ = nearest(test_x, train_x, k, metric, exclude)
    return np.asarray(vote(np.asarray(train_y)[index], classes))


def knn_accuracy(train_x, train_y, test_x, test_y, k: int, metric: str = "l2") -> float:
    """The share of test rows whose k-NN vote among the training rows is their label."""
    _check_labels(test_y, len(test_x))
    return float(np.mean(knn_predict(train_x, train_y, test_x, k, metric) == np.asarray(test_y)))


def knn_leave_one_out(x, y, k: int, metric: str = "l2") -> float:
    """The share of rows whose k-NN vote among all the other rows is their label."""
    return float(np.mean(knn_predict(x, y, x, k, metric, exclude=np.arange(len(x))) == np.asarray(y)))


class PCA(NamedTuple):
    """coords (n, c), components (c, D) unit rows, explained_variance_ratio (c,), mean (D,)."""

    coords: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray


def pca(x, components: int = 2) -> PCA:
    """Principal components by scikit-learn's exact SVD: ``coords = (x - mean) @ components.T``."""
    from sklearn.decomposition import PCA as SkPCA

    x = np.asarray(x, np.float64)
    if x.ndim != 2 or not 1 <= int(components) <= min(x.shape):
        raise EmbeddingError(f"PCA needs (n, D) data and 1 <= components <= min(n, D), got {x.shape} and {components}")
    fitted = SkPCA(n_components=int(components), svd_solver="full").fit(x)
    return PCA(fitted.transform(x), fitted.components_, fitted.explained_variance_ratio_, fitted.mean_)


def tsne(x, seed: int = 0, perplexity: float = 30.0, pca_dims: int = 50, iterations: int = 1000,
         threads: int | None = 1) -> np.ndarray:
    """2-D t-SNE coordinates (n, 2) by scikit-learn (Barnes-Hut, PCA initialisation,
    ``random_state=seed``), after reducing to ``pca_dims`` principal components (0: none), as is
    usual for wide features.

    ``iterations`` >= 250 (scikit-learn's ``max_iter``; the first 250 are early exaggeration).
    ``threads`` caps its OpenMP threads (None: all). One is the default because, beside JAX on a
    busy CPU, more threads mostly contend: 500 points took 2.7 s on one thread and 12 s on all
    (2-core machine under load).
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, np.float64)
    n = x.shape[0]
    if not 0 < perplexity < n:
        raise EmbeddingError(f"t-SNE needs 0 < perplexity < n points ({n}), got {perplexity}: use more points or a smaller perplexity")
    if int(iterations) < 250:
        raise EmbeddingError(f"t-SNE needs iterations >= 250 (scikit-learn's minimum), got {iterations}")
    if pca_dims and pca_dims < min(x.shape):
        x = pca(x, pca_dims).coords
    with threadpool_limits(threads):
        return TSNE(n_components=2, perplexity=float(perplexity), init="pca", random_state=int(seed),
                    max_iter=int(iterations)).fit_transform(x)


def pixels(images) -> np.ndarray:
    """(n, H, W, C) images -> (n, H*W*C) float32 rows: the pixel space of seed 002's comparison."""
    a = np.asarray(images, np.float32)
    return a.reshape(a.shape[0], -1)


__all__ = ["EmbeddingError", "Features", "METRICS", "PCA", "Pooled", "distances", "extract", "knn_accuracy",
           "knn_leave_one_out", "knn_predict", "nearest", "pca", "pixels", "pool", "tsne", "vote"]
