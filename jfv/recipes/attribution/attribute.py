"""Recipe ``attribute``: run attribution methods on given images and compare them.

Writes into the workdir: ``overlays/<image>_<method>.png`` (each map over its image; deconvnet and
guided backprop as images), ``grid.png`` (images x [input, methods]), ``index.html`` (the gallery),
and ``manifest.json`` (settings, targets, and per image and method the deletion / insertion areas
when ``faithfulness_steps`` > 0, so methods can be compared with numbers).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv import attribution as A
from jfv import models
from jfv.attribution import pictures
from jfv.runtime.outputs import Staging, check_workdir, load_image, write_run
from jfv.recipes import Recipe
from jfv.recipes.common import (  # noqa: F401  (image_paths, output_names, default_image: their home is common)
    config_model, SUFFIXES, ConfigError, check_int, check_memory, check_seed, default_image, image_paths,
    output_names, run_info,
)

METHODS = ("saliency", "gradient_x_input", "smoothgrad", "guided_backprop", "deconvnet", "grad_cam", "cam", "occlusion")
IMAGE_METHODS = ("guided_backprop", "deconvnet")  # shown as images, ranked by their magnitude
TARGETS = ("channel", "strongest", "neuron", "class")


def parse_methods(spec: str, model: models.Model) -> list[str]:
    methods = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ConfigError(f"unknown method(s) {bad or spec!r}; valid: {', '.join(METHODS)}")
    if "cam" in methods and "logits" not in model.layers:
        raise ConfigError(f"method 'cam' needs a classifier head (a 'logits' layer), which {model.name} has not")
    return methods


def make_target(config, model: models.Model, images: jax.Array) -> A.Target:
    kind = config.target
    if kind not in TARGETS:
        raise ConfigError(f"unknown target {kind!r}; valid: {', '.join(TARGETS)}")
    layer = "logits" if kind == "class" else config.layer
    model.check_layer(layer)
    channel: Any = config.channel
    if channel < 0:  # each image's strongest channel (its largest activation anywhere)
        a = model(images)[layer]
        channel = tuple(int(c) for c in jnp.argmax(a.reshape(a.shape[0], -1, a.shape[-1]).max(1), -1))
    if kind == "class":
        target = A.label(channel, softmax=True)
    elif kind == "strongest":
        target = A.strongest(layer, channel)
    elif kind == "neuron":
        target = A.neuron(layer, channel, config.neuron_y, config.neuron_x)
    else:
        target = A.channel(layer, channel)
    target.check(model, images.shape[1:3])
    return target


def check(config: ml_collections.ConfigDict) -> None:
    if config.image_size < 16:
        raise ConfigError(f"image_size must be >= 16, got {config.image_size}")
    check_int(config.batch_size, "batch_size", 1, meaning="occluded or masked images per model call")
    check_seed(config.seed)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check_workdir(workdir)
    check(config)
    model = config_model(config)
    methods = parse_methods(config.methods, model)
    paths = image_paths(config.images, config.max_images)
    check_memory(model, config.image_size, max(len(paths), config.batch_size), "image_size, max_images or batch_size")
    # the model's input: the photos, or their BT.601 luma for a grayscale model
    images = jnp.asarray(model.from_rgb(np.stack([load_image(p, config.image_size) for p in paths])))
    target = make_target(config, model, images)
    key = jax.random.key(config.seed)
    size = images.shape[1:3]

    maps: dict[str, np.ndarray] = {}  # method -> (n, H, W) map used for ranking and overlays
    shown: dict[str, np.ndarray] = {}  # method -> (n, H, W, 3) pictures
    for method in methods:
        if method in IMAGE_METHODS:
            g = np.asarray(getattr(A, method)(model, images, target))
            maps[method] = np.abs(g).max(-1)
            shown[method] = np.stack([pictures.signed_image(x, config.projection_gain) for x in g])
            continue
        if method == "saliency":
            m = A.saliency(model, images, target)
        elif method == "gradient_x_input":
            m = A.gradient_x_input(model, images, target)
        elif method == "smoothgrad":
            m = A.smoothgrad(model, images, target, key, config.smoothgrad_samples, config.smoothgrad_noise)
        elif method == "grad_cam":
            m = A.grad_cam(model, images, target, config.grad_cam_layer)
        elif method == "cam":
            m = A.cam(model, images, target.channels(images.shape[0])[:, None], config.cam_layer)[:, 0]
        else:
            occ = A.occlusion(model, images, target, config.occlusion_window, config.occlusion_stride,
                              config.occlusion_fill, config.batch_size)
            m = occ.heatmap
        m = np.stack([pictures.resize_map(x, size) for x in np.asarray(m)])
        maps[method] = m
        shown[method] = np.stack([pictures.overlay(img, x, config.overlay_alpha) for img, x in zip(np.asarray(images), m)])

    scores: dict[str, dict[str, list[float]]] = {}
    if config.faithfulness_steps > 0:
        for method, m in maps.items():
            c = A.deletion_insertion(model, images, target, jnp.asarray(m), config.faithfulness_steps,
                                     config.faithfulness_baseline, config.batch_size)
            scores[method] = {"deletion_auc": [round(float(v), 6) for v in c.deletion_auc],
                              "insertion_auc": [round(float(v), 6) for v in c.insertion_auc]}

    names = output_names(paths)
    cards, rows, entries = [], [], []
    with Staging(workdir) as stage:
        for i, name in enumerate(names):
            row = [np.asarray(images[i])]
            stage.save_png(f"overlays/{name}_input.png", images[i])
            cards.append({"image": f"overlays/{name}_input.png", "caption": [name, target.description]})
            entry = {"image": paths[i], "methods": {}}
            for method in methods:
                rel = f"overlays/{name}_{method}.png"
                stage.save_png(rel, shown[method][i])
                row.append(shown[method][i])
                caption = [f"{name}: {method}"]
                info: dict[str, Any] = {"picture": rel}
                if method in scores:
                    d, ins = scores[method]["deletion_auc"][i], scores[method]["insertion_auc"][i]
                    caption.append(f"deletion {d:.3g} insertion {ins:.3g}")
                    info.update(deletion_auc=d, insertion_auc=ins)
                cards.append({"image": rel, "caption": caption})
                entry["methods"][method] = info
            entries.append(entry)
            rows += row
        manifest = {
            "recipe": "attribute",
            "model": model.name,
            "model_source": model.source,
            "target": target.description,
            "methods": methods,
            "settings": config.to_dict(),
            "grid": "grid.png",
            "grid_layout": {"rows": names, "columns": ["input"] + methods},
            "gallery": "index.html",
            "images": entries,
        }
        manifest.update(run_info(start))
        header = {"model": model.name, "target": target.description, "image size": config.image_size,
                  "grid": "grid.png (rows: images; columns: input, " + ", ".join(methods) + ")",
                  "faithfulness": f"{config.faithfulness_steps} steps, baseline {config.faithfulness_baseline}"
                  if config.faithfulness_steps else "off",
                  "wall time (s)": manifest["wall_time_s"]}
        write_run(stage, manifest, f"{model.name} attribution", cards, header, grid=rows, grid_columns=len(methods) + 1)
    return manifest


RECIPE = Recipe(run=run, check=check)
