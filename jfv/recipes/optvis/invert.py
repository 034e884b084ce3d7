"""Recipe ``invert``: feature inversion or caricature of photos at several layers, with a grid.

For each photo and each layer, renders an image whose activations at that layer match the photo's
(``mode=inversion``, Mahendran & Vedaldi 2015) or go further along them (``mode=caricature``,
Lucid's caricature recipe), from random Fourier noise (``jfv.optvis.inversion.invert``).

Photos are RGB; a model with other input channels is given ``Model.from_rgb(photos)`` (a grayscale
model their ITU-R BT.601 luma) and renders images with its own channel count (``decorrelate=False``
and ``param=image``: colour decorrelation and the CPPN are RGB-only); its PNGs are 8-bit grayscale
(other counts than 1 and 3: the mean over channels, ``datasets.displayable``).

Writes into the workdir: ``images/<photo>.png`` (the photo as the network saw it),
``images/<photo>_<layer>.png`` (its rendering per layer), ``grid.png`` (one row per photo: the photo,
then the layers in the order given), ``index.html`` and ``manifest.json`` (settings, and per photo and
layer the relative error ``||A(x) - A(photo)|| / ||A(photo)||``, the cosine and the dot-product
ratio ``<A(x), A(photo)> / ||A(photo)||^2`` of the rendering's activations).
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
from jfv import models
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes.common import PHOTO_TRANSFORMS as TRANSFORMS  # noqa: F401  (the name users read)
from jfv.recipes.common import (ConfigError, Progress, check_finite, check_memory, check_photo_channels, config_model,
                                parse_layers,
                                check_photo_settings, load_photos, photo_transforms, run_info)
from jfv.recipes import Recipe

PARAMS = ("image", "cppn")  # parameterisations.image (Fourier, with fft/decorrelate) | parameterisations.cppn


def check(config: ml_collections.ConfigDict) -> None:
    check_photo_settings(config, "photos")
    check_finite([config.tv, config.cossim_pow], "tv and cossim_pow")
    if config.tv < 0:
        raise ConfigError(f"tv is a penalty weight and must be >= 0 (e.g. 0.05), got {config.tv}")
    if config.param not in PARAMS:
        raise ConfigError(f"unknown param {config.param!r}; valid: {', '.join(PARAMS)}")
    if config.mode not in inversion.MODES:
        raise ConfigError(f"unknown mode {config.mode!r}; valid: {', '.join(inversion.MODES)}")


def match_stats(model: models.Model, layer: str, rendered: np.ndarray, photos: np.ndarray) -> list[dict[str, float]]:
    """Per photo: relative error, cosine and dot-product ratio of the rendering's activations."""
    a = np.asarray(model.apply(model.params, jnp.asarray(rendered))[layer], np.float64).reshape(len(photos), -1)
    t = np.asarray(model.apply(model.params, jnp.asarray(photos))[layer], np.float64).reshape(len(photos), -1)
    tt = np.sum(t * t, 1) + 1e-12
    dot = np.sum(a * t, 1)
    return [{"relative_error": round(float(e), 6), "cosine": round(float(c), 6), "dot_ratio": round(float(d), 6)}
            for e, c, d in zip(np.linalg.norm(a - t, axis=1) / np.sqrt(tt),
                               dot / (np.linalg.norm(a, axis=1) * np.sqrt(tt) + 1e-12), dot / tt)]


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check_workdir(workdir)
    check(config)
    model = config_model(config)
    size = int(config.image_size)
    layers = parse_layers(config.layers, model, "conv3_1,conv4_1", size)
    check_photo_channels(model, config.decorrelate, config.param)
    photos, names, paths = load_photos(config.images, int(config.max_images), size, config.shared_dir)
    photos = model.from_rgb(photos)  # the model's input: the photos, or their BT.601 luma for a grayscale model
    check_memory(model, size, min(config.batch_size or len(photos), len(photos)), "image_size or batch_size")

    if config.param == "cppn":
        param = parameterisations.cppn(size)
    else:
        param = parameterisations.image(size, fft=config.fft, decorrelate=config.decorrelate, channels=model.channels)
    optimiser = optax.adam(config.learning_rate)
    key = jax.random.key(config.seed)
    results: dict[str, Any] = {}
    progress = Progress(f"{model.name} {config.mode}", enabled=config.progress)
    try:
        for k, layer in enumerate(layers):  # one engine per layer: the target shapes differ
            def report(done, total, k=k):  # one bar over all layers
                progress(k * total + done, len(layers) * total)

            results[layer] = inversion.invert(model, layer, photos, param, optimiser, key, config.steps,
                                              mode=config.mode, cossim_pow=config.cossim_pow, tv=config.tv,
                                              transforms=photo_transforms(config.transforms),
                                              batch_size=config.batch_size or None, progress=report)
    finally:
        progress.close()

    entries, pictures, cards = [], [], []
    with Staging(workdir) as stage:
        stats = {layer: match_stats(model, layer, results[layer].images[:, 0], photos) for layer in layers}
        for i, (name, path) in enumerate(zip(names, paths)):
            rel = f"images/{name}.png"
            shown = datasets.displayable(photos[i])
            stage.save_png(rel, shown)
            pictures.append(shown)
            cards.append({"image": rel, "caption": [name, "photo"]})
            entry = {"name": name, "source": path, "image": rel, "layers": {}}
            for layer in layers:
                img = datasets.displayable(results[layer].images[i, 0])
                rel = f"images/{name}_{layer}.png"
                stage.save_png(rel, img)
                pictures.append(img)
                s = stats[layer][i]
                cards.append({"image": rel, "caption": [f"{name} {layer}", f"rel. error {s['relative_error']:.3f}",
                                                         f"dot ratio {s['dot_ratio']:.2f}"]})
                entry["layers"][layer] = {"image": rel, "objective": round(float(results[layer].objective[i]), 6), **s}
            entries.append(entry)
        objective = inversion.inversion_objective(config.mode, "<layer>", np.zeros(1), config.cossim_pow, config.tv)
        manifest = {
            "recipe": "invert",
            "mode": config.mode,
            "model": model.name,
            "model_source": model.source,
            "layers": layers,
            "objective": objective.description,
            "settings": config.to_dict(),
            "param": repr(param),
            "transforms": ("none" if config.transforms == "none"
                           else f"{transforms.standard()!r}, applied to the rendering and its photo together"),
            "grid": "grid.png",
            "grid_layout": {"rows": names, "columns": ["photo"] + layers},
            "gallery": "index.html",
            "images": entries,
        }
        manifest.update(run_info(start))
        header = {"model": model.name, "mode": config.mode, "layers": ", ".join(layers),
                  "objective": objective.description, "steps": config.steps, "image size": size,
                  "param": repr(param), "seed": config.seed, "wall time (s)": manifest["wall_time_s"]}
        write_run(stage, manifest, f"{model.name} feature {config.mode}", cards, header, grid=pictures,
                  grid_columns=1 + len(layers))
    return manifest


RECIPE = Recipe(run=run, check=check)
