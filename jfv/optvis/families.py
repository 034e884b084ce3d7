"""Regulariser families: one table entry per family, and one function that renders a family's cells.

A *family* is a regulariser with one strength ``v`` swept over values: a penalty weight (``channel
+ v * R``), an image-space step after the optimiser (Yosinski's decay, blur, clipping), a transform
range (scale, rotate), a shape-changing transform (jitter) or schedule (octaves), or a whole recipe
(Lucid's Fourier + decorrelated + standard transforms, MACO's phase-only spectrum + crops). Each
family is a frozen dataclass holding its settings (it prints as them, ``TotalVariation(beta=1.0,
reduction='sum')``) and says, for a list of values:

- ``parse(spec)``: the values a comma-separated config string names;
- ``numeric(values)``: the arrays the engine gets, (V,) or (V, k);
- ``make(objective_fn, param, transforms, optimiser, values)``: ``(channel, v) -> Setup``, the cell's
  objective, optimiser step and transforms, traceable so all values share one compiled program;
- ``passes(values, transforms, param)``: how the values are rendered: one pass for all of them, or,
  for a family that changes array shapes (``shaped``: jitter, octaves), one pass (one engine, one
  compilation per shape) per value;
- ``describe(goal, optimiser)``, ``entry(row, image)``, ``compiled``, ``parameter``: how it shows
  itself in manifests, galleries, tables and plots.

``FAMILIES`` maps each name to its class; ``from_config(name, config)`` builds the entry from the
config keys the class declares in ``config_keys`` (field -> key). ``render_family`` renders the
cells (channels x values) of any family through ``jfv.optvis.engine.Engine`` and
``jfv.optvis.octaves.render_octave_cells``: the sweep and study recipes are its callers, so the loop over
shape-changing values exists once. Adding a family is one class here plus its tests
(docs/regularisers.md, "How to add a regulariser family").

Strengths of penalties follow the seed's convention: the objective is ``channel + v * penalty``, so
a negative ``v`` penalises (lambda_tv = -0.005).

Example:
    >>> family = TotalVariation(beta=1.0, reduction="sum")
    >>> values = family.parse("0,-0.001,-0.005")
    >>> out = render_family(model, family, lambda c: objectives.channel("conv4_3", c), pixel(64),
    ...                     None, optax.adam(0.05), [48, 62], values, jax.random.key(0), 64)
    >>> out.objective.shape
    (2, 3)

Papers: Mahendran & Vedaldi 2015 (TV, L2), Yosinski et al. 2015 (decay, blur, clipping), Olah et
al. 2017 (transformation robustness, Lucid's recipe), Mordvintsev et al. 2015 (octaves), Fel et al.
2023 (MACO).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import numpy as np
import optax

from jfv.optvis import objectives, octaves, parameterisations, regularisers, transforms
from jfv.optvis.engine import Engine, Setup
from jfv.optvis.render import reshape_sweep, sweep_cells

ObjectiveFn = Callable[[Any], objectives.Objective]


def parse_numbers(spec: Any, where: str = "strengths") -> list[float]:
    """``"-0.01,-0.005"`` -> ``[-0.01, -0.005]``; ValueError naming ``where`` for anything else."""
    try:
        values = [float(s) for s in str(spec).split(",") if s.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"cannot read {where}={spec!r}: use a comma-separated list of numbers, "
                         f"e.g. -0.01,-0.005,-0.001")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{where} must be finite numbers, got {', '.join(map(str, bad[:10]))}: "
                         f"e.g. -0.01,-0.005,-0.001")
    return values


class Pass(NamedTuple):
    """One engine's share of a family's values: their indices, the engine's transforms and param
    (None: the caller's), an octave schedule (None: a plain render) and the key that names the
    engine in the caller's cache."""

    indices: tuple[int, ...]
    transforms: Any
    param: Any
    schedule: octaves.Octaves | None
    key: Any


class FamilyRender(NamedTuple):
    """What ``render_family`` returns.

    images: per channel, per value, an (n, H, W, 3) array (sizes may differ between values: octaves).
    objective: (C, V) final objective of each cell.
    transparency: like images, the accumulated |d objective / d image| (MACO), or None.
    """

    images: list
    objective: np.ndarray
    transparency: list | None = None


@dataclasses.dataclass(frozen=True)
class Family:
    """The part every family shares: no regulariser, one pass for all values.

    Class attributes a family sets: ``name`` (its config name), ``parameter`` (what a value means,
    for plot axes and tables), ``config_keys`` (field -> sweep config key), ``shaped`` (values
    change array shapes: one engine per value).
    """

    name: ClassVar[str] = "none"
    parameter: ClassVar[str] = "-"
    config_keys: ClassVar[dict[str, str]] = {}
    shaped: ClassVar[bool] = False

    # -- values --------------------------------------------------------------------------------

    def parse(self, spec: Any, where: str = "strengths") -> list[Any]:
        """The values of a comma-separated config string (numbers unless the family says otherwise)."""
        return parse_numbers(spec, where)

    def numeric(self, values: Sequence[Any]) -> np.ndarray:
        """The values as the engine's (V,) or (V, k) float32 array."""
        return np.asarray(values, np.float32)

    # -- cells ---------------------------------------------------------------------------------

    def cell_transforms(self, base: Any, extra: Any) -> Any:
        """``extra`` after ``base`` (``base`` None: ``extra`` alone)."""
        return extra if base is None else transforms.compose(base, extra)

    def make(self, objective_fn: ObjectiveFn, param: Any, base: Any, optimiser: optax.GradientTransformation,
             values: Sequence[Any]) -> Callable:
        """``(channel, v) -> Setup`` with traced arguments; here the plain objective."""
        return lambda c, v: Setup(objective_fn(c), optimiser)

    def passes(self, values: Sequence[Any], base: Any, param: Any) -> list[Pass]:
        """One pass for all values, in one engine with the caller's transforms and param."""
        return [Pass(tuple(range(len(values))), base, None, None, "cells")]

    def check(self, model, layer: str, objective_fn: ObjectiveFn, param: Any, base: Any,
              optimiser: optax.GradientTransformation, values: Sequence[Any], channel: int = 0) -> None:
        """Builds every cell's pieces concretely and checks the image sizes the model will see, so a
        bad value (a negative blur radius, a scale below 1, ...) fails before any compilation."""
        make = self.make(objective_fn, param, base, optimiser, values)
        for v in self.numeric(values):
            make(np.int32(channel), v)
        for p in self.passes(values, base, param):
            size = (p.param or param).size
            tf = p.transforms if p.transforms is not None else transforms.identity()
            model.check_image_size(layer, transforms.output_size(tf, size))

    def total_steps(self, steps: int) -> int:
        """Optimisation steps of one cell."""
        return steps

    # -- how it shows itself -------------------------------------------------------------------

    @property
    def compiled(self) -> str:
        return "once for all channels and values (one vmapped program)"

    def describe(self, goal: str, optimiser: str = "the optimiser") -> str:
        """The objective and regulariser of a cell, ``v`` standing for the value."""
        return goal

    def steps_label(self, steps: int) -> Any:
        return steps

    def entry(self, row: np.ndarray, image: np.ndarray) -> dict:
        """Extra manifest fields of one image (a preset's settings, an octave run's size)."""
        return {}


@dataclasses.dataclass(frozen=True)
class NoRegulariser(Family):
    """No regulariser: one cell per channel (values are ignored; ``parse`` gives ``[0.0]``)."""

    name: ClassVar[str] = "none"

    def parse(self, spec: Any, where: str = "strengths") -> list[Any]:
        return [0.0]


# The entries below repeat one shape on purpose (a docstring, settings, name, parameter, config
# keys, the library function): each is a declaration, and what they share lives in their base class
# (Penalty, ImageSteps, TransformRange). `duplicates` lists them as a same-shape pair.

# -- penalties: channel + v * R ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Penalty(Family):
    """A penalty objective R weighted by v: ``channel + v * R`` (v <= 0 penalises)."""

    objective: ClassVar[Callable | None] = None  # (*settings) -> the penalty Objective R

    def penalty(self) -> objectives.Objective:
        """R built from the entry's settings, in field order."""
        return self.objective(*dataclasses.astuple(self))

    def make(self, objective_fn, param, base, optimiser, values):
        pen = self.penalty()
        return lambda c, v: Setup(objective_fn(c) + v * pen, optimiser)

    def describe(self, goal, optimiser="the optimiser"):
        return f"{goal} + v * {self.penalty().description}"


# The four penalty families below are rows of one table: each declares its own fields, names and
# config keys in the same shape on purpose (a reader finds a family's whole declaration in one place).
@dataclasses.dataclass(frozen=True)
class L1(Penalty):
    """``channel + v * sum|x - constant|`` (mean or sum over pixels)."""

    constant: float = 0.5
    reduction: str = "mean"
    name: ClassVar[str] = "l1"
    parameter: ClassVar[str] = "lambda_L1"
    config_keys: ClassVar[dict[str, str]] = {"constant": "penalty_constant", "reduction": "penalty_reduction"}
    objective: ClassVar[Callable] = staticmethod(objectives.l1)


@dataclasses.dataclass(frozen=True)
class L2(Penalty):
    """``channel + v * ||x - constant||`` (mean or sum of squares, or Lucid's ``norm``)."""

    constant: float = 0.5
    reduction: str = "mean"
    name: ClassVar[str] = "l2"
    parameter: ClassVar[str] = "lambda_L2"
    config_keys: ClassVar[dict[str, str]] = {"constant": "penalty_constant", "reduction": "penalty_reduction"}
    objective: ClassVar[Callable] = staticmethod(objectives.l2)


@dataclasses.dataclass(frozen=True)
class TotalVariation(Penalty):
    """``channel + v * TV_beta(x)``; Mahendran & Vedaldi 2015."""

    beta: float = 1.0
    reduction: str = "mean"
    name: ClassVar[str] = "tv"
    parameter: ClassVar[str] = "lambda_tv"
    config_keys: ClassVar[dict[str, str]] = {"beta": "tv_beta", "reduction": "penalty_reduction"}
    objective: ClassVar[Callable] = staticmethod(objectives.total_variation)


@dataclasses.dataclass(frozen=True)
class BlurPenalty(Penalty):
    """``channel + v * sum (x - stopgrad(G_sigma x))^2``."""

    sigma: float = 1.0
    reduction: str = "mean"
    name: ClassVar[str] = "blur_penalty"
    parameter: ClassVar[str] = "lambda_blur"
    config_keys: ClassVar[dict[str, str]] = {"sigma": "blur_sigma", "reduction": "penalty_reduction"}
    objective: ClassVar[Callable] = staticmethod(objectives.blur_penalty)


# -- image-space steps after the optimiser (pixel parameterisation only) ------------------------


@dataclasses.dataclass(frozen=True)
class ImageSteps(Family):
    """Image-space steps chained after the optimiser; Yosinski et al. 2015."""

    step: ClassVar[Callable | None] = None  # v -> one ImageStep, for the families of a single step

    def steps(self, v, values) -> tuple:
        """The image steps of value ``v`` (``values``: all of the sweep's, e.g. to size a kernel)."""
        return (self.step(v),)

    def make(self, objective_fn, param, base, optimiser, values):
        regularisers.check_pixel_param(param)
        return lambda c, v: Setup(objective_fn(c), regularisers.chain_image_steps(param, optimiser, *self.steps(v, values)))

    def describe(self, goal, optimiser="the optimiser"):
        return f"{goal}; image steps {self.name}(v) after {optimiser}"


@dataclasses.dataclass(frozen=True)
class Decay(ImageSteps):
    """``x <- (1 - v) x`` every step."""

    name: ClassVar[str] = "decay"
    parameter: ClassVar[str] = "theta_decay"
    step: ClassVar[Callable] = staticmethod(regularisers.decay)


@dataclasses.dataclass(frozen=True)
class Blur(ImageSteps):
    """``x <- G_v * x`` every ``every`` steps (v = sigma in pixels; one kernel sized for the largest)."""

    every: int = 1
    name: ClassVar[str] = "blur"
    parameter: ClassVar[str] = "sigma (pixels)"
    config_keys: ClassVar[dict[str, str]] = {"every": "blur_every"}

    def steps(self, v, values):
        radius = regularisers.gaussian_radius(max(max(float(x) for x in values), 0.0))
        return (regularisers.blur_step(v, self.every, radius=radius),)


@dataclasses.dataclass(frozen=True)
class ClipNorm(ImageSteps):
    """Zeroes the pixels whose norm is under the v-th percentile."""

    name: ClassVar[str] = "clip_norm"
    parameter: ClassVar[str] = "percentile"
    step: ClassVar[Callable] = staticmethod(regularisers.clip_norm)


@dataclasses.dataclass(frozen=True)
class ClipContribution(ImageSteps):
    """Zeroes the pixels whose contribution |x * grad| is under the v-th percentile."""

    name: ClassVar[str] = "clip_contribution"
    parameter: ClassVar[str] = "percentile"
    step: ClassVar[Callable] = staticmethod(regularisers.clip_contribution)


YOSINSKI_FIELDS = ("decay", "blur_sigma", "blur_every", "norm_percentile", "contribution_percentile")


@dataclasses.dataclass(frozen=True)
class Yosinski(ImageSteps):
    """A row of Yosinski et al. 2015's Table 1 per value: values are preset names (or ``all``)."""

    name: ClassVar[str] = "yosinski"
    parameter: ClassVar[str] = "preset"

    def parse(self, spec, where="strengths"):
        items = [s.strip() for s in str(spec).split(",") if s.strip()]
        if items in ([], ["all"]):
            return list(regularisers.YOSINSKI_PRESETS)
        bad = [s for s in items if s not in regularisers.YOSINSKI_PRESETS]
        if bad:
            raise ValueError(f"unknown Yosinski preset(s) {bad} in {where}; valid: all, "
                             f"{', '.join(regularisers.YOSINSKI_PRESETS)}")
        return items

    def numeric(self, values):
        return np.stack([regularisers.YOSINSKI_PRESETS[v].as_array() for v in values])

    def steps(self, v, values):
        radius = regularisers.gaussian_radius(max(regularisers.YOSINSKI_PRESETS[p].blur_sigma for p in values))
        return regularisers.yosinski_steps(v, radius=radius)

    def entry(self, row, image):
        return {"settings": dict(zip(YOSINSKI_FIELDS, (round(float(x), 6) for x in row)))}


# -- transform ranges (traced: one program) ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TransformRange(Family):
    """A random transform whose range is v, after the base transforms; Olah et al. 2017."""

    transform: ClassVar[Callable] = staticmethod(transforms.identity)  # v -> the transform of range v

    def make(self, objective_fn, param, base, optimiser, values):
        return lambda c, v: Setup(objective_fn(c), optimiser, self.cell_transforms(base, self.transform(v)))

    def describe(self, goal, optimiser="the optimiser"):
        return f"{goal} under {self.name}(v)"


@dataclasses.dataclass(frozen=True)
class Scale(TransformRange):
    """Zoom uniformly in [1/v, v] each step (v >= 1)."""

    name: ClassVar[str] = "scale"
    parameter: ClassVar[str] = "v (zoom in [1/v, v])"
    transform: ClassVar[Callable] = staticmethod(transforms.scale)


@dataclasses.dataclass(frozen=True)
class Rotate(TransformRange):
    """Rotate uniformly in [-v, v] degrees each step (v >= 0)."""

    name: ClassVar[str] = "rotate"
    parameter: ClassVar[str] = "v degrees (in [-v, v])"
    transform: ClassVar[Callable] = staticmethod(transforms.rotate)


# -- families that change array shapes: one engine per value ------------------------------------


@dataclasses.dataclass(frozen=True)
class Jitter(Family):
    """A random crop v pixels smaller each step: the model sees (size - v) pixels, so one
    compilation per value."""

    name: ClassVar[str] = "jitter"
    parameter: ClassVar[str] = "pixels"
    shaped: ClassVar[bool] = True

    def parse(self, spec, where="strengths"):
        values = parse_numbers(spec, where)
        if any(int(v) != v or v < 1 for v in values):
            raise ValueError(f"jitter values are whole pixels >= 1, got {values}")
        return values

    def passes(self, values, base, param):
        return [Pass((j,), self.cell_transforms(base, transforms.Jitter(int(v))), None, None, ("jitter", float(v)))
                for j, v in enumerate(values)]

    @property
    def compiled(self):
        return "once per value (the strength changes array shapes)"

    def describe(self, goal, optimiser="the optimiser"):
        return f"{goal} under Jitter(v)"


@dataclasses.dataclass(frozen=True)
class Octaves(Family):
    """Octave scale-up (``jfv.optvis.octaves``): ``octaves`` stages of ``steps`` steps, each ``scale`` times
    larger; Mordvintsev et al. 2015.

    With ``scale`` None the values are the scale factors (and the cells render ``inner`` at 0);
    with a fixed ``scale`` the values are ``inner``'s (e.g. TV + octaves).
    """

    octaves: int = 3
    steps: int = 32
    scale: float | None = None
    inner: Family = NoRegulariser()
    name: ClassVar[str] = "octaves"
    parameter: ClassVar[str] = "factor per octave"
    config_keys: ClassVar[dict[str, str]] = {"octaves": "octaves", "steps": "steps"}
    shaped: ClassVar[bool] = True

    def parse(self, spec, where="strengths"):
        return parse_numbers(spec, where) if self.scale is None else self.inner.parse(spec, where)

    def numeric(self, values):
        if self.scale is None:
            return np.zeros(len(values), np.float32)
        return self.inner.numeric(values)

    def make(self, objective_fn, param, base, optimiser, values):
        return self.inner.make(objective_fn, param, base, optimiser, values)

    def passes(self, values, base, param):
        octaves.check_octave_param(param)
        return [Pass((j,), base, None, octaves.Octaves(self.octaves, self.scale if self.scale is not None else v,
                                                        self.steps), "octaves")
                for j, v in enumerate(values)]

    def total_steps(self, steps):
        return self.steps * self.octaves

    @property
    def compiled(self):
        return "once per image size (octave stages shared by values compile once)"

    def describe(self, goal, optimiser="the optimiser"):
        inner = self.inner.describe(goal, optimiser)
        scale = "v" if self.scale is None else f"{self.scale:g}"
        return f"{inner} over Octaves(octaves={self.octaves}, scale={scale}, steps={self.steps})"

    def steps_label(self, steps):
        return f"{self.steps} x {self.octaves} octaves"

    def entry(self, row, image):
        return {"size": int(image.shape[0])}


@dataclasses.dataclass(frozen=True)
class Maco(Family):
    """MACO's recipe (Fel et al. 2023): a phase-only image with a fixed natural-image magnitude
    spectrum (``parameterisations.maco``, the shipped estimate) seen through ``crops`` random crops
    with noise (``transforms.maco``) each step, instead of the caller's param and transforms; no
    regulariser value (one cell per channel). The cells' size is the caller's param's."""

    crops: int = 4
    box: tuple[float, float] = transforms.MACO_BOX
    noise: float = transforms.MACO_NOISE
    name: ClassVar[str] = "maco"
    config_keys: ClassVar[dict[str, str]] = {"crops": "maco_crops"}

    def parse(self, spec, where="strengths"):
        return [0.0]

    def passes(self, values, base, param):
        return [Pass(tuple(range(len(values))), transforms.maco(self.crops, param.size, tuple(self.box), self.noise),
                     parameterisations.maco(param.size), None, "maco")]

    def describe(self, goal, optimiser="the optimiser"):
        return f"{goal} with MACO (phase-only Fourier image, {self.crops} crops + noise)"


FAMILIES: dict[str, type[Family]] = {f.name: f for f in (
    NoRegulariser, L1, L2, TotalVariation, BlurPenalty,
    Decay, Blur, ClipNorm, ClipContribution, Yosinski,
    Scale, Rotate, Jitter, Octaves, Maco,
)}


def from_config(name: str, config: Any) -> Family:
    """The family ``name`` with its settings read from the config keys it declares (``config_keys``)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown regulariser {name!r}; valid: {', '.join(FAMILIES)}")
    cls = FAMILIES[name]
    return cls(**{field: config[key] for field, key in cls.config_keys.items()})


def render_family(model, family: Family, objective_fn: ObjectiveFn, param: Any, base: Any,
                  optimiser: optax.GradientTransformation, channels: Sequence[int], values: Sequence[Any], key,
                  steps: int, *, engines: dict | None = None, batch_size: int | None = None,
                  progress: Callable[[int, int], None] | None = None, transparency: bool = False) -> FamilyRender:
    """Renders every (channel, value) cell of ``family``: one engine per pass of ``family.passes``.

    Cell (c, v) starts from ``fold_in(key, c)`` (``jfv.optvis.engine``), so the images of one channel differ
    only by the value. A family without shape changes renders all cells as one vmapped program
    (``render.render_sweep``); ``Jitter`` one engine per value; ``Octaves`` one
    ``octaves.render_octave_cells`` per value (stage engines shared by size).

    Args:
        family: a ``FAMILIES`` entry.
        objective_fn: channel -> the objective to maximise (the family adds its regulariser).
        param: the parameterisation every cell starts from.
        base: the base transforms (None: none; the family's transform is applied alone).
        optimiser: the optimiser of every cell.
        channels: the channels to render.
        values: the family's parsed values (``family.parse``).
        key: the render's key.
        steps: optimisation steps per cell (octaves: the schedule's own).
        engines: a dict the caller keeps between calls with the same family, values, objective,
            param, base and optimiser (e.g. seeds of a study), so compiled programs are reused.
        batch_size: as in ``render.render_channels``.
        progress: as in ``render.render_channels``; it counts cell-steps.
        transparency: also accumulate |d objective / d image| (MACO's map).

    Returns:
        FamilyRender(images ``[C][V]`` of (n, H, W, 3), objective (C, V), transparency or None).
    """
    engines = {} if engines is None else engines
    channels = [int(c) for c in channels]
    numeric = family.numeric(values)
    make = family.make(objective_fn, param, base, optimiser, values)
    n_c, n_v = len(channels), len(values)
    total = n_c * n_v * family.total_steps(steps)
    images = [[None] * n_v for _ in channels]
    alphas = [[None] * n_v for _ in channels] if transparency else None
    objective = np.zeros((n_c, n_v), np.float32)
    done = 0
    for p in family.passes(values, base, param):
        hook = None
        if progress is not None:
            hook = lambda d, t, offset=done: progress(offset + d, total)  # noqa: E731
        vals = numeric[list(p.indices)]
        tf = p.transforms if p.transforms is not None else transforms.identity()
        pm = p.param if p.param is not None else param
        if p.schedule is None:
            if p.key not in engines:
                engines[p.key] = Engine(model, make, pm, tf, transparency=transparency)
            out = reshape_sweep(engines[p.key].render_cells(*sweep_cells(channels, vals), key, steps,
                                                            batch_size=batch_size, progress=hook), n_c)
        else:
            out, _ = octaves.render_octave_cells(model, make, pm, tf, channels, np.full(n_c, vals[0], np.float32),
                                                 key, p.schedule, batch_size=batch_size, progress=hook,
                                                 engines=engines.setdefault(p.key, {}))
            out = reshape_sweep(out, n_c)
        for i in range(n_c):
            for k, j in enumerate(p.indices):
                images[i][j] = np.asarray(out.images[i, k])
                objective[i, j] = out.objective[i, k]
                if alphas is not None and out.transparency is not None:
                    alphas[i][j] = np.asarray(out.transparency[i, k])
        done += n_c * len(p.indices) * family.total_steps(steps)
    return FamilyRender(images, objective, alphas)


__all__ = [
    "FAMILIES", "Blur", "BlurPenalty", "ClipContribution", "ClipNorm", "Decay", "Family", "FamilyRender", "ImageSteps",
    "Jitter", "L1", "L2", "Maco", "NoRegulariser", "Octaves", "Pass", "Penalty", "Rotate", "Scale", "TotalVariation",
    "TransformRange", "Yosinski", "from_config", "parse_numbers", "render_family",
]
