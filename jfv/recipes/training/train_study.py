"""Recipe ``train_study``: batch norm x padding, the 2x2 grid trained with one seed and one budget
(Berthier & Mantoux, "Batch Normalization & Padding").

``python -m jfv --config=configs/cifar10_bn_padding.py --workdir=DIR`` trains the four convnets
(``batch_norm`` on / off x ``padding`` on / off, everything else the same: data order,
augmentation, init seed, schedule, epochs) through the ``train`` recipe, each in its own resumable
workdir ``DIR/bn<0|1>_pad<0|1>/`` (so re-running the command resumes whichever is unfinished), then
reads every trained network on the same ``images`` test images and writes:

- ``table.md`` / ``results.csv``: test accuracy, training time and images per second per variant
  (a variant whose loss became non-finite is reported as diverged, not dropped);
- ``layer1.png`` / ``layer4.png``: for each image (rows) and variant (column groups), the activation
  maps of the ``top`` most activated filters of that conv layer (``relu1`` / ``relu4``, ranked by
  their largest activation on the image), each map scaled to its own maximum, with the image first;
- ``index.html`` and ``manifest.json``.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv.analysis import datasets, figures
from jfv import models, recipes
from jfv.runtime.jobs import Interrupted, Job
from jfv.models.labels import CIFAR10_CLASSES
from jfv.runtime.outputs import GALLERY_CSS, check_workdir, header_table, write_run
from jfv.recipes.common import JOB_ABSENT, JOB_FIXES, ConfigError, check_int, cifar10_location, job_settings, run_info
from jfv.training import DivergedError
from jfv.recipes import Recipe
from jfv.recipes.training.report import result_accuracy

VARIANTS = ((True, True), (True, False), (False, True), (False, False))  # (batch_norm, padding)
STUDY_KEYS = ("images", "top", "layers")  # keys of this recipe, not of the train runs


def variant_name(batch_norm: bool, padding: bool) -> str:
    return f"bn{int(batch_norm)}_pad{int(padding)}"


def variant_config(config, batch_norm: bool, padding: bool) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict({k: v for k, v in config.to_dict().items() if k not in STUDY_KEYS})
    c.recipe = "train"
    c.arch = "convnet"
    c.batch_norm, c.padding = batch_norm, padding
    return c


def top_maps(acts: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W, C) activations -> the ``top`` channels per image by their maximum, (n, top) indices
    in descending order, and their maps (n, top, H, W) each divided by its own maximum (0 if <= 0)."""
    peak = acts.reshape(acts.shape[0], -1, acts.shape[-1]).max(1)
    order = np.argsort(-peak, axis=1, kind="stable")[:, :top]
    maps = np.take_along_axis(acts, order[:, None, None, :], axis=3).transpose(0, 3, 1, 2)
    scale = maps.reshape(*maps.shape[:2], -1).max(-1)
    return order, np.where(scale[..., None, None] > 0, maps / np.maximum(scale, 1e-12)[..., None, None], 0.0)


def grid_figure(images: np.ndarray, labels, per_variant: dict[str, tuple[np.ndarray, np.ndarray]], layer: str) -> bytes:
    plt = figures.pyplot()

    n = len(images)
    names = list(per_variant)
    top = next(iter(per_variant.values()))[0].shape[1]
    cols = 1 + len(names) * top
    fig, axes = plt.subplots(n, cols, figsize=(0.9 * cols, 1.0 * n + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for i in range(n):
        axes[i, 0].imshow(images[i], interpolation="nearest")
        axes[i, 0].set_ylabel(CIFAR10_CLASSES[labels[i]], fontsize=7)
        for v, name in enumerate(names):
            order, maps = per_variant[name]
            for k in range(top):
                ax = axes[i, 1 + v * top + k]
                ax.imshow(maps[i, k], cmap="magma", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xlabel(f"#{order[i, k]}", fontsize=6, labelpad=1)
                if i == 0 and k == 0:
                    ax.set_title(name, fontsize=7, loc="left")
    fig.suptitle(f"{layer}: the {top} most activated filters per image and variant", fontsize=8)
    return figures.png_bytes(fig, dpi=100)


def check(config: ml_collections.ConfigDict) -> None:
    check_int(config.images, "images", 1, 10 * datasets.CIFAR10_PER_CLASS["test"])
    check_int(config.top, "top", 1, 16, "filters shown per image")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    layers = [s.strip() for s in str(config.layers).split(",") if s.strip()]
    check_workdir(workdir)
    job = Job(workdir, "train_study", job_settings(config, recipes.recipe("train").run_keys), resume=config.resume,
              fixes=JOB_FIXES, absent=JOB_ABSENT)
    try:
        job.create()
        job.clean_stale()
        return _run(config, job, layers, start)
    finally:
        job.close()


def _run(config, job: Job, layers: list[str], start: float) -> dict[str, Any]:
    path = job.path
    results, trained = [], {}
    train_recipe = recipes.get("train")  # the study runs the train recipe once per variant, as `python -m jfv` would
    for bn, pad in VARIANTS:
        name = variant_name(bn, pad)
        c = variant_config(config, bn, pad)
        try:
            manifest = train_recipe.run(c, str(path / name))
        except DivergedError as e:
            results.append({"variant": name, "batch_norm": bn, "padding": pad, "test_accuracy": "diverged",
                            "train_seconds": "", "images_per_second": "", "note": str(e).split(";")[0]})
            continue
        except Interrupted:
            raise
        rows = manifest["epochs"]
        results.append({"variant": name, "batch_norm": bn, "padding": pad,
                        "test_accuracy": result_accuracy(rows[-1]),
                        "train_seconds": round(sum(r["seconds"] for r in rows), 1),
                        "images_per_second": round(float(np.median([r["images_per_second"] for r in rows])), 1),
                        "note": ""})
        trained[name] = models.load(models.convnet.CIFAR_CONVNET.name, weights_dir=path / name)
    for model in trained.values():
        for layer in layers:
            if layer not in model.layers:
                raise ConfigError(f"layer {layer!r} is not in every variant (layers: {', '.join(model.layers)}); "
                                  f"pick conv layers such as relu1,relu4")

    # the same test images for every variant: spread over the classes
    k = -(-int(config.images) // 10)
    archive = cifar10_location(config)
    x, y = datasets.cifar10_subsets(archive, {"test": k})["test"]
    pick = np.concatenate([np.arange(c * k, (c + 1) * k) for c in range(10)]).reshape(10, k).T.ravel()[: int(config.images)]
    x, y = x[pick], y[pick]
    images = jnp.asarray(x, jnp.float32) / 255
    figures = {}
    for layer in layers:
        per_variant = {name: top_maps(np.asarray(m(images)[layer]), int(config.top)) for name, m in trained.items()}
        if per_variant:
            figures[layer] = grid_figure(x, y, per_variant, layer)

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(results[0]))
    w.writeheader()
    w.writerows(results)
    job.write_text("results.csv", buf.getvalue())
    lines = ["| variant | batch norm | padding | test accuracy | training time (s) | images/s |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['variant']} | {'on' if r['batch_norm'] else 'off'} | {'on' if r['padding'] else 'off'} | "
              f"{r['test_accuracy']} | {r['train_seconds']} | {r['images_per_second']} |" for r in results]
    job.write_text("table.md", "\n".join(lines) + "\n")
    for layer, png in figures.items():
        job.write_bytes(f"{layer}.png", png)
    manifest = {"recipe": "train_study", "variants": results, "layers": layers, "figures": [f"{l}.png" for l in figures],
                "images": [int(i) for i in pick], "settings": config.to_dict(), "gallery": "index.html"}
    manifest.update(run_info(start))
    header = {"epochs": config.epochs, "widths": config.widths, "learning rate": config.learning_rate,
              "seed": config.seed, "images": int(config.images)}
    table = "".join(f"<tr><td>{r['variant']}</td><td>{r['test_accuracy']}</td><td>{r['train_seconds']}</td></tr>"
                    for r in results)
    figs = "".join(f'<figure><img src="{l}.png" alt="{l}"><figcaption>{l}</figcaption></figure>' for l in figures)
    links = " · ".join(f'<a href="{v}/index.html">{v}</a>' for v in trained)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>batch norm x padding</title><style>{GALLERY_CSS}</style></head>
<body><h1>Batch norm x padding: four convnets, one seed, one budget</h1>
{header_table(header)}
<table><tr><th>variant</th><th>test accuracy</th><th>training time (s)</th></tr>{table}</table>
<p>training runs: {links}</p>
{figs}
</body></html>
"""
    return write_run(job, manifest, "batch norm x padding", page=page)


RECIPE = Recipe(run=run, check=check, resumable=True)
