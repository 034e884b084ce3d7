"""Recipe ``interpolate``: strips of frames that morph from one channel's visualisation into another's.

For each pair ``a-b`` of ``pairs``, renders ``frames`` images whose objective weights channel a by
1 - t_i and channel b by t_i (``objectives.channel_interpolate``), minus ``alignment`` times the
alignment penalty at ``alignment_layers`` (neighbouring frames' activations pulled together), with
low-resolution components shared across the strip (``shared``; ``jfv.optvis.interpolation``). Pairs are
vmapped: one compiled program for every pair (``batch_size`` pairs per call).

Writes into the workdir: ``strips/<layer>_<aaaa>_<bbbb>.png`` (the frames side by side, frame 0 =
channel a), ``sprite.png`` (every strip, one per row), ``index.html`` and ``manifest.json``
(settings, and per pair the final objective and, per frame, the mean activation of channel a and of
channel b on the final frames: a falls and b rises along a good strip).
"""

from __future__ import annotations

import html
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv.optvis import interpolation, transforms
from jfv import models
from jfv.runtime.outputs import GALLERY_CSS, Staging, check_workdir, header_table, write_run
from jfv.recipes.optvis.settings import make_optimiser, resolve_preset
from jfv.recipes.common import (
    config_model, ConfigError, check_finite, check_int, check_memory, check_positive, check_precision, check_seed,
    run_info, shorten,
)
from jfv.runtime.progress import Progress
from jfv.recipes import Recipe

TRANSFORMS = ("standard", "none")  # applied to the whole strip with one key per step
STRIP_GAP = 2  # white pixels between frames in a strip


def parse_pairs(spec: str, count: int, where: str) -> list[tuple[int, int]]:
    """``"48-62,73-91"`` -> [(48, 62), (73, 91)]: distinct pairs of channels below ``count``."""
    pairs = []
    for part in (p.strip() for p in str(spec).split(",") if p.strip()):
        try:
            a, b = (int(x) for x in part.split("-"))
        except ValueError:
            raise ConfigError(f"cannot read pairs {spec!r} at {part!r}: use comma-separated a-b pairs of channels, "
                              f"e.g. 48-62,73-91") from None
        pairs.append((a, b))
    if not pairs:
        raise ConfigError("pairs is empty: give one or more a-b pairs of channels, e.g. --config.pairs=48-62,73-91")
    bad = sorted({c for p in pairs for c in p if not 0 <= c < count})
    if bad:
        raise models.ChannelOutOfRangeError(f"channel(s) {shorten(bad)} of pairs are out of range for {where}, which "
                                            f"has {count} channels: use 0..{count - 1}")
    repeated = sorted({f"{a}-{b}" for a, b in pairs if pairs.count((a, b)) > 1})
    if repeated:
        raise ConfigError(f"pair(s) {', '.join(repeated)} listed more than once: name each pair once")
    return pairs


def parse_alignment_layers(spec: str, model: models.Model) -> tuple[str, ...]:
    layers = tuple(s.strip() for s in str(spec).split(",") if s.strip())
    for name in layers:
        model.check_layer(name)
    return layers


def check(config: ml_collections.ConfigDict) -> None:
    check_int(config.image_size, "image_size", 1)
    check_int(config.steps, "steps", 1)
    check_int(config.frames, "frames", 2, meaning="images per strip")
    check_int(config.batch_size, "batch_size", 0, meaning="pairs per compiled call; 0 = all at once")
    check_positive(config.learning_rate, "learning_rate", 0.05)
    check_positive(config.decay_ratio, "decay_ratio", 2.0)
    check_finite([config.alignment], "alignment")
    if config.alignment < 0:
        raise ConfigError(f"alignment is a penalty weight and must be >= 0 (0: none; Lucid's notebook 0.1), "
                          f"got {config.alignment}")
    check_seed(config.seed)
    check_precision(config.precision)
    if config.transforms not in TRANSFORMS:
        raise ConfigError(f"unknown transforms {config.transforms!r} for interpolate; valid: {', '.join(TRANSFORMS)}")


def strip_picture(frames: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) frames -> one (H, n W + (n - 1) gap, 3) picture, white between frames."""
    n, h, _, c = frames.shape
    gap = np.ones((h, STRIP_GAP, c), np.float32)
    parts = []
    for i, f in enumerate(frames):
        parts += ([gap] if i else []) + [np.asarray(f, np.float32)]
    return np.concatenate(parts, axis=1)


def channel_means(model: models.Model, layer: str, frames: np.ndarray, a: int, b: int) -> tuple[list, list]:
    """Per frame, the mean over positions of channels a and b of ``layer`` on the frames."""
    acts = np.asarray(model.apply(model.params, jnp.asarray(frames))[layer], np.float32)
    flat = acts.reshape(acts.shape[0], -1, acts.shape[-1])
    return [round(float(v), 6) for v in flat[:, :, a].mean(1)], [round(float(v), 6) for v in flat[:, :, b].mean(1)]


def page(title: str, cards: list[dict], header: dict) -> str:
    rows = "".join(
        f'<figure class="strip"><a href="{html.escape(c["image"])}"><img src="{html.escape(c["image"])}" '
        f'alt="{html.escape(c["caption"])}"></a><figcaption>{html.escape(c["caption"])}</figcaption></figure>'
        for c in cards)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{GALLERY_CSS}
figure.strip {{ width: auto; margin-bottom: 1em; }}
figure.strip img {{ width: auto; height: 128px; }}</style></head>
<body><h1>{html.escape(title)}</h1>{header_table(header)}{rows}</body></html>
"""


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    config = resolve_preset(config)
    check_workdir(workdir)
    check(config)
    model = config_model(config).with_precision(config.precision)
    if model.channels != 3:
        raise ConfigError(f"interpolate renders RGB strips (decorrelated colour), but {model.name} takes "
                          f"{model.channels} channel(s): use a 3-channel model")
    layer = config.layer
    n = model.check_layer(layer)
    pairs = parse_pairs(config.pairs, n, f"{model.name} layer {layer!r}")
    align = parse_alignment_layers(config.alignment_layers, model)
    if config.alignment and not align:
        raise ConfigError("alignment > 0 needs alignment_layers (e.g. conv3_3,conv4_3), or set alignment=0")

    tf = transforms.standard() if config.transforms == "standard" else transforms.identity()
    try:
        transformed = transforms.output_size(tf, config.image_size)
    except ValueError:
        transformed = 0
    if transformed < 1:
        raise models.ImageTooSmallError(f"image_size {config.image_size} is too small for the {config.transforms} "
                                        f"transforms; use image_size >= 32")
    for name in (layer,) + align:
        model.check_image_size(name, transformed)
    per_call = min(config.batch_size or len(pairs), len(pairs)) * config.frames
    check_memory(model, config.image_size, per_call, "image_size, frames or batch_size")

    param = interpolation.param(config.image_size, config.frames, shared=config.shared)
    progress = Progress(f"{model.name} {layer} strips", enabled=config.progress)
    try:
        out = interpolation.render_interpolations(
            model, layer, pairs, param, tf, make_optimiser(config), jax.random.key(config.seed),
            config.steps, alignment_layers=align, alignment_weight=float(config.alignment),
            decay_ratio=float(config.decay_ratio), batch_size=config.batch_size or None, progress=progress)
    finally:
        progress.close()

    entries, strips, cards = [], [], []
    with Staging(workdir) as stage:
        for (a, b), frames, value in zip(pairs, out.images, out.objective):
            rel = f"strips/{layer}_{a:04d}_{b:04d}.png"
            picture = strip_picture(frames)
            stage.save_png(rel, picture)
            strips.append(picture)
            act_a, act_b = channel_means(model, layer, frames, a, b)
            entries.append({"pair": [int(a), int(b)], "image": rel, "objective": round(float(value), 6),
                            "activation_a": act_a, "activation_b": act_b})
            cards.append({"image": rel, "caption": f"{layer} {a} -> {b}: objective {float(value):.3f}"})
        objective = interpolation.strip_objective(layer, np.int32(0), np.int32(0), align, float(config.alignment),
                                                  float(config.decay_ratio)).description  # a, b: the pair
        manifest = {
            "recipe": "interpolate",
            "model": model.name,
            "model_source": model.source,
            "layer": layer,
            "objective": objective,
            "settings": config.to_dict(),
            "param": repr(param),
            "transforms": repr(tf),
            "sprite": "sprite.png",
            "gallery": "index.html",
            "pairs": entries,
        }
        manifest.update(run_info(start))
        header = {"model": model.name, "layer": layer, "objective": objective, "frames": config.frames,
                  "steps": config.steps, "image size": config.image_size, "param": repr(param),
                  "transforms": repr(tf), "seed": config.seed, "wall time (s)": manifest["wall_time_s"]}
        write_run(stage, manifest, f"{model.name} {layer}: channel interpolation",  # one strip a row, STRIP_GAP apart
                  page=page(f"{model.name} {layer}: channel interpolation", cards, header),
                  grid=strips, grid_columns=1, grid_pad=STRIP_GAP, grid_name="sprite.png")
    return manifest


RECIPE = Recipe(run=run, check=check)
