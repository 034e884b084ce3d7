"""Presets: named activation-maximisation recipes, and rendering a recipe whose settings change in stages.

A ``Preset`` fixes what "how to optimise" means for a channel: the optimiser and its learning-rate
schedule, the number of steps, and how the transforms change over the run. ``PRESETS`` names the
shipped ones:

- ``lucid``: Lucid's ``render_vis``: Adam at a constant 0.05, Lucid's standard transforms every step,
  512 steps (jfv's default recipe; the quick-start config runs fewer steps of it).
- ``draft``: Adam with a one-cycle schedule to 0.6 over 192 steps (2.7x fewer). The best of the
  candidates ``benchmarks/fast_preset.md`` measured against 512-step Lucid images: on VGG16 it
  reaches their objective and is as close to them (LPIPS) as another seed of Lucid's, but with more
  high-frequency energy; on CIFAR ResNet-20 it reaches 89% of the objective. No candidate met all
  three quality criteria in fewer steps, so there is no "fast Lucid"; use ``draft`` to survey a layer.

A preset's optimiser and stages depend on the run's step count (a schedule spans the run), so a run
asks the preset for them with its ``steps``. Stages are spans of steps with their own transforms
(e.g. the model sees a half-size image in the first steps, which costs a quarter as much); the
optimisation state carries over unchanged from one stage to the next, so a staged run is one run
whose transforms change at fixed steps. The shipped presets have one stage (the study's progressive
start lost: ``benchmarks/fast_preset.md``), so the recipes render them with ``render_channels``.

Example:
    >>> p = PRESETS["draft"]
    >>> opt = p.optimiser_for(p.steps)                           # an optax GradientTransformation
    >>> stages = p.stages(transforms.standard(), p.steps, 128)   # [(transforms, end step)]: one stage
    >>> out = render_staged(model, lambda c: objectives.channel("conv4_3", c), parameterisations.image(128),
    ...                     stages, opt, [48, 62], jax.random.key(0))
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Mapping, Sequence

import jax
import numpy as np
import optax

from jfv import imageops
from jfv.models.base import Model
from jfv.optvis import objectives as objectives_lib
from jfv.optvis.engine import Engine, Rendered
from jfv.optvis.parameterisations import ImageParam
from jfv.optvis.transforms import Compose, Transform, compose, output_size

Array = jax.Array
Stages = Sequence[tuple[Transform, int]]  # (transforms, the step this stage ends at), ends increasing

OPTIMISERS = ("adam", "nadam", "lion", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle")


@dataclasses.dataclass(frozen=True)
class Resize:
    """Resizes the (transformed) image to ``size`` x ``size`` (bilinear, antialiased): the model then
    runs at that size, so a step costs about ``(size / side)**2`` as much."""

    size: int

    def __post_init__(self):
        if int(self.size) != self.size or self.size < 1:
            raise ValueError(f"Resize size must be a whole number >= 1, got {self.size}")

    def __call__(self, key: Array, x: Array) -> Array:
        del key
        return imageops.resize(x, int(self.size))


@dataclasses.dataclass(frozen=True)
class Preset:
    """One AM recipe's optimisation settings.

    Attributes:
        name: what configs and ``render_channels(preset=...)`` call it.
        steps: its step count (a run may ask for another; the schedule and stages then scale).
        optimiser: adam | nadam | lion | sgd.
        learning_rate: the peak learning rate.
        schedule: constant | cosine (linear warm-up over ``warmup`` of the steps, then cosine decay to
            ``end`` x the peak) | onecycle (optax's ``cosine_onecycle_schedule``).
        warmup: the fraction of the steps spent warming up (cosine).
        end: the final learning rate as a fraction of the peak (cosine).
        start_size: the fraction of the image's side the model sees during the first ``start_steps``
            (1.0: no progressive start).
        start_steps: the fraction of the steps run at ``start_size``.
    """

    name: str
    steps: int
    optimiser: str = "adam"
    learning_rate: float = 0.05
    schedule: str = "constant"
    warmup: float = 0.0
    end: float = 0.0
    start_size: float = 1.0
    start_steps: float = 0.0

    def __post_init__(self):
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"unknown optimiser {self.optimiser!r}: use one of {', '.join(OPTIMISERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("warmup", "end", "start_steps"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} is a fraction in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.start_size <= 1.0:
            raise ValueError(f"start_size is a fraction of the side in (0, 1], got {self.start_size}")
        check_steps(self, self.steps)

    def split(self, steps: int) -> tuple[int, int]:
        """(warm-up steps, progressive-start steps) of a run of ``steps``."""
        return int(round(self.warmup * steps)), int(round(self.start_steps * steps))

    def learning_rates(self, steps: int) -> optax.Schedule | float:
        warm, _ = self.split(steps)
        if self.schedule == "constant":
            return self.learning_rate
        if self.schedule == "onecycle":
            return optax.cosine_onecycle_schedule(steps, self.learning_rate)
        return optax.warmup_cosine_decay_schedule(0.0, self.learning_rate, warm, steps, self.end * self.learning_rate)

    def optimiser_for(self, steps: int) -> optax.GradientTransformation:
        """The optimiser of a run of ``steps`` (its schedule spans exactly those steps)."""
        check_steps(self, steps)
        lr = self.learning_rates(steps)
        return {"adam": optax.adam, "nadam": optax.nadam, "lion": optax.lion, "sgd": optax.sgd}[self.optimiser](lr)

    def stages(self, transforms: Transform, steps: int, size: int) -> list[tuple[Transform, int]]:
        """[(transforms, end step)] of a run of ``steps`` on ``size`` px images with ``transforms``."""
        check_steps(self, steps)
        _, start = self.split(steps)
        if start == 0 or self.start_size == 1.0:
            return [(transforms, steps)]
        small = max(1, int(round(output_size(transforms, size) * self.start_size)))
        return [(compose(transforms, Resize(small)), start), (transforms, steps)]

    def describe(self) -> str:
        lr = f"{self.learning_rate:g}" if self.schedule == "constant" else f"{self.schedule} to {self.learning_rate:g}"
        s = f"{self.optimiser} {lr}, {self.steps} steps"
        if self.schedule == "cosine" and self.warmup:
            s += f" ({self.warmup:.0%} warm-up)"
        if self.start_steps and self.start_size < 1.0:
            s += f", the first {self.start_steps:.0%} at {self.start_size:g}x the side"
        return s


ONECYCLE_WARMUP = 0.3  # optax.cosine_onecycle_schedule's pct_start: int(0.3 * steps) steps rise to the peak


def _fits(preset: Preset, steps: int) -> bool:
    """Whether every span of the run (warm-up, progressive start, the rest) holds at least one step."""
    if preset.schedule == "onecycle":
        warmup, warm = ONECYCLE_WARMUP, int(ONECYCLE_WARMUP * steps)
    else:
        warmup, warm = preset.warmup, int(round(preset.warmup * steps))
    start = int(round(preset.start_steps * steps))
    return not (warmup and warm < 1 or preset.start_steps and start < 1 or max(warm, start) >= steps)


def check_steps(preset: Preset, steps: int) -> None:
    """Refuses a run too short for the preset's schedule, naming the fewest steps that fit."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps}")
    if not _fits(preset, int(steps)):
        warmup = ONECYCLE_WARMUP if preset.schedule == "onecycle" else preset.warmup
        raise ValueError(f"preset {preset.name!r} splits its run into a warm-up of {warmup:g} and a "
                         f"progressive start of {preset.start_steps:g} of the steps, which {steps} steps cannot "
                         f"hold: use at least {minimum_steps(preset)} steps")


def minimum_steps(preset: Preset) -> int:
    """The fewest steps whose every span holds at least one step."""
    n = 1
    while not _fits(preset, n):
        n += 1
    return n


def render_staged(model: Model, objective_fn: Callable[[Array], objectives_lib.Objective], param: ImageParam,
                  stages: Stages, optimiser: optax.GradientTransformation, channels: Sequence[int], key: Array, *,
                  batch_size: int | None = None, snapshots: Sequence[int] = (),
                  progress: Callable[[int, int], None] | None = None) -> tuple[Rendered, dict]:
    """Renders one image per channel through ``stages``: one engine per stage, the state carried on.

    A one-stage run equals ``render_channels`` with the same settings, image for image.

    Args:
        stages: [(transforms, end step)], end steps increasing; the last is the run's step count.
        snapshots: steps at which to also record the untransformed images and their objective.

    Returns:
        (Rendered(images (C, 1, H, W, 3), objective (C,), history (C, steps)),
         {"snapshots": {step: (images, objective)}, "step_seconds": [median seconds of one
         step of a group in each stage]}).
    """
    ends = [int(e) for _, e in stages]
    if not ends or any(b <= a for a, b in zip([0] + ends, ends)):
        raise ValueError(f"stage end steps must increase from >= 1, got {ends}")
    steps = ends[-1]
    engines = [Engine.for_channels(model, objective_fn, param, t, optimiser) for t, _ in stages]
    channels = [int(c) for c in channels]
    n = len(channels)
    if n == 0:
        raise ValueError("nothing to render: give at least one channel")
    engines[0].check(channels[0])
    batch = engines[0].group_size(batch_size, n)
    wanted = sorted({int(s) for s in snapshots if 0 < int(s) <= steps})
    shots: dict[int, list] = {s: [] for s in wanted}
    times: list[list[float]] = [[] for _ in stages]
    parts = []
    for first in range(0, n, batch):
        cs = np.asarray(channels[first : first + batch], np.int32)
        vs = np.zeros(len(cs), np.float32)
        state, history, start = None, None, 0
        for i, ((_, end), engine) in enumerate(zip(stages, engines)):
            clock = [time.perf_counter()]

            def between(st, hist, done, engine=engine, i=i, clock=clock, first=first):
                now = time.perf_counter()
                times[i].append((now - clock[0]) / max(1, engine.chunk))
                if done in shots:
                    imgs, obj = engine.final(st, *engine.pad(cs, vs, batch))
                    shots[done].append((imgs[: len(cs)], obj[: len(cs)]))
                if progress is not None:
                    progress(first * steps + len(cs) * done, n * steps)
                clock[0] = time.perf_counter()

            last = i == len(stages) - 1
            group = engine.render_group(key, cs, vs, end, size=batch, state=state, history=history,
                                        between=between, final=last)
            state, history, start = group.state, _pad_history(group.history, batch, steps), end
        parts.append(group)
    del start
    rendered = Rendered(np.concatenate([g.images for g in parts]), np.concatenate([g.objective for g in parts]),
                        np.concatenate([g.history for g in parts]), None)
    info = {"snapshots": {s: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v]))
                          for s, v in shots.items()},
            "step_seconds": [float(np.median(t[1:] if len(t) > 1 else t)) for t in times]}
    return rendered, info


def _pad_history(history: np.ndarray, size: int, steps: int) -> np.ndarray:
    """A stage's (k, end) history as the (size, steps) array the next stage continues."""
    out = np.full((size, steps), np.nan, np.float32)
    out[: history.shape[0], : history.shape[1]] = history
    return out


LUCID = Preset("lucid", 512)
# The study's best candidate (highest objective on its choosing half): Lucid's objective and LPIPS on
# VGG16 in 192 steps, but more high-frequency energy, and 89% of the objective on ResNet-20; no candidate
# met all three of Lucid's quality criteria in fewer steps, so it is a draft, not a "fast Lucid".
DRAFT = Preset("draft", 192, "adam", 0.6, "onecycle")

PRESETS: Mapping[str, Preset] = {"lucid": LUCID, "draft": DRAFT}


def get(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[name]


__all__ = ["DRAFT", "LUCID", "ONECYCLE_WARMUP", "OPTIMISERS", "PRESETS", "Preset", "Resize", "SCHEDULES", "check_steps", "get",
           "minimum_steps", "render_staged"]
