"""Recipe ``score``: the trust measures of an earlier activation-maximisation run's visualisations.

``python -m jfv --config=configs/score.py --config.run_dir=DIR --workdir=OUT`` reads DIR's
``manifest.json`` (written by the ``channels`` and ``layer`` recipes: model, layer, channels and
their PNGs), streams natural images once through the same model (``jfv.analysis.datasets`` batches; each
image's score per channel is ``jfv.analysis.topk.scores``, the channel objective's mean by default) and
scores every visualisation with the measures that apply:

- channels of a hidden layer: the two-alternative test (``jfv.evaluation.two_afc``: accuracy, its
  permutation p-value and bootstrap interval) and the processing path (``jfv.evaluation.processing_path``);
- classes (``layer = logits``): plausibility (Fel et al. 2023: cosine similarity to the class's natural
  images in the penultimate feature space of the model and of each of ``transfer_models``,
  ``jfv.evaluation.plausibility``, with natural-image and noise baselines), confidence (the model's own
  probability of the class), transferability (``transfer_models``' probabilities and margins) and the
  processing path.

Writes into OUT (never into DIR): ``scores.csv`` (one row per visualisation), ``scores.md`` (the
same as a table, the summary, and the processing path per layer), ``index.html`` (the settings; the
shared page of every run, ``jfv.runtime.outputs.write_run``) and ``manifest.json``.

The run's PNGs and the natural images are RGB; a model with other input channels sees them through
``Model.from_rgb`` (a grayscale model: their ITU-R BT.601 luma), and the two-alternative test's LPIPS
(an RGB network) compares those grey images repeated into three channels.

This module checks the config and runs the stages; ``scored_run`` reads DIR, ``score_measures`` adds
each measure's columns and ``score_tables`` writes the tables.

Zimmermann, Klindt & Brendel 2024 (MIS); Borowski et al. 2021; Fel et al. 2023 (MACO); Geirhos et al. 2024.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from jfv.analysis import datasets, passes, topk
from jfv import evaluation, models
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes import Recipe
from jfv.recipes.common import FLOAT_BYTES, ConfigError, available_memory, check_int, check_seed, in_config_terms, run_info
from jfv.recipes.evaluation.score_measures import add_class_scores, add_plausibility, add_two_afc, path_per_layer, path_rows
from jfv.recipes.evaluation.score_tables import csv_text, fmt, markdown
from jfv.recipes.evaluation.scored_run import image_side, load_references, read_run, run_entries

CLASS_LAYER = evaluation.CLASS_LAYER
MIN_RESAMPLES = 20  # the smallest permutation p-value is 1 / (1 + resamples): 20 lets it fall below 0.05
SIGNIFICANCE = 0.05  # scores.md counts the channels whose two-alternative p-value is below this


# -- configuration -------------------------------------------------------------------------------------


def parse_names(spec: str) -> list[str]:
    return [s.strip() for s in str(spec).split(",") if s.strip()]


def check(config: ml_collections.ConfigDict) -> None:
    check_int(config.image_size, "image_size", 0, meaning="natural images' side; 0 = the visualisations' size")
    check_int(config.trials, "trials", 1, meaning="two-alternative trials per channel")
    check_int(config.swaps, "swaps", 0, meaning="other channels' visualisations each channel's two-alternative test is "
              "also answered with (the swap control); 0 = none")
    check_int(config.resamples, "resamples", MIN_RESAMPLES,
              meaning="permutations and bootstrap draws per channel of the two-alternative test's p-value and "
                      f"interval; >= {MIN_RESAMPLES} so that p < {SIGNIFICANCE} is possible")
    check_int(config.tail, "tail", 1, meaning="natural images in each of a channel's top and bottom tails")
    check_int(config.path_top, "path_top", 1, meaning="top natural images each visualisation is compared with")
    check_int(config.path_random, "path_random", 1, meaning="random natural images of the baseline")
    check_int(config.batch_size, "batch_size", 1, meaning="natural images per compiled call")
    check_int(config.per_class, "per_class", 0, meaning="CIFAR-10 images per class; 0 = all")
    check_int(config.limit, "limit", 0, meaning="the first n images; 0 = all")
    check_seed(config.seed)
    if config.reduce not in topk.REDUCTIONS:
        raise ConfigError(f"unknown reduce {config.reduce!r}; valid: {', '.join(topk.REDUCTIONS)}")
    if config.similarity not in evaluation.SIMILARITIES:
        raise ConfigError(f"unknown similarity {config.similarity!r}; valid: {', '.join(evaluation.SIMILARITIES)}")
    if config.lpips_net not in evaluation.NETS:
        raise ConfigError(f"unknown lpips_net {config.lpips_net!r}; valid: {', '.join(evaluation.NETS)}")


def load_transfer_models(model: models.Model, names: list[str], weights_dir: str) -> dict[str, models.Model]:
    """The models that score transferability, loaded before the pass; each must share ``model``'s labels."""
    out = {}
    for name in names:
        other = models.load(name, weights_dir=weights_dir or None)
        if other.labels != model.labels or other.layers.get(CLASS_LAYER) != model.layers.get(CLASS_LAYER):
            raise ConfigError(f"transfer model {name} has other classes than {model.name}: list models trained on "
                              f"the same labels in transfer_models ({','.join(models.names_with_labels(model.labels))}), or '' for none")
        out[name] = other
    return out


def check_workdir_apart(workdir: str, run_dir: str) -> None:
    out, scored = Path(workdir).expanduser().resolve(), Path(run_dir).expanduser().resolve()
    if out == scored or scored in out.parents:
        raise ConfigError(f"--workdir {workdir} is the scored run's DIR or inside it: pass a workdir of its own "
                          f"(score never writes into the run it scores)")


def make_source(config: ml_collections.ConfigDict) -> datasets.Source:
    try:
        if config.dataset == "cifar10":
            source = datasets.cifar10(config.split, per_class=int(config.per_class) or None,
                                      archive=datasets.find_cifar10(config.cifar10_path, config.shared_dir))
        else:
            source = datasets.image_folder(config.dataset)
    except datasets.DatasetError as e:
        raise in_config_terms(e, "cifar10_path", "shared_dir") from None
    return source.take(int(config.limit)) if int(config.limit) else source


def path_layers(model: models.Model, layer: str, spec: str) -> list[str]:
    """``""``: every layer of the model's table up to and including ``layer``; else the listed ones."""
    names = list(model.layers)
    if not str(spec).strip():
        return evaluation.layers_up_to(model, layer)
    chosen = parse_names(spec)
    for name in chosen:
        model.check_layer(name)
    return sorted(chosen, key=names.index)


def check_before_claim(config: ml_collections.ConfigDict, workdir: str) -> None:
    """What ``python -m jfv`` checks before it claims the workdir: a workdir that is the scored DIR
    (or inside it) is refused before ``--overwrite`` could move the scored run aside."""
    check(config)
    read_run(config.run_dir)
    check_workdir_apart(workdir, config.run_dir)


def check_natural_memory(n: int, size: int, profile_width: int) -> None:
    """Refuses, with the figure, natural images (kept in memory for the LPIPS queries) that cannot fit."""
    need = n * (3 * size * size + profile_width) * FLOAT_BYTES
    free = available_memory()
    if free is not None and need > free // 2:
        raise ConfigError(f"{n} natural images at {size} px need about {need / 1e6:.1f} MB in memory, more than half "
                          f"the {free / 1e6:.1f} MB free: lower per_class or limit, or image_size")


# -- the stages ------------------------------------------------------------------------------------------


class Scored(NamedTuple):
    """The scored run as the model sees it, with what scores it (``scored_inputs``)."""

    manifest: dict  # the scored run's manifest.json
    model: models.Model
    layer: str
    channels: list[int]
    size: int  # the side the visualisations and natural images are read at
    pictures: np.ndarray  # (C, R, S, S, 3): the run's PNGs, read as RGB
    references: np.ndarray  # as the model sees them (BT.601 luma for a grayscale model)
    layers: list[str]  # the processing path's layers
    transfer: dict[str, models.Model]  # classes only: the transferability models

    @property
    def is_class(self) -> bool:
        return self.layer == CLASS_LAYER


class Scores(NamedTuple):
    """Every visualisation's measures (``scores``): the rows of ``scores.csv`` and what the summary,
    the report and the manifest say of them."""

    rows: list[dict]
    measures: list[str]  # the columns the summary averages
    summary: dict  # measure -> {"mean", "sd"} over the visualisations
    path_table: list[dict]  # the processing path per layer
    natural: int  # natural images read
    top: int  # top natural images each visualisation is compared with
    random: int  # random natural images of the processing path's baseline
    afc: Any  # evaluation.TwoAFC, or None (classes)
    tail: int | None  # the two-alternative test's tails
    above: int | None  # channels above chance at p < SIGNIFICANCE
    below: int | None  # and below
    specific: int | None  # channels whose own accuracy beats the swap control's at p < SIGNIFICANCE
    baselines: dict | None  # the plausibility baselines (classes with labelled natural images)


def scored_inputs(config: ml_collections.ConfigDict, manifest: dict, entries: list[dict]) -> Scored:
    """The scored run's model, layer, channels and visualisations, refused where the model lacks them,
    and the transfer models of a class run."""
    model = models.load(manifest["model"], weights_dir=config.weights_dir or None)
    layer = entries[0]["layer"]
    model.check_layer(layer)
    channels = [e["channel"] for e in entries]
    model.check_channels(layer, channels)
    size = int(config.image_size) or image_side(entries[0]["images"][0])
    pictures = load_references(entries, size)
    references = model.from_rgb(pictures)
    layers = path_layers(model, layer, config.path_layers)
    transfer = load_transfer_models(model, parse_names(config.transfer_models), config.weights_dir) \
        if layer == CLASS_LAYER else {}
    return Scored(manifest, model, layer, channels, size, pictures, references, layers, transfer)


def scores(config: ml_collections.ConfigDict, s: Scored, source: datasets.Source,
           natural: evaluation.NaturalPass) -> Scores:
    """Every visualisation's measures: the processing path, then the class measures (classes) or the
    two-alternative test (channels), the summary and the path per layer."""
    images, channel_scores, nat_profiles = natural
    n = len(images)
    key = jax.random.key(config.seed)
    k_afc, k_rand = jax.random.split(key)
    rows, vis_path, nat_path, k, rand_ids = path_rows(config, s.model, s.layer, s.channels, s.layers, s.references,
                                                      channel_scores, nat_profiles, n, k_rand)
    measures = ["path_gap", "path_gap_natural", "path_deficit"]
    afc = baselines = tail = None
    if s.is_class:
        baselines = add_plausibility(key, s.model, s.channels, s.references, s.pictures, s.transfer, source, s.size,
                                     rows, measures)
        add_class_scores(s.model, s.channels, s.references, s.pictures, s.transfer, rows, measures)
    else:
        afc, tail = add_two_afc(config, s.channels, s.references, images, channel_scores, k_afc, rows, measures)
    path_keys = ("path_top", "path_random", "path_gap", "path_gap_natural", "path_deficit")
    rows = [{**{k: v for k, v in r.items() if k not in path_keys}, **{k: r[k] for k in path_keys}} for r in rows]
    summary = {m: {"mean": float(np.mean([r[m] for r in rows])), "sd": float(np.std([r[m] for r in rows]))}
               for m in measures}
    above = below = specific = None
    if afc is not None:
        significant = np.asarray(afc.p_value) < SIGNIFICANCE
        above = int((significant & (np.asarray(afc.accuracy) > 0.5)).sum())
        below = int((significant & (np.asarray(afc.accuracy) < 0.5)).sum())
        if afc.swap_p_value is not None:
            specific = int((np.asarray(afc.swap_p_value) < SIGNIFICANCE).sum())
    return Scores(rows, measures, summary, path_per_layer(s.layers, vis_path, nat_path), n, k, len(rand_ids), afc,
                  tail, above, below, specific, baselines)


def score_manifest(config: ml_collections.ConfigDict, s: Scored, source: datasets.Source, sc: Scores,
                   start: float) -> dict:
    """``manifest.json``: the scored run, the natural images, each measure's settings, the summary."""
    afc = sc.afc
    out = {
        "recipe": "score",
        "scored_run": str(Path(config.run_dir).expanduser().resolve()),
        "scored_recipe": s.manifest["recipe"],
        "model": s.model.name,
        "layer": s.layer,
        "objective": s.manifest.get("objective", ""),
        "channels": s.channels,
        "natural_images": {"source": source.description, "read": sc.natural, "size": s.size},
        "measures": {
            "two_afc": None if afc is None else {
                "trials": int(config.trials), "tail": sc.tail, "similarity": f"LPIPS ({config.lpips_net})",
                "resamples": int(config.resamples), "interval": evaluation.TWO_AFC_LEVEL,
                "above_chance": sc.above, "below_chance": sc.below, "significance": SIGNIFICANCE,
                "swaps": None if afc.swap_accuracy is None else int(afc.swap_accuracy.shape[1]),
                "above_swaps": sc.specific,
                "note": "machine observer of Borowski et al. 2021 / MIS (Zimmermann et al. 2024) with LPIPS in place "
                        "of DreamSim (offline), maximally activating references only, hard fraction correct; p-value "
                        "from a permutation null over the tails' top/bottom labels, interval from a bootstrap over "
                        "references, tail images and trials"},
            "plausibility": None if not s.is_class else {
                "baselines": sc.baselines, "feature_space": "spatially averaged activations of each model's layer "
                "before the logits; cosine similarity to the natural images of the class, mean (Fel et al. 2023)",
                "note": None if sc.baselines is not None else "n/a: the natural images are not labelled with the "
                        "model's classes (use dataset=cifar10 for CIFAR-10 models)"},
            "transferability": {"transfer_models": list(s.transfer)} if s.is_class else None,
            "processing_path": {"layers": s.layers, "similarity": config.similarity, "top": sc.top,
                                "random": sc.random},
        },
        "summary": sc.summary,
        "path_per_layer": sc.path_table,
        "scores": "scores.csv",
        "report": "scores.md",
        "settings": config.to_dict(),
    }
    out.update(run_info(start))
    return out


def report_header(config: ml_collections.ConfigDict, s: Scored, source: datasets.Source, sc: Scores,
                  out_manifest: dict) -> dict:
    """The settings ``scores.md`` and ``index.html`` open with, one line a measure."""
    afc, n_channels = sc.afc, len(s.channels)
    return {"scored run": out_manifest["scored_run"], "model": s.model.name, "layer": s.layer,
            "natural images": f"{sc.natural} from {source.description} at {s.size} px",
            "two-alternative test": "n/a (class visualisations)" if afc is None else
            f"{config.trials} trials per channel, tails of {sc.tail}, LPIPS {config.lpips_net}; p-value: permutation "
            f"null ({config.resamples} shufflings of the tails' labels), interval: {evaluation.TWO_AFC_LEVEL:.0%} "
            f"bootstrap over references, tail images and trials; {sc.above} of {n_channels} channels above chance "
            f"and {sc.below} below at p < {SIGNIFICANCE}" + ("" if afc.swap_accuracy is None else
            f"; swap control: each test also answered with {afc.swap_accuracy.shape[1]} other channels' "
            f"visualisations, {sc.specific} of {n_channels} channels' own above them at p < {SIGNIFICANCE} "
            f"(the smallest p is 1/{afc.swap_accuracy.shape[1] + 1})"),
            "plausibility": "n/a (channels of a hidden layer)" if not s.is_class else
            "n/a (the natural images are not labelled with the model's classes)" if sc.baselines is None else
            "cosine similarity to the class's natural images, spatially averaged features of "
            + "; ".join(f"{name} ({b['model']} {b['layer']}): natural images {fmt(b['natural'])}, noise "
                        f"{fmt(b['noise'])}" for name, b in sc.baselines.items()),
            "processing path": f"{config.similarity} of spatially averaged activations over {len(s.layers)} layers, "
                               f"top {sc.top} vs {sc.random} random natural images",
            "wall time (s)": out_manifest["wall_time_s"]}


# -- the recipe ------------------------------------------------------------------------------------------


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    manifest = read_run(config.run_dir)
    entries = run_entries(manifest, config.run_dir)
    check_workdir_apart(workdir, config.run_dir)
    check_workdir(workdir)
    s = scored_inputs(config, manifest, entries)
    source = make_source(config)
    check_natural_memory(len(source), s.size, sum(s.model.layers[name] for name in s.layers))
    natural = passes.natural_pass(s.model, source, s.layer, s.channels, s.layers, s.size, int(config.batch_size),
                                  config.reduce)
    sc = scores(config, s, source, natural)
    out_manifest = score_manifest(config, s, source, sc, start)
    header = report_header(config, s, source, sc, out_manifest)
    title = f"Trust measures: {s.model.name} {s.layer}"
    with Staging(workdir) as stage:
        stage.write_text("scores.csv", csv_text(sc.rows))
        stage.write_text("scores.md", markdown(title, header, sc.rows, sc.summary, sc.path_table))
        write_run(stage, out_manifest, title, header=header)
    return out_manifest


RECIPE = Recipe(run=run, check=check, check_workdir=check_before_claim)
