"""Recipe ``gap_gmp``: CAM heads with global average versus global max pooling (Zhou et al. 2016).

Zhou et al. ("Learning Deep Features for Discriminative Localization", CVPR 2016) replace the layers
after VGG16's ``conv5_3`` by a 3x3 convolution, global pooling and one dense layer, so that

    logits_c = sum_k w[k, c] pool_{x,y} f_k(x, y) + b_c,     CAM_c(x, y) = sum_k w[k, c] f_k(x, y)

and compare global average pooling (GAP) with global max pooling (GMP): similar accuracy, but GAP
maps cover the object's extent while GMP maps pick one discriminative part. This recipe repeats the
comparison at CPU scale: frozen features of ``model`` (VGG16's ``relu5_3`` by default: ``conv5_3``
after its ReLU, what the paper's Caffe ``conv5_3`` blob holds; any model works, a wrapped one too,
and a grayscale model sees the images' BT.601 luma) of a class-balanced CIFAR-10 subset upsampled
from 32 px to ``image_size``, computed once and cached; two heads of identical init, data order and
optimiser; then test accuracy and the quality of each head's CAM for its predicted class:

- centre fraction: the share of the CAM's mass (min-max normalised, upsampled to the image) inside
  the central square of half the image's side (a quarter of the area, so a flat map scores 0.25).
  CIFAR-10 objects are centred, so higher is better.
- deletion / insertion areas (Petsiuk et al. 2018) of the predicted class's probability through the
  whole network (model + head), on a small per-class subset of the test images: lower deletion and
  higher insertion are better.
- extent: the fraction of pixels at or above 20% of the map's maximum (the paper's box threshold);
  descriptive (the paper's claim is GAP > GMP), not better or worse.

Writes into the workdir: ``results.md`` (the table), ``results.json``, ``grid.png`` (rows: example
test images; columns: input, GAP CAM, GMP CAM), ``examples/*.png``, ``index.html``, ``manifest.json``;
and, when ``cache_features``, ``cache/features_*.npz`` (reused by later runs with the same data).

The recipe parses its config and writes; the head, its init and training are ``jfv.attribution.heads``, the map
measures ``jfv.evaluation`` (``centre_fraction``, ``extent``, ``sample_stats``), CAM ``jfv.attribution``.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv import attribution as A
from jfv.analysis import datasets
from jfv.attribution import pictures
from jfv.attribution.cam import check_spatial
from jfv.attribution.heads import (  # noqa: F401  (the head and its training live in jfv.attribution.heads; names kept here for callers)
    POOLS, PoolingHead, TrainResult, extract_features, head_cam, head_outputs, lecun_normal_flat, train_head,
    upsample_images, with_head,
)
from jfv.evaluation import CENTRE_SIDE, EXTENT_THRESHOLD, centre_fraction, extent, sample_stats  # noqa: F401
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes import Recipe
from jfv.recipes.common import ConfigError, config_model, cifar10_location, run_info
from jfv.runtime import moved

# ---------------------------------------------------------------------------------------------------
# The recipe


def check(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the key and the valid values, before any expensive work."""
    positive = ("train_per_class", "test_per_class", "head_width", "epochs", "batch_size", "feature_batch")
    for key in positive:
        if int(config[key]) < 1:
            raise ConfigError(f"{key} must be >= 1, got {config[key]}")
    if config.faithfulness_per_class < 0 or config.faithfulness_per_class > config.test_per_class:
        raise ConfigError(
            f"faithfulness_per_class must be in 0..test_per_class ({config.test_per_class}), "
            f"got {config.faithfulness_per_class}"
        )
    if config.faithfulness_per_class and config.faithfulness_steps < 1:
        raise ConfigError(f"faithfulness_steps must be >= 1, got {config.faithfulness_steps}")
    if not config.learning_rate > 0:
        raise ConfigError(f"learning_rate must be > 0, got {config.learning_rate}")
    if config.image_size < datasets.CIFAR10_SIZE:
        raise ConfigError(f"image_size must be >= {datasets.CIFAR10_SIZE} (CIFAR-10's), got {config.image_size}")
    if config.examples < 0:
        raise ConfigError(f"examples must be >= 0, got {config.examples}")


def _row(s: dict[str, float], digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def results_table(results: dict[str, Any]) -> str:
    """The markdown table of ``results`` (what results.md holds)."""
    gap, gmp = results["heads"]["gap"], results["heads"]["gmp"]
    lines = [
        "| measure | better | GAP | GMP |",
        "| --- | --- | --- | --- |",
        f"| test accuracy (± binomial s.e.) | higher | {gap['test_accuracy']:.3f} ± {gap['test_accuracy_se']:.3f} "
        f"| {gmp['test_accuracy']:.3f} ± {gmp['test_accuracy_se']:.3f} |",
        f"| train accuracy | | {gap['train_accuracy']:.3f} | {gmp['train_accuracy']:.3f} |",
        f"| final train loss | | {gap['losses'][-1]:.3f} | {gmp['losses'][-1]:.3f} |",
        f"| CAM centre fraction (mean ± std) | higher (flat map: {CENTRE_SIDE ** 2:.2f}) "
        f"| {_row(gap['centre_fraction'])} | {_row(gmp['centre_fraction'])} |",
        f"| CAM extent, pixels >= 20% of max (mean ± std) | descriptive "
        f"| {_row(gap['extent'])} | {_row(gmp['extent'])} |",
    ]
    if "deletion_auc" in gap:
        lines += [
            f"| deletion AUC, p(predicted class) (mean ± std) | lower "
            f"| {_row(gap['deletion_auc'])} | {_row(gmp['deletion_auc'])} |",
            f"| insertion AUC, p(predicted class) (mean ± std) | higher "
            f"| {_row(gap['insertion_auc'])} | {_row(gmp['insertion_auc'])} |",
        ]
    paired = results.get("paired", {})
    if paired:
        lines.append("")
        lines.append("Paired differences GAP - GMP over the same images (mean ± standard error):")
        lines.append("")
        for k, s in paired.items():
            lines.append(f"- {k}: {s['mean']:+.3f} ± {s['sem']:.3f} (n = {s['n']})")
    return "\n".join(lines) + "\n"


def _cache_path(workdir: Path, config, source: str) -> Path:
    tag = f"{config.layer}_{config.image_size}px_train{config.train_per_class}_test{config.test_per_class}"
    return workdir / "cache" / f"features_{tag}_{hashlib.sha256(source.encode()).hexdigest()[:8]}.npz"


def cached_features(config, work: Path, model, x_train, x_test, log) -> tuple[np.ndarray, np.ndarray]:
    """The frozen layer's features of the train and test images, read from ``cache/features_*.npz``
    or computed (and written there when ``cache_features``)."""
    size = config.image_size
    cache = _cache_path(work, config, model.source) if config.cache_features else None
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            f_train, f_test = z["train"], z["test"]
        log(f"features from {cache}")
    else:
        f_train = extract_features(model, x_train, config.layer, size, config.feature_batch, log)
        f_test = extract_features(model, x_test, config.layer, size, config.feature_batch, log)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, train=f_train, test=f_test)
            os.replace(tmp, cache)
    return f_train, f_test


def trained_heads(config, f_train, y_train, f_test, y_test, log) -> tuple[dict, dict, dict, float]:
    """Both heads trained from the same init (the heads of ``results.json``): (pool -> (head, params,
    test predictions), pool -> results, pool -> test CAMs at the image size, training seconds). The
    results keep per-image arrays under ``_`` keys for the paired differences."""
    size = config.image_size
    key = jax.random.key(config.seed)
    heads, results_heads, cams = {}, {}, {}
    train_time = 0.0
    for pool in POOLS:
        head = PoolingHead(width=config.head_width, classes=len(datasets.CIFAR10_CLASSES), pool=pool)
        t = time.time()
        trained = train_head(head, f_train, y_train, key, config.epochs, config.batch_size, config.learning_rate)
        train_time += time.time() - t
        params = trained.params
        out = head_outputs(params, jnp.asarray(np.concatenate([f_train, f_test])), head=head)  # one compile
        pred = np.asarray(jnp.argmax(out["logits"], -1))
        pred_train, pred_test = pred[: len(y_train)], pred[len(y_train) :]
        acc = float(np.mean(pred_test == y_test))
        test_maps = out["head_relu"][len(y_train) :]
        cam = A.cam_from_features(test_maps, params["dense"]["kernel"], jnp.asarray(pred_test)[:, None])[:, 0]
        maps = np.asarray(A.upsample(cam, (size, size)))
        cams[pool] = maps
        heads[pool] = (head, params, pred_test)
        results_heads[pool] = {
            "test_accuracy": acc,
            "test_accuracy_se": math.sqrt(acc * (1 - acc) / len(y_test)),
            "train_accuracy": float(np.mean(pred_train == y_train)),
            "losses": [round(float(v), 5) for v in trained.losses],
            "centre_fraction": sample_stats(centre_fraction(maps)),
            "extent": sample_stats(extent(maps)),
            "_centre": centre_fraction(maps),
            "_extent": extent(maps),
            "_correct": (pred_test == y_test).astype(np.float64),
        }
        log(f"{pool}: loss {trained.losses[0]:.3f} -> {trained.losses[-1]:.3f}, test accuracy {acc:.3f}")
    return heads, results_heads, cams, train_time


def faithfulness_index(config) -> np.ndarray:
    """The test images of deletion / insertion: the first ``faithfulness_per_class`` of each class."""
    return np.concatenate([np.arange(c * config.test_per_class, c * config.test_per_class + config.faithfulness_per_class)
                           for c in range(len(datasets.CIFAR10_CLASSES))]).astype(int)


def add_faithfulness(config, model, x_test, faith_index, heads, cams, results_heads, log) -> float:
    """Deletion and insertion AUCs of each head's CAM through the whole network (``results.json``'s
    ``deletion_auc``, ``insertion_auc``), added to ``results_heads``; the seconds it took."""
    t = time.time()
    images = upsample_images(x_test[faith_index], config.image_size)
    for pool, (head, params, pred) in heads.items():
        full = with_head(model, config.layer, head, params)
        target = A.label(tuple(int(c) for c in pred[faith_index]), softmax=True)
        curves = A.deletion_insertion(full, images, target, jnp.asarray(cams[pool][faith_index]),
                                      config.faithfulness_steps, config.faithfulness_baseline,
                                      config.feature_batch)
        r = results_heads[pool]
        r["_deletion"], r["_insertion"] = np.asarray(curves.deletion_auc), np.asarray(curves.insertion_auc)
        r["deletion_auc"], r["insertion_auc"] = sample_stats(r["_deletion"]), sample_stats(r["_insertion"])
        log(f"{pool}: deletion {r['deletion_auc']['mean']:.3f}, insertion {r['insertion_auc']['mean']:.3f}")
    return time.time() - t


def paired_differences(config, results_heads: dict) -> dict:
    """``results.json``'s ``paired``: GAP - GMP over the same images; then drops the heads' ``_`` arrays."""
    gap, gmp = results_heads["gap"], results_heads["gmp"]
    paired = {
        "test accuracy": sample_stats(gap["_correct"] - gmp["_correct"]),
        "centre fraction": sample_stats(gap["_centre"] - gmp["_centre"]),
        "extent": sample_stats(gap["_extent"] - gmp["_extent"]),
    }
    if config.faithfulness_per_class:
        paired["deletion AUC"] = sample_stats(gap["_deletion"] - gmp["_deletion"])
        paired["insertion AUC"] = sample_stats(gap["_insertion"] - gmp["_insertion"])
    for r in results_heads.values():
        for k in [k for k in r if k.startswith("_")]:
            del r[k]
    return paired


def example_pictures(config, x_test, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``examples`` test images spread over the classes: (their indices, the images upsampled)."""
    size = config.image_size
    picks = np.linspace(0, len(x_test) - 1, min(config.examples, len(x_test))).round().astype(int) if config.examples else []
    shown = np.asarray(upsample_images(x_test[picks], size)) if len(picks) else np.zeros((0, size, size, channels))
    return picks, shown


def write_examples(stage: Staging, config, picks, shown, y_test, heads, cams) -> tuple[list[dict], list[np.ndarray]]:
    """``examples/*.png`` (each pick's input and its CAM overlays): (the page's cards, the grid's tiles)."""
    cards, rows = [], []
    for j, i in enumerate(picks):
        truth = datasets.CIFAR10_CLASSES[y_test[i]]
        name = f"examples/{i:04d}_{truth}"
        stage.save_png(f"{name}_input.png", shown[j])
        cards.append({"image": f"{name}_input.png", "caption": [f"test {i}: {truth}"]})
        rows.append(shown[j])
        for pool in POOLS:
            pic = pictures.overlay(shown[j], cams[pool][i], config.overlay_alpha)
            pred = datasets.CIFAR10_CLASSES[heads[pool][2][i]]
            stage.save_png(f"{name}_{pool}.png", pic)
            rows.append(pic)
            cards.append({"image": f"{name}_{pool}.png",
                          "caption": [f"{pool.upper()} CAM: {pred}", "right" if pred == truth else f"wrong ({truth})"]})
    return cards, rows


def results_md(config, model, results: dict, hw, timings: tuple[float, float, float], wall: float) -> str:
    """``results.md``: the setup in a paragraph, then the table."""
    feature_time, train_time, faith_time = timings
    return (f"# GAP versus GMP CAM heads on frozen {model.name} {config.layer}\n\n"
            f"CIFAR-10 subset: {results['train_images']} train ({config.train_per_class}/class), "
            f"{results['test_images']} test ({config.test_per_class}/class), upsampled 32 -> {config.image_size} px "
            f"({config.layer} {hw[0]}x{hw[1]}); head 3x3 conv {config.head_width} + ReLU + pool + dense 10; Adam "
            f"{config.learning_rate}, {config.epochs} epochs, batch {config.batch_size}, seed {config.seed}; "
            f"deletion/insertion on {results['faithfulness_images']} test images, {config.faithfulness_steps} steps, "
            f"baseline {config.faithfulness_baseline}. Wall time {wall:.0f} s (features {feature_time:.0f} s, "
            f"training {train_time:.0f} s, faithfulness {faith_time:.0f} s).\n\n" + results_table(results))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    work = check_workdir(workdir)
    log = (lambda s: print(f"gap_gmp [{time.time() - start:6.1f} s] {s}", file=sys.stderr, flush=True)) \
        if config.verbose else (lambda s: None)
    archive = cifar10_location(config)
    model = config_model(config)
    hw = check_spatial(model, config.layer, (config.image_size, config.image_size))
    size = config.image_size

    data = datasets.cifar10_subsets(archive, {"train": config.train_per_class, "test": config.test_per_class})
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    if model.channels != x_train.shape[-1]:  # a grayscale model sees the images' BT.601 luma
        x_train, x_test = (model.from_rgb(x.astype(np.float32) / 255.0) for x in (x_train, x_test))
    log(f"read {len(y_train)} train + {len(y_test)} test images; {config.layer} maps are {hw[0]}x{hw[1]}")

    feature_start = time.time()
    f_train, f_test = cached_features(config, work, model, x_train, x_test, log)
    feature_time = time.time() - feature_start
    heads, results_heads, cams, train_time = trained_heads(config, f_train, y_train, f_test, y_test, log)
    faith_index = faithfulness_index(config)
    faith_time = 0.0
    if config.faithfulness_per_class:
        faith_time = add_faithfulness(config, model, x_test, faith_index, heads, cams, results_heads, log)
    paired = paired_differences(config, results_heads)

    settings = config.to_dict()
    results = {
        "recipe": "gap_gmp",
        "model": model.name,
        "layer": config.layer,
        "map_size": list(hw),
        "train_images": int(len(y_train)),
        "test_images": int(len(y_test)),
        "faithfulness_images": int(len(faith_index)) if config.faithfulness_per_class else 0,
        "classes": list(datasets.CIFAR10_CLASSES),
        "heads": results_heads,
        "paired": paired,
        "timings_s": {"features": round(feature_time, 1), "training": round(train_time, 1),
                      "faithfulness": round(faith_time, 1)},
    }

    picks, shown = example_pictures(config, x_test, model.channels)
    with Staging(workdir) as stage:
        cards, rows = write_examples(stage, config, picks, shown, y_test, heads, cams)
        info = run_info(start)
        results["wall_time_s"] = info["wall_time_s"]
        stage.write_text("results.md", results_md(config, model, results, hw, (feature_time, train_time, faith_time),
                                                  info["wall_time_s"]))
        stage.write_json("results.json", {**results, "settings": settings})
        manifest = {
            "recipe": "gap_gmp",
            "model": model.name,
            "model_source": model.source,
            "settings": settings,
            "results": "results.json",
            "table": "results.md",
            "grid": "grid.png" if rows else None,
            "grid_layout": {"rows": [int(i) for i in picks], "columns": ["input"] + [f"{p}_cam" for p in POOLS]},
            "gallery": "index.html",
            "test_accuracy": {p: results_heads[p]["test_accuracy"] for p in POOLS},
        }
        manifest.update(info)
        header = {"layer": f"{config.layer} ({hw[0]}x{hw[1]})", "train / test images": f"{len(y_train)} / {len(y_test)}",
                  "image size": size, "grid": "grid.png (rows: test images; columns: input, GAP CAM, GMP CAM)"}
        header.update({f"{p.upper()} test accuracy": f"{results_heads[p]['test_accuracy']:.3f}" for p in POOLS})
        header["wall time (s)"] = info["wall_time_s"]
        write_run(stage, manifest, "GAP versus GMP CAM heads", cards, header, grid=rows, grid_columns=1 + len(POOLS))
    return manifest


__getattr__ = moved.renamed(__name__)  # old names (jfv.runtime.moved.NAMES)


RECIPE = Recipe(run=run, check=check)
