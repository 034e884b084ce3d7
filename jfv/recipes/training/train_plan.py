"""What a ``train`` run computes with, built once from the config (``plan``): the learning-rate
schedule, the optimiser, the initial parameters, the compiled training steps, the device mesh and
the evaluation of each epoch."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections
import numpy as np

from jfv import training
from jfv.models import convnet
from jfv.models.resnet import merge_batch_stats
from jfv.recipes.common import ConfigError, make_mesh
from jfv.recipes.training.train_data import Data


WHITEN_SAMPLE = 5000  # training images the whitening layer is fitted on (airbench: 5,000)


def initial_params(config: ml_collections.ConfigDict, module: Any, key: jax.Array, train_images: np.ndarray,
                   train_labels: np.ndarray) -> Any:
    """The starting parameters; the convnet's whitening layer is fitted on ``WHITEN_SAMPLE``
    training images holding every class in proportion (``training.class_balanced``, drawn with the
    run's seed), not on the first ones, which the class-major archive makes all airplanes."""
    if isinstance(module, convnet.ConvNet):
        sample = training.class_balanced(train_labels, WHITEN_SAMPLE, int(config.seed))
        return convnet.initialise(module, key, train_images[sample])
    return module.init(key, jnp.zeros((1, 32, 32, 3), jnp.float32))["params"]


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


def plan(config: ml_collections.ConfigDict, module: Any, data: Data, processes: int = 1) -> Plan:
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
    # one process: evaluation splits its batches over the training mesh; several: process 0
    # evaluates alone (``epoch_row``), over its own devices
    eval_mesh = mesh if processes == 1 else (make_mesh(-1, "batch") if jax.local_device_count() > 1 else None)
    evaluate = evaluator(config, eval_module, data, eval_mesh)

    infer = lambda st: merge_batch_stats(st.params, st.batch_stats)  # noqa: E731
    return Plan(module, eval_module, schedule, tx, params0, key, steps_per_epoch, step_for, mesh, evaluate, infer,
                processes)


def eval_columns(config: ml_collections.ConfigDict, validating: bool) -> list[str]:
    """The evaluation columns of ``metrics.csv``, in order (the ``train`` recipe's docstring says what each means)."""
    tta = int(config.tta)
    cols = []
    for split in (("val", "test") if validating else ("test",)):
        cols += [f"{split}_loss", f"{split}_accuracy"] + ([f"{split}_accuracy_tta{tta}"] if tta else [])
    return cols


def evaluator(config: ml_collections.ConfigDict, eval_module: Any, data: Data,
              mesh: Mesh | None = None) -> Callable[[Any, bool], dict]:
    """``(params, last epoch?) -> {column: value or None}``: every epoch evaluates plainly (one
    forward pass an image) on the validation split if there is one, else on the test split; the
    last epoch adds test-time augmentation (level ``config.tta``) and, with validation, the test
    split, read only then. Data parallel (a ``mesh``): each batch is split over the devices as the
    training batches are."""
    tta, bs = int(config.tta), int(config.eval_batch_size)
    apply = lambda p, x: eval_module.apply({"params": p}, x)  # noqa: E731
    plain = training.make_eval(apply, tta=0, mesh=mesh)
    augmented = training.make_eval(apply, tta=tta, mesh=mesh) if tta else None
    columns = eval_columns(config, data.val is not None)

    def evaluate(params, last: bool) -> dict:
        out: dict = dict.fromkeys(columns)
        splits = ([("val", data.val)] if data.val is not None else []) + \
            ([("test", data.test)] if data.val is None or last else [])
        for split, (x, y) in splits:
            ev = training.evaluate(plain, params, x, y, bs, mesh)
            out[f"{split}_loss"], out[f"{split}_accuracy"] = round(ev.loss, 5), round(ev.accuracy, 5)
            if last and augmented is not None:
                out[f"{split}_accuracy_tta{tta}"] = round(training.evaluate(augmented, params, x, y, bs, mesh).accuracy, 5)
        return out

    return evaluate
