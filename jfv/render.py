"""The AM engine: ``render`` optimises one image, ``render_channels`` many channels at once.

``render`` runs the whole optimisation of one parameterised image as a compiled ``lax.scan``.
``render_channels`` is the only ``vmap``: it renders a list of channels in groups of ``batch_size``
(memory), optionally sharding each group's channel axis over a device mesh (model parameters
replicated). Long runs advance in chunks of ``chunk`` steps so a progress callback can sit between
compiled calls; chunking never changes the result.

Keys: channel ``c`` is rendered with ``fold_in(key, c)``; its initial parameters use the first half
of ``split`` of that key, and step ``t``'s transforms ``fold_in(second half, t)``. So a channel's
image depends only on (key, channel, settings): the same alone or among 512, with any batch size,
chunk size or device count.

Erhan et al. 2009 (activation maximisation); Olah et al. 2017 and Lucid's ``optvis.render``.

Example:
    >>> model = jfv.models.load("vgg16")
    >>> out = render_channels(model, lambda c: objectives.channel("conv4_3", c),
    ...                       parameterisations.image(128), transforms.standard(),
    ...                       optax.adam(0.05), channels=[48, 62], key=jax.random.key(0), steps=256)
    >>> out.images.shape
    (2, 1, 128, 128, 3)
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jfv import objectives as objectives_lib
from jfv.models.base import Model
from jfv.parameterisations import ImageParam
from jfv.transforms import Transform

Array = jax.Array
ObjectiveFn = Callable[[Array], objectives_lib.Objective]
ProgressFn = Callable[[int, int], None]


class RenderState(NamedTuple):
    """What one render carries between steps (a leading channel axis in ``render_channels``)."""

    params: Any  # the image parameterisation's pytree
    opt_state: optax.OptState
    step: Array  # int32 steps taken so far
    key: Array  # the key that step t folds t into


class Rendered(NamedTuple):
    """Result of a render.

    images: (n, H, W, 3) in [0, 1] for ``render``; (C, n, H, W, 3) for ``render_channels``.
    objective: the objective on the final, untransformed images; scalar or (C,).
    history: the objective (under that step's transforms) before every step; (steps,) or (C, steps).
    """

    images: Array
    objective: Array
    history: Array


def _acts(model: Model, model_params: Any, images: Array, x: Array) -> dict[str, Array]:
    acts = dict(model.apply(model_params, x))
    acts[objectives_lib.INPUT] = images
    return acts


def _init(param: ImageParam, optimiser: optax.GradientTransformation, key: Array) -> RenderState:
    k_init, k_steps = jax.random.split(key)
    p = param.init(k_init)
    return RenderState(p, optimiser.init(p), jnp.zeros((), jnp.int32), k_steps)


def _advance(model, objective, param, transforms, optimiser, n_steps, model_params, state):
    """``n_steps`` optimisation steps of one image as a ``lax.scan``. Pure."""

    def loss(p, key):
        images = param.to_image(p)
        x = transforms(key, images)
        return -objective(_acts(model, model_params, images, x))

    def step(s: RenderState, _):
        key = jax.random.fold_in(s.key, s.step)
        value, grads = jax.value_and_grad(loss)(s.params, key)
        updates, opt_state = optimiser.update(grads, s.opt_state, s.params)
        params = optax.apply_updates(s.params, updates)
        return RenderState(params, opt_state, s.step + 1, s.key), -value

    if n_steps > UNROLL_LIMIT:
        return jax.lax.scan(step, state, None, length=n_steps)
    # XLA:CPU runs convolutions inside a while loop (even a one-trip loop, which is what
    # scan(unroll=True) emits) at less than half their speed (jax#12868), so short chunks are
    # traced as straight-line code.
    values = []
    for _ in range(n_steps):
        state, v = step(state, None)
        values.append(v)
    return state, jnp.stack(values)


def _final(model, objective, param, model_params, state):
    images = param.to_image(state.params)
    return images, objective(_acts(model, model_params, images, images))


UNROLL_LIMIT = 2  # chunks of at most this many steps are compiled unrolled


def default_chunk() -> int:
    """Steps per compiled call: 1 on CPU (an unrolled step; see ``_advance``), 64 on accelerators."""
    return 1 if jax.default_backend() == "cpu" else 64


def _chunks(steps: int, chunk: int | None) -> int:
    """The largest divisor of ``steps`` not above ``chunk`` (one compiled chunk size per run)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if chunk is None:
        chunk = default_chunk()
    if chunk >= steps:
        return steps
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return max(d for d in range(1, chunk + 1) if steps % d == 0)


class _Program(NamedTuple):
    init: Callable
    advance: Callable
    final: Callable


@functools.lru_cache(maxsize=64)
def _single_program(model, objective, param, transforms, optimiser, chunk) -> _Program:
    return _Program(
        init=jax.jit(functools.partial(_init, param, optimiser)),
        advance=jax.jit(functools.partial(_advance, model, objective, param, transforms, optimiser, chunk)),
        final=jax.jit(functools.partial(_final, model, objective, param)),
    )


def render(
    model: Model,
    objective: objectives_lib.Objective,
    param: ImageParam,
    transforms: Transform,
    optimiser: optax.GradientTransformation,
    key: Array,
    steps: int,
    *,
    chunk: int | None = None,
    progress: ProgressFn | None = None,
) -> Rendered:
    """Maximises ``objective`` over one parameterised image with a compiled scan.

    Args:
        model: the network (its params are passed to the compiled step, not baked in).
        objective: what to maximise (subtract penalties).
        param: the image parameterisation.
        transforms: a pure (key, images) -> images applied before the model at every step.
        optimiser: any optax GradientTransformation; it minimises minus the objective.
        key: a PRNG key; the same key gives the same image.
        steps: optimisation steps.
        chunk: steps per compiled call (default ``default_chunk()``); the result does not depend
            on it.
        progress: called as ``progress(steps_done, steps)`` after every chunk.

    Returns:
        Rendered(images (n, H, W, 3), objective (), history (steps,)).
    """
    _check_layers(model, objective)
    size = _chunks(steps, chunk)
    prog = _single_program(model, objective, param, transforms, optimiser, size)
    state = prog.init(key)
    history = []
    for done in range(size, steps + 1, size):
        state, h = prog.advance(model.params, state)
        history.append(h)
        if progress:
            jax.block_until_ready(state)  # dispatch is asynchronous: report finished work only
            progress(done, steps)
    images, value = prog.final(model.params, state)
    return Rendered(images, value, jnp.concatenate(history))


def _check_layers(model: Model, objective: objectives_lib.Objective) -> None:
    for name in objective.layers:
        model.check_layer(name)


# ---------------------------------------------------------------------------------------------
# Many channels: the one vmap.


def _channels_advance(model, objective_fn, param, transforms, optimiser, n_steps, model_params, state, channels):
    def one(s, c):
        return _advance(model, objective_fn(c), param, transforms, optimiser, n_steps, model_params, s)

    return jax.vmap(one)(state, channels)


def _channels_final(model, objective_fn, param, model_params, state, channels):
    def one(s, c):
        return _final(model, objective_fn(c), param, model_params, s)

    return jax.vmap(one)(state, channels)


def _channels_init(param, optimiser, key, channels):
    keys = jax.vmap(lambda c: jax.random.fold_in(key, c))(channels)
    return jax.vmap(functools.partial(_init, param, optimiser))(keys)


@functools.lru_cache(maxsize=64)
def _channels_program(model, objective_fn, param, transforms, optimiser, chunk, mesh) -> _Program:
    def build(f, n_args):
        if mesh is None:
            return jax.jit(f)
        # The first argument (model params or the base key) is replicated; the rest (state,
        # channels) carry a leading channel axis that the mesh's first axis shards.
        sharded = NamedSharding(mesh, P(mesh.axis_names[0]))
        replicated = NamedSharding(mesh, P())
        return jax.jit(f, in_shardings=(replicated,) + (sharded,) * (n_args - 1), out_shardings=sharded)

    return _Program(
        init=build(functools.partial(_channels_init, param, optimiser), 2),
        advance=build(
            functools.partial(_channels_advance, model, objective_fn, param, transforms, optimiser, chunk), 3
        ),
        final=build(functools.partial(_channels_final, model, objective_fn, param), 3),
    )


def channel_key(key: Array, channel: int) -> Array:
    """The key ``render_channels`` renders ``channel`` with: ``fold_in(key, channel)``."""
    return jax.random.fold_in(key, channel)


def render_channels(
    model: Model,
    objective_fn: ObjectiveFn,
    param: ImageParam,
    transforms: Transform,
    optimiser: optax.GradientTransformation,
    channels: Sequence[int],
    key: Array,
    steps: int,
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    chunk: int | None = None,
    progress: ProgressFn | None = None,
) -> Rendered:
    """Renders one image per channel, vmapped, in groups of ``batch_size``, sharded over ``mesh``.

    Channel ``c`` gets exactly ``render(model, objective_fn(c), ..., key=channel_key(key, c))``.

    Args:
        objective_fn: channel index (a traced int32) -> Objective, e.g.
            ``lambda c: objectives.channel("conv4_3", c)``. Pass the same function object on every
            call to reuse the compiled program.
        channels: the channel indices.
        batch_size: channels per compiled call (default: all); bounds memory. With a mesh it is
            rounded up to a multiple of the number of devices.
        mesh: a ``jax.sharding.Mesh`` whose first axis shards the channel axis; None runs on the
            default device.
        chunk, progress: as in ``render``; progress counts channel-steps.

    Returns:
        Rendered(images (C, n, H, W, 3), objective (C,), history (C, steps)), as numpy arrays.
    """
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("render_channels needs at least one channel")
    _check_layers(model, objective_fn(channels[0]))
    n = len(channels)
    batch = n if batch_size is None else max(1, min(int(batch_size), n))
    if mesh is not None:
        d = mesh.devices.size
        batch = int(math.ceil(batch / d) * d)
    size = _chunks(steps, chunk)
    prog = _channels_program(model, objective_fn, param, transforms, optimiser, size, mesh)
    model_params = model.params
    if mesh is not None:
        model_params = jax.device_put(model_params, NamedSharding(mesh, P()))

    total = n * steps
    done = 0
    images, values, histories = [], [], []
    for start in range(0, n, batch):
        group = channels[start : start + batch]
        padded = group + [group[-1]] * (batch - len(group))  # static shapes: one compile per run
        cs = jnp.asarray(padded, jnp.int32)
        if mesh is not None:
            cs = jax.device_put(cs, NamedSharding(mesh, P(mesh.axis_names[0])))
        state = prog.init(key, cs)
        hist = []
        for _ in range(steps // size):
            state, h = prog.advance(model_params, state, cs)
            hist.append(h)
            done += size * len(group)
            if progress:
                jax.block_until_ready(state)  # dispatch is asynchronous: report finished work only
                progress(done, total)
        imgs, vals = prog.final(model_params, state, cs)
        k = len(group)
        images.append(np.asarray(imgs)[:k])
        values.append(np.asarray(vals)[:k])
        histories.append(np.concatenate([np.asarray(x) for x in hist], axis=1)[:k])
    return Rendered(np.concatenate(images), np.concatenate(values), np.concatenate(histories))


# ---------------------------------------------------------------------------------------------
# Sweeps: channels x regulariser strengths in one vmapped computation.


class Setup(NamedTuple):
    """What ``render_sweep``'s ``make(channel, value)`` returns for one cell of a sweep.

    transforms None means the sweep's ``transforms`` argument.
    """

    objective: objectives_lib.Objective
    optimiser: optax.GradientTransformation
    transforms: Transform | None = None


SetupFn = Callable[[Array, Array], "Setup | tuple"]


def _setup(make, transforms, c, v) -> Setup:
    out = make(c, v)
    s = Setup(*out)
    return s if s.transforms is not None else s._replace(transforms=transforms)


def _sweep_init(make, param, transforms, key, channels, values):
    def one(c, v):
        s = _setup(make, transforms, c, v)
        return _init(param, s.optimiser, jax.random.fold_in(key, c))

    return jax.vmap(one)(channels, values)


def _sweep_advance(model, make, param, transforms, n_steps, model_params, state, channels, values):
    def one(st, c, v):
        s = _setup(make, transforms, c, v)
        return _advance(model, s.objective, param, s.transforms, s.optimiser, n_steps, model_params, st)

    return jax.vmap(one)(state, channels, values)


def _sweep_final(model, make, param, transforms, model_params, state, channels, values):
    def one(st, c, v):
        s = _setup(make, transforms, c, v)
        return _final(model, s.objective, param, model_params, st)

    return jax.vmap(one)(state, channels, values)


@functools.lru_cache(maxsize=64)
def _sweep_program(model, make, param, transforms, chunk) -> _Program:
    return _Program(
        init=jax.jit(functools.partial(_sweep_init, make, param, transforms)),
        advance=jax.jit(functools.partial(_sweep_advance, model, make, param, transforms, chunk)),
        final=jax.jit(functools.partial(_sweep_final, model, make, param, transforms)),
    )


def render_sweep(
    model: Model,
    make: SetupFn,
    param: ImageParam,
    transforms: Transform,
    channels: Sequence[int],
    values: Any,
    key: Array,
    steps: int,
    *,
    batch_size: int | None = None,
    chunk: int | None = None,
    progress: ProgressFn | None = None,
) -> Rendered:
    """Renders the cross product of ``channels`` and regulariser ``values`` as one vmapped program.

    Cell (c, v) is exactly ``render(model, objective, param, transforms', optimiser,
    key=channel_key(key, c), steps)`` with ``objective, optimiser[, transforms'] = make(c, v)``: the
    same key for every value of a channel, so the images differ only by the regulariser. All cells
    share one compilation, so ``make`` must build arrays of the same shapes for every value: a
    penalty weight, a decay, a blur sigma (with a static radius), a percentile, a ``UniformScale`` /
    ``UniformRotate`` range may all be traced. Strengths that change shapes (``Jitter`` pixels,
    ``Pad``, image size, octaves) cannot: loop over them, one compilation per shape.

    Args:
        make: ``(channel int32, value) -> Setup(objective, optimiser, transforms=None)`` (or the
            tuple), called with traced arguments. Pass the same function object to reuse the
            compiled program.
        param: the image parameterisation, shared by all cells.
        transforms: transforms for cells whose Setup has none.
        channels: C channel indices.
        values: V strengths, an array of shape (V,) or (V, k) (k numbers per value, e.g. a preset).
        batch_size: cells per compiled call (default: all C x V); bounds memory.
        chunk, progress: as in ``render``; progress counts cell-steps.

    Returns:
        Rendered(images (C, V, n, H, W, 3), objective (C, V), history (C, V, steps)), numpy arrays.

    Example:
        >>> make = lambda c, lam: (objectives.channel("conv4_3", c) + lam * objectives.total_variation(),
        ...                        optax.adam(0.05))
        >>> out = render_sweep(model, make, pixel(64), identity(), [48, 62], [-0.01, -0.001], key, 64)
        >>> out.images.shape
        (2, 2, 1, 64, 64, 3)
    """
    channels = [int(c) for c in channels]
    vals = np.asarray(values, np.float32)
    if not channels or vals.ndim < 1 or len(vals) == 0:
        raise ValueError("render_sweep needs at least one channel and one value")
    n_c, n_v = len(channels), len(vals)
    s0 = _setup(make, transforms, np.int32(channels[0]), vals[0])
    _check_layers(model, s0.objective)
    cells_c = np.repeat(np.asarray(channels, np.int32), n_v)
    cells_v = np.tile(vals, (n_c,) + (1,) * (vals.ndim - 1))
    n = n_c * n_v
    batch = n if batch_size is None else max(1, min(int(batch_size), n))
    size = _chunks(steps, chunk)
    prog = _sweep_program(model, make, param, transforms, size)

    total, done = n * steps, 0
    images, objective_values, histories = [], [], []
    for start in range(0, n, batch):
        k = min(batch, n - start)
        idx = np.arange(start, start + batch).clip(max=n - 1)  # pad with the last cell: one compile
        cs, vs = jnp.asarray(cells_c[idx]), jnp.asarray(cells_v[idx])
        state = prog.init(key, cs, vs)
        hist = []
        for _ in range(steps // size):
            state, h = prog.advance(model.params, state, cs, vs)
            hist.append(h)
            done += size * k
            if progress:
                progress(done, total)
        imgs, v = prog.final(model.params, state, cs, vs)
        images.append(np.asarray(imgs)[:k])
        objective_values.append(np.asarray(v)[:k])
        histories.append(np.concatenate([np.asarray(x) for x in hist], axis=1)[:k])
    images = np.concatenate(images)
    return Rendered(
        images.reshape((n_c, n_v) + images.shape[1:]),
        np.concatenate(objective_values).reshape(n_c, n_v),
        np.concatenate(histories).reshape(n_c, n_v, steps),
    )


__all__ = [
    "RenderState",
    "Rendered",
    "Setup",
    "channel_key",
    "default_chunk",
    "render",
    "render_channels",
    "render_sweep",
]
