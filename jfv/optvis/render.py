"""Rendering: ``render`` optimises one image; ``render_channels`` and ``render_sweep`` many cells.

``render`` is the readable one-image reference (and the test oracle): a Python loop over one
compiled optimisation step. ``render_channels`` (one image per channel) and ``render_sweep`` (channels
x regulariser values) are thin callers of ``jfv.optvis.engine.Engine``, which owns the compiled programs,
vmaps cells in groups of ``batch_size``, shards them over a mesh and checks every chunk.

Each call of these functions builds its programs afresh (no global cache holds models or their
parameters alive): to render several times with one setting, hold an ``Engine`` and call its
``render`` / ``render_cells``; a second call with other channels or values compiles nothing.

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
from typing import Any, Callable, Sequence

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from jfv.optvis import objectives as objectives_lib
from jfv.optvis.engine import (
    Engine,
    NonFiniteError,
    Rendered,
    RenderState,
    Setup,
    SetupFn,
    channel_key,
    default_chunk,
    final_cell,
    init_cell,
    step_cell,
)
from jfv.models.base import Model
from jfv.optvis.parameterisations import ImageParam
from jfv.optvis.transforms import Transform

Array = jax.Array
ObjectiveFn = Callable[[Array], objectives_lib.Objective]
ProgressFn = Callable[[int, int], None]


def check_layers(model: Model, objective: objectives_lib.Objective) -> None:
    """Refuses an objective that reads a layer the model does not have, before compiling."""
    for name in objective.layers:
        model.check_layer(name)


def render(
    model: Model,
    objective: objectives_lib.Objective,
    param: ImageParam,
    transforms: Transform,
    optimiser: optax.GradientTransformation,
    key: Array,
    steps: int,
    *,
    progress: ProgressFn | None = None,
    transparency: bool = False,
) -> Rendered:
    """Maximises ``objective`` over one parameterised image: the readable reference.

    ``state = init(key)``; ``steps`` times ``state = step(state)`` (one compiled step: the loss is
    minus the objective of the model's activations of ``transforms(fold_in(key', t), image)``, the
    optimiser's update is applied); the result is the untransformed image and its objective.

    Args:
        model: the network (its params are passed to the compiled step, not baked in).
        objective: what to maximise (subtract penalties).
        param: the image parameterisation.
        transforms: a pure (key, images) -> images applied before the model at every step.
        optimiser: any optax GradientTransformation; it minimises minus the objective.
        key: a PRNG key; the same key gives the same image.
        steps: optimisation steps.
        progress: called as ``progress(steps_done, steps)`` after every step.
        transparency: also return the sum over steps of ``|d objective / d image|`` (n, H, W, 3).

    Returns:
        Rendered(images (n, H, W, 3), objective (), history (steps,), transparency or None), numpy arrays.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    check_layers(model, objective)
    step = jax.jit(functools.partial(step_cell, model, objective, param, transforms, optimiser))
    state = jax.jit(functools.partial(init_cell, param, optimiser, transparency=transparency))(key)
    history = []
    for t in range(steps):
        state, value = step(model.params, state)
        history.append(float(value))
        if progress:
            progress(t + 1, steps)
    images, value = jax.jit(functools.partial(final_cell, model, objective, param))(model.params, state)
    acc = None if state.transparency is None else np.asarray(state.transparency)
    return Rendered(np.asarray(images), np.asarray(value), np.asarray(history, np.float32), acc)


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
    # The engine's options, spelt out in every caller's signature on purpose (render_sweep and
    # octaves.render_octaves repeat them): **kwargs would hide them from help() and the docs.
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    chunk: int | None = None,
    progress: ProgressFn | None = None,
    transparency: bool = False,
) -> Rendered:
    """Renders one image per channel, vmapped, in groups of ``batch_size``, sharded over ``mesh``.

    Channel ``c`` gets exactly ``render(model, objective_fn(c), ..., key=channel_key(key, c))``.
    ``Engine.for_channels(model, objective_fn, param, transforms, optimiser).render(channels, ...)``
    does the same with programs you keep.

    Args:
        objective_fn: channel index (a traced int32) -> Objective, e.g.
            ``lambda c: objectives.channel("conv4_3", c)``.
        channels: the channel indices.
        batch_size: channels per compiled call (default: all); bounds memory. With a mesh it is
            rounded up to a multiple of the number of devices.
        mesh: a ``jax.sharding.Mesh`` whose first axis shards the channel axis; None runs on the
            default device.
        chunk: steps per compiled call (default ``default_chunk()``); the result does not depend on it.
        progress: called as ``progress(channel_steps_done, total)`` after every chunk.
        transparency: also return each channel's sum over steps of ``|d objective / d image|``.

    Returns:
        Rendered(images (C, n, H, W, 3), objective (C,), history (C, steps), transparency
        (C, n, H, W, 3) or None), as numpy arrays.
    """
    engine = Engine.for_channels(model, objective_fn, param, transforms, optimiser, chunk=chunk, mesh=mesh,
                                 transparency=transparency)
    return engine.render(channels, key, steps, batch_size=batch_size, progress=progress)


def sweep_cells(channels: Sequence[int], values: Any) -> tuple[np.ndarray, np.ndarray]:
    """The cells of channels x values, channel-major: (C*V,) channels and (C*V, ...) values."""
    vals = np.asarray(values, np.float32)
    if not len(channels) or vals.ndim < 1 or len(vals) == 0:
        raise ValueError("a sweep needs at least one channel and one value")
    cells_c = np.repeat(np.asarray(channels, np.int32), len(vals))
    cells_v = np.tile(vals, (len(channels),) + (1,) * (vals.ndim - 1))
    return cells_c, cells_v


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
    # render_channels's engine options, spelt out again on purpose: **kwargs would hide them from help() and the docs.
    batch_size: int | None = None,
    mesh: Mesh | None = None,
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
    ``Pad``, image size, octaves) cannot: loop over them, one engine per shape.

    Args:
        make: ``(channel int32, value) -> Setup(objective, optimiser, transforms=None)`` (or the
            tuple), called with traced arguments.
        param: the image parameterisation, shared by all cells.
        transforms: transforms for cells whose Setup has none.
        channels: C channel indices.
        values: V strengths, an array of shape (V,) or (V, k) (k numbers per value, e.g. a preset).
        batch_size: cells per compiled call (default: all C x V); bounds memory.
        mesh: as in ``render_channels``.
        chunk: as in ``render_channels``.
        progress: as in ``render_channels``; it counts cell-steps.

    Returns:
        Rendered(images (C, V, n, H, W, 3), objective (C, V), history (C, V, steps)), numpy arrays.

    Example:
        >>> make = lambda c, lam: (objectives.channel("conv4_3", c) + lam * objectives.total_variation(),
        ...                        optax.adam(0.05))
        >>> out = render_sweep(model, make, pixel(64), identity(), [48, 62], [-0.01, -0.001], key, 64)
        >>> out.images.shape
        (2, 2, 1, 64, 64, 3)
    """
    cells_c, cells_v = sweep_cells(channels, values)
    engine = Engine(model, make, param, transforms, chunk=chunk, mesh=mesh)
    return reshape_sweep(engine.render_cells(cells_c, cells_v, key, steps, batch_size=batch_size, progress=progress),
                         len(channels))


def reshape_sweep(out: Rendered, n_channels: int) -> Rendered:
    """(C*V, ...) cells back to (C, V, ...)."""
    n_v = len(out.objective) // n_channels
    return Rendered(*(None if x is None else x.reshape((n_channels, n_v) + x.shape[1:]) for x in out))


# The engine's public types, re-exported here for callers that imported them from jfv.optvis.render.
FROM_ENGINE = ("Engine", "NonFiniteError", "RenderState", "Rendered", "Setup", "channel_key", "default_chunk")
__all__ = [*FROM_ENGINE, "check_layers", "render", "render_channels", "render_sweep", "reshape_sweep", "sweep_cells"]
