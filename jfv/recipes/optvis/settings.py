"""How the activation-maximisation recipes (channels, layer, interpolate, sweep, invert) read their
settings: the config's objective, transforms, parameterisation and preset (optimiser, schedule,
steps), each turned into the library object once, and the header their galleries show.

A bad value raises ``ConfigError`` naming the key and the valid values, e.g.
``make_transforms("jitter")`` -> ``unknown transforms 'jitter'; valid: standard, none, maco``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import ml_collections
import numpy as np

from jfv.models.base import Model
from jfv.optvis import objectives, parameterisations, presets, transforms
from jfv.optvis.parameterisations import spectrum
from jfv.recipes.common import ConfigError, in_config_terms


OBJECTIVES = ("channel", "neuron", "class")  # the config key ``objective`` of channels, layer (a subset), sweep

TRANSFORMS = ("standard", "none", "maco")  # the config key ``transforms``; maco only where its keys are declared


def make_transforms(name: str, config: ml_collections.ConfigDict | None = None) -> transforms.Transform:
    """The config's transforms; ``maco`` reads ``maco_crops``, ``maco_box`` and ``maco_noise``."""
    if name == "standard":
        return transforms.standard()
    if name == "none":
        return transforms.identity()
    if name == "maco" and config is not None:
        try:
            return transforms.maco(config.maco_crops, config.image_size, tuple(config.maco_box), config.maco_noise)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad MACO transforms settings: {e} (keys maco_crops, maco_box, maco_noise)") from None
    if name == "maco":
        raise ConfigError("transforms=maco is only available in the channels recipe: use standard or none here")
    raise ConfigError(f"unknown transforms {name!r}; valid: {', '.join(TRANSFORMS)}")


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
            o = o + diversity * objectives.gram_diversity(layer)
        return o

    return make


def gallery_header(model: Model, layer: str, objective: str, steps: Any, image_size: int, param: Any,
                   transforms_: Any, seed: int, wall_time_s: float, extra: dict | None = None) -> dict:
    """The settings a recipe's ``index.html`` shows above its images; ``extra`` (e.g. a sweep's
    regulariser and values) after the layer."""
    return {"model": model.name, "layer": layer, **(extra or {}), "objective": objective, "steps": steps,
            "image size": image_size, "param": repr(param), "transforms": repr(transforms_), "seed": seed,
            "wall time (s)": wall_time_s}

PARAMS = ("lucid", "maco")  # the config key ``param`` of channels and layer


def load_magnitude(path: str, size: int) -> np.ndarray | None:
    """The magnitude in an .npy (or an .npz's ``magnitude``) file, resized to ``size``; None for ""."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = np.load(f, allow_pickle=False)
            m = data["magnitude"] if isinstance(data, np.lib.npyio.NpzFile) else data
            m = np.asarray(m, np.float32)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot read maco_magnitude={path!r} ({e}): give an .npy file, or an .npz with a "
                          f"'magnitude' array, of shape (3, S, S // 2 + 1)") from None
    try:
        return spectrum.resize_magnitude(m, size)
    except ValueError as e:
        raise ConfigError(f"maco_magnitude={path!r}: {e} (jfv resizes it to image_size)") from None


def make_param(config: ml_collections.ConfigDict, channels: int = 3, batch: int = 1):
    """The config's parameterisation for a model of ``channels`` input channels (keys ``param``,
    ``image_size``, ``fft``, ``decorrelate``, ``maco_magnitude``): ``lucid`` (Fourier + decorrelated
    colour) or ``maco`` (RGB only: its magnitude spectrum is estimated from photos). The one
    helper of the channels recipe (also registered as layer)."""
    size = config.image_size
    if config.param == "lucid":
        try:
            return parameterisations.image(size, batch, fft=config.fft, decorrelate=config.decorrelate,
                                           channels=channels)
        except ValueError as e:
            raise in_config_terms(e, "decorrelate") from None
    if channels != 3:
        raise ConfigError(f"param=maco needs a 3-channel (RGB) model, this one takes {channels}: use param=lucid")
    source = Path(config.maco_magnitude).name if config.maco_magnitude else None
    return parameterisations.maco(size, batch, magnitude=load_magnitude(config.maco_magnitude, size), source=source)

PRESET_KEYS = ("steps", "learning_rate")  # what a preset other than lucid sets (the config key ``preset``)


def shipped_preset(name: str) -> presets.Preset:
    try:
        return presets.get(name)
    except ValueError:
        raise ConfigError(f"unknown preset {name!r}: use --config.preset= one of {', '.join(presets.PRESETS)}") from None


def resolve_preset(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The config with its preset applied: unchanged for ``lucid`` (or no ``preset`` key: the config's
    ``steps`` and ``learning_rate`` with Adam at a constant rate); otherwise a copy whose ``steps`` and
    ``learning_rate`` (the schedule's peak) are the preset's. Every AM recipe starts with it."""
    name = config.get("preset", "lucid")
    if name == "lucid":
        return config
    preset = shipped_preset(name)
    out = copy.deepcopy(config)
    out.steps, out.learning_rate = int(preset.steps), float(preset.learning_rate)
    return out


def check_preset_overrides(config: ml_collections.ConfigDict, overridden: Sequence[str]) -> None:
    """Refuses ``--config.steps`` / ``--config.learning_rate`` given with a preset that sets them."""
    name = config.get("preset", "lucid")
    clash = [k for k in PRESET_KEYS if k in overridden]
    if name == "lucid" or not clash:
        return
    preset = shipped_preset(name)
    raise ConfigError(f"preset={name} sets steps={preset.steps} and learning_rate={preset.learning_rate:g} "
                      f"({preset.describe()}), so --config.{clash[0]} would be ignored: drop it, or use "
                      f"--config.preset=lucid to choose steps and learning_rate yourself")


def make_optimiser(config: ml_collections.ConfigDict):
    """The optax optimiser of a resolved config: Adam at ``learning_rate`` for ``lucid``, else the
    preset's optimiser and schedule over ``steps``."""
    name = config.get("preset", "lucid")
    if name == "lucid":
        return presets.Preset("lucid", int(config.steps), learning_rate=float(config.learning_rate)).optimiser_for(
            int(config.steps))
    preset = shipped_preset(name)
    try:
        return preset.optimiser_for(int(config.steps))
    except ValueError as e:
        raise ConfigError(str(e)) from None
