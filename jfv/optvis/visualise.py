"""One call from a model and a string to a picture: ``visualise(model, "conv4_3:48")``.

A thin caller of ``render_channels`` with Lucid's defaults (Olah et al. 2017; Lucid's
``render_vis``, Lucent's ``render.render_vis(model, "mixed4a:476")``): a 128 px Fourier image in
decorrelated colour, the standard transforms, Adam at 0.05, 512 steps, the channel's mean
activation (a class's logit on ``logits``). Every piece is the public API's; build them yourself
(``docs/python.md``, "From Python or a notebook") for anything else.

The spec names a layer and what of it to render:

- ``"conv4_3:48"``: one channel;
- ``"conv4_3:0:8"``: a half-open range of channels; ``"conv4_3:48,62,73"``: a list;
- ``"conv4_3"``: every channel of the layer;
- ``"logits:cat"`` / ``"logits:281"``: a class, by label name (models with labels) or index.

The result (``Visualisation``) shows itself in Jupyter as a labelled grid (``_repr_png_``) and
``save(dir)`` writes what the command line's ``channels`` recipe writes: ``channels/<layer>_<cccc>.png``,
``sprite.png``, ``index.html`` and ``manifest.json``.

Example:
    >>> import jfv
    >>> v = jfv.visualise("vgg16", "conv4_3:48", steps=64)
    >>> v                      # in a notebook: the picture
    >>> v.save("/tmp/conv4_3_48")
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from typing import Any, Sequence

import jax
import numpy as np
import optax

from jfv import models
from jfv.models import labels as labels_lib
from jfv.models.base import ChannelOutOfRangeError, ImageTooSmallError, Model
from jfv.optvis import objectives, parameterisations, presets, transforms
from jfv.optvis.render import render_channels
from jfv.runtime.progress import Progress
from jfv.runtime.results import OneCallResult, first_few

# Lucid's defaults (``lucid.optvis.render.render_vis`` with ``param.image(128)`` and
# ``transforms.standard_transforms``), the values of the channels recipe's config keys.
STEPS = 512
IMAGE_SIZE = 128
LEARNING_RATE = 0.05
BATCH_SIZE = 8  # channels per compiled call (memory); 0 = all at once
PARAMS = ("lucid", "maco")  # lucid: Fourier + decorrelated colour; maco: phase only (docs/maco.md)
CLASS_LAYER = "logits"  # the layer a class name or index is looked up on (the channels recipe's objective=class)


SPEC_FORMS = ("LAYER:C (one channel), LAYER:A:B (channels A..B-1), LAYER:C1,C2,... (a list), LAYER (the "
              "whole layer) or logits:CLASS (a class by name or index)")
_RANGE = re.compile(r"^(\d+)\s*:\s*(\d+)$")
_LIST = re.compile(r"^\d+(\s*,\s*\d+)*$")


class SpecError(ValueError):
    """A ``visualise`` spec that cannot be read; the message gives the forms it takes."""


# -- the spec -------------------------------------------------------------------------------------


def parse_spec(model: Model, spec: str) -> tuple[str, list[int]]:
    """``"conv4_3:48"`` -> ``("conv4_3", [48])``; the forms in the module docstring.

    Raises:
        SpecError: not a string, no layer, an unreadable or empty channel part, a channel named
            twice, or a class name on a layer other than ``logits`` or on a model without labels.
        UnknownLayerError: the layer is not the model's (the message lists its layers).
        ChannelOutOfRangeError: a channel at or above the layer's count (the message names the range).
        UnknownClassError: no class has that name (the message lists close matches).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"cannot read spec {spec!r}: give a string, {SPEC_FORMS}, e.g. 'conv4_3:48'")
    layer, colon, rest = (s.strip() for s in spec.strip().partition(":"))
    if not layer:
        raise SpecError(f"spec {spec!r} names no layer: use {SPEC_FORMS}")
    count = model.check_layer(layer)  # UnknownLayerError listing the valid layers
    if not colon:
        return layer, list(range(count))
    if layer == CLASS_LAYER and model.labels and rest.isdigit():
        return layer, [labels_lib.class_index(rest, model.labels)]  # UnknownClassError naming the range
    if m := _RANGE.match(rest):
        a, b = int(m.group(1)), int(m.group(2))
        if b <= a:
            raise SpecError(f"spec {spec!r}: the range {a}:{b} is empty; use {layer}:A:B with B > A, e.g. {layer}:0:8")
        if b > count:
            raise ChannelOutOfRangeError(
                f"channels {a}:{b} out of range for {model.name} layer {layer!r}, which has {count} channels: "
                f"use 0..{count - 1} (a range A:B with B <= {count})")
        return layer, list(range(a, b))
    if _LIST.match(rest):
        channels = [int(c) for c in rest.split(",")]
        model.check_channels(layer, channels)  # ChannelOutOfRangeError naming the range
        repeated = sorted({c for c in channels if channels.count(c) > 1})
        if repeated:
            raise SpecError(f"spec {spec!r} names channel(s) {', '.join(map(str, repeated))} more than once: name each once")
        return layer, channels
    if layer == CLASS_LAYER and rest and ":" not in rest and any(ch.isalpha() for ch in rest):
        if not model.labels:
            raise SpecError(
                f"model {model.name!r} has no class labels, so the class {rest!r} cannot be looked up: give the "
                f"class by index, e.g. '{CLASS_LAYER}:0' (0..{count - 1})")
        return layer, [labels_lib.class_index(rest, model.labels)]  # UnknownClassError: close matches
    raise SpecError(f"cannot read {rest!r} in spec {spec!r}: use {SPEC_FORMS}, e.g. '{layer}:0', '{layer}:0:8'"
                    + (f" or '{CLASS_LAYER}:cat'" if layer == CLASS_LAYER else ""))


def resolve_model(model: Any) -> Model:
    """A jfv Model as given, or the registered model of that name (``jfv.models.resolve``)."""
    return models.resolve(model, "visualise", "'LAYER:CHANNEL'")


def check_options(steps: int, image_size: int, seed: int, batch_size: int, learning_rate: float, param: str) -> None:
    """Refuses, naming the argument and its valid values, options that would otherwise fail deep inside."""
    for name, value, low in (("steps", steps, 1), ("image_size", image_size, 1), ("batch_size", batch_size, 0),
                             ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name}={value!r}: give an integer >= {low}" + (" (0 = all channels at once)"
                                                                                if name == "batch_size" else ""))
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate={learning_rate!r}: give a positive number, e.g. {LEARNING_RATE}")
    if param not in PARAMS:
        raise ValueError(f"param={param!r}: give one of {', '.join(PARAMS)}")


def make_param(model: Model, param: str, image_size: int):
    """Lucid's image (Fourier; decorrelated colour on RGB models) or MACO's phase-only one (RGB only)."""
    if param == "maco":
        if model.channels != 3:
            raise ValueError(f"param='maco' needs an RGB model; {model.name} takes {model.channels}-channel "
                             f"images: use param='lucid'")
        return parameterisations.maco(image_size)
    return parameterisations.image(image_size, fft=True, decorrelate=model.channels == 3, channels=model.channels)


def checked_transforms(model: Model, layer: str, image_size: int) -> transforms.Transform:
    """Lucid's standard transforms, refused when what they output is too small for ``layer``."""
    tf = transforms.standard()
    try:
        size = transforms.output_size(tf, image_size)
    except ValueError:  # a jitter larger than the padded image
        size = 0
    if size < 1:
        raise ImageTooSmallError(f"image_size={image_size} is too small for the standard transforms: use image_size >= 32")
    model.check_image_size(layer, size)
    return tf


# -- the result -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Visualisation(OneCallResult):
    """What ``visualise`` rendered: one image per channel, with what made it.

    Attributes:
        model: the model's name.
        layer: the layer.
        channels: the channels (class indices on ``logits``), in the spec's order.
        images: (C, H, W, 3) in [0, 1] (the model's input channels: 1 for a grayscale model).
        objectives: (C,) the final objective of each image.
        history: (C, steps) the objective before every step.
        classes: the class name of each channel on a model with labels' ``logits``, else None.
        transparency: with ``param="maco"``, (C, H, W, 3) accumulated ``|d objective / d image|``; else None.
        objective, param, transforms: how they were rendered, as printed in a manifest.
        settings: the options, named as the channels recipe's config keys.
        model_source, wall_time_s: as in ``OneCallResult`` (where the weights came from, seconds the call took).
    """

    model: str
    layer: str
    channels: tuple[int, ...]
    images: np.ndarray
    objectives: np.ndarray
    history: np.ndarray
    classes: tuple[str, ...] | None
    transparency: np.ndarray | None
    objective: str
    param: str
    transforms: str
    # Every one-call result ends with these fields on purpose: as OneCallResult's they would come first in its constructor.
    settings: dict
    model_source: str = ""
    wall_time_s: float = 0.0

    def label(self, i: int) -> str:
        """The caption of image ``i``: ``layer:channel``."""
        return f"{self.layer}:{self.channels[i]}"

    def __repr__(self) -> str:
        return (f"Visualisation({self.model} {self.layer}, {len(self.channels)} channel(s) [{first_few(self.channels, 8)}], "
                f"{self.images.shape[1]} px, {self.settings.get('steps')} steps)")

    def grid(self) -> np.ndarray:
        """The labelled grid a notebook shows: each image (upscaled to >= ``jfv.runtime.outputs.LABEL_TILE_MIN`` px) above its
        ``layer:channel`` label, row-major on about a square grid; (H, W, 3) in [0, 1]."""
        from jfv.runtime.outputs import labelled_grid

        return labelled_grid(self.images, [self.label(i) for i in range(len(self.images))])

    def write(self, stage) -> None:
        """Writes the channels recipe's files into ``stage`` (``save(directory)`` writes them into a
        folder): ``channels/<layer>_<cccc>.png`` (and ``_alpha.png`` with ``param="maco"``),
        ``sprite.png``, ``index.html`` and ``manifest.json`` (last: the run is complete when it exists).
        """
        from jfv.models.weights import library_versions
        from jfv.runtime.outputs import transparency_overlay, write_run

        entries, cards = [], []
        for i, (c, img, value) in enumerate(zip(self.channels, self.images, self.objectives)):
            rel = f"channels/{self.layer}_{c:04d}.png"
            stage.save_png(rel, img)
            entry = {"channel": int(c), "image": rel, "objective": round(float(value), 6)}
            if self.classes:
                entry["class"] = self.classes[i]
            cards.append({"image": rel, "caption": [f"{self.layer} ch {c}", f"objective {float(value):.3f}"]})
            if self.transparency is not None:
                entry["alpha"] = f"channels/{self.layer}_{c:04d}_alpha.png"
                stage.save_png(entry["alpha"], transparency_overlay(img, self.transparency[i]))
                cards.append({"image": entry["alpha"], "caption": [f"{self.layer} ch {c}", "transparency (alpha)"]})
            entries.append(entry)
        manifest = {
            "recipe": "channels",  # the channels recipe's files: the score recipe reads them as one of its runs
            "made_by": "jfv.visualise",
            "model": self.model,
            "model_source": self.model_source,
            "layer": self.layer,
            "objective": self.objective,
            "settings": self.settings,
            "transforms": self.transforms,
            "param": self.param,
            "sprite": "sprite.png",
            "gallery": "index.html",
            "channels": entries,
            **self.run_info(library_versions()),
        }
        header = {"model": self.model, "layer": self.layer, "objective": self.objective,
                  "steps": self.settings["steps"], "image size": self.settings["image_size"], "param": self.param,
                  "transforms": self.transforms, "seed": self.settings["seed"], "wall time (s)": self.wall_time_s}
        write_run(stage, manifest, f"{self.model} {self.layer}", cards, header, grid=list(self.images),
                  grid_name="sprite.png")


# -- the call -------------------------------------------------------------------------------------


def visualise(
    model: Model | str,
    spec: str,
    *,
    steps: int | None = None,
    image_size: int = IMAGE_SIZE,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    learning_rate: float | None = None,
    param: str = "lucid",
    preset: str = "lucid",
    progress: bool = True,
) -> Visualisation:
    """Renders the channels ``spec`` names by activation maximisation with Lucid's defaults.

    Channel ``c`` is exactly ``render_channels(model, objective, param, transforms.standard(),
    optax.adam(learning_rate), [c], jax.random.key(seed), steps)``'s image, with the objective
    ``objectives.channel(layer, c)`` (``objectives.class_logit(c)`` on ``logits``).

    Args:
        model: a jfv Model (``jfv.models.load(...)``, ``jfv.models.wrap(module, params, ...)``) or a
            registered model's name (``"vgg16"``; ``jfv.models.names()``).
        spec: ``"conv4_3:48"``, ``"conv4_3:0:8"`` (channels 0..7), ``"conv4_3:48,62,73"``,
            ``"conv4_3"`` (the whole layer) or ``"logits:cat"`` / ``"logits:281"`` (a class).
        steps: optimisation steps; default 512 (``preset="lucid"``) or the preset's.
        image_size: the image's side in pixels (>= 32 for the standard transforms).
        seed: the key's seed; channel ``c`` uses ``fold_in(key(seed), c)``, so its image is the same
            alone or among others.
        batch_size: channels per compiled call (bounds memory); 0 renders all at once.
        learning_rate: Adam's step size with ``preset="lucid"`` (default 0.05); other presets set
            their own schedule, and refuse one.
        param: ``"lucid"`` (Fourier + decorrelated colour; plain colour on a non-RGB model) or
            ``"maco"`` (phase only over a natural-image magnitude, with transparency maps).
        preset: ``"lucid"`` (Adam at a constant ``learning_rate``) or ``"draft"``
            (``jfv.optvis.presets``: its optimiser and schedule over ``steps``, default its own
            192; ``docs/presets.md`` has its measured quality).
        progress: a progress bar on stderr.

    Returns:
        A ``Visualisation``: shows itself in Jupyter, ``.images`` (C, H, W, 3), ``.save(dir)``.

    Raises:
        TypeError: ``model`` is neither a jfv Model nor a name (the message says how to wrap one).
        UnknownModelError, UnknownLayerError, ChannelOutOfRangeError, UnknownClassError, SpecError:
            each one line naming what exists.
        ValueError: a bad option, naming it; ImageTooSmallError: ``image_size`` too small for the layer.
    """
    steps, learning_rate, optimiser = preset_optimiser(preset, steps, learning_rate)
    check_options(steps, image_size, seed, batch_size, learning_rate, param)
    model = resolve_model(model)
    layer, channels = parse_spec(model, spec)
    tf = checked_transforms(model, layer, image_size)
    image_param = make_param(model, param, image_size)
    is_class = layer == CLASS_LAYER

    def objective_fn(c):
        return objectives.class_logit(c, layer) if is_class else objectives.channel(layer, c)

    bar = Progress(f"{model.name} {layer}")
    start = time.time()
    try:
        out = render_channels(model, objective_fn, image_param, tf, optimiser, channels,
                              jax.random.key(seed), steps, batch_size=batch_size or None, progress=bar if progress else None,
                              transparency=param == "maco")
    finally:
        bar.close()
    wall = round(time.time() - start, 3)
    classes = tuple(model.labels[c] for c in channels) if is_class and model.labels else None
    settings = {
        "spec": spec, "model": model.name, "layer": layer, "channels": _channels_key(channels),
        "objective": "class" if is_class else "channel", "steps": steps, "image_size": image_size,
        "learning_rate": learning_rate, "fft": True, "decorrelate": model.channels == 3 and param == "lucid",
        "transforms": "standard", "param": param, "seed": seed, "batch_size": batch_size,
        "precision": model.precision, "preset": preset,
    }
    return Visualisation(
        model=model.name, layer=layer, channels=tuple(int(c) for c in channels),
        images=np.asarray(out.images)[:, 0], objectives=np.asarray(out.objective), history=np.asarray(out.history),
        classes=classes,
        transparency=None if out.transparency is None else np.asarray(out.transparency)[:, 0],
        objective=objective_fn(np.int32(channels[0])).description, param=repr(image_param), transforms=repr(tf),
        settings=settings, model_source=model.source, wall_time_s=wall,
    )


def preset_optimiser(preset: str, steps: int | None, learning_rate: float | None):
    """(steps, learning rate, optimiser) of a one-call render: Adam at ``learning_rate`` (default 0.05)
    for 512 steps with ``lucid``; another preset's schedule over ``steps`` (default its own count)."""
    if preset == "lucid":
        steps = STEPS if steps is None else steps
        learning_rate = LEARNING_RATE if learning_rate is None else learning_rate
        return steps, learning_rate, optax.adam(learning_rate)
    p = presets.get(preset)
    if learning_rate is not None:
        raise ValueError(f"preset {preset!r} sets its own learning-rate schedule ({p.describe()}): drop "
                         f"learning_rate, or use preset='lucid' to set it")
    steps = p.steps if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r}: give an integer >= 1")
    return int(steps), p.learning_rate, p.optimiser_for(int(steps))


def _channels_key(channels: Sequence[int]) -> str:
    """The channels as the channels recipe's ``channels`` key writes them: ``a:b`` for a run, else a list."""
    if len(channels) > 1 and list(channels) == list(range(channels[0], channels[-1] + 1)):
        return f"{channels[0]}:{channels[-1] + 1}"
    return ",".join(map(str, channels))


__all__ = ["Visualisation", "SpecError", "visualise", "parse_spec"]
