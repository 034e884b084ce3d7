"""Recipe ``activations``: every channel of a layer for one image, and its most activated channels.

The DeepVis view (Yosinski et al. 2015) and seed 003's "most activated filters of a layer". Writes into
the workdir: ``input.png`` (the image as the network sees it: shorter side resized to
``image_size``, centre-cropped, and for a grayscale model its ITU-R BT.601 luma, a grayscale PNG:
``Model.from_rgb``), ``grid.png`` (every channel's map as a grey tile, channel order
row-major, scaled by ``normalise``), ``top.png`` (the input and the ``top`` channels with the largest
``reduce`` over positions, each map over the image), ``index.html`` and ``manifest.json`` (layer
shape, the top channels with their values, the grid's layout).
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv.analysis import activations, datasets, figures
from jfv.models.base import ImageTooSmallError
from jfv.runtime.outputs import Staging, check_workdir, load_image, write_run
from jfv.recipes.common import ConfigError, config_model, run_info
from jfv.recipes.photos import default_image
from jfv.recipes import Recipe


def check(config: ml_collections.ConfigDict) -> None:
    if config.normalise not in activations.NORMALISATIONS:
        raise ConfigError(f"normalise must be one of {', '.join(activations.NORMALISATIONS)}, got {config.normalise!r}")
    if config.reduce not in activations.REDUCTIONS:
        raise ConfigError(f"reduce must be one of {', '.join(activations.REDUCTIONS)}, got {config.reduce!r}")
    if int(config.top) < 1:
        raise ConfigError(f"top must be >= 1 (how many most activated channels to show), got {config.top}")
    if int(config.image_size) < 1 or int(config.scale) < 1 or int(config.columns) < 0:
        raise ConfigError("image_size and scale must be >= 1 and columns >= 0 (0 = automatic)")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    check_workdir(workdir)
    path = config.image or default_image()
    try:
        image = load_image(path, int(config.image_size))
    except FileNotFoundError:
        raise ConfigError(f"image {path!r} not found: pass --config.image=PATH to an image file") from None
    except OSError as e:
        raise ConfigError(f"cannot read image {path!r} ({e}): pass --config.image=PATH to a JPEG/PNG file") from None
    model = config_model(config)
    channels_n = model.check_layer(config.layer)
    shape = model.output_shapes(int(config.image_size))[config.layer]
    if len(shape) != 4:
        raise ConfigError(f"layer {config.layer!r} has no spatial map (shape {shape}): pick a convolution or pool layer")
    if shape[1] < 1 or shape[2] < 1:
        raise ImageTooSmallError(f"layer {config.layer!r} has no positions at image_size {config.image_size}: use a larger image_size")
    if int(config.top) > channels_n:
        raise ConfigError(f"top must be <= {channels_n} ({config.layer}'s channels), got {config.top}")
    seen = model.from_rgb(image)  # the model's input: the photo, or its BT.601 luma for a grayscale model
    maps = np.asarray(model(jnp.asarray(seen[None]))[config.layer][0])
    image = datasets.displayable(seen)  # what input.png shows: what the model saw
    if image.shape[-1] == 1:  # the figure draws colour heat maps over it: grey as RGB
        image = np.repeat(image, 3, axis=-1)
    columns = int(config.columns) or math.ceil(math.sqrt(channels_n))
    grid = activations.activation_grid(maps, config.normalise, columns=columns, scale=int(config.scale))
    top, values = activations.top_channels(maps, int(config.top), config.reduce)
    picture = figures.top_maps(image, maps, top, values, config.layer)
    with Staging(workdir) as stage:
        stage.save_png("input.png", datasets.displayable(seen))
        stage.save_png("grid.png", grid)
        stage.save_png("top.png", picture)
        manifest = {
            "recipe": "activations",
            "model": model.name,
            "model_source": model.source,
            "image": str(path),
            "layer": config.layer,
            "map_shape": list(maps.shape),
            "grid": "grid.png",
            "grid_layout": {"columns": columns, "rows": math.ceil(channels_n / columns), "tile_px": [shape[1] * config.scale, shape[2] * config.scale],
                            "order": "channel order, row-major", "normalise": config.normalise},
            "top": "top.png",
            "top_channels": [{"channel": int(c), config.reduce: float(v)} for c, v in zip(top, values)],
            "settings": config.to_dict(),
            "gallery": "index.html",
        }
        manifest.update(run_info(start))
        cards = [{"image": "input.png", "caption": ["input", f"{config.image_size} px"]},
                 {"image": "grid.png", "caption": [f"{config.layer}: {channels_n} maps", f"{shape[1]}x{shape[2]}, {config.normalise}"]},
                 {"image": "top.png", "caption": [f"top {config.top} by {config.reduce}",
                                                  ", ".join(str(int(c)) for c in top[:6])]}]
        header = {"model": model.name, "layer": f"{config.layer} {shape[1]}x{shape[2]}x{channels_n}", "image": str(path)}
        write_run(stage, manifest, f"{model.name} {config.layer} activations", cards, header)
    return manifest


RECIPE = Recipe(run=run, check=check)
