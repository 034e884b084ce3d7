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

This module is the recipe (``check``, ``run``, the sweep alias); its stages live beside it:
``study_plan.py`` (the plan and the renders), ``study_scores.py`` (references and scores),
``study_outputs.py`` (every output file), ``study_tables.py`` (the tables and plots) and
``experiments.py`` (the experiment table and its renderer).
"""

from __future__ import annotations

import time
from typing import Any

import ml_collections

from jfv import evaluation
from jfv.recipes import Recipe
from jfv.recipes.common import ConfigError, check_int
from jfv.recipes.evaluation.experiments import OPTIMISERS, PARAMS, experiment_values, parse_experiments
from jfv.recipes.evaluation.study_outputs import (
    contact_sheet_and_cards, gallery_header, result_rows, study_manifest, write_images, write_lpips_tables,
    write_measures, write_plots, write_results_csv,
)
from jfv.recipes.evaluation.study_plan import plan, renders
from jfv.recipes.evaluation.study_scores import REFERENCES, natural_images, reference_images, scores
from jfv.recipes.optvis.settings import make_transforms
from jfv.runtime.outputs import Staging, check_workdir, write_run

SWEEP_RECIPE = "sweep"  # the recipe name that asks for a sweep (jfv.recipes.RECIPES: this module)
# What recipe="sweep" means: the study keys a sweep config may leave out, and their values there.
# (lpips_net: any valid network; a sweep scores nothing, so none is read)
SWEEP = {"experiments": "sweep", "seeds": 1, "reference": "none", "measures": False, "lpips_net": evaluation.NETS[0]}


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


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """The stages in order: plan, natural images (``measures``), references, renders, scores, then every
    output, staged, the manifest last (``write_run``)."""
    start = time.time()
    check_workdir(workdir)
    check(config)
    config = study_config(config)
    recipe = SWEEP_RECIPE if config.get("recipe") == SWEEP_RECIPE else "study"
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
        manifest = study_manifest(p, recipe, rows, ref_sources, plots, timings, wall, None if sc is None else sc.trust,
                                  natural, path_layers, start)
        title, header = gallery_header(p, manifest, wall)
        write_run(stage, manifest, title, cards, header, grid=sheet, grid_columns=columns, grid_name="contact_sheet.png")
    return manifest


RECIPE = Recipe(run=run, check=check)
