"""Recipe ``accentuate``: feature accentuation of photos x channels, with a grid.

Each photo is pushed towards each channel while a penalty holds it near itself in a chosen layer's
feature space, optionally inside an L-inf or L2 ball around it (``jfv.optvis.inversion.accentuate``;
Hamblin et al. 2024, "Feature Accentuation: Revealing 'What' Features Respond to in Natural Images").

Writes into the workdir: ``images/<photo>.png`` (the seed as the network saw it),
``images/<photo>_<layer>_<cccc>.png`` (its accentuation per channel), ``grid.png`` (one row per
photo: the seed, then the channels), ``index.html`` and ``manifest.json`` (settings, and per photo
and channel the channel's mean activation on the seed and on the accentuation, the relative squared
feature distance at ``reg_layer`` and the pixel L-inf and RMS distances from the seed).

Photos are RGB; a model with other input channels starts from ``Model.from_rgb(photos)`` (a
grayscale model's: their ITU-R BT.601 luma) with ``decorrelate=False``; its PNGs are 8-bit grayscale
(other counts than 1 and 3: the mean over channels, ``datasets.displayable``). A token layer's
channel is an embedding dimension averaged over tokens.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jfv.analysis import datasets
from jfv.optvis import inversion, parameterisations, transforms
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes.common import (ConfigError, config_model, Progress, check_finite, check_memory, check_photo_channels,
                                check_photo_settings, load_photos, parse_channels, photo_transforms, run_info)
from jfv.recipes import Recipe


def check(config: ml_collections.ConfigDict) -> None:
    check_photo_settings(config, "cells")
    check_finite([config.penalty, config.eps], "penalty and eps")
    if config.penalty < 0:
        raise ConfigError(f"penalty must be >= 0 (0 = plain activation maximisation from the seed), got {config.penalty}")
    if config.norm not in inversion.NORMS:
        raise ConfigError(f"unknown norm {config.norm!r}; valid: {', '.join(inversion.NORMS)}")
    if config.norm != "none" and not config.eps > 0:
        raise ConfigError(f"norm={config.norm} needs eps > 0 (the ball's radius in [0, 1] pixel units, e.g. 0.1)")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    # The prelude is invert.run's (clock, workdir, keys, model): four calls kept in the open rather
    # than behind a helper, because their order is the point (nothing loads before the keys pass).
    start = time.time()
    check_workdir(workdir)
    check(config)
    model = config_model(config)
    size = int(config.image_size)
    layer = config.layer
    reg_layer = config.reg_layer or layer
    n = model.check_layer(layer)
    model.check_layer(reg_layer)
    model.check_image_size(layer, size)
    model.check_image_size(reg_layer, size)
    channels = parse_channels(config.channels, n, f"{model.name} layer {layer!r}")
    check_photo_channels(model, config.decorrelate)
    seeds, names, paths = load_photos(config.images, int(config.max_images), size, config.shared_dir)
    seeds = model.from_rgb(seeds)  # the model's input: the photos, or their BT.601 luma for a grayscale model
    cells = len(seeds) * len(channels)
    check_memory(model, size, min(config.batch_size or cells, cells), "image_size or batch_size")

    param = parameterisations.image(size, fft=config.fft, decorrelate=config.decorrelate, channels=model.channels)
    progress = Progress(f"{model.name} {layer} accentuation", enabled=config.progress)
    try:
        out = inversion.accentuate(model, layer, channels, seeds, param, optax.adam(config.learning_rate),
                                   jax.random.key(config.seed), config.steps, reg_layer=reg_layer,
                                   penalties=[config.penalty], norm=config.norm, eps=config.eps,
                                   transforms=photo_transforms(config.transforms),
                                   batch_size=config.batch_size or None, progress=progress)
    finally:
        progress.close()
    images = out.images[:, :, 0, 0]  # (photos, channels, H, W, model.channels)

    flat = images.reshape((-1,) + images.shape[2:])
    acts = model.apply(model.params, jnp.asarray(flat))
    seed_acts = model.apply(model.params, jnp.asarray(seeds))
    ch = np.asarray(acts[layer], np.float64).reshape(images.shape[:2] + acts[layer].shape[1:])
    seed_ch = np.asarray(seed_acts[layer], np.float64)
    reg = np.asarray(acts[reg_layer], np.float64).reshape(images.shape[:2] + (-1,))
    seed_reg = np.asarray(seed_acts[reg_layer], np.float64).reshape(len(seeds), 1, -1)
    distance = np.sum((reg - seed_reg) ** 2, -1) / (np.sum(seed_reg**2, -1) + 1e-12)

    entries, pictures, cards = [], [], []
    with Staging(workdir) as stage:
        for i, (name, path) in enumerate(zip(names, paths)):
            rel = f"images/{name}.png"
            shown = datasets.displayable(seeds[i])
            stage.save_png(rel, shown)
            pictures.append(shown)
            cards.append({"image": rel, "caption": [name, "seed"]})
            entry = {"name": name, "source": path, "image": rel, "channels": []}
            for j, c in enumerate(channels):
                img = images[i, j]
                rel = f"images/{name}_{layer}_{c:04d}.png"
                shown = datasets.displayable(img)
                stage.save_png(rel, shown)
                pictures.append(shown)
                before, after = float(seed_ch[i, ..., c].mean()), float(ch[i, j, ..., c].mean())
                diff = img.astype(np.float64) - seeds[i]
                cell = {"channel": int(c), "image": rel, "activation_seed": round(before, 6),
                        "activation": round(after, 6), "feature_distance": round(float(distance[i, j]), 6),
                        "pixel_linf": round(float(np.abs(diff).max()), 6),
                        "pixel_rms": round(float(np.sqrt(np.mean(diff**2))), 6),
                        "objective": round(float(out.objective[i, j, 0]), 6)}
                entry["channels"].append(cell)
                cards.append({"image": rel, "caption": [f"{name} {layer} ch {c}", f"act {before:.2f} -> {after:.2f}",
                                                         f"L-inf {cell['pixel_linf']:.3f}"]})
            entries.append(entry)
        description = inversion.accentuation_objective(layer, np.int32(channels[0]), reg_layer, np.zeros(1),
                                                       config.penalty).description
        manifest = {
            "recipe": "accentuate",
            "model": model.name,
            "model_source": model.source,
            "layer": layer,
            "reg_layer": reg_layer,
            "objective": description + " (channel term over the seed's RMS activation of the layer)",
            "projection": "none" if config.norm == "none" else f"{config.norm} ball of radius {config.eps:g}",
            "settings": config.to_dict(),
            "param": repr(param),
            "transforms": ("none" if config.transforms == "none"
                           else f"{transforms.standard()!r}, applied to the rendering and its seed together"),
            "grid": "grid.png",
            "grid_layout": {"rows": names, "columns": ["seed"] + [f"{layer} ch {c}" for c in channels]},
            "gallery": "index.html",
            "images": entries,
        }
        manifest.update(run_info(start))
        header = {"model": model.name, "layer": layer, "reg_layer": reg_layer, "penalty": config.penalty,
                  "projection": manifest["projection"], "steps": config.steps, "image size": size,
                  "param": repr(param), "seed": config.seed, "wall time (s)": manifest["wall_time_s"]}
        write_run(stage, manifest, f"{model.name} {layer} feature accentuation", cards, header, grid=pictures,
                  grid_columns=1 + len(channels))
    return manifest


RECIPE = Recipe(run=run, check=check)
