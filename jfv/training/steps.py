"""Training a classifier from scratch: augmentation, schedule, optimiser, a jitted step, evaluation.

Pure pieces the ``train`` recipe composes (and a notebook can too):

- ``augment(key, images, translate, flip, mirror)``: uint8 NHWC -> float [0, 1], each image shifted
  by up to ``translate`` pixels (reflect padding, then a random crop) and mirrored with probability
  1/2, or where ``mirror`` says; labels are untouched.
- ``epoch_mirror``: airbench's alternating flip: each image mirrored in every other epoch, starting
  from a random half, so two consecutive epochs show every image both ways.
- ``lr_schedule``: ``triangular`` (from ``start`` x peak up to the peak at ``warmup`` of the run,
  then linearly to 0, as airbench), ``cosine`` (linear warmup, cosine decay) or ``constant``.
- ``optimiser``: SGD with (Nesterov) momentum and weight decay (coupled, as torch's) on conv / linear kernels
  only; parameters named in ``frozen`` (the whitening kernel) never move.
- ``lookahead_update``: airbench's lookahead (slow weights, an EMA every 5 steps, the fast ones
  reset to them), an option of ``init_state`` / ``make_step``;
- ``make_step``: one jitted training step, ``(state, data, indices, key) -> (state, (loss, correct))``;
  the whole training set stays on the device and a step gathers its batch by index. Options: hold
  named parameters (no gradient, no update) and train on smaller crops (progressive resizing).
- ``class_balanced``, ``holdout``: a sample with every class in proportion (the whitening layer's
  fitting images), and a class-balanced validation split disjoint from training.
- ``epoch_order``, ``batch_key``: the data order and augmentation of epoch e depend only on
  (seed, e), so an epoch resumed from a checkpoint repeats exactly.
- ``evaluate``: accuracy and mean loss, optionally with test-time augmentation (``tta_logits``:
  mirror, or mirror and 1-pixel shifts as airbench).

Jordan 2024 (airbench) for the schedule, label smoothing and translate-by-2 augmentation;
He et al. 2016 for crop-and-flip augmentation.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

Array = jax.Array
SCHEDULES = ("triangular", "cosine", "constant")
FLIPS = ("none", "random", "alternate")
DECAYED = ("kernel",)  # parameter names that weight decay applies to (not BN scale / bias)


class TrainState(NamedTuple):
    """Everything one training step changes."""

    params: Any
    batch_stats: Any
    opt_state: Any
    step: Array  # int32 steps taken
    # (params, batch_stats) averaged by ``lookahead``; None (an empty pytree) when it is off
    slow: Any = None


def augment(key: Array, images: Array, translate: int = 2, flip: bool = True, mirror: Array | None = None,
            size: int | None = None) -> Array:
    """Random translation (reflect-padded crop) and horizontal mirror of uint8 images; float out.

    Args:
        key: one key for the batch (each image draws its own offsets and flip from it).
        images: (N, H, W, C) uint8 (or float in [0, 1]).
        translate: the largest shift in pixels each way (0: none).
        flip: mirror each image with probability 1/2.
        mirror: (N,) bool: mirror exactly these images instead (``flip`` is then ignored).
        size: the side of the square crop (None: the images' own); smaller crops are random
            windows of the padded image (progressive resizing's cheaper early epochs).

    Returns:
        (N, size, size, C) float32 in [0, 1] ((N, H, W, C) when ``size`` is None).
    """
    x = images.astype(jnp.float32) / (255.0 if images.dtype == jnp.uint8 else 1.0)
    n, h, w, _ = x.shape
    ch, cw = (h, w) if size is None else (int(size), int(size))
    k_shift, k_flip = jax.random.split(key)
    if translate or (ch, cw) != (h, w):
        t = int(translate)
        padded = jnp.pad(x, ((0, 0), (t, t), (t, t), (0, 0)), mode="reflect") if t else x
        high = jnp.asarray([h + 2 * t - ch, w + 2 * t - cw]) + 1
        offsets = jax.random.randint(k_shift, (n, 2), 0, high)
        x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (ch, cw, im.shape[-1])))(padded, offsets)
    if mirror is None and flip:
        mirror = jax.random.bernoulli(k_flip, 0.5, (n,))
    if mirror is not None:
        x = jnp.where(mirror[:, None, None, None], x[:, :, ::-1], x)
    return x


def epoch_mirror(seed: int, epoch: int, n: int) -> np.ndarray:
    """(n,) bool: which training images epoch ``epoch`` (from 1) mirrors under airbench's alternating
    flip. A random half (fixed by ``seed``) in odd epochs and the other half in even ones, so every
    image is seen both ways in any two consecutive epochs, where independent coin flips repeat the
    same view half the time (Jordan 2024)."""
    first = np.random.default_rng([int(seed), 0xF11B]).random(n) < 0.5
    return first if int(epoch) % 2 == 1 else ~first


def lr_schedule(kind: str, peak: float, total_steps: int, warmup: float = 0.2, start: float = 0.2) -> optax.Schedule:
    """The learning rate at each step (see the module docstring for the shapes)."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    total = max(int(total_steps), 1)
    rise = max(int(round(warmup * total)), 1)
    if kind == "constant":
        return optax.constant_schedule(peak)
    if kind == "cosine":
        return optax.warmup_cosine_decay_schedule(start * peak, peak, rise, total, 0.0)

    def tri(step):
        s = jnp.asarray(step, jnp.float32)
        return peak * jnp.interp(s, jnp.asarray([0.0, rise, total], jnp.float32), jnp.asarray([start, 1.0, 0.0]))

    return tri


def named(path: Sequence[Any], names: Sequence[str]) -> bool:
    """Whether a parameter's tree path is in ``names``, by its top-level name or as ``top/leaf``."""
    return path[0].key in names or f"{path[0].key}/{path[-1].key}" in names


def param_groups(params: Any, frozen: Sequence[str] = (), freeze_bn_scale: bool = False,
                 plain: Sequence[str] = ()) -> Any:
    """Each leaf's group: ``frozen`` (``named`` in ``frozen``, or a BatchNorm scale when
    ``freeze_bn_scale``), ``kernel`` (conv and linear kernels, and those ``named`` in ``plain``) or
    ``bias`` (everything else)."""
    def label(path, _):
        if named(path, frozen) or (freeze_bn_scale and path[-1].key == "scale"):
            return "frozen"
        return "kernel" if path[-1].key in DECAYED or named(path, plain) else "bias"

    return jax.tree_util.tree_map_with_path(label, params)


def optimiser(schedule: optax.Schedule, momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 5e-4,
              bias_lr_scale: float = 1.0, frozen: Sequence[str] = (), freeze_bn_scale: bool = False,
              plain: Sequence[str] = ()) -> optax.GradientTransformation:
    """SGD with (Nesterov) momentum and weight decay coupled as in torch's SGD (``g + wd * p``).

    Kernels step with ``schedule`` and decay ``weight_decay``; biases (BN shifts included) step
    ``bias_lr_scale`` times faster with ``weight_decay / bias_lr_scale``, so both shrink by the
    same ``lr * wd`` a step (airbench's bias scaling); ``param_groups`` says which is which.
    """
    def sgd(scale):
        lr = schedule if scale == 1 else (lambda step: scale * schedule(step))
        return optax.sgd(lr, momentum=momentum or None, nesterov=bool(nesterov and momentum))

    transforms = {
        "kernel": optax.chain(optax.add_decayed_weights(weight_decay), sgd(1.0)),
        "bias": optax.chain(optax.add_decayed_weights(weight_decay / bias_lr_scale), sgd(bias_lr_scale)),
        "frozen": optax.set_to_zero(),
    }
    return optax.multi_transform(transforms, functools.partial(param_groups, frozen=tuple(frozen),
                                                                freeze_bn_scale=freeze_bn_scale, plain=tuple(plain)))


def cross_entropy(logits: Array, labels: Array, label_smoothing: float = 0.0) -> Array:
    """Mean softmax cross-entropy against one-hot labels smoothed by ``label_smoothing``."""
    target = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return jnp.mean(optax.softmax_cross_entropy(logits, target))


def init_state(module: nn.Module, key: Array, tx: optax.GradientTransformation, image_size: int = 32,
               params: Any = None, lookahead: bool = False) -> TrainState:
    """Fresh (or given) params, zero/one running statistics and the optimiser's initial state; with
    ``lookahead`` also the slow copy of (params, batch_stats) that ``lookahead_update`` averages."""
    variables = module.init(key, jnp.zeros((1, image_size, image_size, 3), jnp.float32))
    p = variables["params"] if params is None else params
    stats = variables.get("batch_stats", {})
    slow = jax.tree.map(jnp.array, (p, stats)) if lookahead else None
    return TrainState(p, stats, tx.init(p), jnp.zeros((), jnp.int32), slow)


LOOKAHEAD_EVERY = 5  # airbench: every 5 steps
LOOKAHEAD_DECAY = 0.95**5  # the slow weights' largest decay, reached at the last step


def lookahead_decay(step: Array, total_steps: int) -> Array:
    """airbench's schedule: ``0.95**5 * (step / total)**3``: no averaging early, most at the end."""
    return LOOKAHEAD_DECAY * (jnp.asarray(step, jnp.float32) / max(int(total_steps), 1)) ** 3


def lookahead_update(state: TrainState, decay: Array, every: int = LOOKAHEAD_EVERY) -> TrainState:
    """Lookahead as airbench (Zhang et al. 2019, with an EMA): after every ``every``-th step the slow
    copy moves ``1 - decay`` of the way to the fast weights and the fast weights (params and BN
    statistics) are reset to it; other steps leave both. ``decay=1`` copies the slow weights back."""
    if state.slow is None:
        return state
    due = state.step % every == 0
    fast = (state.params, state.batch_stats)
    moved = jax.tree.map(lambda s, f: s + (1.0 - decay) * (f - s), state.slow, fast)
    slow = jax.tree.map(lambda m, s: jnp.where(due, m, s), moved, state.slow)
    params, stats = jax.tree.map(lambda m, f: jnp.where(due, m, f), moved, fast)
    return state._replace(params=params, batch_stats=stats, slow=slow)


def finish_lookahead(state: TrainState, decay: Array | float | None = None, every: int = LOOKAHEAD_EVERY) -> TrainState:
    """The end of training: the fast weights become the slow ones.

    With ``decay=None`` this is airbench's ending (``update(decay=1.0)``): the steps taken since the
    last update (``step % every`` of them) are dropped. With a ``decay`` (the recipe passes
    ``lookahead_decay(total, total)``), those steps are not lost: when ``step % every != 0`` the
    slow copy first moves ``1 - decay`` of the way to the fast weights, as a full window would.
    """
    if state.slow is None:
        return state
    if decay is not None:
        pending = jnp.asarray(state.step) % every != 0
        moved = jax.tree.map(lambda s, f: s + (1.0 - decay) * (f - s), state.slow, (state.params, state.batch_stats))
        state = state._replace(slow=jax.tree.map(lambda m, s: jnp.where(pending, m, s), moved, state.slow))
    params, stats = state.slow
    return state._replace(params=params, batch_stats=stats)


def make_step(module: nn.Module, tx: optax.GradientTransformation, label_smoothing: float = 0.0,
              translate: int = 2, flip: bool = True, total_steps: int = 0, hold: Sequence[str] = (),
              size: int | None = None, mesh: Mesh | None = None) -> Callable:
    """The jitted step ``(state, images, labels, indices, key, mirror=None) -> (state, (loss, correct))``.

    ``images`` (N, H, W, 3) uint8 and ``labels`` (N,) stay on the device; ``indices`` (B,) picks the
    batch; ``mirror`` (B,) bool, when given, says which of its images to mirror (``epoch_mirror``)
    in place of random flips; ``module`` must be the training variant (BN on batch statistics). A
    state with a slow copy (``init_state(lookahead=True)``) gets ``lookahead_update`` on
    ``total_steps``'s schedule. Parameters named in ``hold`` (``top`` or ``top/leaf``) keep their
    values: no gradient reaches them (so none is computed for them) and their update is zero, as
    for a torch parameter with ``requires_grad=False`` (airbench freezes the whitening bias so).
    ``size`` trains on random ``size`` x ``size`` crops (``augment``).

    Data parallel: with a ``mesh`` the batch is sharded over its first axis (B a multiple of its
    size) and the state replicated. XLA partitions the step, so each device runs its share of the
    batch and the mean loss, its gradients and the BatchNorm statistics are reductions over the
    global batch: the numbers are one device's with the same global batch, to float tolerance.
    """
    hold = tuple(hold)
    if mesh is not None:
        data, replicated = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])), NamedSharding(mesh, PartitionSpec())
        shard = lambda a: jax.lax.with_sharding_constraint(a, data)  # noqa: E731
        replicate = lambda tree: jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, replicated), tree)  # noqa: E731
    else:
        shard = replicate = lambda a: a  # noqa: E731

    def loss_fn(params, batch_stats, x, y):
        if hold:
            params = jax.tree_util.tree_map_with_path(
                lambda path, p: jax.lax.stop_gradient(p) if named(path, hold) else p, params)
        out, updated = module.apply({"params": params, "batch_stats": batch_stats}, x, mutable=["batch_stats"])
        logits = out["logits"]
        return cross_entropy(logits, y, label_smoothing), (updated.get("batch_stats", {}), logits)

    @jax.jit
    def step(state: TrainState, images, labels, indices, key, mirror=None):
        if state.slow is not None and total_steps < 1:
            raise ValueError("a state with lookahead needs make_step(..., total_steps=the run's steps) for its schedule")
        x = augment(key, shard(images[indices]), translate, flip, None if mirror is None else shard(mirror), size)
        y = shard(labels[indices])
        (loss, (stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.batch_stats, x, y)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        if hold:
            updates = jax.tree_util.tree_map_with_path(lambda path, u: jnp.zeros_like(u) if named(path, hold) else u,
                                                       updates)
        params = optax.apply_updates(state.params, updates)
        correct = jnp.sum(jnp.argmax(logits, -1) == y)
        new = TrainState(params, stats, opt_state, state.step + 1, state.slow)
        if state.slow is not None:
            new = lookahead_update(new, lookahead_decay(new.step, total_steps))
        return replicate(new), (loss, correct)

    return step


def class_balanced(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` images (all, when ``n`` >= their count) holding every class in
    proportion to its share of ``labels`` (largest remainders round), drawn at random within each
    class with a generator fixed by ``seed``.

    The whitening layer is fitted on such a sample: the CIFAR-10 archive is read class-major, so its
    first 5,000 images are all airplanes.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * (int(n) / len(labels))
    take = np.floor(share).astype(int)
    take[np.argsort(-(share - take), kind="stable")[: int(n) - int(take.sum())]] += 1
    rng = np.random.default_rng([int(seed), 0x5A4D])
    picked = [rng.choice(np.flatnonzero(labels == c), k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


VALIDATION_SEED = 0x0A11  # one validation split for every seed, so seeds are compared on the same images


def holdout(labels: np.ndarray, per_class: int, seed: int = VALIDATION_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), both sorted and disjoint: ``per_class`` images of every
    class, drawn at random (fixed by ``seed``), are held out for validation; the rest train."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), 0x7A1])
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if int(per_class) >= len(members):
            raise ValueError(f"cannot hold out {per_class} images of class {c}: it has {len(members)}")
        val.append(rng.choice(members, int(per_class), replace=False))
    val_idx = np.sort(np.concatenate(val)).astype(np.int64) if val else np.zeros(0, np.int64)
    keep = np.ones(len(labels), bool)
    keep[val_idx] = False
    return np.flatnonzero(keep).astype(np.int64), val_idx


def epoch_order(seed: int, epoch: int, n: int, batch_size: int) -> np.ndarray:
    """(steps, batch_size) indices of epoch ``epoch``: a permutation fixed by (seed, epoch), the
    incomplete last batch dropped."""
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
    steps = n // batch_size
    return order[: steps * batch_size].reshape(steps, batch_size).astype(np.int32)


def batch_key(seed: int, epoch: int, step: int) -> Array:
    """The augmentation key of one step, fixed by (seed, epoch, step)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(int(seed)), int(epoch)), int(step))


class Evaluation(NamedTuple):
    accuracy: float
    loss: float
    predictions: np.ndarray  # (N,) argmax class


TTA_LEVELS = (0, 1, 2)


def tta_logits(apply: Callable[[Any, Array], Mapping[str, Array]], params: Any, x: Array, level: int) -> Array:
    """Test-time augmentation as airbench's ``infer`` (Jordan 2024), on [0, 1] images (N, H, W, C).

    Level 0: the logits of ``x``. Level 1: the mean of ``x``'s and its mirror's. Level 2: half level
    1, plus half the mean of level 1 on ``x`` shifted by one pixel up-left and by one down-right
    (reflect padding): six forward passes.
    """
    def logits(v):
        return apply(params, v)["logits"]

    def mirrored(v):
        return 0.5 * (logits(v) + logits(v[:, :, ::-1])) if level >= 1 else logits(v)

    out = mirrored(x)
    if level >= 2:
        h, w = x.shape[1:3]
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        shifted = 0.5 * (mirrored(padded[:, :h, :w]) + mirrored(padded[:, 2 : h + 2, 2 : w + 2]))
        out = 0.5 * out + 0.5 * shifted
    return out


def make_eval(apply: Callable[[Any, Array], Mapping[str, Array]], tta: int | bool = 0, mesh: Mesh | None = None) -> Callable:
    """Jitted ``(params, images uint8, labels, mask) -> (loss sum, correct, predictions)`` for one
    batch; ``tta`` is ``tta_logits``'s level (True: 1, mirror only). With a ``mesh`` (pass the same
    one to ``evaluate``) the batch is split over its first axis, each device scoring its share, and
    the predictions come back whole on every device."""
    level = int(tta)
    if level not in TTA_LEVELS:
        raise ValueError(f"tta must be one of {TTA_LEVELS} (0 none, 1 mirror, 2 mirror and 1-pixel shifts), got {tta!r}")
    if mesh is not None:
        data, whole = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])), NamedSharding(mesh, PartitionSpec())
        shard = lambda a: jax.lax.with_sharding_constraint(a, data)  # noqa: E731
        gather = lambda a: jax.lax.with_sharding_constraint(a, whole)  # noqa: E731
    else:
        shard = gather = lambda a: a  # noqa: E731

    @jax.jit
    def ev(params, images, labels, mask):
        images, labels, mask = shard(images), shard(labels), shard(mask)
        x = images.astype(jnp.float32) / 255.0
        logits = tta_logits(apply, params, x, level)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        pred = jnp.argmax(logits, -1)
        return gather(jnp.sum(losses * mask)), gather(jnp.sum((pred == labels) * mask)), gather(pred)

    return ev


def evaluate(ev: Callable, params: Any, images: np.ndarray, labels: np.ndarray, batch_size: int = 500,
             mesh: Mesh | None = None) -> Evaluation:
    """Accuracy and mean loss over all images, in batches of one shape (the last one padded). With
    the ``mesh`` ``ev`` was made for, each batch (``batch_size`` rounded up to a multiple of the mesh's
    size) goes to the devices already split, also over several processes (each holds every image)."""
    n = len(images)
    if mesh is not None:
        batch_size = -(-int(batch_size) // mesh.size) * mesh.size
        split = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
        put = lambda a: jax.device_put(a, split)  # noqa: E731
    else:
        put = jnp.asarray
    loss = correct = 0.0
    preds = []
    for start in range(0, n, batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        k = len(x)
        mask = np.zeros(batch_size, np.float32)
        mask[:k] = 1
        if k < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - k, *x.shape[1:]), x.dtype)])
            y = np.concatenate([y, np.zeros(batch_size - k, y.dtype)])
        l, c, p = ev(params, put(x), put(y), put(mask))
        loss, correct = loss + float(l), correct + float(c)
        preds.append(np.asarray(p)[:k])
    return Evaluation(correct / n, loss / n, np.concatenate(preds))


class DivergedError(ValueError):
    """The training loss became non-finite; the message names the epoch and the fix."""


__all__ = ["DivergedError", "Evaluation", "FLIPS", "SCHEDULES", "TrainState", "VALIDATION_SEED", "augment", "batch_key",
           "class_balanced", "cross_entropy", "holdout", "epoch_mirror", "epoch_order", "evaluate",
           "init_state", "lr_schedule", "lookahead_decay", "lookahead_update", "finish_lookahead", "make_eval", "make_step", "optimiser", "param_groups", "TTA_LEVELS", "tta_logits"]
