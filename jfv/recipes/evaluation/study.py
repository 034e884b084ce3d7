"""Recipes ``study`` and ``sweep``: the seed's LPIPS evaluation of regularisers, in one command, and more.

For each experiment (the seed's: no regularisation, L2, TV, standard transformation, jitter, scale,
rotate, octaves; combinations: TV + octaves, TV + standard transforms, Lucid's full recipe; MACO;
and ``sweep``, the config's own ``regulariser`` over its ``strengths``) it renders every (value,
channel) cell for ``seeds`` seeds, scores every image against a per-channel reference (``reference
= lucid | natural``, see ``jfv.optvis.references``) and writes:

- ``results.csv``: one row per (experiment, value, channel, seed) with every metric: ``lpips`` (to
  the reference), ``activation`` (the channel's mean on the final image at the study size),
  ``objective`` (the render's final objective, penalty included), ``hf_energy``, ``tv``, and the
  cell's ``diversity`` (mean pairwise LPIPS across seeds);
- ``table.md``: the seed's table (lowest mean LPIPS over each experiment's values, per channel, with
  the spread across seeds and the best value) and the average improvement over no regularisation;
  a best value that is the smallest or largest of a grid of 3 or more values is marked ``†``, with
  a line "best value on the grid's edge: extend grid.<name>" under the table (``grid_edges``);
- ``refined_ranges.md``: the values whose mean LPIPS is within ``tolerance`` (relative) of the best,
  per channel and over all channels (and the same edge warnings);
- ``plots/<experiment>.png`` (LPIPS against the parameter), ``contact_sheet.png`` (reference row,
  then the best image of each experiment per channel), ``images/`` + ``index.html`` (every image),
  ``manifest.json`` (settings, timings of the render / reference / scoring / writing phases, and
  ``grid_edges``: every flagged (experiment, channel) with its best value and the side of the grid).

``reference = none`` skips the reference and every score: the run writes ``images/``,
``results.csv`` (experiment, value, channel, seed, the render's ``objective``, image; the sweep's
family adds its own columns: an octave run's ``size``, a Yosinski preset's ``settings``),
``contact_sheet.png`` (one row per experiment, seed and channel, one column per value, smaller
images centred on white), ``index.html`` and ``manifest.json``.

``recipe = "sweep"`` is this recipe with ``experiments = "sweep"``, ``seeds = 1`` and ``reference =
"none"`` (``SWEEP``, filled in where a sweep config does not set them; ``configs/reg_*.py``): channels
x strengths of one family of ``jfv.optvis.families.FAMILIES``, each channel's cells from
``fold_in(key(seed), channel)``, as one vmapped, once-compiled program where the family keeps array
shapes (the manifest's ``compiled`` says how).

Values follow the seed: penalties are ``channel + v * R`` with v = lambda <= 0 (docs/regularisers.md).
Traced-shape experiments are one engine each (one compilation for all values and seeds); jitter
and octaves compile once per shape.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv.analysis import datasets, passes
from jfv.optvis import references, transforms
from jfv import imageops, evaluation
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes.common import ConfigError, config_model, check_int, parse_channels, run_info
from jfv.recipes.optvis.settings import make_transforms
from jfv.runtime.progress import Progress
from jfv.recipes.evaluation.experiments import (  # noqa: F401  (the experiments and tables live there; names kept here for callers)
    EXPERIMENTS, MEASURES, MEASURES_DOC, OPTIMISERS, PARAMS, Experiment, Renderer, best_per_cell, best_rows,
    edge_markdown, experiment_values, format_value, grid_edges, improvement, is_numeric, lpips_curves, lpips_plot,
    make_optimiser, make_param, measures_markdown, parse_experiments, refined_markdown, refined_range, seed_spread,
    sweep_family, table_markdown,
)
from jfv.recipes import Recipe

REFERENCES = ("lucid", "natural", "none")  # none: no reference, no scores (a sweep)
SWEEP_RECIPE = "sweep"  # the recipe name that asks for a sweep (jfv.recipes.RECIPES: this module)
# What recipe="sweep" means: the study keys a sweep config may leave out, and their values there.
SWEEP = {"experiments": "sweep", "seeds": 1, "reference": "none", "measures": False, "lpips_net": "alexnet"}


def study_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The study config a config stands for: itself, or for ``recipe="sweep"`` a copy with the keys of
    ``SWEEP`` it does not set (a sweep scores nothing: its reference stays ``none``)."""
    if config.get("recipe") != SWEEP_RECIPE:
        return config
    d = config.to_dict()
    for k, v in SWEEP.items():
        d.setdefault(k, v)
    if d["reference"] != "none" or d["measures"]:
        raise ConfigError(f"recipe=sweep scores nothing (reference=none, measures=False), got reference="
                          f"{d['reference']!r}, measures={d['measures']}: to score a sweep use recipe=study with "
                          f"experiments=sweep (configs/regulariser_study.py)")
    return ml_collections.ConfigDict(d)


def check(config: ml_collections.ConfigDict) -> None:
    config = study_config(config)
    exps = parse_experiments(config.experiments)
    for e in exps:
        experiment_values(e, config)
    if "sweep" in exps:  # the sweep row's own param, optimiser and transforms
        if config.param not in PARAMS:
            raise ConfigError(f"unknown param {config.param!r}; valid: {', '.join(PARAMS)}")
        if config.optimiser not in OPTIMISERS:
            raise ConfigError(f"unknown optimiser {config.optimiser!r}; valid: {', '.join(OPTIMISERS)}")
        make_transforms(config.transforms)
    if config.reference not in REFERENCES:
        raise ConfigError(f"unknown reference {config.reference!r}; valid: {', '.join(REFERENCES)}")
    if config.seeds < 1 or config.steps < 1 or config.image_size < 1:
        raise ConfigError("seeds, steps and image_size must be >= 1")
    if config.lpips_net not in evaluation.NETS:
        raise ConfigError(f"unknown lpips_net {config.lpips_net!r}; valid: {', '.join(evaluation.NETS)}")
    if config.measures and config.reference == "none":
        raise ConfigError("measures score the images and reference=none scores nothing: set reference=lucid or "
                          "natural, or measures=False")
    if config.measures:
        check_int(config.measure_trials, "measure_trials", 1, meaning="two-alternative trials per channel")
        check_int(config.measure_tail, "measure_tail", 1, meaning="natural images in each tail")
        check_int(config.path_top, "path_top", 1, meaning="top natural images per channel")
        check_int(config.path_random, "path_random", 1, meaning="random natural images of the baseline")
        if config.similarity not in evaluation.SIMILARITIES:
            raise ConfigError(f"unknown similarity {config.similarity!r}; valid: {', '.join(evaluation.SIMILARITIES)}")


# ---------------------------------------------------------------------------------------------
# The stages, named after what they write.


class Plan(NamedTuple):
    """What every stage reads, built once from the checked config."""

    config: Any
    model: Any
    layer: str
    channels: list[int]
    exps: list[str]
    values: dict[str, list[Any]]
    renderer: Renderer
    files: list

    @property
    def scored(self) -> bool:
        """Whether the images are scored (any reference but ``none``)."""
        return self.config.reference != "none"

    def cells(self) -> list[tuple]:
        """(experiment, value, channel, seed index, value index) of every image, in the order of ``results.csv``."""
        return [(e, v, c, s, j) for e in self.exps for s in range(self.config.seeds)
                for c in self.channels for j, v in enumerate(self.values[e])]


def plan(config: ml_collections.ConfigDict) -> Plan:
    """The model, layer, channels and experiments, each refused before anything is rendered."""
    exps = parse_experiments(config.experiments)
    values = {e: experiment_values(e, config) for e in exps}
    model = config_model(config)
    # Only rows with the config's param render the model's own channel count, and only unscored.
    if model.channels != 3 and (config.reference != "none" or any(EXPERIMENTS[e].param != "config" for e in exps)):
        raise ConfigError(f"the study needs an RGB model: its experiments render colour images (Lucid's decorrelated "
                          f"colours, MACO) and LPIPS compares RGB, and {model.name} takes {model.channels}-channel "
                          f"images; use a 3-channel model (--config.model=NAME) or the sweep recipe "
                          f"(experiments=sweep, reference=none)")
    layer = config.layer
    model.check_layer(layer)
    channels = parse_channels(config.channels)
    model.check_channels(layer, channels)
    if config.reference != "none":  # the Lucid reference and standard rows (each row checks its own below)
        model.check_image_size(layer, transforms.output_size(transforms.standard(), config.image_size))
    renderer = Renderer(model, config, layer, channels, None)
    for e in exps:
        renderer.check(e, values[e])
    files = references.image_files(config.reference_images) if config.reference == "natural" else []
    return Plan(config, model, layer, channels, exps, values, renderer, files)


def natural_images(p: Plan):
    """The natural images of ``measures.md`` (``passes.natural_pass``) and the processing path's layers."""
    config = p.config
    path_layers = evaluation.layers_up_to(p.model, p.layer)
    natural = passes.natural_pass(p.model, datasets.image_folder(config.measure_images), p.layer, p.channels,
                                   path_layers, config.image_size, config.score_batch)
    if len(natural.images) < 2:
        raise ConfigError(f"measures need at least 2 readable natural images in measure_images="
                          f"{config.measure_images!r}, found {len(natural.images)}: point it at a folder of photos")
    return natural, path_layers


def reference_images(p: Plan) -> tuple[np.ndarray, list[str]]:
    """1. The reference per channel (``references/``): the images and where each comes from."""
    config, size = p.config, p.config.image_size
    if config.reference == "lucid":
        ref = references.lucid_reference(p.model, p.layer, p.channels, jax.random.key(config.seed + REFERENCE_SEED_OFFSET),
                                         size, config.reference_steps, batch_size=config.batch_size or None)
        ref_images = np.asarray(ref.images[:, 0])
        ref_sources = [f"Lucid recipe, {config.reference_steps} steps, seed {config.seed + REFERENCE_SEED_OFFSET}"] * len(p.channels)
    else:
        patches = references.most_activating_patch(p.model, p.layer, p.channels, p.files, size)
        ref_images, ref_sources = patches.images, patches.sources
    return ref_images, ref_sources


def renders(p: Plan) -> dict:
    """2. Every experiment x seed (``images/``): (experiment, seed) -> (images [C][V], objective (C, V))."""
    config, values = p.config, p.values
    steps = {e: p.renderer.pieces(e)[0].total_steps(config.steps) for e in p.exps}  # octaves: the schedule's
    total = sum(len(values[e]) * steps[e] for e in p.exps) * len(p.channels) * config.seeds
    progress = Progress(f"study {p.model.name} {p.layer}", enabled=config.progress)
    done = [0]

    def hook_for():
        base = done[0]
        return lambda d, t: progress(base + d, total)

    rendered: dict = {}
    try:
        for e in p.exps:
            for s in range(config.seeds):
                p.renderer.progress = hook_for()
                rendered[(e, s)] = p.renderer.render(e, values[e], jax.random.key(config.seed + s))
                done[0] += len(values[e]) * len(p.channels) * steps[e]
    finally:
        progress.close()
    return rendered


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size:
        return img
    return np.asarray(imageops.resize(jnp.asarray(img), size))


def _score(fn, *arrays, chunk: int) -> np.ndarray:
    """``fn`` over the leading axis in fixed chunks (padded), so one compilation serves any length."""
    return np.asarray(imageops.map_chunks(fn, *arrays, batch=chunk))


class Scores(NamedTuple):
    """Every rendered image's scores, in the order of ``keys`` (experiment, value, channel, seed index, value index)."""

    keys: list[tuple]
    images: np.ndarray
    objective: list[float]
    lpips: np.ndarray
    hf_energy: np.ndarray
    tv: np.ndarray
    activation: np.ndarray
    diversity: dict
    trust: Any


def scores(p: Plan, rendered: dict, ref_images: np.ndarray, natural, path_layers) -> Scores:
    """3. Every image scored in fixed-size batches (the columns of ``results.csv``)."""
    config, size, channels = p.config, p.config.image_size, p.channels
    keys, imgs, refs, chan_idx, objs = p.cells(), [], [], [], []
    for e, v, c, s, j in keys:
        images, objective = rendered[(e, s)]
        i = channels.index(c)
        imgs.append(_resize(images[i][j], size))
        refs.append(ref_images[i])
        chan_idx.append(c)
        objs.append(float(objective[i, j]))
    imgs, refs = np.stack(imgs).astype(np.float32), np.stack(refs).astype(np.float32)
    chunk = config.score_batch
    net = config.lpips_net
    lp = _score(lambda a, b: evaluation.lpips(a, b, net), imgs, refs, chunk=chunk)
    hf = _score(lambda a: evaluation.high_frequency_energy(a, config.hf_cutoff), imgs, chunk=chunk)
    tv = _score(evaluation.total_variation, imgs, chunk=chunk)
    acts = references.channel_means(p.model, p.layer, imgs, chunk)[np.arange(len(imgs)), chan_idx]
    div = seed_diversity(config, keys, imgs) if config.seeds > 1 else {}
    trust = None
    if natural is not None:
        trust = evaluation.visualisation_measures(
            jax.random.key(config.seed + MEASURE_SEED_OFFSET), p.model, path_layers, imgs,
            [channels.index(c) for c in chan_idx], chan_idx, natural, trials=config.measure_trials,
            tail=config.measure_tail, path_top=config.path_top, path_random=config.path_random,
            similarity=config.similarity, net=net)
    return Scores(keys, imgs, objs, lp, hf, tv, acts, div, trust)


def seed_diversity(config, keys: list[tuple], imgs: np.ndarray) -> dict:
    """{(experiment, value index, channel): mean pairwise LPIPS across the cell's seeds}."""
    groups: dict = {}
    for n, (e, v, c, s, j) in enumerate(keys):
        groups.setdefault((e, j, c), []).append(n)
    order = list(groups)
    stacks = np.stack([imgs[groups[g]] for g in order])  # (cells, S, H, W, 3)
    pairs_i, pairs_j = evaluation.pair_indices(config.seeds)
    a = stacks[:, pairs_i].reshape((-1,) + imgs.shape[1:])
    b = stacks[:, pairs_j].reshape((-1,) + imgs.shape[1:])
    net = config.lpips_net
    d = _score(lambda x, y: evaluation.lpips(x, y, net), a, b, chunk=config.score_batch)
    d = d.reshape(len(order), -1).mean(axis=1)
    return dict(zip(order, d))


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
    """4. The renders (``images/``) and the references (``references/``, when scored)."""
    for r, (e, v, c, s, j) in zip(rows, p.cells()):
        stage.save_png(r["image"], rendered[(e, s)][0][p.channels.index(c)][j])
    if ref_images is not None:
        for i, c in enumerate(p.channels):
            stage.save_png(f"references/{p.layer}_{c:04d}.png", ref_images[i])


def write_results_csv(stage: Staging, rows: list[dict]) -> None:
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


def study_manifest(p: Plan, rows: list[dict], ref_sources, plots: list[str], timings: dict, wall: float,
                   trust, natural, path_layers, start: float) -> dict:
    """``manifest.json``: settings, the outputs, timings of the render / reference / scoring / writing phases."""
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
        "recipe": SWEEP_RECIPE if config.get("recipe") == SWEEP_RECIPE else "study",
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


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check_workdir(workdir)
    check(config)
    config = study_config(config)
    p = plan(config)

    timings: dict[str, float] = {}

    def timed(name: str, stage, *args):
        t = time.time()
        out = stage(*args)
        timings[name] = time.time() - t
        return out

    natural, path_layers = None, []
    if config.measures:  # natural images first: a bad folder fails before any rendering
        natural, path_layers = timed("natural_s", natural_images, p)
    ref_images, ref_sources, sc = None, None, None
    if p.scored:
        ref_images, ref_sources = timed("reference_s", reference_images, p)
    rendered = timed("render_s", renders, p)
    if p.scored:
        sc = timed("score_s", scores, p, rendered, ref_images, natural, path_layers)
    rows = result_rows(p, rendered, sc)

    t = time.time()
    with Staging(workdir) as stage:
        write_images(stage, p, rows, rendered, ref_images)
        write_results_csv(stage, rows)
        plots = []
        if p.scored:
            write_lpips_tables(stage, p, rows)
            if sc.trust is not None:
                write_measures(stage, p, rows, natural, path_layers)
            plots = write_plots(stage, p, rows)
        sheet, cards, columns = contact_sheet_and_cards(p, rows, None if sc is None else sc.images, ref_images,
                                                         ref_sources, rendered)
        timings["write_s"] = time.time() - t
        wall = time.time() - start
        manifest = study_manifest(p, rows, ref_sources, plots, timings, wall, None if sc is None else sc.trust, natural,
                                  path_layers, start)
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
        write_run(stage, manifest, title, cards, header,
                  grid=sheet, grid_columns=columns, grid_name="contact_sheet.png")
    return manifest


REFERENCE_SEED_OFFSET = 1000  # the reference's key differs from every rendered seed's
MEASURE_SEED_OFFSET = 2000  # the measures' trials and random baseline: one key for every experiment
REFERENCE_DOCS = {
    "lucid": "Lucid's recipe: Fourier + decorrelated colour + sigmoid, standard transforms, Adam 0.05, reference_steps",
    "natural": "the most activating window among the images of reference_images",
    "none": "no reference: the images are not scored (results.csv has the render's objective)",
}


RECIPE = Recipe(run=run, check=check)
