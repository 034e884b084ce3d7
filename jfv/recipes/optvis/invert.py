"""Recipes ``invert`` and ``accentuate``: renderings tied to photos, one per photo and layer or channel.

One recipe for the three tasks of ``jfv.optvis.inversion``; the recipe name the config gives selects
the task (``task(config)``), and with it the task's own keys:

- ``recipe="invert"``: for each photo and each of ``layers``, an image whose activations at that
  layer match the photo's (``mode=inversion``, Mahendran & Vedaldi 2015) or go further along them
  (``mode=caricature``, Lucid's caricature recipe), from random Fourier noise or a CPPN (``param``)
  (``inversion.invert``). Own keys: ``layers``, ``mode``, ``cossim_pow``, ``tv``, ``param``.
- ``recipe="accentuate"``: each photo pushed towards each of ``channels`` of ``layer`` while a
  penalty holds it near itself in ``reg_layer``'s feature space, optionally inside an L-inf or L2
  ball around it (``inversion.accentuate``; Hamblin et al. 2024, "Feature Accentuation: Revealing
  'What' Features Respond to in Natural Images"). Own keys: ``layer``, ``channels``, ``reg_layer``,
  ``penalty``, ``norm``, ``eps``. A token layer's channel is an embedding dimension averaged over
  tokens.

Both share the rest (model, photos, ``image_size``, ``transforms``, ``steps``, ``learning_rate``,
``fft``, ``decorrelate``, ``seed``, ``batch_size``, ``progress``) and this module's prelude and
writer. Photos are RGB; a model with other input channels is given ``Model.from_rgb(photos)`` (a
grayscale model their ITU-R BT.601 luma) and renders images with its own channel count
(``decorrelate=False`` and ``param=image``: colour decorrelation and the CPPN are RGB-only); its
PNGs are 8-bit grayscale (other counts than 1 and 3: the mean over channels,
``datasets.displayable``).

Writes into the workdir: ``images/<photo>.png`` (the photo as the network saw it: an accentuation's
seed), one rendering per photo and column, ``images/<photo>_<layer>.png`` (inversion) or
``images/<photo>_<layer>_<cccc>.png`` (accentuation), ``grid.png`` (one row per photo: the photo, then
the layers or channels in the order given), ``index.html`` and ``manifest.json`` (settings, and per
photo and column: for an inversion the relative error ``||A(x) - A(photo)|| / ||A(photo)||``, the
cosine and the dot-product ratio ``<A(x), A(photo)> / ||A(photo)||^2`` of the rendering's
activations; for an accentuation the channel's mean activation on the seed and on the accentuation,
the relative squared feature distance at ``reg_layer`` and the pixel L-inf and RMS distances from
the seed).
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
from jfv.recipes.photos import PHOTO_TRANSFORMS as TRANSFORMS  # noqa: F401  (the name users read)
from jfv.recipes.common import (
    ConfigError, check_finite, check_memory, config_model, parse_channels, parse_layers, run_info,
)
from jfv.runtime.progress import Progress
from jfv.recipes.photos import check_photo_channels, check_photo_settings, load_photos, photo_transforms
from jfv.recipes import Recipe

PARAMS = ("image", "cppn")  # parameterisations.image (Fourier, with fft/decorrelate) | parameterisations.cppn
TASKS = ("inversion", "caricature", "accentuation")  # task(config): the invert recipe's mode, or accentuation
ACCENTUATE = "accentuate"  # the recipe name that asks for accentuation (jfv.recipes.RECIPES: this module)


def task(config: ml_collections.ConfigDict) -> str:
    """What the config asks for: ``accentuation`` when it names the recipe ``accentuate``, else its
    ``mode`` (``inversion`` or ``caricature``)."""
    return "accentuation" if config.get("recipe") == ACCENTUATE else config.mode


def check(config: ml_collections.ConfigDict) -> None:
    if task(config) == "accentuation":
        check_photo_settings(config, "cells")
        check_finite([config.penalty, config.eps], "penalty and eps")
        if config.penalty < 0:
            raise ConfigError(f"penalty must be >= 0 (0 = plain activation maximisation from the seed), "
                              f"got {config.penalty}")
        if config.norm not in inversion.NORMS:
            raise ConfigError(f"unknown norm {config.norm!r}; valid: {', '.join(inversion.NORMS)}")
        if config.norm != "none" and not config.eps > 0:
            raise ConfigError(f"norm={config.norm} needs eps > 0 (the ball's radius in [0, 1] pixel units, e.g. 0.1)")
        return
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


# A task: what differs between inversion and accentuation, in the terms ``run`` and ``write`` use.
# ``columns`` name the grid's columns after the photo's; ``per_photo`` renderings per photo;
# ``render`` optimises, ``cells`` gives per photo and column (path, image, caption, record) and
# ``describe`` the manifest's and the gallery header's own keys.


class Inversion:
    """``recipe=invert``: each photo rendered at each of ``layers`` (``mode``: inversion | caricature)."""

    recipe, seed = "invert", "photo"  # the manifest's recipe; what the grid's first column shows

    def __init__(self, config: ml_collections.ConfigDict, model: models.Model, size: int):
        self.config, self.model = config, model
        self.layers = parse_layers(config.layers, model, "conv3_1,conv4_1", size)
        self.columns, self.per_photo = list(self.layers), 1
        self.label, self.title = f"{model.name} {config.mode}", f"{model.name} feature {config.mode}"

    def render(self, photos: np.ndarray, param, optimiser, key, progress: Progress) -> None:
        c, layers = self.config, self.layers
        self.results = {}
        for k, layer in enumerate(layers):  # one engine per layer: the target shapes differ
            def report(done, total, k=k):  # one bar over all layers
                progress(k * total + done, len(layers) * total)

            self.results[layer] = inversion.invert(self.model, layer, photos, param, optimiser, key, c.steps,
                                                   mode=c.mode, cossim_pow=c.cossim_pow, tv=c.tv,
                                                   transforms=photo_transforms(c.transforms),
                                                   batch_size=c.batch_size or None, progress=report)

    def cells(self, photos: np.ndarray, names: list[str]) -> list[list[tuple[str, Any, list[str], dict]]]:
        results = self.results
        stats = {layer: match_stats(self.model, layer, results[layer].images[:, 0], photos) for layer in self.layers}
        rows = []
        for i, name in enumerate(names):
            row = []
            for layer in self.layers:
                rel, s = f"images/{name}_{layer}.png", stats[layer][i]
                record = {"image": rel, "objective": round(float(results[layer].objective[i]), 6), **s}
                caption = [f"{name} {layer}", f"rel. error {s['relative_error']:.3f}",
                           f"dot ratio {s['dot_ratio']:.2f}"]
                row.append((rel, results[layer].images[i, 0], caption, record))
            rows.append(row)
        return rows

    def collect(self, records: list[dict]) -> dict[str, Any]:
        return {"layers": dict(zip(self.layers, records))}

    def describe(self) -> tuple[dict, dict, dict]:
        c = self.config
        objective = inversion.inversion_objective(c.mode, "<layer>", np.zeros(1), c.cossim_pow, c.tv).description
        return ({"mode": c.mode}, {"layers": self.layers, "objective": objective},
                {"mode": c.mode, "layers": ", ".join(self.layers), "objective": objective})


class Accentuation:
    """``recipe=accentuate``: each photo pushed towards each of ``channels`` of ``layer``."""

    recipe, seed = ACCENTUATE, "seed"

    def __init__(self, config: ml_collections.ConfigDict, model: models.Model, size: int):
        self.config, self.model = config, model
        self.layer, self.reg_layer = config.layer, config.reg_layer or config.layer
        n = model.check_layer(self.layer)
        model.check_layer(self.reg_layer)
        model.check_image_size(self.layer, size)
        model.check_image_size(self.reg_layer, size)
        self.channels = parse_channels(config.channels, n, f"{model.name} layer {self.layer!r}")
        self.columns, self.per_photo = [f"{self.layer} ch {c}" for c in self.channels], len(self.channels)
        self.label = f"{model.name} {self.layer} accentuation"
        self.title = f"{model.name} {self.layer} feature accentuation"

    def render(self, photos: np.ndarray, param, optimiser, key, progress: Progress) -> None:
        c = self.config
        self.out = inversion.accentuate(self.model, self.layer, self.channels, photos, param, optimiser, key, c.steps,
                                        reg_layer=self.reg_layer, penalties=[c.penalty], norm=c.norm, eps=c.eps,
                                        transforms=photo_transforms(c.transforms),
                                        batch_size=c.batch_size or None, progress=progress)

    def cells(self, photos: np.ndarray, names: list[str]) -> list[list[tuple[str, Any, list[str], dict]]]:
        model, layer = self.model, self.layer
        images = self.out.images[:, :, 0, 0]  # (photos, channels, H, W, model.channels)
        flat = images.reshape((-1,) + images.shape[2:])
        acts = model.apply(model.params, jnp.asarray(flat))
        seed_acts = model.apply(model.params, jnp.asarray(photos))
        ch = np.asarray(acts[layer], np.float64).reshape(images.shape[:2] + acts[layer].shape[1:])
        seed_ch = np.asarray(seed_acts[layer], np.float64)
        reg = np.asarray(acts[self.reg_layer], np.float64).reshape(images.shape[:2] + (-1,))
        seed_reg = np.asarray(seed_acts[self.reg_layer], np.float64).reshape(len(photos), 1, -1)
        distance = np.sum((reg - seed_reg) ** 2, -1) / (np.sum(seed_reg**2, -1) + 1e-12)
        rows = []
        for i, name in enumerate(names):
            row = []
            for j, c in enumerate(self.channels):
                img, rel = images[i, j], f"images/{name}_{layer}_{c:04d}.png"
                before, after = float(seed_ch[i, ..., c].mean()), float(ch[i, j, ..., c].mean())
                diff = img.astype(np.float64) - photos[i]
                cell = {"channel": int(c), "image": rel, "activation_seed": round(before, 6),
                        "activation": round(after, 6), "feature_distance": round(float(distance[i, j]), 6),
                        "pixel_linf": round(float(np.abs(diff).max()), 6),
                        "pixel_rms": round(float(np.sqrt(np.mean(diff**2))), 6),
                        "objective": round(float(self.out.objective[i, j, 0]), 6)}
                caption = [f"{name} {layer} ch {c}", f"act {before:.2f} -> {after:.2f}",
                           f"L-inf {cell['pixel_linf']:.3f}"]
                row.append((rel, img, caption, cell))
            rows.append(row)
        return rows

    def collect(self, records: list[dict]) -> dict[str, Any]:
        return {"channels": records}

    def describe(self) -> tuple[dict, dict, dict]:
        c = self.config
        objective = inversion.accentuation_objective(self.layer, np.int32(self.channels[0]), self.reg_layer,
                                                     np.zeros(1), c.penalty).description
        projection = "none" if c.norm == "none" else f"{c.norm} ball of radius {c.eps:g}"
        return ({}, {"layer": self.layer, "reg_layer": self.reg_layer,
                     "objective": objective + " (channel term over the seed's RMS activation of the layer)",
                     "projection": projection},
                {"layer": self.layer, "reg_layer": self.reg_layer, "penalty": c.penalty, "projection": projection})


def photo_param(config: ml_collections.ConfigDict, size: int, channels: int):
    """The rendering's parameterisation: ``param`` (inversion only; accentuation starts from the photo
    through the Fourier image's ``init_from_image``)."""
    if config.get("param", "image") == "cppn":
        return parameterisations.cppn(size)
    return parameterisations.image(size, fft=config.fft, decorrelate=config.decorrelate, channels=channels)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    # Nothing is loaded before the keys pass, and nothing rendered before the layers, photos and
    # memory do: the clock, the workdir, the keys, the model, then the task's layers or channels.
    start = time.time()
    check_workdir(workdir)
    check(config)
    model = config_model(config)
    size = int(config.image_size)
    job = (Accentuation if task(config) == "accentuation" else Inversion)(config, model, size)
    check_photo_channels(model, config.decorrelate, config.get("param", "image"))
    photos, names, paths = load_photos(config.images, int(config.max_images), size, config.shared_dir)
    photos = model.from_rgb(photos)  # the model's input: the photos, or their BT.601 luma for a grayscale model
    cells = len(photos) * job.per_photo
    check_memory(model, size, min(config.batch_size or cells, cells), "image_size or batch_size")

    param = photo_param(config, size, model.channels)
    progress = Progress(job.label, enabled=config.progress)
    try:
        job.render(photos, param, optax.adam(config.learning_rate), jax.random.key(config.seed), progress)
    finally:
        progress.close()
    return write(config, workdir, start, model, job, param, photos, names, paths)


def write(config: ml_collections.ConfigDict, workdir: str, start: float, model: models.Model, job, param,
          photos: np.ndarray, names: list[str], paths: list[str]) -> dict[str, Any]:
    """The run's files: each photo and its renderings, the grid, the gallery and the manifest."""
    rows = job.cells(photos, names)
    entries, pictures, cards = [], [], []
    with Staging(workdir) as stage:
        for i, (name, path) in enumerate(zip(names, paths)):
            rel = f"images/{name}.png"
            for image_rel, image, caption in [(rel, photos[i], [name, job.seed])] + [r[:3] for r in rows[i]]:
                shown = datasets.displayable(image)
                stage.save_png(image_rel, shown)
                pictures.append(shown)
                cards.append({"image": image_rel, "caption": caption})
            entries.append({"name": name, "source": path, "image": rel, **job.collect([r[3] for r in rows[i]])})
        head, about, header = job.describe()
        manifest = {
            "recipe": job.recipe,
            **head,
            "model": model.name,
            "model_source": model.source,
            **about,
            "settings": config.to_dict(),
            "param": repr(param),
            "transforms": ("none" if config.transforms == "none"
                           else f"{transforms.standard()!r}, applied to the rendering and its {job.seed} together"),
            "grid": "grid.png",
            "grid_layout": {"rows": names, "columns": [job.seed] + job.columns},
            "gallery": "index.html",
            "images": entries,
        }
        manifest.update(run_info(start))
        header = {"model": model.name, **header, "steps": config.steps, "image size": int(config.image_size),
                  "param": repr(param), "seed": config.seed, "wall time (s)": manifest["wall_time_s"]}
        write_run(stage, manifest, job.title, cards, header, grid=pictures, grid_columns=1 + len(job.columns))
    return manifest


RECIPE = Recipe(run=run, check=check)
