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
"""

from __future__ import annotations

import math
import signal
import re
import sys
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections
import numpy as np

from jfv.analysis import datasets, filters
from jfv import models, training
from jfv.training import checkpoints
from jfv.optvis import objectives, parameterisations, transforms
from jfv.optvis.engine import Engine
from jfv.runtime.jobs import Interrupted, Job, StopFlag
from jfv.models import cifar_resnet, convnet
from jfv.models.resnet import merge_batch_stats
from jfv.models.weights import save
from jfv.runtime.outputs import check_workdir, sprite
from jfv.recipes.common import (JOB_FIXES, ConfigError, make_mesh, check_int, check_positive, check_seed, cifar10_location,
                                init_distributed, job_settings)
from jfv.runtime import distributed
from jfv.training import DivergedError  # noqa: F401  (raised here; its home is the library)
from jfv.recipes import Recipe
from jfv.recipes.training.report import result_accuracy, write_epoch, write_summary

ARCHS = ("convnet",) + tuple(e.name for e in cifar_resnet.ENTRIES)
# Config keys that change nothing the run computes: they may differ between a run and its resume.
STOP_EVERY = 10  # steps between the processes' agreements on a stop signal (a distributed run)
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


# -- snapshots of what the network has learned ----------------------------------------------------


def conv_layers(module, params) -> list[str]:
    """The activations of the 3x3 convolutions, in order (``conv1``.. for the convnet, block outputs
    for the ResNets)."""
    if isinstance(module, convnet.ConvNet):
        return [k for k in params if re.fullmatch(r"conv\d+", k)]
    return ["conv1"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(module.blocks)]


def first_filters(module, params) -> np.ndarray:
    """The first trained layer's filters as RGB tiles (N, kh, kw, 3) in [0, 1], shared scaling."""
    kernel = convnet.rgb_filters(params) if isinstance(module, convnet.ConvNet) else np.asarray(params["conv1"]["kernel"])
    return np.asarray(filters.normalise_filters(kernel, "layer"))


class Snapshots:
    """AM images of one tracked channel per layer, one compiled program for every layer and epoch."""

    def __init__(self, eval_module, params, layers: list[str], channels: list[int], steps: int, seed: int):
        from jfv.models.base import Model
        import optax

        self.layers, self.channels, self.steps, self.seed = layers, channels, steps, seed
        model = Model("training", eval_module, params, {k: 0 for k in layers}, 32)
        tracked = list(zip(layers, channels))

        def objective_fn(c):
            def fn(acts):
                return jnp.stack([jnp.mean(acts[name][..., ch]) for name, ch in tracked])[c]
            return objectives.Objective(fn, "tracked filter", tuple(layers))

        self.engine = Engine.for_channels(model, objective_fn, parameterisations.image(32),
                                          transforms.compose(transforms.Jitter(2)), optax.adam(0.05))

    def render(self, params) -> np.ndarray:
        self.engine.use_params(params)
        out = self.engine.render(list(range(len(self.layers))), jax.random.key(self.seed), self.steps)
        return out.images[:, 0]


# -- the run -------------------------------------------------------------------------------------


class Data(NamedTuple):
    """A run's images: (uint8 images, labels) per split; ``val`` is None without a validation split."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]
    archive: Any


def load_data(config) -> Data:
    """The training and test images of the archive, with ``val_per_class`` of each class's training
    images held out for validation (the same images for every seed)."""
    archive = cifar10_location(config)
    data = datasets.cifar10_subsets(archive, {"train": config.train_per_class, "test": config.test_per_class})
    (x, y), val = data["train"], None
    if int(config.get("val_per_class", 0)):
        keep, held = training.holdout(y, int(config.val_per_class))
        (x, y), val = (x[keep], y[keep]), (x[held], y[held])
    return Data((x, y), val, data["test"], archive)


WHITEN_SAMPLE = 5000  # training images the whitening layer is fitted on (airbench: 5,000)


def initial_params(config, module, key, train_images, train_labels):
    """The starting parameters; the convnet's whitening layer is fitted on ``WHITEN_SAMPLE``
    training images holding every class in proportion (``training.class_balanced``, drawn with the
    run's seed), not on the first ones, which the class-major archive makes all airplanes."""
    if isinstance(module, convnet.ConvNet):
        sample = training.class_balanced(train_labels, WHITEN_SAMPLE, int(config.seed))
        return convnet.initialise(module, key, train_images[sample])
    return module.init(key, jnp.zeros((1, 32, 32, 3), jnp.float32))["params"]


def upscale(tiles: np.ndarray, px: int) -> np.ndarray:
    s = max(1, px // tiles.shape[1])
    return np.repeat(np.repeat(tiles, s, axis=1), s, axis=2)


def snapshot(job: Job, epoch: int, module, params, snaps: Snapshots | None) -> None:
    params = jax.device_get(params)  # on the host: the snapshots' program runs on the default device
    tiles = upscale(first_filters(module, params), 16)
    job.save_png(f"evolution/filters_{epoch:04d}.png", sprite(list(tiles), columns=len(tiles), pad=1))
    if snaps is not None:
        am = upscale(snaps.render(params), 64)
        job.save_png(f"evolution/am_{epoch:04d}.png", sprite(list(am), columns=len(am), pad=2))


class Plan(NamedTuple):
    """What a training run computes with, built once from the config."""

    module: Any
    eval_module: Any
    schedule: Callable
    tx: Any
    params0: Any
    key: Any
    steps_per_epoch: int
    step_for: Callable[[int], Callable]
    mesh: Any  # a jax.sharding.Mesh the batch is sharded over (data parallel), or None
    evaluate: Callable[[Any, bool], dict]  # (params, last epoch?) -> the row's evaluation columns
    infer: Callable
    processes: int = 1  # the processes of a distributed run (the mesh then spans all their devices)


def global_mesh(batch_size: int) -> Mesh:
    """Every device of every process of a distributed run, one ``batch`` axis (``jax.devices()`` is
    global under ``jax.distributed``); refuses a global batch they do not divide."""
    devices = jax.devices()
    if batch_size % len(devices):
        d = len(devices)
        raise ConfigError(f"batch_size={batch_size} does not split over the {d} devices of {jax.process_count()} "
                          f"processes: use a multiple of {d}, e.g. {-(-batch_size // d) * d}")
    return Mesh(np.array(devices), ("batch",))


def plan(config, module, data: Data, processes: int = 1) -> Plan:
    """The schedule, optimiser, initial parameters, compiled steps and evaluations of a run; over
    ``processes`` > 1 the batch is sharded over every device of every process (``global_mesh``)."""
    seed, b, epochs = int(config.seed), int(config.batch_size), int(config.epochs)
    x_train, y_train = data.train
    steps_per_epoch = len(x_train) // b
    total = steps_per_epoch * epochs
    schedule = training.lr_schedule(config.schedule, float(config.learning_rate), total, float(config.warmup))
    tx = training.optimiser(schedule, float(config.momentum), bool(config.nesterov), float(config.weight_decay),
                            float(config.bias_lr_scale), frozen=("whiten/kernel",), plain=("whiten/bias",),
                            freeze_bn_scale=bool(config.freeze_bn_scale))
    key = jax.random.key(seed)
    params0 = initial_params(config, module, key, x_train, y_train)
    step_args = (module, tx, float(config.label_smoothing), int(config.translate), config.flip == "random")
    mesh = global_mesh(b) if processes > 1 else make_mesh(int(config.get("devices", 0)), "batch")
    # split whitening: its bias trains for the first whiten_bias_epochs epochs, then holds (airbench),
    # which spares the first conv's input gradient; the first small_epochs train on small_size crops
    bias_epochs = int(config.get("whiten_bias_epochs", 0)) if config.get("whiten_split", False) else epochs
    small_epochs, small_size = int(config.get("small_epochs", 0)), int(config.get("small_size", 32))
    compiled: dict = {}

    def step_for(epoch: int) -> Callable:
        kind = (small_size if epoch <= small_epochs else None, ("whiten/bias",) if epoch > bias_epochs else ())
        if kind not in compiled:
            compiled[kind] = training.make_step(*step_args, total_steps=total, size=kind[0], hold=kind[1], mesh=mesh)
        return compiled[kind]

    eval_module = module.clone(train=False)
    evaluate = evaluator(config, eval_module, data)

    infer = lambda st: merge_batch_stats(st.params, st.batch_stats)  # noqa: E731
    return Plan(module, eval_module, schedule, tx, params0, key, steps_per_epoch, step_for, mesh, evaluate, infer,
                processes)


def eval_columns(config, validating: bool) -> list[str]:
    """The evaluation columns of ``metrics.csv``, in order (see the module docstring)."""
    tta = int(config.tta)
    cols = []
    for split in (("val", "test") if validating else ("test",)):
        cols += [f"{split}_loss", f"{split}_accuracy"] + ([f"{split}_accuracy_tta{tta}"] if tta else [])
    return cols


def evaluator(config, eval_module, data: Data) -> Callable[[Any, bool], dict]:
    """``(params, last epoch?) -> {column: value or None}``: every epoch evaluates plainly (one
    forward pass an image) on the validation split if there is one, else on the test split; the
    last epoch adds test-time augmentation (level ``config.tta``) and, with validation, the test
    split, read only then."""
    tta, bs = int(config.tta), int(config.eval_batch_size)
    apply = lambda p, x: eval_module.apply({"params": p}, x)  # noqa: E731
    plain = training.make_eval(apply, tta=0)
    augmented = training.make_eval(apply, tta=tta) if tta else None
    columns = eval_columns(config, data.val is not None)

    def evaluate(params, last: bool) -> dict:
        out: dict = dict.fromkeys(columns)
        splits = ([("val", data.val)] if data.val is not None else []) + \
            ([("test", data.test)] if data.val is None or last else [])
        for split, (x, y) in splits:
            ev = training.evaluate(plain, params, x, y, bs)
            out[f"{split}_loss"], out[f"{split}_accuracy"] = round(ev.loss, 5), round(ev.accuracy, 5)
            if last and augmented is not None:
                out[f"{split}_accuracy_tta{tta}"] = round(training.evaluate(augmented, params, x, y, bs).accuracy, 5)
        return out

    return evaluate


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
    job = Job(workdir, "train", settings, resume=config.resume, fixes=JOB_FIXES, process_index=index,
              process_count=count)
    try:
        job.start()
        return train(config, job, module, fields, arch, data, start)
    finally:
        job.close()


def train(config, job: Job, module, fields, arch, data: Data, start) -> dict[str, Any]:
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
    extra = {"tracked": [(name, tracked_channel) for name in layers],
             "data": {"archive": str(data.archive), "train_images": len(x_train), "test_images": len(data.test[0]),
                      "validation_images": 0 if data.val is None else len(data.val[0])},
             "steps_per_epoch": p.steps_per_epoch,
             "batch": {"global": int(config.batch_size), "devices": 1 if p.mesh is None else int(p.mesh.devices.size),
                       "per_device": int(config.batch_size) // (1 if p.mesh is None else int(p.mesh.devices.size))},
             "processes": count}

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
                    row, params = epoch_row(config, p, state, epoch, sums)
                    snapshot(job, epoch, module, params, snaps)
                    job.finish(f"epoch_{epoch:04d}", {"epoch": epoch, "metrics": row})
                    rows = [r["metrics"] for r in job.records() if "metrics" in r]
                    split = "val" if data.val is not None else "test"
                    bar.set_postfix(epoch=epoch, loss=row["train_loss"], acc=row[f"{split}_accuracy"])
                    if config.progress:
                        bar.write(f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.3f} accuracy "
                                  f"{row['train_accuracy']:.3f}, {split} accuracy {row[f'{split}_accuracy']:.4f} "
                                  f"({row['seconds']:.0f} s, {row['images_per_second']:.0f} img/s)")
                    write_epoch(job, config, arch, rows, start, extra, snaps is not None)
                distributed.barrier(f"jfv-train-epoch-{epoch}", count)  # the others wait while process 0 writes
                epoch, step, sums = epoch + 1, 0, {"loss": 0.0, "correct": 0.0, "seconds": 0.0}
    finally:
        bar.close()

    if not first:
        distributed.barrier("jfv-train-finished", count)
        return {"gallery": "index.html"}
    final = result_accuracy(rows[-1]) if rows else None
    if not (path / arch / "manifest.json").exists():
        save(path / arch, jax.device_get(p.infer(state)),
             {"model": arch, "module": fields, "trained_by": "jfv recipe train", "settings": settings_of(config),
              "test_accuracy": final, "epochs": epochs})
    extra["model"] = {"path": arch, "load": f"jfv.models.load({arch!r}, weights_dir={str(path)!r})",
                      "test_accuracy": final,
                      "train_seconds": round(sum(r["seconds"] for r in rows), 1)}
    manifest = write_summary(job, config, arch, rows, start, True, extra)
    distributed.barrier("jfv-train-finished", count)
    return manifest


RECIPE = Recipe(run=run, check=check, resumable=True, run_keys=RUN_KEYS)
