"""Recipe ``channels``: feature visualisations of many channels of one layer, with a gallery.

Writes into the workdir: ``channels/<layer>_<cccc>.png`` (one per channel; ``_<k>`` appended per
image when a channel has several), ``sprite.png`` (all of them, in order), ``index.html`` (the
gallery) and ``manifest.json`` (model, layer, settings, library versions, wall time, one entry per
channel with its image path relative to the workdir and final objective).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from jfv import labels, models, objectives, parameterisations, transforms
from jfv.outputs import Staging, check_workdir, gallery_html, sprite
from jfv.recipes.common import (
    ConfigError,
    Progress,
    check_int,
    check_memory,
    check_positive,
    check_precision,
    check_seed,
    make_mesh,
    parse_channels,
    run_info,
)
from jfv.render import render_channels

OBJECTIVES = ("channel", "neuron", "class")
TRANSFORMS = ("standard", "none")


def make_transforms(name: str) -> transforms.Transform:
    if name == "standard":
        return transforms.standard()
    if name == "none":
        return transforms.identity()
    raise ConfigError(f"unknown transforms {name!r}; valid: {', '.join(TRANSFORMS)}")


def class_index(model: models.Model, class_name: str) -> int:
    """The index of ``class_name`` in the model's labels (synonyms and case allowed)."""
    if not model.labels:
        raise ConfigError(f"model {model.name!r} has no class labels, so class_name cannot be used")
    return labels.class_index(class_name, model.labels)


def objective_factory(kind: str, layer: str, diversity: float):
    """channel index -> Objective, for the config's objective kind."""
    if kind not in OBJECTIVES:
        raise ConfigError(f"unknown objective {kind!r}; valid: {', '.join(OBJECTIVES)}")

    def make(c):
        if kind == "channel":
            o = objectives.channel(layer, c)
        elif kind == "neuron":
            o = objectives.neuron(layer, c)
        else:
            o = objectives.class_logit(c, layer)
        if diversity:
            o = o + diversity * objectives.diversity(layer)
        return o

    return make


def check_settings(config: ml_collections.ConfigDict) -> None:
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


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check_workdir(workdir)
    check_settings(config)

    model = models.load(config.model, weights_dir=config.weights_dir or None).with_precision(config.precision)
    layer = "logits" if config.objective == "class" else config.layer
    n = model.check_layer(layer)
    if config.class_name:
        channels = [class_index(model, config.class_name)]
    else:
        channels = parse_channels(config.channels, n, f"{model.name} layer {layer!r}")

    mesh = make_mesh(config.devices)
    per_call = min(config.batch_size or len(channels), len(channels)) * config.images_per_channel
    per_device = -(-per_call // (mesh.size if mesh is not None else 1))
    check_memory(model, config.image_size, per_device, "image_size or batch_size")

    tf = make_transforms(config.transforms)
    try:
        transformed = transforms.output_size(tf, config.image_size)
    except ValueError:  # e.g. a jitter larger than the padded image
        transformed = 0
    if transformed < 1:
        raise models.ImageTooSmallError(
            f"image_size {config.image_size} is too small for the {config.transforms} transforms; use image_size >= 32"
        )
    model.check_image_size(layer, transformed)

    param = parameterisations.image(
        config.image_size, config.images_per_channel, fft=config.fft, decorrelate=config.decorrelate,
        channels=model.channels,
    )
    optimiser = optax.adam(config.learning_rate)
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
        )
    finally:
        progress.close()

    entries, pictures, cards = [], [], []
    with Staging(workdir) as stage:
        for c, imgs, value in zip(channels, out.images, out.objective):
            paths = []
            for k, img in enumerate(imgs):
                suffix = f"_{k}" if len(imgs) > 1 else ""
                rel = f"channels/{layer}_{c:04d}{suffix}.png"
                stage.save_png(rel, img)
                paths.append(rel)
                pictures.append(img)
                cards.append({"image": rel, "caption": [f"{layer} ch {c}" + (f" #{k}" if suffix else ""), f"objective {float(value):.3f}"]})
            entry = {"channel": int(c), "image": paths[0], "objective": round(float(value), 6)}
            if len(paths) > 1:
                entry["images"] = paths
            entries.append(entry)
        stage.save_png("sprite.png", sprite(pictures))
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
        header = {
            "model": model.name,
            "layer": layer,
            "objective": manifest["objective"],
            "steps": config.steps,
            "image size": config.image_size,
            "param": repr(param),
            "transforms": repr(tf),
            "seed": config.seed,
            "wall time (s)": manifest["wall_time_s"],
        }
        stage.write_text("index.html", gallery_html(f"{model.name} {layer}", cards, header))
        stage.write_json("manifest.json", manifest)
    return manifest
