"""Recipe ``sensitivity``: a grey square slid over CIFAR-10 test images, the true class's probability
as the map (Zeiler & Fergus 2014, section 4.2 and figure 7; Berthier & Mantoux's sensitivity slide).

``python -m jfv --config=configs/cifar10_sensitivity.py --workdir=DIR`` loads ``model`` (by default
the ``cifar_convnet`` a ``train`` run wrote into ``weights_dir``), takes the first
``test_per_class`` test images of every class of CIFAR-10 (``cifar10_path``, else the shared archive), and for each one
records p(true class | image with a ``window`` x ``window`` square of ``fill`` whose top-left corner
is at (y, x)) for every position on a ``stride`` grid (``jfv.attribution.occlusion``, one batched
computation).

Writes into DIR: ``sensitivity.png`` (per image: the image, the probability map on the window
grid (0 black, 1 white, shared scale) and the per-pixel drop as an overlay), ``maps.npz`` (the
probability maps, their positions, the unoccluded probabilities), ``results.csv`` (image, class,
predicted class, p(true) unoccluded, the lowest p(true) over positions and where), ``index.html``
and ``manifest.json``.

The archive is RGB; a model with other input channels is given ``Model.from_rgb(images)`` (a
grayscale model their ITU-R BT.601 luma, which the figure then shows in grey).
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv import attribution as A
from jfv.analysis import datasets, figures
from jfv import models
from jfv.models.labels import CIFAR10_CLASSES
from jfv.runtime.outputs import Staging, write_run
from jfv.recipes.common import ConfigError, config_model, check_int, cifar10_location, run_info
from jfv.recipes import Recipe


def check(config) -> None:
    check_int(config.test_per_class, "test_per_class", 1, datasets.CIFAR10_PER_CLASS["test"])
    check_int(config.window, "window", 1, 32, "the square's side in pixels")
    check_int(config.stride, "stride", 1, 32, "pixels between window positions")
    check_int(config.batch_size, "batch_size", 1)
    if not 0 <= float(config.fill) <= 1:
        raise ConfigError(f"fill must be a grey level in [0, 1], got {config.fill}")


def figure(images: np.ndarray, maps: np.ndarray, drops: np.ndarray, labels, preds, p0) -> bytes:
    plt = figures.pyplot()

    n = len(images)
    cols = min(n, 5)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, 3 * cols, figsize=(1.6 * 3 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        a, b, d = axes[r, 3 * c], axes[r, 3 * c + 1], axes[r, 3 * c + 2]
        a.imshow(images[i], interpolation="nearest")
        a.set_title(f"{CIFAR10_CLASSES[labels[i]]}\np={p0[i]:.2f}", fontsize=7)
        b.imshow(maps[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        b.set_title(f"p({CIFAR10_CLASSES[labels[i]]})\nmin {maps[i].min():.2f}", fontsize=7)
        d.imshow(images[i], interpolation="nearest")
        d.imshow(np.clip(drops[i], 0, None), cmap="jet", alpha=0.5, vmin=0, vmax=max(float(drops[i].max()), 1e-6))
        d.set_title(f"drop\npred {CIFAR10_CLASSES[preds[i]]}", fontsize=7)
    return figures.png_bytes(fig, dpi=110)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    model = config_model(config)
    if "logits" not in model.layers or model.layers["logits"] != len(CIFAR10_CLASSES):
        raise ConfigError(f"model {model.name!r} has no 10-class 'logits' layer; use a CIFAR-10 classifier "
                          f"({', '.join(models.names_with_labels(CIFAR10_CLASSES))})")
    archive = cifar10_location(config)
    x, y = datasets.cifar10_subsets(archive, {"test": int(config.test_per_class)})["test"]
    # the model's input: the images, or their BT.601 luma for a grayscale model
    images = jnp.asarray(model.from_rgb(jnp.asarray(x, jnp.float32) / 255))
    logits = np.asarray(model(images)["logits"])
    preds = logits.argmax(1)
    occ = A.occlusion(model, images, A.label(tuple(int(v) for v in y), softmax=True), int(config.window),
                      int(config.stride), float(config.fill), int(config.batch_size))
    maps, p0, drops = np.asarray(occ.scores), np.asarray(occ.baseline), np.asarray(occ.heatmap)
    rows = []
    for i in range(len(x)):
        iy, ix = np.unravel_index(int(maps[i].argmin()), maps[i].shape)
        rows.append({"image": i, "class": CIFAR10_CLASSES[y[i]], "predicted": CIFAR10_CLASSES[preds[i]],
                     "p_true": round(float(p0[i]), 5), "min_p_true": round(float(maps[i].min()), 5),
                     "min_at_y": int(occ.ys[iy]), "min_at_x": int(occ.xs[ix])})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    with Staging(workdir) as stage:
        shown = np.asarray(x) if model.channels == 3 else np.repeat(datasets.displayable(np.asarray(images)), 3, -1)
        stage.write_bytes("sensitivity.png", figure(shown, maps, drops, y, preds, p0))
        npz = io.BytesIO()
        np.savez(npz, maps=maps, baseline=p0, ys=occ.ys, xs=occ.xs, labels=y)
        stage.write_bytes("maps.npz", npz.getvalue())
        stage.write_text("results.csv", buf.getvalue())
        manifest = {
            "recipe": "sensitivity", "model": model.name, "model_source": model.source,
            "images": len(x), "window": int(config.window), "stride": int(config.stride), "fill": float(config.fill),
            "accuracy": round(float(np.mean(preds == y)), 5),
            "mean_p_true": round(float(p0.mean()), 5), "mean_min_p_true": round(float(maps.min(axis=(1, 2)).mean()), 5),
            "results": rows, "settings": config.to_dict(), "gallery": "index.html",
        }
        manifest.update(run_info(start))
        header = {"model": f"{model.name} ({model.source})", "images": f"{len(x)} CIFAR-10 test images",
                  "window / stride": f"{config.window} / {config.stride} px, grey {config.fill}",
                  "mean p(true) unoccluded": manifest["mean_p_true"],
                  "mean of the lowest p(true)": manifest["mean_min_p_true"]}
        cards = [{"image": "sensitivity.png", "caption": ["image | p(true class) per window position | drop overlay"]}]
        write_run(stage, manifest, f"{model.name}: occlusion sensitivity", cards, header)
    return manifest


RECIPE = Recipe(run=run, check=check)
