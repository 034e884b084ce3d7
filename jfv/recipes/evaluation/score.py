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

Zimmermann, Klindt & Brendel 2024 (MIS); Borowski et al. 2021; Fel et al. 2023 (MACO); Geirhos et al. 2024.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv.analysis import datasets, passes, topk
from jfv import evaluation, models
from jfv.runtime.outputs import ImageReadError, Staging, check_workdir, load_image, write_run
from jfv.recipes import Recipe
from jfv.recipes.common import FLOAT_BYTES, ConfigError, available_memory, check_int, check_seed, in_config_terms, run_info

RECIPES_SCORED = ("channels", "layer")  # recipes whose manifest lists a layer, channels and PNGs
CLASS_LAYER = evaluation.CLASS_LAYER
MIN_RESAMPLES = 20  # the smallest permutation p-value is 1 / (1 + resamples): 20 lets it fall below 0.05
SIGNIFICANCE = 0.05  # scores.md counts the channels whose two-alternative p-value is below this
NOISE_STREAM = 2  # fold_in(key, .) of the noise images of the plausibility baseline (split(key) uses 0, 1)


class RunDirError(ValueError):
    """A run DIR that cannot be scored: no manifest, another recipe's, or missing images."""


# -- reading the scored run ----------------------------------------------------------------------------


def read_run(run_dir: str) -> dict:
    """The scored run's manifest, refused (naming the fix) unless it lists a layer's channels and PNGs."""
    if not run_dir:
        raise ConfigError("run_dir is empty: pass --config.run_dir=DIR, the workdir of a finished channels or "
                          "layer run (python -m jfv --config=configs/vgg16_channels.py --workdir=DIR)")
    path = Path(run_dir).expanduser()
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise RunDirError(f"{path} has no manifest.json: pass --config.run_dir=DIR of a finished channels or layer "
                          f"run (run it to the end first, e.g. python -m jfv --config=configs/tiny.py --workdir=DIR)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise RunDirError(f"{manifest_path} cannot be read ({e}): re-run the AM run into a fresh DIR") from None
    if not isinstance(manifest, dict) or manifest.get("recipe") not in RECIPES_SCORED or \
            not isinstance(manifest.get("channels"), list) or not manifest["channels"]:
        raise RunDirError(f"{manifest_path} is not a finished channels or layer run's manifest (recipe "
                          f"{manifest.get('recipe') if isinstance(manifest, dict) else None!r}): pass the DIR of "
                          f"a {' or '.join(RECIPES_SCORED)} run")
    return manifest


def run_entries(manifest: dict, run_dir: str) -> list[dict]:
    """One entry per visualised channel: ``{"layer", "channel", "images": [paths]}``; missing PNGs refused."""
    root = Path(run_dir).expanduser()
    entries, missing = [], []
    for e in manifest["channels"]:
        layer = e.get("layer", manifest.get("layer"))
        rels = e.get("images") or [e.get("image")]
        paths = [root / r for r in rels if r]
        missing += [str(p) for p in paths if not p.is_file()] + ([f"channel {e.get('channel')}"] if not paths else [])
        entries.append({"layer": layer, "channel": int(e["channel"]), "images": paths})
    if missing:
        raise RunDirError(f"{root} lacks {len(missing)} image(s) its manifest lists (e.g. {missing[0]}): re-run the "
                          f"AM run into DIR, or pass the DIR it wrote")
    layers = sorted({e["layer"] for e in entries})
    if len(layers) != 1:
        raise RunDirError(f"{root} holds channels of several layers ({', '.join(layers)}): score one layer per run "
                          f"(re-run the channels or layer config with one layer)")
    return entries


def image_side(path: Path) -> int:
    """The shorter side of the image at ``path`` (the visualisations' size)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return min(im.size)
    except OSError as e:
        raise RunDirError(f"{path} is not an image jfv can read ({e}): re-run the AM run into DIR") from None


def load_references(entries: list[dict], size: int) -> np.ndarray:
    """The visualisations as (C, R, size, size, 3) float32 (R images per channel; ``load_image``)."""
    counts = {len(e["images"]) for e in entries}
    if len(counts) != 1:
        raise RunDirError(f"channels have different numbers of images ({sorted(counts)}): score a run that "
                          f"rendered images_per_channel images for every channel")
    try:
        return np.stack([np.stack([load_image(p, size) for p in e["images"]]) for e in entries])
    except ImageReadError as e:
        raise RunDirError(f"{e} (a visualisation of the scored run)") from None


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


# -- the natural images ----------------------------------------------------------------------------------


def lpips_rgb(images: np.ndarray) -> np.ndarray:
    """Model-input images (..., C) as the RGB LPIPS compares: as they are for 3 channels, else their
    grey picture (``datasets.displayable``) repeated into three channels."""
    images = np.asarray(images, np.float32)
    return images if images.shape[-1] == 3 else np.repeat(datasets.displayable(images), 3, axis=-1)


def check_natural_memory(n: int, size: int, profile_width: int) -> None:
    """Refuses, with the figure, natural images (kept in memory for the LPIPS queries) that cannot fit."""
    need = n * (3 * size * size + profile_width) * FLOAT_BYTES
    free = available_memory()
    if free is not None and need > free // 2:
        raise ConfigError(f"{n} natural images at {size} px need about {need / 1e6:.1f} MB in memory, more than half "
                          f"the {free / 1e6:.1f} MB free: lower per_class or limit, or image_size")




# -- outputs ---------------------------------------------------------------------------------------------


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in rows])
    return buf.getvalue()


def fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown(title: str, header: dict, rows: list[dict], summary: dict, path_table: list[dict]) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += ["", "## Summary", "", "| measure | mean | spread (sd over channels) |", "|---|---|---|"]
    lines += [f"| {k} | {v['mean']:.3f} | {v['sd']:.3f} |" for k, v in summary.items()]
    lines += ["", "## Per visualisation", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(fmt(v) for v in r.values()) + " |" for r in rows]
    lines += ["", "## Processing path per layer (mean over visualisations)", "",
              "| layer | visualisation vs top | visualisation vs random | natural top-1 vs top | natural top-1 vs random |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['layer']} | {r['vis_top']:.3f} | {r['vis_random']:.3f} | {r['nat_top']:.3f} | "
              f"{r['nat_random']:.3f} |" for r in path_table]
    return "\n".join(lines) + "\n"


# -- the measures ----------------------------------------------------------------------------------------


def path_rows(config, model, layer, channels, layers, references, scores, nat_profiles, n: int, k_rand):
    """Processing path: each visualisation (its first image) against its channel's top natural images.
    (one row per channel with the ``path_*`` columns of ``scores.csv``, the visualisations' path, the
    natural top-1's path, top k, the random baseline's ids)."""
    k = min(int(config.path_top), n - 1)
    top, _ = evaluation.tail_indices(scores, k + 1)  # (C, k + 1): rank 0 is the natural reference
    top = np.asarray(top)
    rand_ids = np.asarray(jax.random.choice(k_rand, n, (min(int(config.path_random), n),), replace=False))
    vis_profiles = evaluation.activation_profiles(model, references[:, 0], layers)
    random_p = {name: nat_profiles[name][rand_ids] for name in layers}
    vis_path = evaluation.processing_path(vis_profiles, {name: nat_profiles[name][top[:, :k]] for name in layers},
                                       random_p, layers, config.similarity)
    nat_path = evaluation.processing_path({name: nat_profiles[name][top[:, 0]] for name in layers},
                                       {name: nat_profiles[name][top[:, 1:]] for name in layers},
                                       random_p, layers, config.similarity)
    rows = [{"layer": layer, "channel": c} for c in channels]
    for i, r in enumerate(rows):
        r["path_top"] = float(vis_path.top[i].mean())
        r["path_random"] = float(vis_path.random[i].mean())
        r["path_gap"] = float(vis_path.gap[i])
        r["path_gap_natural"] = float(nat_path.gap[i])
        r["path_deficit"] = float((nat_path.top[i] - vis_path.top[i]).mean())
    return rows, vis_path, nat_path, k, rand_ids


def add_class_scores(model, channels, references, pictures, transfer: dict, rows: list[dict], measures: list[str]) -> None:
    """Classes: confidence (``confidence_own``, ``margin_own``: the rendering model's p(class) and margin) and
    transferability (``confidence_<model>``, ``margin_<model>``) added to ``rows``, their names to ``measures``."""
    targets = jnp.asarray(channels, jnp.int32)
    own = np.asarray(evaluation.confidence(model, references[:, 0], targets))
    own_margin = np.asarray(evaluation.class_margins(model, references[:, 0], targets))
    for i, r in enumerate(rows):
        r["confidence_own"], r["margin_own"] = float(own[i]), float(own_margin[i])
    measures += ["confidence_own", "margin_own"]
    for name, other in transfer.items():
        seen = other.from_rgb(pictures[:, 0])  # each transfer model's own input
        p = np.asarray(evaluation.confidence(other, seen, targets))
        margin = np.asarray(evaluation.class_margins(other, seen, targets))
        for i, r in enumerate(rows):
            r[f"confidence_{name}"], r[f"margin_{name}"] = float(p[i]), float(margin[i])
        measures += [f"confidence_{name}", f"margin_{name}"]


def natural_rgb(source: datasets.Source, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The natural images in RGB at ``size`` px (unreadable ones dropped) and their labels:
    (N, S, S, 3) float32, (N,) int32."""
    loaded = datasets.load(source, source.ids, size)
    keep = [i for i, n in enumerate(source.ids) if int(n) in loaded]
    images = np.stack([loaded[int(source.ids[i])] for i in keep]).astype(np.float32)
    return images, source.labels[keep]


def add_plausibility(key, model, channels, references, pictures, transfer: dict, source: datasets.Source, size: int,
                     rows: list[dict], measures: list[str]) -> dict | None:
    """Classes: plausibility (``plausibility_own``, ``plausibility_<model>``: ``evaluation.plausibility`` in the
    penultimate feature space of the rendering model and of each transfer model) added to ``rows`` and
    ``measures``. Returns, per model, its feature layer and two baselines on the same scale: ``natural``
    (each natural image against the others of its class, mean) and ``noise`` (uniform noise images, one per
    visualisation, against the same classes, mean; None where no class has two images); None (nothing
    added) when the natural images are not labelled with the model's classes. A visualised class without
    natural images is a ConfigError naming it."""
    if not source.classes or tuple(source.classes) != tuple(model.labels or ()):
        return None
    nat_rgb, labels = natural_rgb(source, size)
    targets = np.asarray(channels, np.int32)
    missing = sorted({int(t) for t in targets} - {int(y) for y in labels})
    if missing:
        raise ConfigError(f"plausibility compares each class visualisation with natural images of its class, and classes "
                          f"{missing[:10]} have none among the {len(labels)} natural images read: raise per_class or limit")
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)
    pairs = counts[labels] >= 2  # the natural baseline leaves each image out of its class: classes of 2+ images
    noise = np.asarray(jax.random.uniform(jax.random.fold_in(key, NOISE_STREAM), pictures[:, 0].shape, jnp.float32))
    baselines = {}
    for name, m, vis in [("own", model, references[:, 0])] + [(n, o, o.from_rgb(pictures[:, 0])) for n, o in transfer.items()]:
        nat = evaluation.class_features(m, m.from_rgb(nat_rgb))
        p = np.asarray(evaluation.plausibility(evaluation.class_features(m, vis), nat, labels, targets))
        for i, r in enumerate(rows):
            r[f"plausibility_{name}"] = float(p[i])
        measures.append(f"plausibility_{name}")
        noise_p = evaluation.plausibility(evaluation.class_features(m, m.from_rgb(noise)), nat, labels, targets)
        natural = float(np.mean(evaluation.natural_plausibility(nat[pairs], labels[pairs]))) if pairs.any() else None
        baselines[name] = {"model": m.name, "layer": evaluation.feature_layer(m),
                           "natural": natural, "noise": float(np.mean(noise_p))}
    return baselines


def add_two_afc(config, channels, references, images, scores, k_afc, rows: list[dict], measures: list[str]):
    """Channels: the two-alternative test (``two_afc``, ``two_afc_se``: its binomial standard error over trials,
    ``two_afc_p``: its permutation p-value against chance, ``two_afc_ci_low`` / ``_high``: its 95% bootstrap
    interval, ``two_afc_null_sd``: the null's spread; with ``swaps`` and 2+ channels ``two_afc_swap``: the mean
    accuracy of other channels' visualisations on the same test and ``two_afc_swap_p``: the own accuracy's
    rank p-value among them) added to ``rows``; ``two_afc`` (and ``two_afc_swap``) to ``measures``;
    (the test's result, the tails' size)."""
    n = len(images)
    tail = min(int(config.tail), n // 2)
    if tail < 1:
        raise ConfigError(f"the two-alternative test needs at least 2 natural images, got {n}: use more (per_class, limit)")
    afc = evaluation.two_afc(k_afc, lpips_rgb(references), lpips_rgb(images), scores, jnp.asarray(channels),
                          int(config.trials), tail, config.lpips_net, resamples=int(config.resamples),
                          swaps=int(config.swaps))
    for i, r in enumerate(rows):
        r["two_afc"] = float(afc.accuracy[i])
        r["two_afc_se"] = float(afc.stderr[i])
        r["two_afc_p"] = float(afc.p_value[i])
        r["two_afc_ci_low"] = float(afc.ci_low[i])
        r["two_afc_ci_high"] = float(afc.ci_high[i])
        r["two_afc_null_sd"] = float(afc.null_sd[i])
        if afc.swap_accuracy is not None:
            r["two_afc_swap"] = float(afc.swap_accuracy[i].mean())
            r["two_afc_swap_p"] = float(afc.swap_p_value[i])
    measures.insert(0, "two_afc")
    if afc.swap_accuracy is not None:
        measures.insert(1, "two_afc_swap")
    return afc, tail


def path_per_layer(layers: list[str], vis_path, nat_path) -> list[dict]:
    """``scores.md``'s processing path per layer (mean over visualisations)."""
    return [{"layer": name, "vis_top": float(vis_path.top[:, j].mean()),
             "vis_random": float(vis_path.random[:, j].mean()), "nat_top": float(nat_path.top[:, j].mean()),
             "nat_random": float(nat_path.random[:, j].mean())} for j, name in enumerate(layers)]


# -- the recipe ------------------------------------------------------------------------------------------


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    manifest = read_run(config.run_dir)
    entries = run_entries(manifest, config.run_dir)
    check_workdir_apart(workdir, config.run_dir)
    check_workdir(workdir)

    model = models.load(manifest["model"], weights_dir=config.weights_dir or None)
    layer = entries[0]["layer"]
    model.check_layer(layer)
    channels = [e["channel"] for e in entries]
    model.check_channels(layer, channels)
    is_class = layer == CLASS_LAYER
    size = int(config.image_size) or image_side(entries[0]["images"][0])
    pictures = load_references(entries, size)  # (C, R, S, S, 3): the run's PNGs, read as RGB
    references = model.from_rgb(pictures)  # as the model sees them (BT.601 luma for a grayscale model)
    layers = path_layers(model, layer, config.path_layers)

    transfer = load_transfer_models(model, parse_names(config.transfer_models), config.weights_dir) if is_class else {}
    source = make_source(config)
    check_natural_memory(len(source), size, sum(model.layers[name] for name in layers))
    images, scores, nat_profiles = passes.natural_pass(model, source, layer, channels, layers, size,
                                                int(config.batch_size), config.reduce)
    n = len(images)
    key = jax.random.key(config.seed)
    k_afc, k_rand = jax.random.split(key)

    rows, vis_path, nat_path, k, rand_ids = path_rows(config, model, layer, channels, layers, references, scores,
                                                      nat_profiles, n, k_rand)
    measures = ["path_gap", "path_gap_natural", "path_deficit"]
    afc = baselines = None
    if is_class:
        baselines = add_plausibility(key, model, channels, references, pictures, transfer, source, size, rows, measures)
        add_class_scores(model, channels, references, pictures, transfer, rows, measures)
    else:
        afc, tail = add_two_afc(config, channels, references, images, scores, k_afc, rows, measures)
    path_keys = ("path_top", "path_random", "path_gap", "path_gap_natural", "path_deficit")
    rows = [{**{k: v for k, v in r.items() if k not in path_keys}, **{k: r[k] for k in path_keys}} for r in rows]
    summary = {m: {"mean": float(np.mean([r[m] for r in rows])), "sd": float(np.std([r[m] for r in rows]))}
               for m in measures}
    path_table = path_per_layer(layers, vis_path, nat_path)
    above = below = specific = None
    if afc is not None:
        significant = np.asarray(afc.p_value) < SIGNIFICANCE
        above = int((significant & (np.asarray(afc.accuracy) > 0.5)).sum())
        below = int((significant & (np.asarray(afc.accuracy) < 0.5)).sum())
        if afc.swap_p_value is not None:
            specific = int((np.asarray(afc.swap_p_value) < SIGNIFICANCE).sum())

    out_manifest = {
        "recipe": "score",
        "scored_run": str(Path(config.run_dir).expanduser().resolve()),
        "scored_recipe": manifest["recipe"],
        "model": model.name,
        "layer": layer,
        "objective": manifest.get("objective", ""),
        "channels": channels,
        "natural_images": {"source": source.description, "read": n, "size": size},
        "measures": {
            "two_afc": None if afc is None else {
                "trials": int(config.trials), "tail": tail, "similarity": f"LPIPS ({config.lpips_net})",
                "resamples": int(config.resamples), "interval": evaluation.TWO_AFC_LEVEL,
                "above_chance": above, "below_chance": below, "significance": SIGNIFICANCE,
                "swaps": None if afc.swap_accuracy is None else int(afc.swap_accuracy.shape[1]),
                "above_swaps": specific,
                "note": "machine observer of Borowski et al. 2021 / MIS (Zimmermann et al. 2024) with LPIPS in place "
                        "of DreamSim (offline), maximally activating references only, hard fraction correct; p-value "
                        "from a permutation null over the tails' top/bottom labels, interval from a bootstrap over "
                        "references, tail images and trials"},
            "plausibility": None if not is_class else {
                "baselines": baselines, "feature_space": "spatially averaged activations of each model's layer before "
                "the logits; cosine similarity to the natural images of the class, mean (Fel et al. 2023)",
                "note": None if baselines is not None else "n/a: the natural images are not labelled with the model's "
                        "classes (use dataset=cifar10 for CIFAR-10 models)"},
            "transferability": {"transfer_models": list(transfer)} if is_class else None,
            "processing_path": {"layers": layers, "similarity": config.similarity, "top": k,
                                "random": len(rand_ids)},
        },
        "summary": summary,
        "path_per_layer": path_table,
        "scores": "scores.csv",
        "report": "scores.md",
        "settings": config.to_dict(),
    }
    out_manifest.update(run_info(start))
    header = {"scored run": out_manifest["scored_run"], "model": model.name, "layer": layer,
              "natural images": f"{n} from {source.description} at {size} px",
              "two-alternative test": "n/a (class visualisations)" if afc is None else
              f"{config.trials} trials per channel, tails of {tail}, LPIPS {config.lpips_net}; p-value: permutation "
              f"null ({config.resamples} shufflings of the tails' labels), interval: {evaluation.TWO_AFC_LEVEL:.0%} "
              f"bootstrap over references, tail images and trials; {above} of {len(channels)} channels above chance "
              f"and {below} below at p < {SIGNIFICANCE}" + ("" if afc.swap_accuracy is None else
              f"; swap control: each test also answered with {afc.swap_accuracy.shape[1]} other channels' "
              f"visualisations, {specific} of {len(channels)} channels' own above them at p < {SIGNIFICANCE} "
              f"(the smallest p is 1/{afc.swap_accuracy.shape[1] + 1})"),
              "plausibility": "n/a (channels of a hidden layer)" if not is_class else
              "n/a (the natural images are not labelled with the model's classes)" if baselines is None else
              "cosine similarity to the class's natural images, spatially averaged features of "
              + "; ".join(f"{name} ({b['model']} {b['layer']}): natural images {fmt(b['natural'])}, noise {fmt(b['noise'])}"
                          for name, b in baselines.items()),
              "processing path": f"{config.similarity} of spatially averaged activations over {len(layers)} layers, "
                                 f"top {k} vs {len(rand_ids)} random natural images",
              "wall time (s)": out_manifest["wall_time_s"]}
    with Staging(workdir) as stage:
        stage.write_text("scores.csv", csv_text(rows))
        stage.write_text("scores.md", markdown(f"Trust measures: {model.name} {layer}", header, rows, summary,
                                               path_table))
        write_run(stage, out_manifest, f"Trust measures: {model.name} {layer}", header=header)
    return out_manifest


RECIPE = Recipe(run=run, check=check, check_workdir=check_before_claim)
