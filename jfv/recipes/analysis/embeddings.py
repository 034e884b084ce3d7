"""Recipe ``embeddings``: a layer's pooled features of a dataset, neighbours, PCA / t-SNE maps, k-NN.

Seed 002's "last layer" slides for any model and layer. The dataset (``dataset``: ``cifar10``, or a
folder of images or of ``<class>/`` folders) is streamed in batches of ``batch_size`` at
``image_size``; each image's ``layer`` activations are averaged over positions (a token layer's over
tokens; a vector layer is taken as it is). Alongside, each image is kept at ``pixel_size`` px: its pixel-space vector and its
thumbnail. Images are the model's input: RGB, or for a grayscale model their ITU-R BT.601 luma
(``Model.from_rgb``), so pixel space and thumbnails are grey too. Writes into the workdir:

- ``neighbours.png``: for ``queries`` images spread evenly over the dataset, the ``neighbours``
  nearest other images in feature space beside the nearest in pixel space (``metric``), framed
  green when they share the query's class and red when not.
- ``pca.png`` and ``tsne.png``: 2-D maps of the features with thumbnails framed in class colours
  (at most ``map_points`` drawn, a fixed random subset when there are more; all points are fitted).
- ``features.npz``: ids, labels, features, PCA and t-SNE coordinates.
- ``index.html`` and ``manifest.json``: k-NN accuracy (leave-one-out, ``knn_k`` neighbours, majority
  vote, ties to the nearest) in feature and in pixel space, PCA's explained variance, the images
  skipped as unreadable, timings.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterator

import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv.analysis import datasets, embeddings, figures
from jfv import imageops
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes import Recipe
from jfv.recipes.common import ConfigError, config_model, in_config_terms, report_skipped, run_info


def check(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the key and its valid values, before any expensive work."""
    for key in ("image_size", "pixel_size", "batch_size", "queries", "neighbours", "knn_k", "map_points"):
        if int(config[key]) < 1:
            raise ConfigError(f"{key} must be >= 1, got {config[key]}")
    if config.metric not in embeddings.METRICS:
        raise ConfigError(f"metric must be one of {', '.join(embeddings.METRICS)}, got {config.metric!r}")
    if config.tsne_iterations < 250:
        raise ConfigError(f"tsne_iterations must be >= 250 (scikit-learn's minimum), got {config.tsne_iterations}")
    if not config.tsne_perplexity > 0:
        raise ConfigError(f"tsne_perplexity must be > 0, got {config.tsne_perplexity}")


def make_source(config: ml_collections.ConfigDict) -> datasets.Source:
    """``cifar10`` -> its split, from ``cifar10_path`` (any form; "" = $JFV_CIFAR10 or the shared folder);
    anything else -> an image folder (``labels_file``: a flat folder's ImageNet labels); ``limit`` caps it."""
    if config.dataset == "cifar10" and config.labels_file:
        raise ConfigError("labels_file labels a flat folder of ImageNet images (dataset=PATH); CIFAR-10 has its own: "
                          "set labels_file=\"\"")
    try:
        if config.dataset == "cifar10":
            source = datasets.cifar10(config.split, int(config.per_class) or None,
                                      archive=datasets.find_cifar10(config.cifar10_path, config.shared_dir))
        else:
            source = datasets.image_folder(config.dataset, labels_file=config.labels_file, shared=config.shared_dir)
    except datasets.DatasetError as e:
        raise in_config_terms(e, "cifar10_path", "shared_dir", "labels_file") from None
    return source.take(int(config.limit)) if int(config.limit) > 0 else source


def thumbnails(images: np.ndarray, size: int) -> np.ndarray:
    """(n, S, S, C) -> (n, size, size, C) float32, antialiased linear resize (identity at S = size)."""
    if images.shape[1] == size and images.shape[2] == size:
        return np.asarray(images, np.float32)
    out = imageops.resize(jnp.asarray(images), size)
    return np.clip(np.asarray(out), 0, 1)


def pictures(thumbs: np.ndarray) -> np.ndarray:
    """Thumbnails of the model's input as RGB pictures for the figures: grey (1 channel, or the mean
    of another count: ``datasets.displayable``) repeated into three channels."""
    shown = datasets.displayable(thumbs)
    return np.repeat(shown, 3, axis=-1) if shown.shape[-1] == 1 else shown


def _keeping_thumbnails(stream, size: int, kept: dict) -> Iterator[datasets.PaddedBatch]:
    """The stream, unchanged, keeping each read image's thumbnail in ``kept`` by id."""
    for batch in stream:
        kept.update(zip(batch.ids[batch.mask].tolist(), thumbnails(batch.images[batch.mask], size)))
        yield batch


def _subset(n: int, most: int, seed: int) -> np.ndarray:
    if n <= most:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, most, replace=False))


def pooled_features(config, model, source, log):
    """Every readable image's pooled ``layer`` features (``features.npz``), its thumbnail kept as the model
    saw it: (the features, the thumbnails in the features' order, seconds)."""
    kept: dict[int, np.ndarray] = {}
    n_all = len(source)
    # each image as the model takes it (its BT.601 luma for a grayscale model: Model.from_rgb); the
    # thumbnails and the pixel space are of the same images, what the model saw
    stream = datasets.batches(source, int(config.image_size), int(config.batch_size), convert=model.from_rgb)
    t = time.time()
    every = 10 * int(config.batch_size)  # log about every ten batches
    feats = embeddings.extract(model, config.layer, _keeping_thumbnails(stream, int(config.pixel_size), kept),
                               progress=lambda done: log(f"features {done}/{n_all}") if 0 < done and done % every < config.batch_size else None)
    feature_time = time.time() - t
    thumbs = np.stack([kept[int(i)] for i in feats.ids])  # the features' order: by id
    n = len(feats.ids)
    log(f"{n} images, features {feats.values.shape[1]}-d, {len(feats.skipped)} skipped ({feature_time:.0f} s)")
    report_skipped(feats.skipped, n_all, source.description)
    if n < 3:
        raise ConfigError(f"only {n} readable images ({len(feats.skipped)} skipped): the maps need at least 3")
    if int(config.neighbours) > n - 1 or int(config.knn_k) > n - 1 or int(config.queries) > n:
        raise ConfigError(f"{len(feats.skipped)} images were unreadable, leaving {n}: use smaller queries, neighbours and knn_k")
    return feats, thumbs, feature_time


def neighbours_figure(config, feats, pixel_vectors, thumbs, lab):
    """``neighbours.png``: (the query indices, their feature- and pixel-space neighbours, the picture)."""
    n = len(feats.ids)
    queries = np.linspace(0, n - 1, int(config.queries)).round().astype(int)
    k = int(config.neighbours)
    f_idx, _ = embeddings.nearest(feats.values[queries], feats.values, k, config.metric, exclude=queries)
    p_idx, _ = embeddings.nearest(pixel_vectors[queries], pixel_vectors, k, config.metric, exclude=queries)
    names = ("query", f"nearest in feature space ({config.layer}, {config.metric})", f"nearest in pixel space ({config.pixel_size} px)")
    picture = figures.neighbours(thumbs[queries], thumbs[f_idx], thumbs[p_idx],
                                 None if lab is None else lab[queries], None if lab is None else lab[f_idx],
                                 None if lab is None else lab[p_idx], names)
    return queries, f_idx, p_idx, picture


def knn_accuracy(config, feats, pixel_vectors, log) -> dict:
    """The manifest's ``knn_accuracy``: leave-one-out k-NN in feature and in pixel space."""
    n = len(feats.ids)
    kk = int(config.knn_k)
    knn = {"protocol": f"leave-one-out over {n} images, {kk} nearest, majority vote (ties to the nearest)",
           "k": kk, "metric": config.metric,
           "feature": embeddings.knn_leave_one_out(feats.values, feats.labels, kk, config.metric),
           "pixel": embeddings.knn_leave_one_out(pixel_vectors, feats.labels, kk, config.metric),
           "chance": float(np.max(np.bincount(feats.labels)) / n)}
    log(f"k-NN accuracy: features {knn['feature']:.3f}, pixels {knn['pixel']:.3f} (chance {knn['chance']:.3f})")
    return knn


def pca_and_tsne(config, model, feats, thumbs, lab, classes, log):
    """``pca.png`` and ``tsne.png``: (the PCA fit, t-SNE coordinates, the points shown, the two
    pictures, seconds)."""
    n = len(feats.ids)
    t = time.time()
    fitted = embeddings.pca(feats.values, min(2, feats.values.shape[1]))
    perplexity = float(config.tsne_perplexity)
    if perplexity >= n:
        raise ConfigError(f"tsne_perplexity ({perplexity}) must be < the {n} images: use a smaller value")
    tsne = embeddings.tsne(feats.values, seed=int(config.seed), perplexity=perplexity,
                           iterations=int(config.tsne_iterations))
    map_time = time.time() - t
    log(f"PCA and t-SNE ({map_time:.0f} s)")
    shown = _subset(n, int(config.map_points), int(config.seed))
    zoom = float(config.thumbnail) / float(config.pixel_size)
    var = fitted.explained_variance_ratio
    pca_picture = figures.embedding_map(fitted.coords[shown], thumbs[shown], lab[shown] if lab is not None else None, classes,
                                        f"PCA of {model.name} {config.layer} ({100 * var.sum():.1f}% of the variance)", zoom=zoom)
    tsne_picture = figures.embedding_map(tsne[shown], thumbs[shown], lab[shown] if lab is not None else None, classes,
                                         f"t-SNE of {model.name} {config.layer} (perplexity {perplexity:g})", zoom=zoom)
    return fitted, tsne, shown, pca_picture, tsne_picture, map_time


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    check_workdir(workdir)
    log = (lambda s: print(f"embeddings [{time.time() - start:6.1f} s] {s}", file=sys.stderr, flush=True)) \
        if config.verbose else (lambda s: None)
    source = make_source(config)
    model = config_model(config)
    model.check_layer(config.layer)
    model.check_image_size(config.layer, int(config.image_size))
    datasets.converted_channels(model.from_rgb)  # an n-channel model without a converter fails here, with the fix
    n_all = len(source)
    if int(config.queries) > n_all or int(config.neighbours) > n_all - 1 or int(config.knn_k) > n_all - 1:
        raise ConfigError(
            f"queries ({config.queries}) must be <= the {n_all} images, and neighbours ({config.neighbours}) "
            f"and knn_k ({config.knn_k}) <= {n_all - 1}: use a larger dataset or smaller values"
        )
    log(f"{source.description}; {model.name} {config.layer} at {config.image_size} px")

    feats, thumbs, feature_time = pooled_features(config, model, source, log)
    n = len(feats.ids)
    pixel_vectors = embeddings.pixels(thumbs)
    thumbs = pictures(thumbs)
    labelled = bool((feats.labels >= 0).all())
    classes = source.classes
    lab = feats.labels if labelled else None
    queries, f_idx, p_idx, picture = neighbours_figure(config, feats, pixel_vectors, thumbs, lab)
    knn = knn_accuracy(config, feats, pixel_vectors, log) if labelled else None
    fitted, tsne, shown, pca_picture, tsne_picture, map_time = pca_and_tsne(config, model, feats, thumbs, lab, classes, log)
    k, var, perplexity = int(config.neighbours), fitted.explained_variance_ratio, float(config.tsne_perplexity)

    with Staging(workdir) as stage:
        stage.save_png("neighbours.png", picture)
        stage.save_png("pca.png", pca_picture)
        stage.save_png("tsne.png", tsne_picture)
        np.savez_compressed(stage.file("features.npz"), ids=feats.ids, labels=feats.labels, features=feats.values,
                            pca=fitted.coords, tsne=tsne)
        manifest = {
            "recipe": "embeddings",
            "model": model.name,
            "model_source": model.source,
            "layer": config.layer,
            "dataset": source.description,
            "classes": list(classes),
            "images": n,
            "skipped": len(feats.skipped),
            "skipped_images": [{"name": name, "reason": reason} for name, reason in feats.skipped[:100]],
            "feature_dim": int(feats.values.shape[1]),
            "pooling": {4: "mean over positions", 3: "mean over tokens"}.get(
                len(model.output_shapes(int(config.image_size))[config.layer]), "none (a vector layer)"),
            "knn_accuracy": knn,
            "pca_explained_variance_ratio": [float(v) for v in var],
            "queries": [{"id": int(feats.ids[q]), "name": source.name(int(feats.ids[q])),
                         "feature_neighbours": [int(feats.ids[i]) for i in f_idx[r]],
                         "pixel_neighbours": [int(feats.ids[i]) for i in p_idx[r]]} for r, q in enumerate(queries)],
            "figures": {"neighbours": "neighbours.png", "pca": "pca.png", "tsne": "tsne.png"},
            "figure_layout": {"neighbours": f"rows: queries; columns: query, {k} feature-space, {k} pixel-space neighbours",
                              "maps_points_shown": int(len(shown))},
            "features": "features.npz",
            "timings_s": {"features": round(feature_time, 1), "maps": round(map_time, 1)},
            "settings": config.to_dict(),
            "gallery": "index.html",
        }
        manifest.update(run_info(start))
        header = {"model": f"{model.name} {config.layer} ({feats.values.shape[1]}-d)", "dataset": source.description,
                  "images (skipped)": f"{n} ({len(feats.skipped)})"}
        if knn:
            header["k-NN accuracy, features"] = f"{knn['feature']:.3f} ({knn['protocol']}, {config.metric})"
            header["k-NN accuracy, pixels"] = f"{knn['pixel']:.3f} (chance {knn['chance']:.3f})"
        header["wall time (s)"] = manifest["wall_time_s"]
        cards = [{"image": "neighbours.png", "caption": ["neighbours", "feature space | pixel space"]},
                 {"image": "pca.png", "caption": ["PCA", f"{100 * var.sum():.1f}% variance"]},
                 {"image": "tsne.png", "caption": ["t-SNE", f"perplexity {perplexity:g}"]}]
        write_run(stage, manifest, f"{model.name} {config.layer} embeddings", cards, header)
    return manifest


RECIPE = Recipe(run=run, check=check)
