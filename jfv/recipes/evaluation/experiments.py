"""The ``study`` recipe's experiments: the rows of the seed's table (``EXPERIMENTS``: each one's
regulariser family, parameterisation, base transforms, optimiser and the config key of its values),
their values (``parse_experiments``, ``experiment_values``) and the ``Renderer`` that renders one
experiment for one seed. Not a recipe: ``jfv/recipes/evaluation/study.py`` runs them, and
``study_tables.py`` turns their scores into tables and plots.

The ``sweep`` experiment is the config's own row: any family of ``jfv.optvis.families.FAMILIES``
(``regulariser`` and its keys), its ``strengths``, and the config's ``param`` (pixel | fft),
``optimiser`` (adam | sgd) and ``transforms``; ``recipe="sweep"`` is a study of that one experiment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import optax

from jfv.optvis import families, objectives, parameterisations, transforms
from jfv.recipes.common import ConfigError
from jfv.recipes.optvis.settings import make_transforms

PARAMS = ("pixel", "fft")  # the sweep experiment's param
OPTIMISERS = ("adam", "sgd")  # the sweep experiment's optimiser


@dataclass(frozen=True)
class Experiment:
    """One row of the seed's table: its regulariser family (``jfv.optvis.families``, built from the config),
    the parameterisation (``pixel``, Lucid's Fourier ``image``, or ``config``: the config's ``param``),
    base transforms (None, ``standard``, or ``config``: the config's ``transforms``) and optimiser
    (``adam`` at ``learning_rate``, or ``config``: the config's ``optimiser``) its cells start from.
    ``values_key`` names the config key holding its values: ``grid.<values_key>``, or the top-level
    key itself when ``in_grid`` is False (None: the single value ``fixed`` gives, default 0)."""

    name: str
    label: str
    parameter: str
    values_key: str | None
    family: Callable[[Any], families.Family]
    param: str = "pixel"
    transforms: str | None = None
    fixed: Callable[[Any], float] = lambda config: 0.0
    optimiser: str = "adam"
    in_grid: bool = True

    @property
    def values_config(self) -> str | None:
        """The config key of its values, as a user writes it (``grid.tv``, ``strengths``)."""
        if self.values_key is None:
            return None
        return f"grid.{self.values_key}" if self.in_grid else self.values_key


def _l2(config) -> families.Family:
    return families.L2(0.5, "norm")  # Lucid's L2 norm: lambda_L2 is the seed's


def _tv(config) -> families.Family:
    return families.TotalVariation(1.0, "sum")  # summed TV: lambda_tv is the seed's


def _octaves(config, scale=None, inner=families.NoRegulariser()) -> families.Family:
    # Each stage gets steps // octaves steps: the same total as the other experiments.
    return families.Octaves(config.octaves, max(1, config.steps // config.octaves), scale, inner)


def sweep_family(config) -> families.Family:
    """The config's ``regulariser`` (any ``families.FAMILIES`` entry) with the settings it declares."""
    try:
        return families.from_config(config.regulariser, config)
    except ValueError as e:
        raise ConfigError(str(e)) from None


EXPERIMENTS = {e.name: e for e in (
    Experiment("none", "No regularisation", "-", None, lambda c: families.NoRegulariser()),
    Experiment("l2", "L2", "lambda_L2 (Lucid's L2 norm)", "l2", _l2),
    Experiment("tv", "Total variation", "lambda_tv (summed TV)", "tv", _tv),
    Experiment("standard", "Standard transformation", "-", None, lambda c: families.NoRegulariser(),
               transforms="standard"),
    Experiment("jitter", "Transformation: Jitter", "pixels", "jitter", lambda c: families.Jitter()),
    Experiment("scale", "Transformation: Scale", "v (zoom in [1/v, v])", "scale", lambda c: families.Scale()),
    Experiment("rotate", "Transformation: Rotate", "v degrees (in [-v, v])", "rotate", lambda c: families.Rotate()),
    Experiment("octaves", "Octaves scale-up", "factor per octave", "octaves", _octaves),
    Experiment("tv_octaves", "TV + octaves", "lambda_tv (octave factor combo_octave_scale)", None,
               lambda c: _octaves(c, c.combo_octave_scale, _tv(c)), fixed=lambda c: float(c.combo_tv)),
    Experiment("tv_standard", "TV + standard transformation", "lambda_tv combo_tv", None, _tv,
               transforms="standard", fixed=lambda c: float(c.combo_tv)),
    Experiment("lucid", "Lucid's full recipe (Fourier + decorrelated + standard)", "-", None,
               lambda c: families.NoRegulariser(), param="lucid", transforms="standard"),
    Experiment("maco", "MACO (phase-only Fourier, maco_crops crops + noise)", "-", None,
               lambda c: families.Maco(c.maco_crops)),
    # The config's own row (what recipe=sweep runs): any family, its strengths, param, optimiser, transforms.
    Experiment("sweep", "Sweep of the config's regulariser", "strength (the regulariser's)", "strengths",
               sweep_family, param="config", transforms="config", optimiser="config", in_grid=False),
)}


def is_numeric(values: Sequence[Any]) -> bool:
    """Whether an experiment's values are numbers (the sweep of Yosinski presets has names)."""
    return not any(isinstance(v, str) for v in values)


def format_value(v: Any) -> str:
    """A value as tables and captions show it: ``-0.005``, ``blur_norm``."""
    return v if isinstance(v, str) else f"{v:g}"


def make_param(config, size: int, channels: int = 3) -> parameterisations.ImageParam:
    """The config's ``param`` for a model taking ``channels``-channel images (a grayscale model's
    Fourier images are not colour-decorrelated)."""
    if config.param == "pixel":
        return dataclasses.replace(parameterisations.pixel(size), channels=channels)
    if config.param == "fft":
        return parameterisations.image(size, decorrelate=channels == 3, channels=channels)
    raise ConfigError(f"unknown param {config.param!r}; valid: {', '.join(PARAMS)}")


def make_optimiser(config) -> optax.GradientTransformation:
    """The config's ``optimiser`` at ``learning_rate``."""
    if config.optimiser == "adam":
        return optax.adam(config.learning_rate)
    if config.optimiser == "sgd":
        return optax.sgd(config.learning_rate)
    raise ConfigError(f"unknown optimiser {config.optimiser!r}; valid: {', '.join(OPTIMISERS)}")


# ---------------------------------------------------------------------------------------------
# Values and rendering.


def parse_experiments(spec: str) -> list[str]:
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad or not names:
        raise ConfigError(f"unknown experiment(s) {bad or spec!r}; valid: {', '.join(EXPERIMENTS)}")
    return names


def experiment_values(name: str, config) -> list[Any]:
    e = EXPERIMENTS[name]
    if e.values_key is None:
        return [e.fixed(config)]
    spec = config.grid[e.values_key] if e.in_grid else config[e.values_key]
    try:
        return e.family(config).parse(spec, e.values_config)
    except ValueError as err:
        raise ConfigError(str(err)) from None


class Renderer:
    """Renders one experiment for one seed: ``(C, V) -> images [C][V] (S, S, 3), objective (C, V)``,
    through ``families.render_family``.

    Holds the engines of each experiment (per jitter value; per octave stage size), so seeds reuse
    their compilations."""

    def __init__(self, model, config, layer, channels, progress):
        self.model, self.config, self.layer, self.channels = model, config, layer, channels
        self.size, self.steps = config.image_size, config.steps
        self.optimiser = optax.adam(config.learning_rate)
        self.progress = progress
        self.engines: dict = {}

    def pieces(self, name: str):
        """(family, param, base transforms, optimiser) of experiment ``name``."""
        e = EXPERIMENTS[name]
        if e.param == "config":
            param = make_param(self.config, self.size, self.model.channels)
        else:
            param = parameterisations.image(self.size) if e.param == "lucid" else parameterisations.pixel(self.size)
        if e.transforms == "config":
            base = make_transforms(self.config.transforms)
        else:
            base = transforms.standard() if e.transforms == "standard" else None
        optimiser = make_optimiser(self.config) if e.optimiser == "config" else self.optimiser
        return e.family(self.config), param, base, optimiser

    def objective_fn(self, c):
        return objectives.channel(self.layer, c)

    def check(self, name: str, values: list[float]) -> None:
        """Refuses, before any compilation, values the experiment cannot render."""
        family, param, base, optimiser = self.pieces(name)
        family.check(self.model, self.layer, self.objective_fn, param, base, optimiser, values, self.channels[0])

    def render(self, name: str, values: list[Any], key) -> tuple[list[list[np.ndarray]], np.ndarray]:
        family, param, base, optimiser = self.pieces(name)
        out = families.render_family(self.model, family, self.objective_fn, param, base, optimiser, self.channels,
                                     values, key, self.steps, engines=self.engines.setdefault(name, {}),
                                     batch_size=self.config.batch_size or None, progress=self.progress)
        return [[img[0] for img in row] for row in out.images], out.objective
