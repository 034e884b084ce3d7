"""Recipe ``channels``: feature visualisations of many channels of one layer, with a gallery.

Writes into the workdir: ``channels/<layer>_<cccc>.png`` (one per channel; ``_<k>`` appended per
image when a channel has several), ``sprite.png`` (all of them, in order), ``index.html`` (the
gallery) and ``manifest.json`` (model, layer, settings, library versions, wall time, one entry per
channel with its image path relative to the workdir and final objective).

``param=maco`` (``docs/maco.md``) renders with MACO's phase-only parameterisation and also writes
``channels/<layer>_<cccc>_alpha.png``: the image with its transparency map (the accumulated
``|d objective / d image|``) as alpha, listed in the manifest entry under ``alpha``.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jfv.models import labels
from jfv import models
from jfv.optvis import transforms
from jfv.runtime.outputs import Staging, check_workdir, transparency_overlay, write_run
from jfv.recipes.common import (
    ConfigError, config_model, check_int, check_memory, check_positive, check_precision, check_seed, make_mesh,
    parse_channels, run_info,
)
from jfv.runtime.progress import Progress
from jfv.recipes.optvis.settings import (
    OBJECTIVES, PARAMS, gallery_header, make_optimiser, make_param, make_transforms, objective_factory, resolve_preset,
)
from jfv.optvis.render import render_channels
from jfv.recipes import Recipe


def class_index(model: models.Model, class_name: str) -> int:
    """The index of ``class_name`` in the model's labels (synonyms and case allowed)."""
    if not model.labels:
        raise ConfigError(f"model {model.name!r} has no class labels, so class_name cannot be used")
    return labels.class_index(class_name, model.labels)


def check(config: ml_collections.ConfigDict) -> None:
    """Refuses, naming the valid range, the values that would otherwise render something else."""
    check_int(config.image_size, "image_size", 1)
    check_int(config.steps, "steps", 1)
    check_int(config.images_per_channel, "images_per_channel", 1, meaning="images rendered per channel")
    check_int(config.batch_size, "batch_size", 0, meaning="channels per compiled call; 0 = all at once")
    check_int(config.devices, "devices", -1, meaning="-1 all, 0 none, n the first n")
    check_positive(config.learning_rate, "learning_rate", 0.05)
    check_seed(config.seed)
    check_precision(config.precision)
    if config.objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {config.objective!r}; valid: {', '.join(OBJECTIVES)}")
    if config.param not in PARAMS:
        raise ConfigError(f"unknown param {config.param!r}; valid: {', '.join(PARAMS)}")
    if config.transforms == "maco":
        check_int(config.maco_crops, "maco_crops", 1, meaning="random crops per step")
    if config.diversity and config.transforms == "maco":
        raise ConfigError("diversity compares the batch's images, which MACO's crops mix: use transforms=standard "
                          "with diversity, or diversity=0 with transforms=maco")
    if config.diversity and config.images_per_channel < 2:
        raise ConfigError("diversity needs images_per_channel >= 2")
    if config.class_name and config.objective != "class":
        raise ConfigError(
            f"class_name={config.class_name!r} needs objective=class (it is {config.objective}): add "
            f"--config.objective=class, or drop class_name to render channels"
        )
    if config.objective == "class" and config.layer not in ("", "logits"):
        raise ConfigError(
            f"objective=class maximises a class logit, on layer 'logits', not {config.layer!r}: set "
            f"--config.layer=logits, or objective=channel to render {config.layer}'s channels"
        )


def checked_transforms(config: ml_collections.ConfigDict, model: models.Model, layer: str) -> transforms.Transform:
    """The config's transforms, refused when what they output is too small for ``layer``."""
    tf = make_transforms(config.transforms, config)
    try:
        transformed = transforms.output_size(tf, config.image_size)
    except ValueError:  # e.g. a jitter larger than the padded image
        transformed = 0
    if transformed < 1:
        raise models.ImageTooSmallError(
            f"image_size {config.image_size} is too small for the {config.transforms} transforms; use image_size >= 32"
        )
    model.check_image_size(layer, transformed)
    return tf


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    config = resolve_preset(config)
    check_workdir(workdir)
    check(config)
    param = make_param(config, 3, config.images_per_channel)  # before loading the model: a bad magnitude file fails at once

    model = config_model(config).with_precision(config.precision)
    layer = "logits" if config.objective == "class" else config.layer
    n = model.check_layer(layer)
    if config.class_name:
        channels = [class_index(model, config.class_name)]
    else:
        channels = parse_channels(config.channels, n, f"{model.name} layer {layer!r}")

    mesh = make_mesh(config.devices)
    per_call = min(config.batch_size or len(channels), len(channels)) * config.images_per_channel
    per_call *= config.maco_crops if config.transforms == "maco" else 1
    per_device = -(-per_call // (mesh.size if mesh is not None else 1))
    check_memory(model, config.image_size, per_device, "image_size or batch_size")

    tf = checked_transforms(config, model, layer)

    if model.channels != 3:
        param = make_param(config, model.channels, config.images_per_channel)
    optimiser = make_optimiser(config)
    transparency = config.param == "maco"
    objective_fn = objective_factory(config.objective, layer, config.diversity)

    progress = Progress(f"{model.name} {layer}", enabled=config.progress)
    try:
        out = render_channels(
            model,
            objective_fn,
            param,
            tf,
            optimiser,
            channels,
            jax.random.key(config.seed),
            config.steps,
            batch_size=config.batch_size or None,
            mesh=mesh,
            progress=progress,
            transparency=transparency,
        )
    finally:
        progress.close()

    entries, pictures, cards = [], [], []
    with Staging(workdir) as stage:
        alphas = out.transparency if transparency else [None] * len(channels)
        for c, imgs, value, alpha in zip(channels, out.images, out.objective, alphas):
            paths, alpha_paths = [], []
            for k, img in enumerate(imgs):
                suffix = f"_{k}" if len(imgs) > 1 else ""
                rel = f"channels/{layer}_{c:04d}{suffix}.png"
                stage.save_png(rel, img)
                paths.append(rel)
                if alpha is not None:
                    alpha_rel = f"channels/{layer}_{c:04d}{suffix}_alpha.png"
                    stage.save_png(alpha_rel, transparency_overlay(img, alpha[k]))
                    alpha_paths.append(alpha_rel)
                pictures.append(img)
                cards.append({"image": rel, "caption": [f"{layer} ch {c}" + (f" #{k}" if suffix else ""), f"objective {float(value):.3f}"]})
                if alpha is not None:
                    cards.append({"image": alpha_paths[-1], "caption": [f"{layer} ch {c}" + (f" #{k}" if suffix else ""),
                                                                         "transparency (alpha)"]})
            entry = {"channel": int(c), "image": paths[0], "objective": round(float(value), 6)}
            if len(paths) > 1:
                entry["images"] = paths
            if alpha_paths:
                entry["alpha"] = alpha_paths[0]
                if len(alpha_paths) > 1:
                    entry["alphas"] = alpha_paths
            entries.append(entry)
        settings = config.to_dict()
        manifest = {
            "recipe": "channels",
            "model": model.name,
            "model_source": model.source,
            "layer": layer,
            "objective": objective_fn(np.int32(channels[0])).description,  # "c" stands for the channel
            "settings": settings,
            "transforms": repr(tf),
            "param": repr(param),
            "sprite": "sprite.png",
            "gallery": "index.html",
            "channels": entries,
        }
        manifest.update(run_info(start))
        header = gallery_header(model, layer, manifest["objective"], config.steps, config.image_size, param, tf,
                                config.seed, manifest["wall_time_s"])
        write_run(stage, manifest, f"{model.name} {layer}", cards, header, grid=pictures, grid_name="sprite.png")
    return manifest


RECIPE = Recipe(run=run, check=check)
