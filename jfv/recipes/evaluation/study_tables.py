"""The study's tables and plots, functions of the rows of ``results.csv``: ``table.md`` (the lowest
LPIPS per experiment and channel, with the grid-edge rule: ``grid_edges``, ``edge_markdown``),
``refined_ranges.md`` (``refined_range``), ``measures.md`` (``measures_markdown``) and
``plots/<experiment>.png`` (``lpips_curves``, ``lpips_plot``). Written by
``jfv/recipes/evaluation/study_outputs.py``; they read nothing but the rows and the experiment table.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from jfv.recipes.evaluation.experiments import EXPERIMENTS, format_value, is_numeric


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
