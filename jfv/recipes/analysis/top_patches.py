"""Recipe ``top_patches``: the dataset images and patches that most activate every channel, resumable.

``python -m jfv --config=configs/vgg16_top_patches.py --workdir=DIR`` runs two phases through one
``jfv.runtime.jobs.Job`` (the workdir policy of the layer job: ``job.json``, lock, atomic files, resume):

1. **The pass.** ``jfv.analysis.passes.run`` of ``topk.Step`` (one compiled step per batch: the
   model, then for every layer and reduction ``topk.scores`` and ``topk.merge``) streams the dataset
   once. It keeps the running ``TopK`` states and every image's score per channel (for the atlas's
   histograms). The state is checkpointed (``state/pass.npz``) every ``checkpoint_every`` batches
   and on SIGTERM/SIGINT with the ids already seen; a resumed pass streams only the images not yet seen. Because the top-k
   order (value descending, id ascending) is total and an image's scores are the same bits in any
   batch, the resumed result equals an uninterrupted one exactly. Unreadable images are skipped and
   counted. When the pass ends it writes ``topk.npz`` and ``scores.npz``.
2. **Patches**, in groups of ``group_size`` channels per layer (``records/patches_<layer>_g<gggg>.json``
   finishes a group): each hit's receptive-field patch, its Zeiler & Fergus deconvnet projection
   (models with switches: VGG16, AlexNet; other models get patches only, as the manifest says), PNGs
   per hit and a Fig. 2 sheet per channel and reduction.

Then ``layers/<layer>.json`` (every channel's hits, with image names, values, positions, boxes and
files), ``blocks.png`` (seed 003's "best feature map at each block" for ``block_image``),
``index.html`` and ``manifest.json``.

Writes into DIR: ``job.json``, ``topk.npz`` (``<layer>.<reduce>.values|ids|positions``),
``scores.npz`` (``<layer>.<reduce>``: (images, channels), row = image id), ``patches/<layer>/
<cccc>/<reduce>_<r>.png`` and ``..._proj.png``, ``sheets/<layer>_<cccc>_<reduce>.png``,
``layers/<layer>.json``, ``blocks.png``, ``index.html``, ``manifest.json``, ``records/``.

Across processes (``distributed=True``, ``jfv.runtime.distributed``; DIR a folder every process
sees): process p reads the images p, p + count, ... and checkpoints its own part of the pass; after
a barrier process 0 combines the parts into exactly the one-process pass (the same ``topk.npz``) and
writes it; the patch groups are then shared out (group g to process g % count), and process 0
writes the summary, the gallery and the manifest. A resume needs the same process count.

Zeiler & Fergus 2014, Fig. 2; Girshick et al. 2014, Fig. 4.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jfv.analysis import datasets, passes, patches, topk
from jfv import models
from jfv.runtime.distributed import barrier
from jfv.runtime.jobs import Interrupted, Job, StateError, StopFlag
from jfv.runtime.outputs import check_workdir, write_run
from jfv.recipes import Recipe
from jfv.analysis.top_patches import (  # noqa: F401  (their home is the library: jfv.top_patches writes them too)
    channel_hits, gallery, layer_summary as summary_of, npz_bytes, projector, write_hits,
)
from jfv.recipes.analysis.patch_pictures import blocks_figure
from jfv.recipes.common import (
    JOB_ABSENT, JOB_FIXES, ConfigError, config_model, in_config_terms, init_distributed, make_mesh, parse_channels, parse_list,
    report_skipped, run_info,
)
from jfv.recipes.photos import default_image

PASS = "pass"  # the piece name of the dataset pass
# Config keys that change no output: they may differ between a run and its resume.
RUN_KEYS = ("progress", "resume", "discard_state", "checkpoint_every", "prefetch_batches", "weights_dir", "devices",
            "shared_dir", "project_batch", "workers", "distributed", "coordinator_address", "num_processes", "process_id")


# -- configuration -----------------------------------------------------------------------------------


def check(config: ml_collections.ConfigDict) -> None:
    if int(config.k) < 1:
        raise ConfigError(f"k must be >= 1 (the top images kept per channel), got {config.k}")
    if int(config.get("workers", 0)) < 0:
        raise ConfigError(f"workers must be >= 0 (grain worker processes; 0: one background thread), got {config.workers}")
    for key in ("image_size", "batch_size", "group_size", "project_batch"):
        if int(config[key]) < 1:
            raise ConfigError(f"{key} must be >= 1, got {config[key]}")
    if int(config.checkpoint_every) < 0:
        raise ConfigError(f"checkpoint_every must be >= 0 batches (0: only on SIGTERM/SIGINT), got {config.checkpoint_every}")
    if int(config.patch_px) < 0 or int(config.limit) < 0:
        raise ConfigError("patch_px and limit must be >= 0 (0: the receptive field's size / every image)")
    mesh = make_mesh(int(config.get("devices", 0)), "batch")
    if mesh is not None and int(config.batch_size) % mesh.devices.size:
        d = mesh.devices.size
        raise ConfigError(f"batch_size={config.batch_size} does not split over devices={config.devices} ({d} devices): "
                          f"use a multiple of {d}, e.g. {-(-int(config.batch_size) // d) * d}")
    reductions = parse_list(config.reductions, "reductions", "max,mean")
    bad = [r for r in reductions if r not in topk.REDUCTIONS]
    if bad:
        raise ConfigError(f"unknown reductions {bad}; valid: {', '.join(topk.REDUCTIONS)}")
    if [r for r in projected(config) if r not in reductions]:
        raise ConfigError(f"project {config.project!r} names a reduction not in reductions {config.reductions!r}")


def make_source(config: ml_collections.ConfigDict) -> datasets.Source:
    """``dataset=cifar10`` (``split``, ``per_class``; 0 = all; read from ``cifar10_path``, in any form) or a
    folder of images (``labels_file``: a flat folder's ImageNet labels); the first ``limit`` images when
    ``limit`` > 0."""
    if config.dataset == "cifar10" and config.labels_file:
        raise ConfigError("labels_file labels a flat folder of ImageNet images (dataset=PATH); CIFAR-10 has its own: "
                          "set labels_file=\"\"")
    try:
        if config.dataset == "cifar10":
            source = datasets.cifar10(config.split, per_class=int(config.per_class) or None,
                                      archive=datasets.find_cifar10(config.cifar10_path, config.shared_dir))
        else:
            source = datasets.image_folder(config.dataset, labels_file=config.labels_file, shared=config.shared_dir)
    except datasets.DatasetError as e:
        raise in_config_terms(e, "cifar10_path", "shared_dir", "labels_file") from None
    if int(config.limit):
        source = source.take(int(config.limit))
    if not np.array_equal(source.ids, np.arange(len(source))):
        raise ConfigError(f"{source.description}: ids must number the images 0..n-1 (a source from jfv.analysis.datasets)")
    return source


def layer_channels(model: models.Model, layer: str, spec: str, image_size: int) -> list[int]:
    """``all`` or a range/list, for a layer whose units have patches at ``image_size``."""
    patches.check_layer(model, layer, image_size)
    if str(spec).strip() == "all":
        return list(range(model.check_layer(layer)))
    channels = parse_channels(spec)
    model.check_channels(layer, channels)
    return channels


def settings_of(config: ml_collections.ConfigDict, model: models.Model, source: datasets.Source) -> dict:
    """Everything that changes an output: the config less RUN_KEYS, the weights' digest and the data."""
    from jfv.models.weights import params_digest

    settings = {k: v for k, v in config.to_dict().items() if k not in RUN_KEYS}
    settings["params_sha256"] = params_digest(jax.device_get(model.params))
    settings["images"] = len(source)
    return settings


# -- the pass ----------------------------------------------------------------------------------------


def key(layer: str, reduce: str) -> str:
    return f"{layer}.{reduce}"


STEP = topk.Step(keep_scores=True)  # the pass's step: top-k states and every image's scores, "<layer>.<reduce>"


def run_pass(job: Job, model, source, layers, reductions, config, flag: StopFlag) -> passes.State:
    """``jfv.analysis.passes.run`` of ``STEP``: checkpointed every ``checkpoint_every`` batches and on a
    signal through the job; a resumed pass streams only the images not yet seen. In a distributed job
    each process streams its share and process 0 gets the combined pass (``passes.split``)."""
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=done, desc=f"{model.name} pass", unit="img",
                       file=__import__("sys").stderr, dynamic_ncols=True)
        else:
            bar.update(done - bar.n)

    try:
        return passes.run(model, source, STEP, topk.init_states(model, layers, int(config.k), reductions),
                          size=int(config.image_size), batch_size=int(config.batch_size),
                          prefetch=int(config.prefetch_batches), store=job, piece=PASS,
                          every=int(config.checkpoint_every), discard=config.discard_state,
                          progress=progress if config.progress else None, stop=flag,
                          mesh=make_mesh(int(config.get("devices", 0)), "batch"),
                          process=(job.process_index, job.process_count), workers=int(config.get("workers", 0)))
    except passes.CheckpointMismatch as e:
        if job.process_count > 1:
            raise StateError(f"{e} ({job.fixes['discard_state']} discards the pass's checkpoints)") from None
        raise StateError(f"the in-flight checkpoint {job.state_path(PASS)} does not fit this job (other layers, k or "
                         f"data); re-run with {job.fixes['discard_state']} to start the pass again") from None
    finally:
        if bar is not None:
            bar.close()


def finish_pass(job: Job, state: passes.State, source: datasets.Source) -> dict:
    topk_arrays = {f"{key(layer, r)}.{f}": np.asarray(v) for layer, per in state.carry.items()
                   for r, s in per.items() for f, v in s._asdict().items()}
    job.write_bytes("topk.npz", npz_bytes(topk_arrays))
    job.write_bytes("scores.npz", npz_bytes(state.outputs))
    record = {"images": len(source), "read": len(source) - len(state.skipped), "skipped": len(state.skipped),
              "skipped_files": [{"name": n, "reason": r} for n, r in state.skipped]}
    job.finish(PASS, record)
    for i in range(job.process_count if job.process_count > 1 else 0):  # the parts of a distributed pass
        job.drop_state(passes.part_name(PASS, i))
    job.drop_state(passes.layout_name(PASS))
    report_skipped(state.skipped, len(source), source.description)
    return record


def load_topk(job: Job, layers, reductions) -> dict[str, dict[str, topk.TopK]]:
    with np.load(job.path / "topk.npz", allow_pickle=False) as z:
        return {layer: {r: topk.TopK(*(z[f"{key(layer, r)}.{f}"] for f in topk.TopK._fields)) for r in reductions}
                for layer in layers}


# -- patches -------------------------------------------------------------------------------------------


def piece_name(layer: str, group: int) -> str:
    return f"patches_{layer}_g{group:04d}"


def projected(config) -> tuple[str, ...]:
    """The reductions whose hits get deconvnet projections (``project``: a list, or "" for none)."""
    return tuple(parse_list(config.project, "project", "max")) if config.project else ()


def run_piece(job: Job, model, source, layer, group, chans, states, reductions, config, project: bool) -> dict:
    """One group of channels: every reduction's hits as PNGs, a sheet per channel, the record."""
    records, drawn = channel_hits(model, source, layer, chans, states, reductions, int(config.image_size),
                                  patch_px=int(config.patch_px), clip=bool(config.clip),
                                  projected=projected(config) if project else (), project_batch=int(config.project_batch))
    write_hits(job, records, drawn)
    record = {"layer": layer, "group": group, "channels": [records[c] for c in chans]}
    job.finish(piece_name(layer, group), record)
    return record


def pieces(layers, channels, group_size: int) -> list[tuple[str, int, list[int]]]:
    out = []
    for layer in layers:
        cs = channels[layer]
        out += [(layer, g, cs[i : i + group_size]) for g, i in enumerate(range(0, len(cs), group_size))]
    return out


# -- the best feature map per block (seed 003) ----------------------------------------------------------


def block_image(config) -> tuple[str, np.ndarray]:
    from jfv.runtime.outputs import load_image

    path = config.block_image or default_image()
    try:
        return path, load_image(path, int(config.block_image_size))
    except OSError as e:
        raise ConfigError(f"block_image {path!r} cannot be read ({e}): pass --config.block_image=PATH to an image "
                          f"file") from None


# -- summary -------------------------------------------------------------------------------------------


def layer_summary(model, layer, chans, records, config, project_note: str) -> dict:
    return summary_of(model, layer, chans, records, int(config.image_size), int(config.patch_px), bool(config.clip),
                      project_note)


# -- the recipe ----------------------------------------------------------------------------------------


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    check_workdir(workdir)
    index, count = init_distributed(config)
    layers = parse_list(config.layers, "layers", "conv4_3,conv5_3")
    reductions = tuple(parse_list(config.reductions, "reductions", "max,mean"))
    source = make_source(config)
    model = config_model(config)
    datasets.converted_channels(model.from_rgb)  # an n-channel model without a converter fails here, with the fix
    channels = {layer: layer_channels(model, layer, config.channels, int(config.image_size)) for layer in layers}
    note = projector(model, layers)
    block = block_image(config) if not note else None

    job = Job(workdir, "top_patches", settings_of(config, model, source), resume=config.resume, fixes=JOB_FIXES,
              absent=JOB_ABSENT, process_index=index, process_count=count)
    try:
        job.start()
        with StopFlag() as flag:
            if not job.is_done(PASS):
                state = run_pass(job, model, source, layers, reductions, config, flag)
                if index == 0:  # the combined pass
                    finish_pass(job, state, source)
            barrier("jfv-top-patches-pass-written", count)
            pass_record = next(r for r in job.records() if r["piece"] == PASS)
            states = load_topk(job, layers, reductions)
            # the patch groups are shared out as the layer job's groups are: group g to process g % count
            for i, (layer, group, chans) in enumerate(pieces(layers, channels, int(config.group_size))):
                if i % count != index or job.is_done(piece_name(layer, group)):
                    continue
                if flag.stop:
                    raise Interrupted(f"{flag.name()}: stopped before the patches of {layer} group {group}; run the "
                                      f"same command again to resume", flag.signum)
                run_piece(job, model, source, layer, group, chans, states[layer], reductions, config, not note)
        barrier("jfv-top-patches-finished", count)
        if index != 0:
            return {"gallery": "index.html"}
        records = [r for r in job.records() if r["piece"] != PASS]
        summaries = {layer: layer_summary(model, layer, channels[layer], records, config, note) for layer in layers}
        for layer in layers:
            job.write_json(f"layers/{layer}.json", summaries[layer])
        blocks = None
        if block is not None:
            picture, rows = blocks_figure(model, block[1])
            job.save_png("blocks.png", picture)
            blocks = {"figure": "blocks.png", "image": block[0], "image_size": int(config.block_image_size),
                      "blocks": rows}
        manifest = {
            "recipe": "top_patches",
            "model": model.name,
            "model_source": model.source,
            "dataset": source.description,
            "processes": count,
            "images": pass_record["images"],
            "read": pass_record["read"],
            "skipped": pass_record["skipped"],
            "skipped_files": pass_record["skipped_files"][:50],
            "layers": {layer: {"channels": len(channels[layer]), "summary": f"layers/{layer}.json"} for layer in layers},
            "reductions": list(reductions),
            "k": int(config.k),
            "projections": note or "deconvnet with switches (Zeiler & Fergus 2014)",
            "topk": "topk.npz",
            "scores": "scores.npz",
            "best_feature_map_per_block": blocks or note,
            "settings": config.to_dict(),
            "gallery": "index.html",
        }
        manifest.update(run_info(start))
        header = {"model": model.name, "dataset": source.description,
                  "images read / skipped": f"{pass_record['read']} / {pass_record['skipped']}",
                  "layers": ", ".join(layers), "k": config.k, "image size": config.image_size,
                  "projections": manifest["projections"], "wall time of this run (s)": manifest["wall_time_s"]}
        write_run(job, manifest, model.name, page=gallery(model.name, layers, summaries, header, reductions[0]))
    finally:
        job.close()
    return manifest


RECIPE = Recipe(run=run, check=check, resumable=True, run_keys=RUN_KEYS)
