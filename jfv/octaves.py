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

Every stage compiles once per image size (shapes change), and reuses the compiled program of any
earlier run at that size.

Example:
    >>> schedule = Octaves(octaves=3, scale=1.2, steps=64)
    >>> schedule.sizes(64)
    (64, 77, 92)
    >>> out = render_octaves(model, lambda c: objectives.channel("conv4_3", c), pixel(64),
    ...                      transforms.identity(), optax.adam(0.05), [48], key, schedule)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfv.render import ObjectiveFn, ProgressFn, Rendered, RenderState, _channels_program, _check_layers, _chunks
from jfv.models.base import Model
from jfv.parameterisations import ImageParam
from jfv.transforms import Transform

Array = jax.Array
RESIZE_METHOD = "bilinear"


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
    shape = params.shape[:-3] + (size, size, params.shape[-1])
    return jax.image.resize(params, shape, RESIZE_METHOD)


def _carry(optimiser, size, stage, key, state, channels):
    """The next stage's state for every channel: resized params, fresh optimiser state and keys."""
    params = resize(state.params, size)

    def one(p, c):
        k = jax.random.fold_in(jax.random.fold_in(key, c), stage)
        _, k_steps = jax.random.split(k)
        return RenderState(p, optimiser.init(p), jnp.zeros((), jnp.int32), k_steps)

    return jax.vmap(one)(params, channels)


@functools.lru_cache(maxsize=64)
def _carry_program(optimiser, size, stage):
    return jax.jit(functools.partial(_carry, optimiser, size, stage))


def render_octaves(
    model: Model,
    objective_fn: ObjectiveFn,
    param: ImageParam,
    transforms: Transform,
    optimiser: optax.GradientTransformation,
    channels: Sequence[int],
    key: Array,
    schedule: Octaves,
    *,
    batch_size: int | None = None,
    chunk: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Rendered, tuple[int, ...]]:
    """Renders every channel through the octave ``schedule``, vmapped over channels.

    Stage 0 is exactly ``render_channels`` at ``param.size`` (so one octave equals it); stage i > 0
    starts from the previous stage's pixels resized to ``schedule.sizes(param.size)[i]``, a fresh
    optimiser state, and transform keys from ``fold_in(fold_in(key, channel), i)``.

    Args:
        param: the first stage's parameterisation (its ``size`` is the smallest); fft=False.
        schedule: octaves, scale factor and steps per octave.
        others: as in ``render.render_channels``.

    Returns:
        (Rendered(images (C, n, S, S, 3) at the last size S, objective (C,) at the last stage,
        history (C, octaves * steps)), the stage sizes).
    """
    check_octave_param(param)
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("render_octaves needs at least one channel")
    _check_layers(model, objective_fn(channels[0]))
    sizes = schedule.sizes(param.size)
    n = len(channels)
    batch = n if batch_size is None else max(1, min(int(batch_size), n))
    size = _chunks(schedule.steps, chunk)
    total, done = n * schedule.total_steps, 0

    images, values, histories = [], [], []
    for start in range(0, n, batch):
        group = channels[start : start + batch]
        cs = jnp.asarray(group + [group[-1]] * (batch - len(group)), jnp.int32)
        hist = []
        state = None
        for stage, s in enumerate(sizes):
            p = dataclasses.replace(param, size=s)
            prog = _channels_program(model, objective_fn, p, transforms, optimiser, size, None)
            if stage == 0:
                state = prog.init(key, cs)
            else:
                state = _carry_program(optimiser, s, stage)(key, state, cs)
            for _ in range(schedule.steps // size):
                state, h = prog.advance(model.params, state, cs)
                hist.append(h)
                done += size * len(group)
                if progress:
                    progress(done, total)
        imgs, vals = prog.final(model.params, state, cs)
        k = len(group)
        images.append(np.asarray(imgs)[:k])
        values.append(np.asarray(vals)[:k])
        histories.append(np.concatenate([np.asarray(x) for x in hist], axis=1)[:k])
    out = Rendered(np.concatenate(images), np.concatenate(values), np.concatenate(histories))
    return out, sizes


__all__ = ["Octaves", "RESIZE_METHOD", "check_octave_param", "render_octaves", "resize"]
