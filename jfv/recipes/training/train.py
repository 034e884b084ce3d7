"""Recipe ``train``: a CIFAR-10 classifier trained from scratch, resumable, watched as it learns.

``python -m jfv --config=configs/cifar10_train.py --workdir=DIR`` trains ``arch`` (the ``convnet``
of ``jfv.models.convnet``, or ``cifar_resnet20`` / 32 / 44 / 56) on CIFAR-10 (``cifar10_path``: the
python or binary release, packed or extracted; by default the JPEG archive in the shared folder) with SGD, a learning-rate schedule, weight decay, label smoothing and crop / flip
augmentation (``jfv.training``), and evaluates after every epoch: on the test split, or, with
``val_per_class`` > 0, on that many training images per class held out (``training.holdout``), the
test split then being read once, at the last epoch, so that settings are chosen on validation.

Workdir policy (``jfv.runtime.jobs``): ``job.json`` holds every setting that changes the weights; the same
command on the same DIR resumes, other settings are refused with the differing keys.
``checkpoints/ckpt_<epoch>_<step>/`` (orbax, with a manifest) is written after every epoch (the
last ``keep_checkpoints`` are kept) and on SIGTERM / SIGINT mid-epoch; the data order and each
step's augmentation depend only on (seed, epoch, step), so a resumed run ends with the same
weights as an uninterrupted one. A corrupt checkpoint is named, with the fix; nothing is deleted.

Writes into DIR: ``<arch>/`` (the trained network, ``cifar_convnet/`` or ``cifar_resnet20/``:
``jfv.models.load(<arch>, weights_dir=DIR)`` like any other model, so every AM, attribution and
atlas recipe runs on it with ``--config.model=<arch> --config.weights_dir=DIR``), ``metrics.csv``
(one row an epoch, one protocol a column: ``weights`` says which weights were evaluated,
``fast`` or, at the last epoch with lookahead, ``lookahead``; ``<split>_loss`` / ``<split>_accuracy``
evaluate them plainly, one forward pass an image, every epoch; ``<split>_accuracy_tta<k>`` with
test-time augmentation level k, at the last epoch only; ``test_*`` with a validation split only
at the last epoch), ``metrics.png``, ``evolution/`` (each epoch's first-layer filters and an AM image of one
tracked filter per layer; epoch 0 is the initialisation), ``filters_over_time.png`` and
``am_over_time.png`` (epochs down, filters / layers across), ``records/``, ``index.html`` and
``manifest.json``.

This module checks the config and runs the epochs; ``train_data`` reads the images, ``train_plan``
builds what the run computes with, ``snapshots`` draws ``evolution/`` and ``report`` writes the rest.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jfv.analysis import datasets
from jfv import models, training
from jfv.training import checkpoints
from jfv.runtime.jobs import Interrupted, Job, StopFlag
from jfv.models import cifar_resnet, convnet
from jfv.models.weights import save
from jfv.runtime.outputs import check_workdir
from jfv.recipes.common import (JOB_ABSENT, JOB_FIXES, ConfigError, make_mesh, check_int, check_positive, check_seed,
                                init_distributed, job_settings)
from jfv.runtime import distributed
from jfv.training import DivergedError  # noqa: F401  (raised here; its home is the library)
from jfv.recipes import Recipe
from jfv.recipes.training.report import result_accuracy, write_epoch, write_summary
from jfv.recipes.training.snapshots import Snapshots, conv_layers, snapshot
from jfv.recipes.training.train_data import Data, load_data
from jfv.recipes.training.train_plan import Plan, plan

ARCHS = ("convnet",) + tuple(e.name for e in cifar_resnet.ENTRIES)
STOP_EVERY = 10  # steps between the processes' agreements on a stop signal (a distributed run)
# Config keys that change nothing the run computes: they may differ between a run and its resume.
RUN_KEYS = ("progress", "resume", "shared_dir", "keep_checkpoints", "eval_batch_size", "devices", "distributed",
            "coordinator_address", "num_processes", "process_id")


# -- configuration -------------------------------------------------------------------------------


def parse_widths(spec: Any) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in str(spec).replace("(", "").replace(")", "").split(",") if w.strip())
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise ConfigError(f"widths must be channel counts per block, e.g. '32,128,128', got {spec!r}")
    return widths


def build_module(config) -> tuple[Any, dict]:
    """(training module, the fields that rebuild its inference twin) for ``config.arch``."""
    if config.arch not in ARCHS:
        raise ConfigError(f"unknown arch {config.arch!r}; valid: {', '.join(ARCHS)}")
    if config.arch == "convnet":
        fields = {"widths": list(parse_widths(config.widths)), "batch_norm": bool(config.batch_norm),
                  "padding": bool(config.padding), "whiten": bool(config.whiten)}
        if config.get("whiten_split", False):
            if not fields["whiten"]:
                raise ConfigError("whiten_split=True needs the whitening layer: set whiten=True, or whiten_split=False")
            fields["whiten_split"] = True
        module = convnet.ConvNet(**{**fields, "widths": tuple(fields["widths"])}, train=True)
        try:
            convnet.check_geometry(module)
            if int(config.get("small_epochs", 0)):
                convnet.check_geometry(module, int(config.get("small_size", 32)))
        except convnet.GeometryError as e:
            raise ConfigError(str(e)) from None
        return module, fields
    for key in ("batch_norm", "padding", "whiten"):
        if key in config and config[key] is not True and (key != "whiten" or config[key]):
            raise ConfigError(f"{key}={config[key]!r} is a convnet switch; {config.arch} always has batch norm and "
                              f"padding and no whitening: use arch=convnet, or leave {key} at its default")
    return models.entry(config.arch).module(train=True), {}


def check(config) -> None:
    for key in ("epochs", "batch_size", "learning_rate"):
        check_positive(config[key], key, {"epochs": 16, "batch_size": 1024, "learning_rate": 1.3}[key])
    if config.flip not in training.FLIPS:
        raise ConfigError(f"unknown flip {config.flip!r}; valid: {', '.join(training.FLIPS)} (alternate: airbench's "
                          f"alternating flip)")
    if config.schedule not in training.SCHEDULES:
        raise ConfigError(f"unknown schedule {config.schedule!r}; valid: {', '.join(training.SCHEDULES)}")
    if not 0 <= float(config.momentum) < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {config.momentum}")
    if not 0 <= float(config.label_smoothing) < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if float(config.weight_decay) < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {config.weight_decay}")
    check_positive(config.bias_lr_scale, "bias_lr_scale", 64)
    check_int(config.translate, "translate", 0, 8, "pixels of random shift each way")
    check_int(config.train_per_class, "train_per_class", 1, datasets.CIFAR10_PER_CLASS["train"])
    check_int(config.test_per_class, "test_per_class", 1, datasets.CIFAR10_PER_CLASS["test"])
    check_int(config.get("val_per_class", 0), "val_per_class", 0, int(config.train_per_class) - 1,
              "training images per class held out for validation (0: none, evaluate on the test split)")
    check_int(config.keep_checkpoints, "keep_checkpoints", 1)
    check_int(config.am_steps, "am_steps", 0, meaning="0 skips the AM snapshots")
    check_int(config.get("whiten_bias_epochs", 0), "whiten_bias_epochs", 0,
              meaning="the epochs the split whitening's bias trains before it holds")
    check_int(config.get("small_epochs", 0), "small_epochs", 0, int(config.epochs) - 1,
              "the first epochs, on small_size crops; the last one trains at 32 px")
    check_int(config.get("small_size", 32), "small_size", 8, 32, "the crop side of the small epochs")
    check_seed(config.seed)
    if config.tta not in (*training.TTA_LEVELS, True, False):
        raise ConfigError(f"tta must be 0 (none), 1 (mirror) or 2 (mirror and 1-pixel shifts, as airbench), "
                          f"got {config.tta!r}")
    mesh = make_mesh(int(config.get("devices", 0)), "batch")
    if mesh is not None and int(config.batch_size) % mesh.devices.size:
        d = mesh.devices.size
        raise ConfigError(f"batch_size={config.batch_size} does not split over devices={config.devices} ({d} devices): "
                          f"use a multiple of {d}, e.g. {-(-int(config.batch_size) // d) * d}")
    n = 10 * (int(config.train_per_class) - int(config.get("val_per_class", 0)))
    if int(config.batch_size) > n:
        raise ConfigError(f"batch_size={config.batch_size} is larger than the {n} training images "
                          f"(10 x (train_per_class - val_per_class)): use batch_size <= {n}")


def settings_of(config) -> dict:
    """The settings a resume must match: every key but ``RUN_KEYS``, and but the options of split
    whitening and progressive resizing while those are off or do not apply (so that a run recorded
    before they existed still resumes, and their details count only where they act)."""
    settings = job_settings(config, RUN_KEYS)
    if not settings.get("val_per_class"):
        settings.pop("val_per_class", None)
    for switch, details in (("whiten_split", ("whiten_bias_epochs",)), ("small_epochs", ("small_size",))):
        if not settings.get(switch) or (switch == "whiten_split" and settings.get("arch") != "convnet"):
            for key in (switch, *details):
                settings.pop(key, None)
    return settings


# -- the run -------------------------------------------------------------------------------------


def train_epoch(config, p: Plan, state, epoch: int, step: int, sums: dict, data, flag: StopFlag, path, bar):
    """Steps ``step..`` of ``epoch``; on a stop signal, checkpoints mid-epoch and raises Interrupted.

    Returns (state, sums) with the epoch's loss and correct counts and seconds added to ``sums``.
    """
    seed, b = int(config.seed), int(config.batch_size)
    x_dev, y_dev = data
    order = training.epoch_order(seed, epoch, len(x_dev), b)
    mirror = training.epoch_mirror(seed, epoch, len(x_dev)) if config.flip == "alternate" else None
    t0 = time.time()
    loss_sum, correct = jnp.float32(sums["loss"]), jnp.float32(sums["correct"])
    step_fn = p.step_for(epoch)
    for i in range(step, p.steps_per_epoch):
        # every process stops at the same step (one that stopped alone would leave the others in a collective)
        if flag.stop if p.processes == 1 else (i % STOP_EVERY == 0 and
                                                distributed.agree_to_stop(flag.stop, f"{epoch}-{i}", p.processes)):
            sums = {"loss": float(loss_sum), "correct": float(correct), "seconds": sums["seconds"] + time.time() - t0}
            where = checkpoints.save(path, state, epoch, i, sums, int(config.keep_checkpoints) + 1) \
                if jax.process_index() == 0 else path / checkpoints.FOLDER
            distributed.barrier(f"jfv-train-stopped-{epoch}-{i}", p.processes)
            raise Interrupted(f"{flag.name() or 'another process was stopped'}: checkpointed epoch {epoch} at step {i} "
                              f"in {where}; run the same command again to resume", flag.signum or signal.SIGTERM)
        state, (loss, c) = step_fn(state, x_dev, y_dev, jnp.asarray(order[i]), training.batch_key(seed, epoch, i),
                                   None if mirror is None else jnp.asarray(mirror[order[i]]))
        loss_sum, correct = loss_sum + loss, correct + c
        bar.update(1)
    sums = {"loss": float(loss_sum), "correct": float(correct), "seconds": sums["seconds"] + time.time() - t0}
    if not math.isfinite(sums["loss"]):
        raise DivergedError(f"training diverged in epoch {epoch} (the loss is {sums['loss']}); lower "
                            f"learning_rate (now {config.learning_rate}) and use a new --workdir or "
                            f"--config.resume=False")
    return state, sums


def epoch_row(config, p: Plan, state, epoch: int, sums: dict) -> tuple[dict, Any]:
    """The epoch's row of ``metrics.csv`` and the inference parameters it was evaluated with."""
    b, n = int(config.batch_size), p.steps_per_epoch
    params = p.infer(state)
    if p.processes > 1:  # process 0 evaluates alone, on its own device: the parameters on the host
        params = jax.device_get(params)
    last = epoch == int(config.epochs)
    row = {"epoch": epoch, "learning_rate": round(float(p.schedule(epoch * n - 1)), 6),
           "weights": "lookahead" if last and config.lookahead else "fast",
           "train_loss": round(sums["loss"] / n, 5), "train_accuracy": round(sums["correct"] / (n * b), 5),
           **p.evaluate(params, last),
           "seconds": round(sums["seconds"], 2), "images_per_second": round(n * b / max(sums["seconds"], 1e-9), 1)}
    return row, params


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    module, fields = build_module(config)
    arch = config.arch if config.arch != "convnet" else convnet.CIFAR_CONVNET.name
    check_workdir(workdir)
    index, count = init_distributed(config)
    data = load_data(config)

    settings = settings_of(config)
    if count > 1:  # a resume with another process count is refused, naming both (job.json's settings)
        settings["processes"] = count
    job = Job(workdir, "train", settings, resume=config.resume, fixes=JOB_FIXES, absent=JOB_ABSENT, process_index=index,
              process_count=count)
    try:
        job.start()
        return train(config, job, module, fields, arch, data, start)
    finally:
        job.close()


def run_extra(config: ml_collections.ConfigDict, p: Plan, data: Data, layers: list[str], tracked_channel: int,
              processes: int) -> dict:
    """What the manifest says of the run beyond its rows: the tracked filters, the data, the steps
    and how the batch splits over devices and processes."""
    devices = 1 if p.mesh is None else int(p.mesh.devices.size)
    return {"tracked": [(name, tracked_channel) for name in layers],
            "data": {"archive": str(data.archive), "train_images": len(data.train[0]), "test_images": len(data.test[0]),
                     "validation_images": 0 if data.val is None else len(data.val[0])},
            "steps_per_epoch": p.steps_per_epoch,
            "batch": {"global": int(config.batch_size), "devices": devices,
                      "per_device": int(config.batch_size) // devices},
            "processes": processes}


def write_epoch_outputs(config: ml_collections.ConfigDict, job: Job, p: Plan, state, epoch: int, sums: dict, module,
                        snaps: Snapshots | None, validating: bool, arch: str, start: float, extra: dict, bar) -> list[dict]:
    """(Process 0) the epoch's row of ``metrics.csv``, its snapshots, its record, its console line and
    the page; returns every epoch's row so far."""
    row, params = epoch_row(config, p, state, epoch, sums)
    snapshot(job, epoch, module, params, snaps)
    job.finish(f"epoch_{epoch:04d}", {"epoch": epoch, "metrics": row})
    rows = [r["metrics"] for r in job.records() if "metrics" in r]
    split = "val" if validating else "test"
    bar.set_postfix(epoch=epoch, loss=row["train_loss"], acc=row[f"{split}_accuracy"])
    if config.progress:
        bar.write(f"epoch {epoch}/{int(config.epochs)}: train loss {row['train_loss']:.3f} accuracy "
                  f"{row['train_accuracy']:.3f}, {split} accuracy {row[f'{split}_accuracy']:.4f} "
                  f"({row['seconds']:.0f} s, {row['images_per_second']:.0f} img/s)")
    write_epoch(job, config, arch, rows, start, extra, snaps is not None)
    return rows


def write_model(config: ml_collections.ConfigDict, job: Job, p: Plan, state, fields: dict, arch: str, rows: list[dict],
                start: float, extra: dict) -> dict:
    """(Process 0, at the end) the trained network in ``<arch>/`` (unless a resumed run saved it
    already), and the manifest and page that name it; returns the manifest."""
    path = job.path
    final = result_accuracy(rows[-1]) if rows else None
    if not (path / arch / "manifest.json").exists():
        save(path / arch, jax.device_get(p.infer(state)),
             {"model": arch, "module": fields, "trained_by": "jfv recipe train", "settings": settings_of(config),
              "test_accuracy": final, "epochs": int(config.epochs)})
    extra["model"] = {"path": arch, "load": f"jfv.models.load({arch!r}, weights_dir={str(path)!r})",
                      "test_accuracy": final,
                      "train_seconds": round(sum(r["seconds"] for r in rows), 1)}
    return write_summary(job, config, arch, rows, start, True, extra)


def train(config: ml_collections.ConfigDict, job: Job, module, fields: dict, arch: str, data: Data,
          start: float) -> dict[str, Any]:
    """The run inside its claimed workdir: resume from the newest checkpoint, train and evaluate each
    epoch, write the outputs as it goes, save the model at the end."""
    path, seed, epochs = job.path, int(config.seed), int(config.epochs)
    (x_train, y_train) = data.train
    first, count = job.process_index == 0, job.process_count  # process 0 writes; all train
    p = plan(config, module, data, count)
    state = training.init_state(module, p.key, p.tx, params=p.params0, lookahead=bool(config.lookahead))
    layers = conv_layers(module, p.params0)
    tracked_channel = int(config.track_channel)
    snaps = Snapshots(p.eval_module, p.infer(state), layers, [tracked_channel] * len(layers), int(config.am_steps),
                      seed) if int(config.am_steps) else None
    extra = run_extra(config, p, data, layers, tracked_channel, count)

    epoch, step, sums = 0, 0, {"loss": 0.0, "correct": 0.0, "seconds": 0.0}
    saved = checkpoints.checkpoints(path)
    if saved:
        state, manifest = checkpoints.load(saved[-1][2], state)
        epoch, step, sums = int(manifest["epoch"]), int(manifest["step"]), dict(manifest["sums"])
    if first and not job.is_done("epoch_0000"):
        snapshot(job, 0, module, p.infer(training.init_state(module, p.key, p.tx, params=p.params0)), snaps)
        job.finish("epoch_0000", {"epoch": 0})

    rows = [r["metrics"] for r in job.records() if "metrics" in r]
    on_device = (jnp.asarray(x_train), jnp.asarray(y_train))
    if p.mesh is not None:  # data parallel: the training set and the state on every device, each batch split
        replicated = jax.sharding.NamedSharding(p.mesh, jax.sharding.PartitionSpec())
        on_device, state = jax.device_put((on_device, state), replicated)
    from tqdm import tqdm

    total = p.steps_per_epoch * epochs
    bar = tqdm(total=total, initial=(epoch - 1) * p.steps_per_epoch + step if epoch else 0, unit="step",
               desc=f"train {arch}", file=sys.stderr, dynamic_ncols=True, disable=not (config.progress and first))
    try:
        with StopFlag() as flag:
            if epoch == 0:
                epoch, step = 1, 0
            while epoch <= epochs:
                if step < p.steps_per_epoch:
                    state, sums = train_epoch(config, p, state, epoch, step, sums, on_device, flag, path, bar)
                    step = p.steps_per_epoch
                    if epoch == epochs:  # lookahead: the slow weights, with the last steps % 5 steps folded in
                        state = training.finish_lookahead(state, training.lookahead_decay(state.step, p.steps_per_epoch * epochs))
                    if first:
                        checkpoints.save(path, state, epoch, step, sums, int(config.keep_checkpoints))
                if first and not job.is_done(f"epoch_{epoch:04d}"):
                    rows = write_epoch_outputs(config, job, p, state, epoch, sums, module, snaps, data.val is not None,
                                               arch, start, extra, bar)
                distributed.barrier(f"jfv-train-epoch-{epoch}", count)  # the others wait while process 0 writes
                epoch, step, sums = epoch + 1, 0, {"loss": 0.0, "correct": 0.0, "seconds": 0.0}
    finally:
        bar.close()

    if not first:
        distributed.barrier("jfv-train-finished", count)
        return {"gallery": "index.html"}
    manifest = write_model(config, job, p, state, fields, arch, rows, start, extra)
    distributed.barrier("jfv-train-finished", count)
    return manifest


RECIPE = Recipe(run=run, check=check, resumable=True, run_keys=RUN_KEYS)
