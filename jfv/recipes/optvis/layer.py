"""Recipe ``layer``: every channel of one or more layers, written as it goes, resumable.

``python -m jfv --config=configs/vgg16_layer.py --workdir=DIR`` renders the channels of each layer in
groups of ``batch_size`` through one engine per layer. Each finished group's PNGs and its record are
written at once (atomically), the gallery and manifest are rewritten after every group so
``index.html`` can be opened mid-run, and the in-flight group's state is checkpointed every
``checkpoint_every`` steps and on SIGTERM/SIGINT. Re-running the same command on the same DIR resumes:
finished groups are skipped, the in-flight one restarts from its checkpoint, and the outputs equal
an uninterrupted run's (same PNG bytes on the same machine). Other settings are refused (see
``jfv.runtime.jobs`` for the workdir policy).

With ``distributed=True`` the job calls ``jax.distributed.initialize`` and process p renders the
groups g with g % process_count == p (each sharded over its local devices when ``devices`` != 0);
DIR must be a folder every process sees. Process 0 writes ``job.json``, the gallery and the manifest.

``param=maco`` (``docs/maco.md``) renders with MACO's phase-only parameterisation (with
``transforms=maco``: its random crops and noise) and also writes ``channels/<layer>_<cccc>_alpha.png``,
the image with its transparency map (the accumulated ``|d objective / d image|``, checkpointed with the
group's state, so a resumed run's overlays are byte-equal too) as alpha; the entry's ``alpha`` names it.

Writes into DIR: ``channels/<layer>_<cccc>.png``, ``records/<layer>_g<gggg>.json`` (one per finished
group), ``state/<layer>_g<gggg>.npz`` (in-flight checkpoints, removed when their group finishes), ``sprite_<layer>.png``
(once a layer is complete), ``index.html``, ``manifest.json`` and ``job.json``.
"""

from __future__ import annotations

import html
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jfv import models
from jfv.optvis import transforms
from jfv.optvis.engine import Engine, StateMismatchError
from jfv.runtime.distributed import barrier
from jfv.runtime.jobs import Interrupted, Job, StateError, StopFlag
from jfv.runtime.outputs import (
    CHANNEL_FILTER_INPUT, CHANNEL_FILTER_SCRIPT, GALLERY_CSS, check_workdir, header_table, sprite, transparency_overlay,
    write_run,
)
from jfv.recipes import Recipe
from jfv.recipes.optvis.settings import (
    make_optimiser, resolve_preset, PARAMS, make_transforms, objective_factory, make_param,
)
from jfv.recipes.common import (
    ConfigError, check_int, check_memory, check_precision, make_mesh, parse_channels, JOB_FIXES, config_model,
    init_distributed, parse_layers, run_info,
)
from jfv.runtime.progress import Progress

OBJECTIVES = ("channel", "neuron")
# Config keys that do not change any image: they may differ between a run and its resume.
RUN_KEYS = ("layers", "channels", "devices", "progress", "resume", "discard_state", "checkpoint_every",
            "distributed", "coordinator_address", "num_processes", "process_id", "weights_dir")
MACO_KEYS = ("maco_magnitude", "maco_crops", "maco_box", "maco_noise")  # read only with param or transforms maco


def piece_name(layer: str, group: int) -> str:
    return f"{layer}_g{group:04d}"


def image_path(layer: str, channel: int) -> str:
    return f"channels/{layer}_{channel:04d}.png"


def alpha_path(layer: str, channel: int) -> str:
    return f"channels/{layer}_{channel:04d}_alpha.png"


def layer_channels(model: models.Model, layer: str, spec: str, image_size: int) -> list[int]:
    """``all`` -> every channel of the layer (which must have a channel axis); else ``parse_channels``."""
    n = model.check_layer(layer)
    if str(spec).strip() == "all":
        shape = model.output_shapes(image_size)[layer]
        if len(shape) < 2:
            raise ConfigError(f"layer {layer!r} of {model.name} has no channel axis (output shape {shape}), so "
                              f"channels=all means nothing there; pick a convolutional layer")
        return list(range(n))
    channels = parse_channels(spec)
    model.check_channels(layer, channels)
    return channels


def check(config) -> None:
    if config.objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {config.objective!r} for the layer recipe; valid: {', '.join(OBJECTIVES)}")
    for key in ("steps", "image_size"):
        if int(config[key]) < 1:
            raise ConfigError(f"{key} must be >= 1, got {config[key]}")
    if config.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 for a layer job (it bounds memory), got {config.batch_size}")
    if config.checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every must be >= 0 steps (0: only on SIGTERM/SIGINT), got {config.checkpoint_every}")
    if not (config.learning_rate > 0 and np.isfinite(config.learning_rate)):
        raise ConfigError(f"learning_rate must be a finite number > 0, got {config.learning_rate}")
    check_precision(config.precision)
    if config.param not in PARAMS:
        raise ConfigError(f"unknown param {config.param!r}; valid: {', '.join(PARAMS)}")
    if config.transforms == "maco":
        check_int(config.maco_crops, "maco_crops", 1, meaning="random crops per step")


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


class LayerJob:
    """The rendering side of the recipe: engines per layer, groups, checkpoints, outputs."""

    def __init__(self, config, model, layers, channels, job: Job, mesh, progress, flag: StopFlag):
        self.config, self.model, self.layers, self.channels, self.job = config, model, layers, channels, job
        self.progress, self.flag = progress, flag
        self.param = make_param(config, model.channels)
        self.tf = make_transforms(config.transforms, config)
        self.transparency = config.param == "maco"  # MACO's map, carried in the state (and its checkpoints)
        optimiser = make_optimiser(config)
        self.engines = {layer: Engine.for_channels(model, objective_factory(config.objective, layer, 0.0), self.param,
                                                   self.tf, optimiser, mesh=mesh, transparency=self.transparency)
                        for layer in layers}
        self.key = jax.random.key(config.seed)

    def pieces(self) -> list[tuple[str, int, list[int]]]:
        """Every (layer, group index, channels) of the job, in a fixed order."""
        out = []
        for layer in self.layers:
            chans = self.channels[layer]
            b = self.engines[layer].group_size(self.config.batch_size, len(chans))
            out += [(layer, g, chans[i : i + b]) for g, i in enumerate(range(0, len(chans), b))]
        return out

    def run_piece(self, layer: str, group: int, chans: list[int], done_before: int) -> dict:
        engine, steps, name = self.engines[layer], self.config.steps, piece_name(layer, group)
        b = engine.group_size(self.config.batch_size, len(self.channels[layer]))
        vs = np.zeros(len(chans), np.float32)
        cs, _ = engine.pad(chans, vs, b)  # the padded group, as its checkpoints record it
        saved = self.job.load_state(name, discard=self.config.discard_state)
        state, history = (None, None) if saved is None else self.restore(engine, name, saved, chans, b)
        every = self.config.checkpoint_every

        def between(st, hist, done):
            if self.flag.stop:
                self.save(name, st, hist, cs)
                raise Interrupted(
                    f"{self.flag.name()}: checkpointed {layer} group {group} at step {done}/{steps}; run the same "
                    f"command again to resume", self.flag.signum)
            if every and done < steps and done // every > (done - engine.chunk) // every:
                self.save(name, st, hist, cs)

        out = engine.render_group(self.key, chans, vs, steps, size=b, state=state, history=history, between=between,
                                  progress=lambda cell_steps: self.progress(done_before + cell_steps, None))
        entries = []
        for i, c in enumerate(chans):
            rel = image_path(layer, c)
            self.job.save_png(rel, out.images[i, 0])
            entry = {"layer": layer, "channel": int(c), "image": rel, "objective": round(float(out.objective[i]), 6)}
            if out.transparency is not None:
                entry["alpha"] = alpha_path(layer, c)
                self.job.save_png(entry["alpha"], transparency_overlay(out.images[i, 0], out.transparency[i, 0]))
            entries.append(entry)
        record = {"layer": layer, "group": group, "channels": [int(c) for c in chans], "entries": entries}
        self.job.finish(name, record)
        return record

    def save(self, name, state, history, cs) -> None:
        """Checkpoints piece ``name``'s padded state (the layer engine's ``save_state``), history and channels."""
        tree = self.engines[name[: name.rindex("_g")]].save_state(state)  # name = piece_name(layer, group)
        tree.update(history=np.asarray(history), channels=np.asarray(cs, np.int32))
        self.job.save_state(name, tree)

    def restore(self, engine: Engine, name: str, saved: dict, chans: list[int], size: int):
        """(state on the engine's devices, padded history) from piece ``name``'s checkpoint of the group
        ``chans`` padded to ``size``; StateError if it is not one (other shapes or channels)."""
        vs = np.zeros(len(chans), np.float32)
        try:
            ok = (np.array_equal(saved["channels"], engine.pad(chans, vs, size)[0])
                  and saved["history"].shape == (size, self.config.steps))
            state = engine.restore_state(saved, self.key, chans, vs, size) if ok else None
        except (KeyError, StateMismatchError):
            state = None
        if state is None:
            raise StateError(f"the in-flight checkpoint {self.job.state_path(name)} does not fit this job's group "
                             f"(other shapes or channels); re-run with {self.job.fixes['discard_state']} to render that "
                             f"group again from the start (finished channels are kept)")
        return state, saved["history"]


def gallery(model_name: str, layers: list[str], entries: list[dict], header: dict, complete: bool) -> str:
    """One section per layer, lazy-loaded thumbnails, a channel search box; refreshes while running."""
    by_layer: dict[str, list[dict]] = {layer: [] for layer in layers}
    for e in entries:
        by_layer.setdefault(e["layer"], []).append(e)
    sections = []
    for layer, items in by_layer.items():
        items = sorted(items, key=lambda e: e["channel"])
        cards = "".join(
            f'<figure id="{html.escape(layer)}-{e["channel"]}" data-channel="{e["channel"]}"><a href="{html.escape(e["image"])}">'
            f'<img loading="lazy" src="{html.escape(e["image"])}" alt="{html.escape(layer)} channel {e["channel"]}"></a>'
            f'<figcaption>{html.escape(layer)} ch {e["channel"]}<br>objective {e["objective"]:.3f}'
            + (f' · <a href="{html.escape(e["alpha"])}">alpha</a>' if e.get("alpha") else "")
            + '</figcaption></figure>'
            for e in items)
        sections.append(f'<h2 id="{html.escape(layer)}">{html.escape(layer)} ({len(items)} channels)</h2>'
                        f'<div class="grid">{cards}</div>')
    nav = " · ".join(f'<a href="#{html.escape(layer)}">{html.escape(layer)}</a>' for layer in layers)
    refresh = "" if complete else '<meta http-equiv="refresh" content="60">'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>{html.escape(model_name)}: layers</title>
<style>{GALLERY_CSS}</style></head>
<body><h1>{html.escape(model_name)}: {'complete' if complete else 'in progress (reloads every minute)'}</h1>
{header_table(header)}
<p>{nav} &nbsp; {CHANNEL_FILTER_INPUT}</p>
{''.join(sections)}
{CHANNEL_FILTER_SCRIPT}
</body></html>
"""


def write_summary(job: Job, config, model, layers, channels, start: float, complete: bool) -> dict:
    """The manifest and gallery from every record on disk (what any process has finished)."""
    wanted = {layer: set(chans) for layer, chans in channels.items()}
    entries = [e for r in job.records() for e in r["entries"] if e["channel"] in wanted.get(e["layer"], ())]
    entries.sort(key=lambda e: (layers.index(e["layer"]), e["channel"]))
    sprites = {}
    if complete:
        from PIL import Image

        for layer in layers:
            imgs = [np.asarray(Image.open(job.path / e["image"]).convert("RGB"), np.float32) / 255.0
                    for e in entries if e["layer"] == layer]
            rel = f"sprite_{layer}.png"
            job.save_png(rel, sprite(imgs))
            sprites[layer] = rel
    manifest = {
        "recipe": "layer",
        "model": model.name,
        "model_source": model.source,
        "layers": {layer: {"channels": len(channels[layer]),
                           "finished": sum(e["layer"] == layer for e in entries)} for layer in layers},
        "complete": complete,
        "settings": config.to_dict(),
        "sprites": sprites,
        "gallery": "index.html",
        "channels": entries,
    }
    manifest.update(run_info(start))
    header = {"model": model.name, "layers": ", ".join(layers), "finished": f"{len(entries)} of "
              f"{sum(len(c) for c in channels.values())} channels", "objective": config.objective,
              "steps": config.steps, "image size": config.image_size, "param": config.param, "seed": config.seed,
              "wall time of this run (s)": manifest["wall_time_s"]}
    # one sprite per layer (written above, the recipe's own files); the page is the layer gallery
    return write_run(job, manifest, model.name, page=gallery(model.name, layers, entries, header, complete))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    config = resolve_preset(config)
    check(config)
    check_workdir(workdir)
    make_param(config)  # a bad magnitude file fails before the model loads
    index, count = init_distributed(config)
    model = config_model(config).with_precision(config.precision)
    layers = parse_layers(config.layers)
    channels = {layer: layer_channels(model, layer, config.channels, config.image_size) for layer in layers}
    mesh = make_mesh(config.devices)
    # before the transforms' output size, whose shape arithmetic overflows at absurd sizes
    per_call = config.batch_size * (config.maco_crops if config.transforms == "maco" else 1)
    check_memory(model, config.image_size, -(-per_call // (mesh.size if mesh is not None else 1)),
                 "image_size or batch_size")
    tf = make_transforms(config.transforms, config)
    if model.channels != 3:
        make_param(config, model.channels)
    for layer in layers:
        model.check_image_size(layer, transforms.output_size(tf, config.image_size))

    job = Job(workdir, "layer", settings_of(config, model), resume=config.resume, process_index=index,
              process_count=count, fixes=JOB_FIXES)
    try:
        job.start()
        progress = Progress(f"{model.name} {','.join(layers)}" + (f" [process {index}/{count}]" if count > 1 else ""),
                            enabled=config.progress)
        with StopFlag() as flag:
            work = LayerJob(config, model, layers, channels, job, mesh, None, flag)
            pieces = work.pieces()
            mine = [p for i, p in enumerate(pieces) if i % count == index]
            todo = [p for p in mine if not job.is_done(piece_name(p[0], p[1]))]
            total = sum(len(p[2]) for p in todo) * config.steps
            finished = [0]
            work.progress = lambda d, _: progress(d, total)
            try:
                for layer, group, chans in todo:
                    if flag.stop:
                        raise Interrupted(f"{flag.name()}: stopped before {layer} group {group}; run the same "
                                          f"command again to resume", flag.signum)
                    work.run_piece(layer, group, chans, finished[0])
                    finished[0] += len(chans) * config.steps
                    if index == 0:
                        write_summary(job, config, model, layers, channels, start, complete=False)
            finally:
                progress.close()
        barrier("jfv-layer-finished", count)
        if index == 0:
            complete = all(job.is_done(piece_name(layer, g)) for layer, g, _ in pieces)
            manifest = write_summary(job, config, model, layers, channels, start, complete=complete)
        else:
            manifest = {"gallery": "index.html"}
    finally:
        job.close()
    return manifest


RECIPE = Recipe(run=run, check=check, resumable=True, run_keys=RUN_KEYS)
