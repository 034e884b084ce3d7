"""Recipe ``channels`` (also registered as ``layer``): feature visualisations of channels of one or
more layers, written as they finish, resumable.

``python -m jfv --config=configs/vgg16_channels.py --workdir=DIR`` (the quick start: 8 channels of one
layer) and ``python -m jfv --config=configs/vgg16_layer.py --workdir=DIR`` (every channel of one or
more layers) run this one recipe. It renders the channels of each layer in groups of ``batch_size``
(0: a layer's channels at once) through one engine per layer. Each finished group's PNGs and its
record are written at once (atomically), the gallery and manifest are rewritten after every group so
``index.html`` can be opened mid-run, and the in-flight group's state is checkpointed every
``checkpoint_every`` steps (0: only on SIGTERM/SIGINT) and on SIGTERM/SIGINT. Re-running the same
command on the same DIR resumes: finished groups are skipped, the in-flight one restarts from its
checkpoint, and the outputs equal an uninterrupted run's (same PNG bytes on the same machine). Other
settings are refused (see ``jfv.runtime.jobs`` for the workdir policy; ``--config.resume=False`` or
``--overwrite`` moves an earlier run aside).

The layers are ``layers`` (comma-separated) where the config has that key, else ``layer``; with
``objective=class`` the layer is ``logits`` and ``class_name`` may name the class.
``images_per_channel`` > 1 renders several images per channel (``diversity`` > 0 pushes them apart).

With ``distributed=True`` the job calls ``jax.distributed.initialize`` and process p renders the
groups g with g % process_count == p (each sharded over its local devices when ``devices`` != 0);
DIR must be a folder every process sees. Process 0 writes ``job.json``, the gallery and the manifest.

``param=maco`` (``docs/maco.md``) renders with MACO's phase-only parameterisation (with
``transforms=maco``: its random crops and noise) and also writes ``channels/<layer>_<cccc>_alpha.png``,
the image with its transparency map (the accumulated ``|d objective / d image|``, checkpointed with the
group's state, so a resumed run's overlays are byte-equal too) as alpha; the entry's ``alpha`` names it.

Writes into DIR: ``channels/<layer>_<cccc>.png`` (``_<k>`` appended per image when a channel has
several), ``records/<layer>_g<gggg>.json`` (one per finished group), ``state/<layer>_g<gggg>.npz``
(in-flight checkpoints, removed when their group finishes), the sprite sheet of each complete layer
(``sprite.png`` for a one-layer run, else ``sprite_<layer>.png``), ``index.html``, ``manifest.json``
(model, layers, settings, one entry per channel with its layer, image paths relative to DIR and
final objective; ``layer`` and ``sprite`` too for a one-layer run) and ``job.json``.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections

from jfv import models
from jfv.models import labels
from jfv.optvis import transforms
from jfv.runtime.distributed import barrier
from jfv.runtime.jobs import Interrupted, Job, StopFlag
from jfv.runtime.outputs import check_workdir
from jfv.runtime.progress import Progress
from jfv.recipes import Recipe
from jfv.recipes.common import (
    JOB_ABSENT, JOB_FIXES, ConfigError, check_int, check_memory, check_positive, check_precision, check_seed, config_model,
    init_distributed, make_mesh, parse_channels, parse_layers,
)
from jfv.recipes.optvis.channels_job import CHECKPOINT_EVERY, ChannelsJob, images_per_channel, piece_name
from jfv.recipes.optvis.channels_outputs import write_summary
from jfv.recipes.optvis.settings import OBJECTIVES, PARAMS, make_param, make_transforms, resolve_preset

# Config keys that do not change any image: they may differ between a run and its resume.
RUN_KEYS = ("layers", "layer", "channels", "class_name", "devices", "progress", "resume", "discard_state",
            "checkpoint_every", "distributed", "coordinator_address", "num_processes", "process_id", "weights_dir")
MACO_KEYS = ("maco_magnitude", "maco_crops", "maco_box", "maco_noise")  # read only with param or transforms maco


def run_layers(config) -> list[str]:
    """The layers the config names: ``logits`` for ``objective=class``; else ``layers`` where the
    config has that key (comma-separated), else ``layer``."""
    if config.objective == "class":
        return ["logits"]
    return parse_layers(config.layers) if "layers" in config else [config.layer]


def class_index(model: models.Model, class_name: str) -> int:
    """The index of ``class_name`` in the model's labels (synonyms and case allowed)."""
    if not model.labels:
        raise ConfigError(f"model {model.name!r} has no class labels, so class_name cannot be used")
    return labels.class_index(class_name, model.labels)


def layer_channels(model: models.Model, layer: str, spec: str, image_size: int) -> list[int]:
    """``all`` -> every channel of the layer (which must have a channel axis); else ``parse_channels``."""
    n = model.check_layer(layer)
    if str(spec).strip() == "all":
        shape = model.output_shapes(image_size)[layer]
        if len(shape) < 2:
            raise ConfigError(f"layer {layer!r} of {model.name} has no channel axis (output shape {shape}), so "
                              f"channels=all means nothing there; pick a convolutional layer")
        return list(range(n))
    return parse_channels(spec, n, f"{model.name} layer {layer!r}")


def check(config: ml_collections.ConfigDict) -> None:
    """Refuses, naming the valid range, the values that would otherwise render something else."""
    check_int(config.image_size, "image_size", 1)
    check_int(config.steps, "steps", 1)
    check_int(images_per_channel(config), "images_per_channel", 1, meaning="images rendered per channel")
    check_int(config.batch_size, "batch_size", 0, meaning="channels per compiled call; 0 = all at once")
    check_int(config.devices, "devices", -1, meaning="-1 all, 0 none, n the first n")
    check_int(config.get("checkpoint_every", CHECKPOINT_EVERY), "checkpoint_every", 0,
              meaning="steps between checkpoints; 0 = only on SIGTERM/SIGINT")
    check_positive(config.learning_rate, "learning_rate", 0.05)
    check_seed(config.seed)
    check_precision(config.precision)
    if config.objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {config.objective!r}; valid: {', '.join(OBJECTIVES)}")
    if config.param not in PARAMS:
        raise ConfigError(f"unknown param {config.param!r}; valid: {', '.join(PARAMS)}")
    if config.transforms == "maco":
        check_int(config.maco_crops, "maco_crops", 1, meaning="random crops per step")
    diversity = config.get("diversity", 0.0)
    if diversity and config.transforms == "maco":
        raise ConfigError("diversity compares the batch's images, which MACO's crops mix: use transforms=standard "
                          "with diversity, or diversity=0 with transforms=maco")
    if diversity and images_per_channel(config) < 2:
        raise ConfigError("diversity needs images_per_channel >= 2")
    if config.get("class_name") and config.objective != "class":
        raise ConfigError(
            f"class_name={config.class_name!r} needs objective=class (it is {config.objective}): add "
            f"--config.objective=class, or drop class_name to render channels"
        )
    named = config.get("layer", config.get("layers", ""))
    if config.objective == "class" and named not in ("", "logits"):
        key = "layer" if "layer" in config else "layers"
        raise ConfigError(
            f"objective=class maximises a class logit, on layer 'logits', not {named!r}: set "
            f"--config.{key}=logits, or objective=channel to render {named}'s channels"
        )


def checked_transforms(config: ml_collections.ConfigDict, model: models.Model, layers: list[str]) -> transforms.Transform:
    """The config's transforms, refused when what they output is too small for one of ``layers``."""
    tf = make_transforms(config.transforms, config)
    try:
        transformed = transforms.output_size(tf, config.image_size)
    except ValueError:  # e.g. a jitter larger than the padded image
        transformed = 0
    if transformed < 1:
        raise models.ImageTooSmallError(
            f"image_size {config.image_size} is too small for the {config.transforms} transforms; use image_size >= 32"
        )
    for layer in layers:
        model.check_image_size(layer, transformed)
    return tf


def uses_maco(config) -> bool:
    return config.param == "maco" or config.transforms == "maco"


def settings_of(config, model: models.Model) -> dict:
    """Everything that changes an image: the config less RUN_KEYS, plus the weights' digest (so the
    same weights read from another folder still resume, and other weights do not).

    ``param`` is left out at its default ``lucid``, and the MACO keys when nothing reads them, so a
    job started before they existed still resumes; a resume that changes them is refused naming them
    (``param ('<absent>' -> 'maco')``)."""
    from jfv.models.weights import params_digest

    skip = (RUN_KEYS + (() if uses_maco(config) else MACO_KEYS) + (("param",) if config.param == "lucid" else ())
            + (("preset",) if config.get("preset", "lucid") == "lucid" else ()))
    settings = {k: v for k, v in config.to_dict().items() if k not in skip}
    settings["params_sha256"] = params_digest(jax.device_get(model.params))
    if config.param == "maco" and not config.get("maco_magnitude") and int(config.image_size) < 256:
        # the shipped magnitude below 256 px is taken to the size as photos have it (issue 28); a job
        # started with the earlier resampling is refused rather than finished with mixed images
        settings["maco_magnitude_resample"] = "photo"
    return settings


def prepare(config):
    """(model, layers, channels per layer, mesh, transforms) of a checked config, refused before any
    rendering when the memory, the transforms' output size or a layer or channel does not fit."""
    model = config_model(config).with_precision(config.precision)
    layers = run_layers(config)
    for layer in layers:
        model.check_layer(layer)
    if config.get("class_name"):
        channels = {layers[0]: [class_index(model, config.class_name)]}
    else:
        channels = {layer: layer_channels(model, layer, config.channels, config.image_size) for layer in layers}
    mesh = make_mesh(config.devices)
    # before the transforms' output size, whose shape arithmetic overflows at absurd sizes
    widest = max(len(c) for c in channels.values())
    per_call = min(config.batch_size or widest, widest) * images_per_channel(config)
    per_call *= config.maco_crops if config.transforms == "maco" else 1
    check_memory(model, config.image_size, -(-per_call // (mesh.size if mesh is not None else 1)),
                 "image_size or batch_size")
    tf = checked_transforms(config, model, layers)
    if model.channels != 3:
        make_param(config, model.channels, images_per_channel(config))
    return model, layers, channels, mesh, tf


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    config = resolve_preset(config)
    check(config)
    check_workdir(workdir)
    make_param(config, 3, images_per_channel(config))  # a bad magnitude file fails before the model loads
    index, count = init_distributed(config)
    model, layers, channels, mesh, tf = prepare(config)
    job = Job(workdir, config.get("recipe", "channels"), settings_of(config, model), resume=config.get("resume", True),
              process_index=index, process_count=count, fixes=JOB_FIXES, absent=JOB_ABSENT)
    try:
        job.start()
        progress = Progress(f"{model.name} {','.join(layers)}" + (f" [process {index}/{count}]" if count > 1 else ""),
                            enabled=config.progress)
        with StopFlag() as flag:
            work = ChannelsJob(config, model, layers, channels, job, mesh, tf, None, flag)
            pieces = work.pieces()
            try:
                render_pieces(job, config, work, pieces, progress, flag, index, count, start)
            finally:
                progress.close()
        barrier("jfv-layer-finished", count)
        if index == 0:
            complete = all(job.is_done(piece_name(layer, g)) for layer, g, _ in pieces)
            manifest = write_summary(job, config, work, start, complete=complete)
        else:
            manifest = {"gallery": "index.html"}
    finally:
        job.close()
    return manifest


def render_pieces(job: Job, config, work: ChannelsJob, pieces, progress, flag: StopFlag, index: int, count: int,
                  start: float) -> None:
    """Renders this process's unfinished groups, rewriting the gallery after each (process 0)."""
    mine = [p for i, p in enumerate(pieces) if i % count == index]
    todo = [p for p in mine if not job.is_done(piece_name(p[0], p[1]))]
    total = sum(len(p[2]) for p in todo) * config.steps
    finished = 0
    work.progress = lambda d, _: progress(d, total)
    for layer, group, chans in todo:
        if flag.stop:
            raise Interrupted(f"{flag.name()}: stopped before {layer} group {group}; run the same "
                              f"command again to resume", flag.signum)
        work.run_piece(layer, group, chans, finished)
        finished += len(chans) * config.steps
        if index == 0 and (layer, group) != todo[-1][:2]:  # the last one's summary comes after the barrier
            write_summary(job, config, work, start, complete=False)


RECIPE = Recipe(run=run, check=check, resumable=True, run_keys=RUN_KEYS)
