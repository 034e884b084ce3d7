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
from jfv.attribution.attribute import METHODS, faithfulness, method_maps, write_attribution
from jfv.runtime.outputs import Staging, check_workdir, load_image
from jfv.recipes import Recipe
from jfv.recipes.common import config_model, ConfigError, check_int, check_memory, check_seed, run_info
from jfv.recipes.photos import image_paths
from jfv.runtime.outputs import output_names

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

    maps, shown, _ = method_maps(
        model, images, target, methods, key, smoothgrad_samples=config.smoothgrad_samples,
        smoothgrad_noise=config.smoothgrad_noise, grad_cam_layer=config.grad_cam_layer, cam_layer=config.cam_layer,
        occlusion_window=config.occlusion_window, occlusion_stride=config.occlusion_stride,
        occlusion_fill=config.occlusion_fill, batch_size=config.batch_size, overlay_alpha=config.overlay_alpha,
        projection_gain=config.projection_gain)
    scores = faithfulness(model, images, target, maps, config.faithfulness_steps, config.faithfulness_baseline,
                          config.batch_size) if config.faithfulness_steps > 0 else {}
    manifest = {"recipe": "attribute", "model": model.name, "model_source": model.source,
                "target": target.description, "methods": methods, "settings": config.to_dict()}
    with Staging(workdir) as stage:
        write_attribution(stage, manifest, photos=paths, names=output_names(paths), images=images, shown=shown,
                          scores=scores, info=run_info(start), image_size=config.image_size,
                          faithfulness_steps=config.faithfulness_steps,
                          faithfulness_baseline=config.faithfulness_baseline)
    return manifest


RECIPE = Recipe(run=run, check=check)
