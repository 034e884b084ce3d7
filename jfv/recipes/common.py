"""Pieces several recipes share: checking config values, parsing channel lists, a memory estimate,
meshes, progress bars, run metadata, and the config's transforms and objective factory.

The ``check_*`` helpers validate a value where it enters and raise ``ConfigError`` naming the key and
the valid range, e.g. ``check_positive(config.learning_rate, "learning_rate", 0.05)``.
"""

from __future__ import annotations

import collections
import copy
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jfv.analysis import datasets
from jfv import models
from jfv.optvis import objectives, transforms
from jfv.optvis import parameterisations, presets
from jfv.optvis.parameterisations import spectrum
from jfv.models.base import ChannelOutOfRangeError, ImageTooSmallError, Model
from jfv.models.weights import WeightsError, library_versions
from jfv.runtime.outputs import load_image, output_names  # noqa: F401  (output_names: recipes import it from here)
from jfv.runtime.progress import Progress  # noqa: F401  (recipes take it from here)

LIST_LIMIT = 10  # values shown in a message about many values
# A range's size is checked against this before the layer is known, so a typo such as 0:100000000
# never builds a huge list; far above any layer's width (ResNet's widest: 2048; ImageNet-21k: 21843).
CHANNEL_LIMIT = 1 << 16
SEED_LIMIT = 2**32  # jax.random.key takes a 32-bit seed
FLOAT_BYTES = 4  # float32 images and activations
# Peak memory of a render over its forward activations: the activations kept for the backward pass
# plus their gradients. Measured 1.75 (VGG16, 512 px) and 2.0 (256 px) on XLA:CPU.
BACKWARD_FACTOR = 2
OBJECTIVES = ("channel", "neuron", "class")  # the config key ``objective`` of channels, layer (a subset), sweep
TRANSFORMS = ("standard", "none", "maco")  # the config key ``transforms``; maco only where its keys are declared


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and the valid values."""


def shorten(values: Sequence[Any], limit: int = LIST_LIMIT) -> str:
    """``"1, 2, 3, ... (1000 in all)"``: a message never lists more than ``limit`` values."""
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def check_positive(value: Any, key: str, example: float) -> float:
    """``value`` if it is a finite number > 0 (a learning rate, a step size), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{key} must be a finite number > 0 (e.g. {example}), got {value}")
    return float(value)


def check_finite(values: Sequence[Any], key: str) -> list[float]:
    """``values`` if every one is a finite number (sweep strengths, penalty weights), else ConfigError."""
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{key} must be finite numbers, got {shorten(bad)}: e.g. -0.01,-0.005,-0.001")
    return [float(v) for v in values]


def check_int(value: Any, key: str, low: int, high: int | None = None, meaning: str = "") -> int:
    """``value`` if it is an integer in [low, high] (high None: no upper bound), else ConfigError."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not (ok and low <= value and (high is None or value <= high)):
        valid = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(f"{key} must be an integer {valid}{f' ({meaning})' if meaning else ''}, got {value!r}")
    return int(value)


def check_seed(seed: Any) -> int:
    return check_int(seed, "seed", 0, SEED_LIMIT - 1, "jax.random.key takes a 32-bit seed")


def check_precision(precision: Any) -> str:
    """``precision`` if it is one of ``Model.with_precision``'s (float32, bfloat16), else ConfigError."""
    from jfv.models.base import PRECISIONS

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (the network's compute dtype), "
                          f"got {precision!r}")
    return str(precision)


_RANGE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_channels(spec: str | int | Sequence[int], count: int | None = None, where: str = "the layer") -> list[int]:
    """``"0:64"`` (half-open range), ``"48,62,73,91"`` (list) or ``"7"`` -> list of distinct ints.

    Args:
        count: the layer's channels; when given every channel must be below it (a range is checked
            by its bounds, before any list is built).
        where: the layer, for messages (``"vgg16 layer 'conv3_1'"``).

    Raises:
        ConfigError: unreadable, empty, repeated channels, or a range above ``CHANNEL_LIMIT``.
        ChannelOutOfRangeError: a channel >= ``count``.
    """
    if isinstance(spec, (int, np.integer)):
        spec = [int(spec)]
    out_of_range = (
        f"out of range for {where}, which has {count} channels: use 0..{(count or 1) - 1} "
        f"(a range a:b with b <= {count})"
    )
    m = _RANGE.match(spec) if isinstance(spec, str) else None
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if b <= a:
            raise ConfigError(f"channels range {spec!r} is empty: use a:b with b > a, e.g. 0:8")
        if count is not None and b > count:
            raise ChannelOutOfRangeError(f"channels {a}:{b} {out_of_range}")
        if b - a > CHANNEL_LIMIT:
            raise ConfigError(f"channels range {spec!r} names {b - a} channels; no layer has more than {CHANNEL_LIMIT}")
        return list(range(a, b))
    if isinstance(spec, str):
        try:
            out = [int(x) for x in spec.split(",") if x.strip() != ""]
        except ValueError:
            out = []
    else:
        out = [int(c) for c in spec]
    if not out or any(c < 0 for c in out):
        text = str(spec) if len(str(spec)) <= 60 else str(spec)[:60] + "..."
        raise ConfigError(
            f"cannot read channels {text!r}: use a half-open range a:b (e.g. 0:64) "
            f"or a comma-separated list (e.g. 48,62,73,91)"
        )
    if count is not None and any(c >= count for c in out):
        raise ChannelOutOfRangeError(f"channel(s) {shorten([c for c in out if c >= count])} {out_of_range}")
    repeated = sorted(c for c, k in collections.Counter(out).items() if k > 1)
    if repeated:
        raise ConfigError(f"channel(s) {shorten(repeated)} listed more than once: name each channel once")
    return out


def available_memory() -> int | None:
    """Bytes the default device can still allocate, or None when unknown.

    An accelerator's free memory (``memory_stats``); on CPU the host's ``MemAvailable``, within a
    cgroup v2 memory limit when there is one.
    """
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0) if "bytes_limit" in stats else None
    free = None
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            left = int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
            free = left if free is None else min(free, left)
    except (OSError, ValueError):
        pass
    return free


def activation_bytes(model: Model, image_size: int, batch: int) -> int:
    """Bytes of ``batch`` input images and all their named activations (shapes only: no FLOPs)."""
    shapes = model.output_shapes(image_size)
    per_image = model.channels * image_size * image_size + sum(math.prod(s[1:]) for s in shapes.values())
    return batch * per_image * FLOAT_BYTES


def check_memory(model: Model, image_size: int, batch: int, fix: str, backward: bool = True) -> None:
    """Refuses, with the figure, a run whose activations cannot fit the device's free memory.

    The need is ``activation_bytes`` (times ``BACKWARD_FACTOR`` when gradients flow), checked
    before anything is allocated. Images too small to pass through the model pass (the size checks
    that follow report them).

    Args:
        fix: what to lower, e.g. ``"image_size or batch_size"``.
    """
    try:
        need = activation_bytes(model, image_size, batch) * (BACKWARD_FACTOR if backward else 1)
    except ImageTooSmallError:
        return
    free = available_memory()
    if free is not None and need > free:
        raise ConfigError(
            f"image_size {image_size} with {batch} image(s) per call needs about {_bytes(need)} for "
            f"{model.name}'s activations, but {_bytes(free)} are free on {jax.devices()[0].platform}: "
            f"lower {fix}"
        )


def _bytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def make_mesh(devices: int, axis: str = "channels") -> Mesh | None:
    """0 -> no mesh (default device); n > 0 -> the first n local devices; -1 -> all local devices,
    as a one-axis mesh named ``axis`` (``channels`` for AM cells, ``batch`` for a dataset pass).

    Local: in a distributed job each process shards its own cells over its own devices."""
    check_int(devices, "devices", -1, meaning="-1 all, 0 none, n the first n")
    if devices == 0:
        return None
    available = jax.local_devices()
    n = len(available) if devices < 0 else devices
    if n > len(available):
        raise ConfigError(
            f"devices={devices} but only {len(available)} are visible ({available[0].platform}); "
            f"use devices <= {len(available)}, or -1 for all"
        )
    return Mesh(np.array(available[:n]), (axis,))


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


def run_info(start: float) -> dict:
    return {
        "versions": library_versions(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "wall_time_s": round(time.time() - start, 3),
    }


SKIPPED_SHOWN = 3  # paths a console note about skipped images names


def report_skipped(skipped: Sequence[Any], total: int, what: str, shown: int = SKIPPED_SHOWN) -> str:
    """One line on stderr naming the images a dataset pass skipped: the count and the first
    ``shown`` (>= 1) paths (``skipped``: ``(name, reason)`` pairs as ``passes.State.skipped`` and
    ``PaddedBatch.skipped`` give them, ``{"name": ...}`` records as manifests store them, or names).
    Prints nothing when none was skipped. Returns the line ("" when none).

    Example:
        >>> report_skipped(state.skipped, len(source), source.description)
        note: skipped 2 of 30 images of image folder photos (flat, 30 images) that could not be read: a.jpg, b.jpg
    """
    names = [s["name"] if isinstance(s, dict) else s if isinstance(s, (str, Path)) else s[0] for s in skipped]
    if not names:
        return ""
    shown = max(1, int(shown))
    more = len(names) - shown
    line = (f"note: skipped {len(names)} of {total} images of {what} that could not be read: "
            f"{', '.join(str(n) for n in names[:shown])}{f' and {more} more' if more > 0 else ''}")
    print(line, file=sys.stderr, flush=True)
    return line


def gallery_header(model: Model, layer: str, objective: str, steps: Any, image_size: int, param: Any,
                   transforms_: Any, seed: int, wall_time_s: float, extra: dict | None = None) -> dict:
    """The settings a recipe's ``index.html`` shows above its images; ``extra`` (e.g. a sweep's
    regulariser and values) after the layer."""
    return {"model": model.name, "layer": layer, **(extra or {}), "objective": objective, "steps": steps,
            "image size": image_size, "param": repr(param), "transforms": repr(transforms_), "seed": seed,
            "wall time (s)": wall_time_s}


def check_photo_channels(model: Model, decorrelate: bool, param: str = "image") -> None:
    """Refuses, naming the fix, renders a model's input channels cannot take: colour decorrelation
    and the CPPN draw RGB images, so a model with another count (a grayscale one) needs
    ``decorrelate=False`` and ``param=image``. Its photos are ``model.from_rgb(photos)``."""
    if model.channels == 3:
        return
    if param == "cppn":
        raise ConfigError(f"param=cppn draws RGB images but {model.name} takes {model.channels}-channel images: "
                          f"set --config.param=image --config.decorrelate=False")
    if decorrelate:
        raise ConfigError(f"decorrelate maps 3 decorrelated coordinates to RGB but {model.name} takes "
                          f"{model.channels}-channel images: set --config.decorrelate=False")


# ---------------------------------------------------------------------------------------------------
# Photos as input (the attribute, invert and accentuate recipes)

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")  # image files a folder of photos is read for


def default_image() -> str:
    """matplotlib's sample photo of Grace Hopper, shipped with every matplotlib install."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.exists():
        raise ConfigError(f"no default image ({path} is missing): pass --config.images=PATH[,PATH...]")
    return str(path)


def image_paths(spec: str, limit: int) -> list[str]:
    """``""`` -> the default photo; else comma-separated files or directories (sorted images in them)."""
    if not spec:
        return [default_image()]
    paths: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        p = Path(part).expanduser()
        if p.is_dir():
            paths += sorted(str(f) for f in p.iterdir() if f.suffix.lower() in SUFFIXES)
        elif p.is_file():
            paths.append(str(p))
        else:
            raise ConfigError(f"images: {part!r} is neither a file nor a directory")
    if not paths:
        raise ConfigError(f"images: no {'/'.join(SUFFIXES)} files in {spec!r}")
    return paths[:limit] if limit > 0 else paths


SHARED_PREFIX = "shared:"  # an images entry relative to the shared folder
PHOTO_TRANSFORMS = ("none", "standard")  # standard: Lucid's, applied to the rendering and its photo together


def load_photos(images: str, max_images: int, size: int, shared: str) -> tuple[np.ndarray, list[str], list[str]]:
    """(n, size, size, 3) photos in [0, 1], their output names and their paths.

    ``images``: comma-separated files or folders; ``shared:REL`` is REL inside the shared folder
    (``datasets.shared_dir``); a missing one is refused naming the path and the fix.
    """
    parts = []
    for part in (p.strip() for p in str(images).split(",") if p.strip()):
        if part.startswith(SHARED_PREFIX):
            path = datasets.shared_dir(shared) / part[len(SHARED_PREFIX):]
            if not path.exists():
                raise ConfigError(f"images: {path} is missing from the shared folder: pass --config.images=PATH[,PATH...] "
                                  f"(files or folders of photos) or --config.shared_dir=PATH")
            part = str(path)
        parts.append(part)
    if not parts:
        raise ConfigError("images is empty: pass --config.images=PATH[,PATH...] (files or folders of photos)")
    paths = image_paths(",".join(parts), max_images)
    return np.stack([load_image(p, size) for p in paths]), output_names(paths), paths


def photo_transforms(name: str) -> transforms.Transform | None:
    """None (no transforms: the photo's activations are computed once) or Lucid's standard ones."""
    return transforms.standard() if name == "standard" else None


def check_photo_settings(config: ml_collections.ConfigDict, cells: str) -> None:
    """The keys the photo recipes (invert, accentuate) share: image_size, steps, max_images,
    batch_size (``cells`` per compiled call), learning_rate, seed and transforms."""
    check_int(config.image_size, "image_size", 8)
    check_int(config.steps, "steps", 1)
    check_int(config.max_images, "max_images", 0, meaning="0 = all")
    check_int(config.batch_size, "batch_size", 0, meaning=f"{cells} per compiled call; 0 = all at once")
    check_positive(config.learning_rate, "learning_rate", 0.05)
    check_seed(config.seed)
    if config.transforms not in PHOTO_TRANSFORMS:
        raise ConfigError(f"unknown transforms {config.transforms!r}; valid: {', '.join(PHOTO_TRANSFORMS)}")


def in_config_terms(error: Exception, *keys: str) -> Exception:
    """``error`` with its message naming config keys: a library's ``key=VALUE`` becomes
    ``--config.key=VALUE`` for each of ``keys`` (library code names its own arguments; only recipes
    know they are config keys). The same type, raised ``from None`` by the caller."""
    message = str(error.args[0]) if error.args else str(error)
    for key in keys:
        message = re.sub(rf"(?<![\w.-]){re.escape(key)}=", f"--config.{key}=", message)
    out = copy.copy(error)
    out.args = (message,) + tuple(error.args[1:])
    return out


def init_distributed(config) -> tuple[int, int]:
    """``(process_index, process_count)``: ``(0, 1)`` unless ``distributed``; then ``jax.distributed``
    from the config's ``coordinator_address``, ``num_processes`` and ``process_id``
    (``jfv.runtime.distributed.initialize``)."""
    from jfv.runtime import distributed

    return distributed.initialize(bool(config.get("distributed", False)), config.get("coordinator_address", ""),
                                  int(config.get("num_processes", 0)), int(config.get("process_id", -1)))

def cifar10_location(config) -> Path:
    """Where the config's CIFAR-10 is (``datasets.find_cifar10`` of ``cifar10_path`` and ``shared_dir``,
    in any of its forms); a missing one is one line in config terms."""
    try:
        return datasets.find_cifar10(config.cifar10_path, config.shared_dir)
    except datasets.DatasetError as e:
        raise in_config_terms(e, "cifar10_path", "shared_dir") from None


def config_model(config: ml_collections.ConfigDict) -> Model:
    """The model the config's ``model`` and ``weights_dir`` keys name (and ``pretrained`` and ``seed``
    where the config declares them: ``seed`` draws the init when ``pretrained`` is False). The one
    way recipes load a model."""
    kwargs = {"pretrained": config.pretrained, "seed": config.seed} if "pretrained" in config else {}
    try:
        return models.load(config.model, weights_dir=config.weights_dir or None, **kwargs)
    except WeightsError as e:
        raise in_config_terms(e, "weights_dir") from None


def shared_folder(config: ml_collections.ConfigDict) -> Path:
    """The shared data folder the config's ``shared_dir`` names, else ``$JFV_SHARED`` or ``../shared``."""
    try:
        return datasets.shared_dir(config.shared_dir)
    except datasets.DatasetError as e:
        raise in_config_terms(e, "shared_dir") from None


# The config keys a recipe's Job names in its messages (``jfv.runtime.jobs.Job(fixes=...)``).
JOB_FIXES = {"resume": "--config.resume=False", "discard_state": "--config.discard_state=True"}


def job_settings(config: ml_collections.ConfigDict, run_keys: Sequence[str]) -> dict:
    """The settings a resumable job stores in ``job.json`` and a resume must match: every config key
    but ``run_keys``, those that change nothing the run computes (progress bars, resume, paths)."""
    return {k: v for k, v in config.to_dict().items() if k not in run_keys}


def parse_list(spec: str, what: str, example: str, item: str = "one") -> list[str]:
    """A comma-separated config value (layers, reductions, ...) -> its items, stripped, each once.

    Raises:
        ConfigError: naming ``what`` and an ``example``, when the list is empty or names ``item`` twice.
    Example:
        >>> parse_list(" conv3_1, conv4_3 ", "layers", "conv4_3,conv5_3")
        ['conv3_1', 'conv4_3']
    """
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not items:
        raise ConfigError(f"cannot read {what} {spec!r}: give one or more, comma-separated, e.g. {example}")
    if len(set(items)) != len(items):
        raise ConfigError(f"{what} {spec!r} names {item} twice; list each once")
    return items


def parse_layers(spec: str, model: Model | None = None, example: str = "conv3_3,conv4_3",
                 image_size: int | None = None) -> list[str]:
    """``layers`` -> layer names, each once (``parse_list``); with ``model``, each checked against it
    (an unknown name lists the valid ones), and with ``image_size``, that it has a spatial extent
    there. The one reader of the ``layers`` key."""
    layers = parse_list(spec, "layers", example, item="a layer")
    if model is not None:
        for layer in layers:
            model.check_layer(layer)
            if image_size is not None:
                model.check_image_size(layer, image_size)
    return layers


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
    helper of the channels and layer recipes."""
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
