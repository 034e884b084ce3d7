"""Recipe ``sweep``: channels x strengths of one regulariser, with a gallery and manifest.

The config names a regulariser family and its strengths (``strengths``); every (channel, strength)
cell is rendered with the channel's key ``fold_in(seed, channel)``, so the images of one channel
differ only by the regulariser. Families whose strength keeps array shapes (penalty weights, image
steps, Yosinski presets, scale and rotation ranges) render as one vmapped, once-compiled
``render_sweep``; ``jitter`` and ``octaves`` change shapes and run one ``render_channels`` /
``render_octaves`` per value (one compilation per shape). The manifest says which (``compiled``).

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
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
import optax

from jfv import models, objectives, octaves, parameterisations, regularisers, transforms
from jfv.outputs import Staging, check_workdir, gallery_html, sprite
from jfv.recipes.common import ConfigError, Progress, check_finite, make_transforms, parse_channels, run_info
from jfv.render import Setup, render_channels, render_sweep

PENALTIES = ("l1", "l2", "tv", "blur_penalty")
IMAGE_STEPS = ("decay", "blur", "clip_norm", "clip_contribution", "yosinski")
TRACED_TRANSFORMS = ("scale", "rotate")
SHAPED = ("jitter", "octaves")  # strengths that change array shapes: one compilation per value
FAMILIES = ("none",) + PENALTIES + IMAGE_STEPS + TRACED_TRANSFORMS + SHAPED
OPTIMISERS = ("adam", "sgd")
PARAMS = ("pixel", "fft")


def parse_values(spec: str, family: str) -> list[Any]:
    """``"-0.01,-0.005"`` -> floats; for ``yosinski`` preset names (or ``"all"``)."""
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if family == "yosinski":
        if items in ([], ["all"]):
            return list(regularisers.YOSINSKI_PRESETS)
        bad = [s for s in items if s not in regularisers.YOSINSKI_PRESETS]
        if bad:
            raise ConfigError(f"unknown Yosinski preset(s) {bad} in strengths; valid: all, "
                              f"{', '.join(regularisers.YOSINSKI_PRESETS)}")
        return items
    if family == "none":
        return [0.0]
    try:
        values = [float(s) for s in items]
    except ValueError:
        values = []
    if not values:
        raise ConfigError(f"cannot read strengths {spec!r} for regulariser {family!r}: use a comma-separated "
                          f"list of numbers, e.g. -0.01,-0.005,-0.001")
    return check_finite(values, "strengths")


def penalty(family: str, config: ml_collections.ConfigDict) -> objectives.Objective:
    r = config.penalty_reduction
    if family == "l1":
        return objectives.l1(config.penalty_constant, r)
    if family == "l2":
        return objectives.l2(config.penalty_constant, r)
    if family == "tv":
        return objectives.total_variation(config.tv_beta, r)
    return objectives.blur_penalty(config.blur_sigma, r)


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


def setup_factory(family: str, config, layer: str, param, base_tf, values: list[Any]) -> Callable:
    """``make(channel, value) -> Setup`` for the families that render as one vmapped sweep."""
    base_opt = make_optimiser(config)
    if family in IMAGE_STEPS:
        regularisers.check_pixel_param(param)
    radius = 0
    if family == "blur":
        radius = regularisers.gaussian_radius(max(max(values), 0.0))
    if family == "yosinski":
        radius = regularisers.gaussian_radius(max(regularisers.YOSINSKI_PRESETS[v].blur_sigma for v in values))
    pen = penalty(family, config) if family in PENALTIES else None

    def make(c, v):
        goal = objectives.channel(layer, c)
        if family == "none":
            return Setup(goal, base_opt)
        if family in PENALTIES:
            return Setup(goal + v * pen, base_opt)
        if family == "scale":
            return Setup(goal, base_opt, transforms.compose(base_tf, transforms.scale(v)))
        if family == "rotate":
            return Setup(goal, base_opt, transforms.compose(base_tf, transforms.rotate(v)))
        if family == "decay":
            steps = (regularisers.decay(v),)
        elif family == "blur":
            steps = (regularisers.blur(v, config.blur_every, radius=radius),)
        elif family == "clip_norm":
            steps = (regularisers.clip_norm(v),)
        elif family == "clip_contribution":
            steps = (regularisers.clip_contribution(v),)
        else:  # yosinski: v is a row of Table 1
            steps = regularisers.yosinski_steps(v, radius=radius)
        return Setup(goal, regularisers.chain_image_steps(param, base_opt, *steps))

    return make


def _numeric(family: str, values: list[Any]) -> np.ndarray:
    if family == "yosinski":
        return np.stack([regularisers.YOSINSKI_PRESETS[v].as_array() for v in values])
    return np.asarray(values, np.float32)


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


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check_workdir(workdir)
    family = config.regulariser
    if family not in FAMILIES:
        raise ConfigError(f"unknown regulariser {family!r}; valid: {', '.join(FAMILIES)}")
    if config.image_size < 1 or config.steps < 1:
        raise ConfigError(f"image_size and steps must be >= 1, got {config.image_size} and {config.steps}")
    values = parse_values(config.strengths, family)
    numeric = _numeric(family, values)

    model = models.load(config.model, weights_dir=config.weights_dir or None)
    layer = config.layer
    model.check_layer(layer)
    channels = parse_channels(config.channels)
    model.check_channels(layer, channels)
    base_tf = make_transforms(config.transforms)
    param = make_param(config, config.image_size, model.channels)
    key = jax.random.key(config.seed)
    objective_fn = lambda c: objectives.channel(layer, c)  # noqa: E731

    # Concrete construction of every cell's pieces first: bad strengths (a negative blur radius, a
    # percentile outside [0, 100], a scale factor below 1, ...) fail here, before any compilation.
    if family == "jitter":
        tfs = [transforms.compose(base_tf, transforms.Jitter(int(v))) for v in values]
        if any(int(v) != v for v in values):
            raise ConfigError(f"jitter values are whole pixels, got {values}")
        sizes = [transforms.output_size(t, config.image_size) for t in tfs]
        for s in sizes:
            model.check_image_size(layer, s)
    elif family == "octaves":
        schedules = [octaves.Octaves(config.octaves, v, config.steps) for v in values]
        octaves.check_octave_param(param)
        model.check_image_size(layer, transforms.output_size(base_tf, config.image_size))
    else:
        make = setup_factory(family, config, layer, param, base_tf, values)
        for v in numeric:
            make(np.int32(channels[0]), v)
        model.check_image_size(layer, transforms.output_size(base_tf, config.image_size))

    total_steps = config.steps * (config.octaves if family == "octaves" else 1)
    progress = Progress(f"{model.name} {layer} {family}", enabled=config.progress)

    def stage_progress(offset):
        return lambda d, t: progress(offset + d, len(channels) * len(values) * total_steps)

    try:
        if family in SHAPED:
            optimiser = make_optimiser(config)
            octave_engines: dict = {}  # image size -> Engine: stage sizes shared by values compile once
            per_value = []
            for j, v in enumerate(values):
                hook = stage_progress(j * len(channels) * total_steps)
                if family == "jitter":
                    out = render_channels(model, objective_fn, param, tfs[j], optimiser, channels, key,
                                          config.steps, batch_size=config.batch_size or None, progress=hook)
                else:
                    out, _ = octaves.render_octaves(model, objective_fn, param, base_tf, optimiser,
                                                    channels, key, schedules[j], engines=octave_engines,
                                                    batch_size=config.batch_size or None, progress=hook)
                per_value.append(out)
            images = [[per_value[j].images[i] for j in range(len(values))] for i in range(len(channels))]
            final = np.stack([o.objective for o in per_value], axis=1)
            compiled = ("once per image size (octave stages shared by values compile once)" if family == "octaves"
                        else "once per value (the strength changes array shapes)")
        else:
            out = render_sweep(model, make, param, base_tf, channels, numeric, key, config.steps,
                               batch_size=config.batch_size or None, progress=stage_progress(0))
            images = [[out.images[i, j] for j in range(len(values))] for i in range(len(channels))]
            final = out.objective
            compiled = "once for all channels and values (one vmapped program)"
    finally:
        progress.close()

    entries, pictures, cards = [], [], []
    with Staging(workdir) as stage:
        for i, c in enumerate(channels):
            for j, v in enumerate(values):
                img = np.asarray(images[i][j])[0]
                strength = v if isinstance(v, str) else round(float(v), 8)
                rel = f"sweep/{layer}_{c:04d}_{family}_{j}.png"
                stage.save_png(rel, img)
                pictures.append(img)
                entry = {"channel": int(c), "regulariser": family, "strength": strength, "image": rel,
                         "objective": round(float(final[i, j]), 6)}
                if family == "yosinski":
                    entry["settings"] = dict(zip(
                        ("decay", "blur_sigma", "blur_every", "norm_percentile", "contribution_percentile"),
                        (round(float(x), 6) for x in numeric[j])))
                if family == "octaves":
                    entry["size"] = int(img.shape[0])
                entries.append(entry)
                cards.append({"image": rel, "caption": [f"{layer} ch {c}", f"{family} = {strength}",
                                                        f"objective {float(final[i, j]):.3f}"]})
        side = max(p.shape[0] for p in pictures)
        stage.save_png("sprite.png", sprite(_pad_to(pictures, side), columns=len(values)))
        manifest = {
            "recipe": "sweep",
            "model": model.name,
            "model_source": model.source,
            "layer": layer,
            "regulariser": family,
            "values": [v if isinstance(v, str) else float(v) for v in values],
            "compiled": compiled,
            "objective": describe(family, config, layer, values, numeric, param, base_tf),
            "settings": config.to_dict(),
            "transforms": repr(base_tf),
            "param": repr(param),
            "sprite": "sprite.png",
            "gallery": "index.html",
            "images": entries,
        }
        manifest.update(run_info(start))
        header = {
            "model": model.name,
            "layer": layer,
            "regulariser": family,
            "values": ", ".join(map(str, manifest["values"])),
            "objective": manifest["objective"],
            "steps": config.steps if family != "octaves" else f"{config.steps} x {config.octaves} octaves",
            "image size": config.image_size,
            "param": repr(param),
            "optimiser": f"{config.optimiser}({config.learning_rate:g})",
            "transforms": repr(base_tf),
            "compiled": compiled,
            "seed": config.seed,
            "wall time (s)": manifest["wall_time_s"],
        }
        stage.write_text("index.html", gallery_html(f"{model.name} {layer}: {family} sweep", cards, header))
        stage.write_json("manifest.json", manifest)
    return manifest


def describe(family, config, layer, values, numeric, param, base_tf) -> str:
    """The objective and regulariser of a cell, ``v`` standing for the strength."""
    goal = f"channel({layer}, c)"
    if family in PENALTIES:
        return f"{goal} + v * {penalty(family, config).description}"
    if family in ("scale", "rotate"):
        return f"{goal} under {family}(v)"
    if family == "jitter":
        return f"{goal} under Jitter(v)"
    if family == "octaves":
        return f"{goal} over Octaves(octaves={config.octaves}, scale=v, steps={config.steps})"
    if family == "none":
        return goal
    return f"{goal}; image steps {family}(v) after {config.optimiser}"
