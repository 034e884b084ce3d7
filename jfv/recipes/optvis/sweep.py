"""Recipe ``sweep``: channels x strengths of one regulariser, with a gallery and manifest.

The config names a regulariser family of ``jfv.optvis.families`` and its strengths (``strengths``); the
family's entry says how a strength becomes a cell's objective, optimiser step or transforms, and
``families.render_family`` renders every (channel, strength) cell with the channel's key
``fold_in(seed, channel)``, so the images of one channel differ only by the regulariser. Families
whose strength keeps array shapes (penalty weights, image steps, Yosinski presets, scale and
rotation ranges) render as one vmapped, once-compiled program; ``jitter`` and ``octaves`` change
shapes and compile once per shape. The manifest says which (``compiled``). This recipe only reads
the config, calls the table and writes outputs.

Writes into the workdir: ``sweep/<layer>_<cccc>_<regulariser>_<j>.png`` (channel c, j-th value),
``sprite.png`` (one row per channel, one column per value), ``index.html`` (captions give the
regulariser and strength) and ``manifest.json`` (one entry per image:
``{"channel", "regulariser", "strength", "image", "objective"}``).

Strengths of penalties follow the seed's convention: the objective is
``channel + strength * penalty``, so a negative strength penalises (lambda_tv = -0.005).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from jfv.optvis import families, objectives, parameterisations
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes.common import ConfigError, config_model, parse_channels, run_info
from jfv.runtime.progress import Progress
from jfv.recipes.optvis.settings import gallery_header, make_transforms
from jfv.recipes import Recipe

FAMILIES = tuple(families.FAMILIES)  # none, penalties, image steps, transform ranges, jitter, octaves
OPTIMISERS = ("adam", "sgd")
PARAMS = ("pixel", "fft")


def parse_values(spec: str, family: str | families.Family) -> list[Any]:
    """``"-0.01,-0.005"`` -> floats; for ``yosinski`` preset names (or ``"all"``): ``Family.parse``."""
    fam = families.FAMILIES[family]() if isinstance(family, str) else family
    try:
        return fam.parse(spec, "strengths")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def make_param(config, size: int, channels: int = 3) -> parameterisations.ImageParam:
    """The config's parameterisation for a model taking ``channels``-channel images (a grayscale
    model's Fourier images are not colour-decorrelated)."""
    if config.param == "pixel":
        return dataclasses.replace(parameterisations.pixel(size), channels=channels)
    if config.param == "fft":
        return parameterisations.image(size, decorrelate=channels == 3, channels=channels)
    raise ConfigError(f"unknown param {config.param!r}; valid: {', '.join(PARAMS)}")


def make_optimiser(config) -> optax.GradientTransformation:
    if config.optimiser == "adam":
        return optax.adam(config.learning_rate)
    if config.optimiser == "sgd":
        return optax.sgd(config.learning_rate)
    raise ConfigError(f"unknown optimiser {config.optimiser!r}; valid: {', '.join(OPTIMISERS)}")


def _pad_to(images: list[np.ndarray], size: int) -> list[np.ndarray]:
    """Centres smaller images on white so octave runs of different sizes share one sprite."""
    out = []
    for img in images:
        h, w = img.shape[:2]
        canvas = np.ones((size, size, 3), np.float32)
        y, x = (size - h) // 2, (size - w) // 2
        canvas[y : y + h, x : x + w] = img
        out.append(canvas)
    return out


def family_of(config: ml_collections.ConfigDict) -> families.Family:
    try:
        return families.from_config(config.regulariser, config)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check(config: ml_collections.ConfigDict) -> None:
    family = family_of(config)
    if config.image_size < 1 or config.steps < 1:
        raise ConfigError(f"image_size and steps must be >= 1, got {config.image_size} and {config.steps}")
    parse_values(config.strengths, family)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check_workdir(workdir)
    check(config)
    family = family_of(config)
    name = family.name
    values = parse_values(config.strengths, family)
    numeric = family.numeric(values)

    model = config_model(config)
    layer = config.layer
    model.check_layer(layer)
    channels = parse_channels(config.channels)
    model.check_channels(layer, channels)
    base_tf = make_transforms(config.transforms)
    param = make_param(config, config.image_size, model.channels)
    optimiser = make_optimiser(config)
    key = jax.random.key(config.seed)
    objective_fn = lambda c: objectives.channel(layer, c)  # noqa: E731

    # Concrete construction of every cell's pieces first: bad strengths (a negative blur radius, a
    # percentile outside [0, 100], a scale factor below 1, ...) fail here, before any compilation.
    family.check(model, layer, objective_fn, param, base_tf, optimiser, values, channels[0])

    progress = Progress(f"{model.name} {layer} {name}", enabled=config.progress)
    try:
        out = families.render_family(model, family, objective_fn, param, base_tf, optimiser, channels, values, key,
                                     config.steps, batch_size=config.batch_size or None, progress=progress)
    finally:
        progress.close()
    images, final, compiled = out.images, out.objective, family.compiled

    entries, pictures, cards = [], [], []
    with Staging(workdir) as stage:
        for i, c in enumerate(channels):
            for j, v in enumerate(values):
                img = images[i][j][0]
                strength = v if isinstance(v, str) else round(float(v), 8)
                rel = f"sweep/{layer}_{c:04d}_{name}_{j}.png"
                stage.save_png(rel, img)
                pictures.append(img)
                entry = {"channel": int(c), "regulariser": name, "strength": strength, "image": rel,
                         "objective": round(float(final[i, j]), 6)}
                entry.update(family.entry(numeric[j], img))
                entries.append(entry)
                cards.append({"image": rel, "caption": [f"{layer} ch {c}", f"{name} = {strength}",
                                                        f"objective {float(final[i, j]):.3f}"]})
        side = max(p.shape[0] for p in pictures)
        manifest = {
            "recipe": "sweep",
            "model": model.name,
            "model_source": model.source,
            "layer": layer,
            "regulariser": name,
            "values": [v if isinstance(v, str) else float(v) for v in values],
            "compiled": compiled,
            "objective": family.describe(f"channel({layer}, c)", config.optimiser),
            "settings": config.to_dict(),
            "transforms": repr(base_tf),
            "param": repr(param),
            "sprite": "sprite.png",
            "gallery": "index.html",
            "images": entries,
        }
        manifest.update(run_info(start))
        header = gallery_header(model, layer, manifest["objective"], family.steps_label(config.steps),
                                config.image_size, param, base_tf, config.seed, manifest["wall_time_s"],
                                {"regulariser": name, "values": ", ".join(map(str, manifest["values"])),
                                 "optimiser": f"{config.optimiser}({config.learning_rate:g})", "compiled": compiled})
        write_run(stage, manifest, f"{model.name} {layer}: {name} sweep", cards, header,
                  grid=_pad_to(pictures, side), grid_columns=len(values), grid_name="sprite.png")
    return manifest


RECIPE = Recipe(run=run, check=check)
