"""What the study writes: the rows of ``results.csv`` (``result_rows``) and every output file, one
writer each: ``images/`` and ``references/``, ``results.csv``, ``table.md`` and ``refined_ranges.md``,
``measures.md``, ``plots/``, the contact sheet and the gallery's cards, ``manifest.json`` and the
gallery's header. The tables and plots themselves are ``study_tables.py``'s.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from jfv.recipes.common import run_info
from jfv.recipes.evaluation.experiments import EXPERIMENTS, format_value, is_numeric, sweep_family
from jfv.recipes.evaluation.study_plan import Plan
from jfv.recipes.evaluation.study_scores import REFERENCE_DOCS, Scores
from jfv.recipes.evaluation.study_tables import (
    MEASURES_DOC, best_rows, edge_markdown, grid_edges, lpips_curves, lpips_plot, measures_markdown,
    refined_markdown, table_markdown,
)
from jfv.runtime.outputs import Staging


def result_rows(p: Plan, rendered: dict, sc: Scores | None) -> list[dict]:
    """The rows of ``results.csv``: one per (experiment, value, channel, seed), every metric (unscored:
    the render's objective alone). The sweep row adds its family's fields (``Family.entry``)."""
    config, rows = p.config, []
    family = sweep_family(config) if "sweep" in p.exps else None
    for n, (e, v, c, s, j) in enumerate(p.cells()):
        images, objective = rendered[(e, s)]
        img = images[p.channels.index(c)][j]
        row = {"experiment": e, "value": v, "channel": c, "seed": config.seed + s}
        if sc is None:
            row["objective"] = float(objective[p.channels.index(c), j])
        else:
            row.update({"lpips": float(sc.lpips[n]), "activation": float(sc.activation[n]), "objective": sc.objective[n],
                        "hf_energy": float(sc.hf_energy[n]), "tv": float(sc.tv[n]),
                        "diversity": float(sc.diversity[(e, j, c)]) if sc.diversity else float("nan")})
        row["image"] = f"images/{e}_{j}_{p.layer}_{c:04d}_s{config.seed + s}.png"
        if sc is not None and sc.trust is not None:
            row.update({"two_afc": float(sc.trust.two_afc[n]), "path_gap": float(sc.trust.path.gap[n])})
        if e == "sweep":
            extra = family.entry(family.numeric(p.values[e])[j], img)
            row.update({k: json.dumps(x, sort_keys=True) if isinstance(x, dict) else x for k, x in extra.items()})
        rows.append(row)
    return rows


def write_images(stage: Staging, p: Plan, rows: list[dict], rendered: dict, ref_images) -> None:
    """The renders (``images/``) and the references (``references/``, when scored)."""
    for r, (e, v, c, s, j) in zip(rows, p.cells()):
        stage.save_png(r["image"], rendered[(e, s)][0][p.channels.index(c)][j])
    if ref_images is not None:
        for i, c in enumerate(p.channels):
            stage.save_png(f"references/{p.layer}_{c:04d}.png", ref_images[i])


def write_results_csv(stage: Staging, rows: list[dict]) -> None:
    """``results.csv``: every row, floats to 6 significant digits."""
    fields: dict = {}
    for r in rows:  # the sweep row's own fields (an octave's size, ...) after the shared ones
        fields.update(dict.fromkeys(r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), restval="")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{x:.6g}" if isinstance(x, float) else x) for k, x in r.items()})
    stage.write_text("results.csv", buf.getvalue())


def write_lpips_tables(stage: Staging, p: Plan, rows: list[dict]) -> None:
    """``table.md`` (the lowest LPIPS per experiment and channel) and ``refined_ranges.md``."""
    config = p.config
    ref_line = (f"Reference: {config.reference} ({REFERENCE_DOCS[config.reference]}); LPIPS {config.lpips_net}; "
                f"{config.seeds} seed(s), mean ± std across seeds at the best value (@ value).\n\n")
    stage.write_text("table.md", "# Lowest LPIPS per experiment and channel\n\n" + ref_line
                     + table_markdown(rows, p.exps, p.channels, config.seeds)
                     + "\nimprovement: mean over channels of (L_none - L) / L_none.\n")
    warnings = edge_markdown(grid_edges(rows, p.exps, p.channels))
    stage.write_text("refined_ranges.md", f"# Refined ranges\n\nValues whose mean LPIPS is within "
                     f"{100 * config.tolerance:g}% of the channel's best (L <= L_best * (1 + "
                     f"{config.tolerance:g})); min..max of those values.\n\n"
                     + refined_markdown(rows, p.exps, p.channels, config.tolerance)
                     + (f"\n{warnings}" if warnings else ""))


def write_measures(stage: Staging, p: Plan, rows: list[dict], natural, path_layers) -> None:
    """``measures.md``: the trust measures per experiment."""
    config = p.config
    stage.write_text("measures.md", "# Trust measures per experiment\n\n" + MEASURES_DOC.format(
        n=len(natural.images), folder=config.measure_images, trials=config.measure_trials,
        tail=min(config.measure_tail, len(natural.images) // 2), net=config.lpips_net, top=config.path_top,
        random=config.path_random, similarity=config.similarity, layers=len(path_layers), seeds=config.seeds)
        + measures_markdown(rows, p.exps))


def write_plots(stage: Staging, p: Plan, rows: list[dict]) -> list[str]:
    """``plots/<experiment>.png``: LPIPS against the parameter, for each experiment of two or more values."""
    plots = []
    for e in p.exps:
        values = p.values[e]
        if len(values) < 2 or not is_numeric(values):
            continue
        m, sd = lpips_curves(rows, e, values, p.channels)
        rel = f"plots/{e}.png"
        lpips_plot(stage.file(rel), EXPERIMENTS[e].label, EXPERIMENTS[e].parameter, values, p.channels, m, sd,
                   p.config.reference)
        plots.append(rel)
    return plots


def _pad_to(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` centred on a white ``size`` x ``size`` RGB canvas (octave runs end at different sizes)."""
    h, w = img.shape[:2]
    canvas = np.ones((size, size, 3), np.float32)
    y, x = (size - h) // 2, (size - w) // 2
    canvas[y : y + h, x : x + w] = img
    return canvas


def _caption_name(p: Plan, e: str) -> str:
    """What a caption calls an experiment's value: the sweep's regulariser (``tv = -0.005``), else its name."""
    return sweep_family(p.config).name if e == "sweep" else e


def contact_sheet_and_cards(p: Plan, rows: list[dict], imgs: np.ndarray | None, ref_images, ref_sources,
                            rendered: dict):
    """``contact_sheet.png`` and the page's cards (every reference and every image). Scored: the
    reference row, then each experiment's best image per channel; unscored: one row per experiment,
    seed and channel, one column per value (a sweep's channels x strengths)."""
    layer, channels = p.layer, p.channels
    if not p.scored:
        columns = max(len(p.values[e]) for e in p.exps)
        cells = [rendered[(e, s)][0][i] for e in p.exps for s in range(p.config.seeds) for i in range(len(channels))]
        side = max(img.shape[0] for row in cells for img in row)
        white = np.ones((side, side, 3), np.float32)
        sheet = [_pad_to(row[j], side) if j < len(row) else white for row in cells for j in range(columns)]
        cards = [{"image": r["image"], "caption": [f"{layer} ch {r['channel']}",
                                                   f"{_caption_name(p, r['experiment'])} = {format_value(r['value'])}",
                                                   f"seed {r['seed']}", f"objective {r['objective']:.3f}"]}
                 for r in rows]
        return sheet, cards, columns
    best = best_rows(rows)
    sheet = [ref_images[i] for i in range(len(channels))]
    sheet += [imgs[best[(e, c)]] for e in p.exps for c in channels]
    cards = [{"image": f"references/{layer}_{c:04d}.png", "caption": [f"{layer} ch {c}", "reference",
                                                                         ref_sources[i]]}
             for i, c in enumerate(channels)]
    cards += [{"image": r["image"], "caption": [f"{layer} ch {r['channel']}",
                                                f"{_caption_name(p, r['experiment'])} = {format_value(r['value'])}",
                                                f"seed {r['seed']}", f"LPIPS {r['lpips']:.3f}"]} for r in rows]
    return sheet, cards, len(channels)


def sweep_entry(p: Plan) -> dict:
    """The sweep row's manifest fields: its regulariser, objective, optimiser, param, transforms and
    how it compiled."""
    config = p.config
    family, param, base, _ = p.renderer.pieces("sweep")
    return {"regulariser": family.name, "parameter": family.parameter,
            "objective": family.describe(f"channel({p.layer}, c)", config.optimiser),
            "optimiser": f"{config.optimiser}({config.learning_rate:g})", "param": repr(param),
            "transforms": repr(base), "steps": family.steps_label(config.steps), "compiled": family.compiled}


def study_manifest(p: Plan, recipe: str, rows: list[dict], ref_sources, plots: list[str], timings: dict, wall: float,
                   trust, natural, path_layers, start: float) -> dict:
    """``manifest.json``: settings, the outputs, timings of the render / reference / scoring / writing phases
    (``recipe``: the name the run was asked for, ``study`` or ``sweep``)."""
    config, model, layer = p.config, p.model, p.layer
    experiments = {e: {"label": EXPERIMENTS[e].label, "parameter": EXPERIMENTS[e].parameter,
                       "values": p.values[e]} for e in p.exps}
    if "sweep" in experiments:
        experiments["sweep"].update(sweep_entry(p))
    reference = {"kind": config.reference, "description": REFERENCE_DOCS[config.reference]}
    if p.scored:
        reference.update({"sources": ref_sources, "images": [f"references/{layer}_{c:04d}.png" for c in p.channels]})
    outputs = {"csv": "results.csv", "table": "table.md", "refined_ranges": "refined_ranges.md",
               "plots": plots, "contact_sheet": "contact_sheet.png", "gallery": "index.html"}
    if not p.scored:
        outputs = {"csv": "results.csv", "contact_sheet": "contact_sheet.png", "gallery": "index.html"}
    manifest = {
        "recipe": recipe,
        "model": model.name,
        "model_source": model.source,
        "layer": layer,
        "channels": p.channels,
        "experiments": experiments,
        "reference": reference,
        "lpips_net": config.lpips_net,
        # Best values on the edge of their grid (grids of >= 3 values): extend the grid on that side.
        "grid_edges": grid_edges(rows, p.exps, p.channels) if p.scored else [],
        "images_rendered": len(rows),
        "timings_s": {k: round(x, 3) for k, x in timings.items()},
        "time_shares": {k: round(x / wall, 4) for k, x in timings.items()},
        "images_per_second": round(len(rows) / wall, 4),
        "images_per_render_second": round(len(rows) / max(timings["render_s"], 1e-9), 4),
        "outputs": outputs,
        "settings": config.to_dict(),
    }
    if trust is not None:
        manifest["outputs"]["measures"] = "measures.md"
        manifest["measures"] = {"natural_images": len(natural.images), "folder": config.measure_images,
                                "path_layers": path_layers}
    manifest.update(run_info(start))
    return manifest


def gallery_header(p: Plan, manifest: dict, wall: float) -> tuple[str, dict]:
    """The gallery's title and header: the run's settings, and the sweep row's regulariser, values,
    optimiser, param and compilation."""
    config = p.config
    header = {"model": p.model.name, "layer": p.layer, "channels": ", ".join(map(str, p.channels)),
              "reference": f"{config.reference}: {REFERENCE_DOCS[config.reference]}", "LPIPS": config.lpips_net,
              "steps": config.steps, "image size": config.image_size, "seeds": config.seeds,
              "wall time (s)": round(wall, 1)}
    title = f"{p.model.name} {p.layer}: regulariser study"
    if not p.scored:
        del header["LPIPS"]
    if "sweep" in p.exps:
        sweep = manifest["experiments"]["sweep"]
        header.update({"regulariser": sweep["regulariser"], "values": ", ".join(map(format_value, p.values["sweep"])),
                       "optimiser": sweep["optimiser"], "param": sweep["param"], "compiled": sweep["compiled"]})
        if p.exps == ["sweep"]:
            header["steps"], title = sweep["steps"], f"{p.model.name} {p.layer}: {sweep['regulariser']} sweep"
    return title, header
