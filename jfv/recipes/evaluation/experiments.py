"""The ``study`` recipe's experiments (the rows of the seed's table: each one's regulariser family,
parameterisation, base transforms, optimiser and values; the ``Renderer`` that renders one for one
seed) and the tables and plots of their results (``table.md``, ``refined_ranges.md``, ``measures.md``,
``plots/``: functions of the rows of ``results.csv``). Not a recipe: ``jfv/recipes/evaluation/study.py``
runs them.

The ``sweep`` experiment is the config's own row: any family of ``jfv.optvis.families.FAMILIES``
(``regulariser`` and its keys), its ``strengths``, and the config's ``param`` (pixel | fft),
``optimiser`` (adam | sgd) and ``transforms``; ``recipe="sweep"`` is a study of that one experiment.
"""

from __future__ import annotations

import dataclasses
import io
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


# ---------------------------------------------------------------------------------------------
# The tables and plots.


def refined_range(values: Sequence[float], scores: Sequence[float], tolerance: float) -> tuple[float, float]:
    """The min..max of the values whose score is within ``tolerance`` (relative) of the best.

    ``good = {v_i : s_i <= min(s) * (1 + tolerance)}`` (lower scores are better, LPIPS >= 0);
    returns ``(min(good), max(good))``. Values between two good ones count even when worse: a
    *range*, as the seed reports.
    """
    s = np.asarray(scores, np.float64)
    v = np.asarray(values, np.float64)
    good = v[s <= s.min() * (1.0 + tolerance)]
    return float(good.min()), float(good.max())


def best_per_cell(rows: Sequence[dict]) -> dict:
    """{(experiment, channel): (mean lpips, std lpips, value)} at the value of lowest mean LPIPS."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["experiment"], r["channel"], r["value"]), []).append(r["lpips"])
    out: dict = {}
    for (e, c, v), xs in cells.items():
        m, sd = float(np.mean(xs)), float(np.std(xs))
        if (e, c) not in out or m < out[(e, c)][0]:
            out[(e, c)] = (m, sd, v)
    return out


def best_rows(rows: Sequence[dict]) -> dict:
    """{(experiment, channel): index of its row of lowest LPIPS} (the first of equal ones)."""
    best: dict = {}
    for n, r in enumerate(rows):
        k = (r["experiment"], r["channel"])
        if k not in best or r["lpips"] < rows[best[k]]["lpips"]:
            best[k] = n
    return best


def improvement(best: dict, experiment: str, channels: Sequence[int], baseline: str = "none") -> float | None:
    """Mean over channels of ``(L_baseline - L_experiment) / L_baseline`` (the seed's %), or None."""
    if any((baseline, c) not in best for c in channels):
        return None
    return float(np.mean([(best[(baseline, c)][0] - best[(experiment, c)][0]) / best[(baseline, c)][0]
                          for c in channels]))


EDGE_MIN_VALUES = 3  # grids of fewer values have no interior: their best is never flagged
EDGE_MARK = "†"


def grid_edges(rows: Sequence[dict], experiments: Sequence[str], channels: Sequence[int],
               min_values: int = EDGE_MIN_VALUES) -> list[dict]:
    """The (experiment, channel) cells whose best value lies on the edge of the tested grid.

    For every experiment with a grid (``values_key``) of at least ``min_values`` distinct values, and
    every channel, the best value is the one of lowest mean LPIPS over seeds (``best_per_cell``); it
    is on the edge when it is the smallest or the largest value tested (numeric order, whatever the
    order of ``grid.<name>``; the sweep's ``strengths`` likewise, unless they are preset names). Such a best says only that the optimum may lie beyond the grid: the
    grid should be extended on that side before the value or the improvement is read.

    Args:
        rows: rows of ``results.csv`` (``experiment``, ``channel``, ``value``, ``lpips``; numbers).
        experiments: the experiments to check, in the order of the result.
        channels: the channels to check, in the order of the result.
        min_values: grids with fewer distinct values are not checked.

    Returns:
        One dict per flagged cell, in (experiment, channel) order: ``experiment``, ``grid`` (the config
        key, ``grid.<name>`` or ``strengths``), ``channel``, ``value`` (the best), ``side`` (``"min"`` or ``"max"``: the
        end of the grid it sits on) and ``tested`` (the grid's values, sorted).
    """
    best = best_per_cell(rows)
    tested: dict = {}
    for r in rows:
        tested.setdefault((r["experiment"], r["channel"]), set()).add(r["value"])
    out = []
    for e in experiments:
        key = EXPERIMENTS[e].values_config
        if key is None:
            continue
        for c in channels:
            values = tested.get((e, c), ())
            if not is_numeric(values):  # names (Yosinski presets): no order, no edge
                continue
            values = sorted(values)
            if len(values) < min_values:
                continue
            v = best[(e, c)][2]
            if v in (values[0], values[-1]):
                out.append({"experiment": e, "grid": key, "channel": c, "value": v,
                            "side": "min" if v == values[0] else "max", "tested": values})
    return out


def edge_markdown(edges: Sequence[dict]) -> str:
    """One warning line per experiment with a flagged cell (``grid_edges``); "" when none."""
    by_exp: dict = {}
    for d in edges:
        by_exp.setdefault((d["experiment"], d["grid"]), []).append(d)
    lines = []
    for (e, grid), ds in by_exp.items():
        cells = ", ".join(f"channel {d['channel']} at {d['value']:g}" for d in ds)
        sides = sorted({f"{'below' if d['side'] == 'min' else 'above'} {d['value']:g}" for d in ds})
        lines.append(f"{EDGE_MARK} {EXPERIMENTS[e].label}: best value on the grid's edge: extend {grid} "
                     f"({' and '.join(sides)}; {cells}).")
    return "\n".join(lines) + ("\n" if lines else "")


def table_markdown(rows, experiments, channels, seeds: int) -> str:
    """The seed's table: per experiment and channel the lowest mean LPIPS (± std across seeds, @ the
    best value), a ``†`` where that value is on the grid's edge (``grid_edges``, with a warning line
    per experiment under the table), and the improvement over ``none``."""
    best = best_per_cell(rows)
    flagged = {(d["experiment"], d["channel"]) for d in grid_edges(rows, experiments, channels)}
    head = "| Experiment | " + " | ".join(f"Channel {c}" for c in channels) + " | improvement |\n"
    head += "|---" * (len(channels) + 2) + "|\n"
    lines = []
    for e in experiments:
        cells = []
        for c in channels:
            m, sd, v = best[(e, c)]
            spread = f" ± {sd:.3f}" if seeds > 1 else ""
            at = "" if EXPERIMENTS[e].values_key is None else f" @ {format_value(v)}"
            mark = f" {EDGE_MARK}" if (e, c) in flagged else ""
            cells.append(f"{m:.3f}{spread}{at}{mark}")
        imp = improvement(best, e, channels) if e != "none" else None
        lines.append(f"| {EXPERIMENTS[e].label} | " + " | ".join(cells) + f" | {'' if imp is None else f'{100 * imp:.1f}%'} |")
    warnings = edge_markdown(grid_edges(rows, experiments, channels))
    return head + "\n".join(lines) + "\n" + (f"\n{warnings}" if warnings else "")


def refined_markdown(rows, experiments, channels, tolerance: float) -> str:
    means: dict = {}
    for r in rows:
        means.setdefault((r["experiment"], r["channel"]), {}).setdefault(r["value"], []).append(r["lpips"])
    head = ("| Experiment | parameter | tested | " + " | ".join(f"channel {c}" for c in channels)
            + " | all channels |\n" + "|---" * (len(channels) + 4) + "|\n")
    lines = []
    for e in experiments:
        if EXPERIMENTS[e].values_key is None or not is_numeric(means[(e, channels[0])]):
            continue
        ranges = []
        for c in channels:
            d = means[(e, c)]
            vs = sorted(d)
            ranges.append(refined_range(vs, [np.mean(d[v]) for v in vs], tolerance))
        tested = sorted(means[(e, channels[0])])
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        lines.append(f"| {EXPERIMENTS[e].label} | {EXPERIMENTS[e].parameter} | {tested[0]:g} .. {tested[-1]:g} | "
                     + " | ".join(f"({a:g}, {b:g})" for a, b in ranges) + f" | ({lo:g}, {hi:g}) |")
    return head + "\n".join(lines) + "\n"


# The measures of measures.md: (column, what, which way is better).
MEASURES = (("lpips", "LPIPS to the reference", "lower"), ("activation", "channel activation", "higher"),
            ("two_afc", "two-alternative accuracy", "higher"), ("path_gap", "processing-path gap", "higher"))


def seed_spread(rows: Sequence[dict], experiment: str, measure: str) -> tuple[float, float]:
    """(mean, std) across seeds of the experiment's per-seed mean of ``measure`` (over its channels
    and values)."""
    per_seed: dict = {}
    for r in rows:
        if r["experiment"] == experiment:
            per_seed.setdefault(r["seed"], []).append(r[measure])
    means = [float(np.mean(xs)) for xs in per_seed.values()]
    return float(np.mean(means)), float(np.std(means))


def measures_markdown(rows: Sequence[dict], experiments: Sequence[str], measures=MEASURES) -> str:
    """One row per experiment: each measure's mean ± std across seeds, then the winner of each."""
    head = "| Experiment | " + " | ".join(f"{what} ({better} is better)" for _, what, better in measures) + " |\n"
    head += "|---" * (len(measures) + 1) + "|\n"
    stats = {(e, m): seed_spread(rows, e, m) for e in experiments for m, _, _ in measures}
    lines = [f"| {EXPERIMENTS[e].label} | " + " | ".join(f"{stats[(e, m)][0]:.3f} ± {stats[(e, m)][1]:.3f}"
                                                        for m, _, _ in measures) + " |" for e in experiments]
    wins = []
    for m, what, better in measures:
        pick = min if better == "lower" else max
        e = pick(experiments, key=lambda x: stats[(x, m)][0])
        wins.append(f"- {what}: {EXPERIMENTS[e].label} ({stats[(e, m)][0]:.3f} ± {stats[(e, m)][1]:.3f})")
    return head + "\n".join(lines) + "\n\nBest mean per measure:\n\n" + "\n".join(wins) + "\n"


# The text above the table of measures.md.
MEASURES_DOC = (
    "Every study image scored against {n} natural images of {folder} at the study size: two_afc = the "
    "fraction of {trials} trials in which the image is nearer (LPIPS {net}, offline stand-in for DreamSim) "
    "to a query from its channel's {tail} most activating natural images than to one from its {tail} least "
    "(chance 0.5; jfv.evaluation.two_afc); path_gap = mean over {layers} layers of the {similarity} similarity "
    "of its spatially averaged activations to its channel's {top} top natural images minus that to {random} "
    "random ones (jfv.evaluation.processing_path; Geirhos et al. 2024). Per experiment: the mean over channels "
    "and values per seed, then mean ± std across {seeds} seed(s).\n\n")


def lpips_curves(rows: Sequence[dict], experiment: str, values: Sequence[float], channels: Sequence[int]):
    """(means, stds), each (channels, values): the experiment's LPIPS across seeds at each value."""
    m = np.zeros((len(channels), len(values)))
    sd = np.zeros_like(m)
    for i, c in enumerate(channels):
        for j, v in enumerate(values):
            xs = [r["lpips"] for r in rows if r["experiment"] == experiment and r["channel"] == c and r["value"] == v]
            m[i, j], sd[i, j] = np.mean(xs), np.std(xs)
    return m, sd


def lpips_plot(path, label, parameter, values, channels, means, stds, ref_name):
    """``plots/<experiment>.png``: LPIPS against the parameter, one line per channel, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    for i, c in enumerate(channels):
        ax.errorbar(values, means[i], yerr=stds[i], marker="o", capsize=3, label=f"channel {c}")
    ax.set_xlabel(parameter)
    ax.set_ylabel(f"LPIPS to {ref_name} reference")
    ax.set_title(label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
