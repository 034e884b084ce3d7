"""Octave scale-up: render in stages at growing image sizes, carrying the image between them.

Stage i renders at ``round(size * scale**i)`` pixels for ``steps`` steps; between stages the pixel
parameters are resized with ``jax.image.resize`` (bilinear) and the optimiser state starts afresh
(Adam's moments have the old shape). Low frequencies settle at the small sizes, detail is added at
the large ones. Mordvintsev et al. 2015 ("Inceptionism"; DeepDream's octaves), Olah et al. 2017;
the seed tests factors 1.0-1.2.

Octaves carry *pixels*, so they need a parameterisation without a Fourier basis
(``parameterisations.pixel``, ``sigmoid`` or ``decorrelated``: all store one value per pixel, and
resizing commutes with their per-pixel colour map). A Fourier spectrum would have to be re-fitted to
the resized image; jfv refuses it with a clear error instead.

Transparency (MACO's attribution map, ``transparency=True``): each stage's engine adds
``|d objective / d image|`` at every step to the map, as ``Engine(transparency=True)`` does; between
stages the map is resized with the pixels (bilinear, ``resize``: values, not mass) and the next stage
keeps adding to it. So the final map is the sum over every step of every stage of the gradient
magnitude, each stage's earlier sum seen at the last stage's size. One stage equals the engine's map.

Every stage compiles once per image size (shapes change). Pass the same ``engines`` dict to several
calls to reuse the stage engines (and their compiled programs) of earlier calls at the same size.

Example:
    >>> schedule = Octaves(octaves=3, scale=1.2, steps=64)
    >>> schedule.sizes(64)
    (64, 77, 92)
    >>> out = render_octaves(model, lambda c: objectives.channel("conv4_3", c), pixel(64),
    ...                      transforms.identity(), optax.adam(0.05), [48], key, schedule)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfv import imageops
from jfv.optvis.engine import Engine, Rendered, RenderState, Setup
from jfv.models.base import Model
from jfv.optvis.parameterisations import ImageParam
from jfv.optvis.transforms import Transform

if TYPE_CHECKING:
    from jfv.optvis import objectives

Array = jax.Array
RESIZE_METHOD = "bilinear"  # what imageops.resize does (jax.image.resize "linear"); a name users may read


@dataclasses.dataclass(frozen=True)
class Octaves:
    """A schedule of render stages: ``octaves`` stages, each ``scale`` times larger, ``steps`` each.

    Attributes:
        octaves: number of stages, >= 1 (1 is a plain render).
        scale: size factor between consecutive stages, >= 1 (the seed tests 1.0-1.2).
        steps: optimisation steps per stage, >= 1.
    """

    octaves: int
    scale: float
    steps: int

    def __post_init__(self):
        if int(self.octaves) != self.octaves or self.octaves < 1:
            raise ValueError(f"octaves must be a whole number >= 1, got {self.octaves}")
        if not self.scale >= 1.0:
            raise ValueError(f"octave scale factor must be >= 1 (each stage at least as large), got {self.scale:g}")
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps per octave must be a whole number >= 1, got {self.steps}")

    def sizes(self, size: int) -> tuple[int, ...]:
        """Image side of each stage: ``round(size * scale**i)`` for i = 0..octaves-1."""
        return tuple(int(round(size * self.scale**i)) for i in range(self.octaves))

    @property
    def total_steps(self) -> int:
        return self.octaves * self.steps


def check_octave_param(param: ImageParam) -> None:
    if param.fft:
        raise ValueError(
            f"octaves carry pixels between stages, but {param!r} is a Fourier parameterisation; use "
            f"a per-pixel one (parameterisations.pixel, sigmoid or decorrelated: fft=False)"
        )


def resize(params: Array, size: int) -> Array:
    """Pixel parameters (..., H, W, 3) resized to (..., size, size, 3), bilinear."""
    return imageops.resize(params, size)


def carry(optimiser: optax.GradientTransformation, key: Array, stage: int, params: Array, channel: Array,
          transparency: Array | None = None) -> RenderState:
    """A cell's state at the start of octave ``stage`` > 0 from the previous stage's (resized) params:
    a fresh optimiser state, step 0, and transform keys from ``fold_in(fold_in(key, channel), stage)``.
    ``transparency``: the previous stages' (resized) transparency map, carried on; None: none kept."""
    k = jax.random.fold_in(jax.random.fold_in(key, channel), stage)
    _, k_steps = jax.random.split(k)
    return RenderState(params, optimiser.init(params), jnp.zeros((), jnp.int32), k_steps, transparency)


def _carry_program(engine: Engine, stage: int):
    """The engine's compiled ``(key, params, channels, values) -> state`` for octave ``stage``."""
    size = engine.param.size

    def build():
        def fn(key, params, acc, channels, values):
            def one(p, a, c, v):
                a = None if a is None else resize(a, size)
                return carry(engine.setup_traced(c, v).optimiser, key, stage, resize(p, size), c, a)

            return jax.vmap(one)(params, acc, channels, values)

        return engine.jit(fn, replicated=1)

    return engine.program(("octave_carry", stage), build)


def _carried(engine: Engine, stage: int, key: Array, previous: RenderState):
    """``start(channels, values) -> state`` of octave ``stage`` for ``Engine.render_group``: the
    previous stage's padded state resized to this engine's size (``carry``)."""

    def start(cs, vs):
        return _carry_program(engine, stage)(key, previous.params, previous.transparency, engine.put(cs),
                                             engine.put(vs))

    return start


def render_octaves(
    model: Model,
    objective_fn: Callable[[Array], "objectives.Objective"],
    param: ImageParam,
    transforms: Transform,
    optimiser: optax.GradientTransformation,
    channels: Sequence[int],
    key: Array,
    schedule: Octaves,
    *,
    # render_channels's engine options, spelt out again on purpose: **kwargs would hide them from help() and the docs.
    batch_size: int | None = None,
    chunk: int | None = None,
    mesh=None,
    progress: Callable[[int, int], None] | None = None,
    engines: dict | None = None,
    transparency: bool = False,
) -> tuple[Rendered, tuple[int, ...]]:
    """Renders every channel through the octave ``schedule``, vmapped over channels.

    Stage 0 is exactly ``render_channels`` at ``param.size`` (so one octave equals it); stage i > 0
    starts from the previous stage's pixels resized to ``schedule.sizes(param.size)[i]``, a fresh
    optimiser state, and transform keys from ``fold_in(fold_in(key, channel), i)``.

    Args:
        param: the first stage's parameterisation (its ``size`` is the smallest); fft=False.
        schedule: octaves, scale factor and steps per octave.
        engines: a dict the caller keeps, image size -> Engine, so that stages of the same size
            (in this call or a later one with the same objective_fn, transforms and optimiser)
            reuse their compiled programs. None: fresh engines. Engines with transparency are
            kept under ``(size, "transparency")``.
        transparency: also return each channel's transparency map at the last size: the sum of
            ``|d objective / d image|`` over every step of every stage, earlier stages' sums resized
            with the pixels (see the module docstring).

    The other arguments (``batch_size``, ``chunk``, ``mesh``, ``progress``) are as in
    ``render.render_channels``.

    Returns:
        (Rendered(images (C, n, S, S, 3) at the last size S, objective (C,) at the last stage,
        history (C, octaves * steps), transparency (C, n, S, S, 3) or None), the stage sizes).
    """
    return render_octave_cells(model, lambda c, v: Setup(objective_fn(c), optimiser), param, transforms, channels,
                               np.zeros(len(channels), np.float32), key, schedule, batch_size=batch_size, chunk=chunk,
                               mesh=mesh, progress=progress, engines=engines, transparency=transparency)


def render_octave_cells(model, make, param, transforms, channels, values, key, schedule: Octaves, *,
                        batch_size=None, chunk=None, mesh=None, progress=None, engines: dict | None = None,
                        transparency: bool = False):
    """``render_octaves`` for cells (channels[i], values[i]) with ``make(c, v) -> Setup``."""
    check_octave_param(param)
    channels = np.asarray([int(c) for c in channels], np.int32)
    values = np.asarray(values, np.float32)
    if not len(channels):
        raise ValueError("render_octaves needs at least one channel")
    sizes = schedule.sizes(param.size)
    engines = {} if engines is None else engines
    name = (lambda s: (s, "transparency")) if transparency else (lambda s: s)
    for s in sizes:
        if name(s) not in engines:
            engines[name(s)] = Engine(model, make, dataclasses.replace(param, size=s), transforms, chunk=chunk,
                                      mesh=mesh, transparency=transparency)
    first_engine = engines[name(sizes[0])]
    first_engine.check(channels[0], values[0])
    n, steps = len(channels), schedule.steps
    batch = first_engine.group_size(batch_size, n)
    total, finished = n * schedule.total_steps, 0  # real cell-steps of all stages of all groups, and done
    groups = []
    for first in range(0, n, batch):
        cs, vs = channels[first : first + batch], values[first : first + batch]
        hist, group = [], None
        for stage, s in enumerate(sizes):
            engine = engines[name(s)]
            report = None if progress is None else (lambda cell_steps, base=finished: progress(base + cell_steps, total))
            start = None if stage == 0 else _carried(engine, stage, key, group.state)
            group = engine.render_group(key, cs, vs, steps, size=batch, state=start, progress=report,
                                        final=stage == len(sizes) - 1)
            hist.append(group.history)
            finished += len(cs) * steps  # every stage starts at step 0
        groups.append(group._replace(history=np.concatenate(hist, axis=1)))
    out = Rendered(*(None if parts[0] is None else np.concatenate(parts) for parts in zip(*(g[:4] for g in groups))))
    return out, sizes


__all__ = ["Octaves", "RESIZE_METHOD", "carry", "check_octave_param", "render_octave_cells", "render_octaves", "resize"]
