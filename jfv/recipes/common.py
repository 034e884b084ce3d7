"""Pieces every kind of recipe shares: checking config values, parsing channel and layer lists, a
memory estimate, meshes, loading the config's model and data folders, resumable-job settings and run
metadata. What only the AM recipes read (objective, transforms, param, preset) is in
``jfv.recipes.optvis.settings``; photos as input in ``jfv.recipes.photos``.

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
from jfv.models.base import ChannelOutOfRangeError, ImageTooSmallError, Model
from jfv.models.weights import WeightsError, library_versions

LIST_LIMIT = 10  # values shown in a message about many values
# A range's size is checked against this before the layer is known, so a typo such as 0:100000000
# never builds a huge list; far above any layer's width (ResNet's widest: 2048; ImageNet-21k: 21843).
CHANNEL_LIMIT = 1 << 16
SEED_LIMIT = 2**32  # jax.random.key takes a 32-bit seed
FLOAT_BYTES = 4  # float32 images and activations
# Peak memory of a render over its forward activations: the activations kept for the backward pass
# plus their gradients. Measured 1.75 (VGG16, 512 px) and 2.0 (256 px) on XLA:CPU.
BACKWARD_FACTOR = 2


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

    try:
        return distributed.initialize(bool(config.get("distributed", False)), config.get("coordinator_address", ""),
                                      int(config.get("num_processes", 0)), int(config.get("process_id", -1)))
    except distributed.DistributedError as e:
        raise in_config_terms(e, "coordinator_address", "num_processes", "process_id") from None

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
# Config keys added after jobs could be written, each with the value that means what a ``job.json``
# without it meant (``jfv.runtime.jobs.Job(absent=...)``), so such a job still resumes.
JOB_ABSENT = {"cifar10_path": ""}


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


