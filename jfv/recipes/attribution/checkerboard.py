"""Recipe ``checkerboard``: deconvnet and guided-backprop reconstructions from each layer, deepest
first (seed 003's "Activation of VGG16 deconvnet on each layer from the deepest one"), with their
measured checkerboard energy.

For each layer and image, the strongest channel (largest activation anywhere) alone is passed down
to the pixels (``jfv.analysis.checkerboard.project``); each reconstruction's share of spectral power on the
period-``stride`` grid (``jfv.evaluation.checkerboard_energy``; ``stride = 2``: one 2x2 unpooling) and
on the grid of the layer's own total stride S (all its unpoolings) is measured.

Writes into the workdir:

- ``figure.png``: the inputs, then a row per layer (deepest first), columns images x {deconvnet,
  guided backprop}, each reconstruction normalised for display (0 grey, its largest magnitude
  black or white, times ``gain``) and titled with its energies;
- ``grid.png``: the same reconstructions pixel for pixel, without labels (rows layers deepest first,
  columns images x methods);
- ``inputs/<image>.png``, ``projections/<layer>_<image>_<method>.png``;
- ``results.csv``: one row per layer, method and grid stride: the layer's stride, each image's
  channel, the white-noise chance level, the mean energy over images and each image's energy;
- ``table.md``: the means as a Markdown table; ``index.html``; ``manifest.json``.

Images are RGB; a model with other input channels is given ``Model.from_rgb(images)`` (a grayscale
model their ITU-R BT.601 luma), and its inputs and projections are written as 8-bit grayscale PNGs
(other counts than 1 and 3: the mean over channels, ``datasets.displayable``). Deconvnet and guided
backprop swap the model's ReLU: a wrapped model needs a ``relu`` field (``docs/models.md``).
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from jfv.analysis import checkerboard as C
from jfv.analysis import datasets, figures
from jfv import evaluation, models
from jfv.attribution import pictures
from jfv.attribution.gradients import check_relu
from jfv.runtime.outputs import Staging, check_workdir, load_image, write_run

from jfv.recipes.photos import SHARED_PREFIX, image_paths
from jfv.recipes.common import (
    ConfigError, parse_layers, shared_folder, check_int, check_memory, check_positive, check_seed, config_model,
    cifar10_location, run_info,
)
from jfv.runtime.outputs import output_names
from jfv.recipes import Recipe

DATASETS = ("files", "cifar10")
CIFAR_SIZE = 32
LABELS = {"deconvnet": "deconvnet", "guided_backprop": "guided backprop"}


def check(config: ml_collections.ConfigDict) -> None:
    if config.dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {config.dataset!r}")
    if config.reduce not in C.REDUCTIONS:
        raise ConfigError(f"reduce must be one of {', '.join(C.REDUCTIONS)} (the channel's whole map | its "
                          f"strongest activation), got {config.reduce!r}")
    check_int(config.stride, "stride", 2, meaning="the checkerboard grid's period in pixels; 2 = one 2x2 unpooling")
    check_int(config.max_images, "max_images", 0, meaning="0 = all")
    check_int(config.image_size, "image_size", 16)
    check_seed(config.seed)
    check_positive(config.gain, "gain", 1.0)
    if config.dataset == "cifar10" and config.image_size != CIFAR_SIZE:
        raise ConfigError(f"dataset=cifar10 images are {CIFAR_SIZE} px: set image_size={CIFAR_SIZE}, got {config.image_size}")


def projection_layers(spec: str, model: models.Model) -> list[str]:
    """``layers`` (``""``: every ``pool*`` layer) -> the layers to project from, deepest first."""
    if not str(spec).strip():
        layers = [name for name in model.layers if name.startswith("pool")]
        if not layers:
            raise ConfigError(f"layers is empty and {model.name} has no pool* layers: name layers to project "
                              f"from, e.g. {', '.join(list(model.layers)[-4:-1])}")
    else:
        layers = parse_layers(spec, example="pool4,pool5")
    for layer in layers:
        C.check_layer(model, layer)
    order = list(model.layers)
    return sorted(layers, key=order.index, reverse=True)


def load_images(config: ml_collections.ConfigDict) -> tuple[np.ndarray, list[str], list[str]]:
    """(n, S, S, 3) images in [0, 1], their output names and where each came from."""
    limit = int(config.max_images)
    if config.dataset == "cifar10":
        n = limit or 10
        k = -(-n // 10)
        archive = cifar10_location(config)
        x, y = datasets.cifar10_subsets(archive, {"test": k})["test"]
        pick = np.arange(10 * k).reshape(10, k).T.ravel()[:n]  # one per class first, from airplane on
        names = [f"{i:02d}_{datasets.CIFAR10_CLASSES[int(y[j])]}" for i, j in enumerate(pick)]
        sources = [f"cifar10 test {datasets.CIFAR10_CLASSES[int(y[j])]} #{int(j) % k}" for j in pick]
        return x[pick].astype(np.float32) / 255.0, names, sources
    parts = []
    for part in (p.strip() for p in str(config.images).split(",") if p.strip()):
        if part.startswith(SHARED_PREFIX):
            part = str(shared_folder(config) / part[len(SHARED_PREFIX):])
        parts.append(part)
    paths = image_paths(",".join(parts), limit)
    return np.stack([load_image(p, int(config.image_size)) for p in paths]), output_names(paths), paths


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _sig(v: float) -> float:
    """Six significant figures: small energies (1e-6) keep their digits in the CSV and manifest."""
    return float(f"{float(v):.6g}")


def _rgb(picture: np.ndarray) -> np.ndarray:
    """A model-input picture (H, W, C) as (H, W, 3) for matplotlib: grey repeated into RGB."""
    shown = datasets.displayable(picture)
    return shown if shown.shape[-1] == 3 else np.repeat(shown, 3, axis=-1)


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def measure_energies(projections, layers: list[str], strides: dict, stride: int) -> dict[tuple[str, str, int], np.ndarray]:
    """(layer, method, grid stride) -> (n,) checkerboard energies, at ``stride`` and at each layer's own."""
    energies: dict[tuple[str, str, int], np.ndarray] = {}
    for layer in layers:
        grids = [stride] + ([strides[layer]] if strides[layer] >= 2 and strides[layer] != stride else [])
        for s in grids:
            for method, e in C.measure(projections[layer], s).items():
                energies[(layer, method, s)] = e
    return energies


def energy_rows(energies, strides, projections, names, h: int, w: int) -> list[dict]:
    """``results.csv``: a row per (layer, method, grid stride), each image's energy in a column."""
    rows = []
    for (layer, method, s), e in energies.items():
        row = {"layer": layer, "layer_stride": strides[layer], "method": method, "grid_stride": s,
               "channels": ";".join(str(int(c)) for c in projections[layer].channels),
               "chance": _sig(evaluation.checkerboard_chance(h, w, s)), "mean_energy": _sig(e.mean())}
        row.update({f"energy_{n}": _sig(v) for n, v in zip(names, e)})
        rows.append(row)

    return rows


def energy_table(model, config, energies, strides, layers, names, h: int, w: int, stride: int) -> list[str]:
    """``table.md``: the mean energies per layer and method beside chance, at ``stride`` and at S."""
    def mean(layer, method, s):
        e = energies.get((layer, method, s))
        return None if e is None else float(e.mean())

    table = [f"Checkerboard energy E_s (jfv.evaluation.checkerboard_energy): the share of a reconstruction's spectral "
             f"power on the period-s grid's frequencies, mean over {len(names)} image(s) at {h}x{w} px; "
             f"s = {stride} and s = S, the layer's total stride; chance = white noise's. {model.name}, "
             f"strongest channel per image, reduce={config.reduce}.", "",
             f"| layer | S | deconvnet E_{stride} | guided backprop E_{stride} | chance E_{stride} | "
             f"deconvnet E_S | guided backprop E_S | chance E_S |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for layer in layers:
        s = strides[layer]
        own = s if s >= 2 else None
        table.append(
            f"| {layer} | {s} | {_fmt(mean(layer, 'deconvnet', stride))} | {_fmt(mean(layer, 'guided_backprop', stride))} | "
            f"{_fmt(evaluation.checkerboard_chance(h, w, stride))} | "
            f"{_fmt(mean(layer, 'deconvnet', own) if own else None)} | "
            f"{_fmt(mean(layer, 'guided_backprop', own) if own else None)} | "
            f"{_fmt(evaluation.checkerboard_chance(h, w, own) if own else None)} |")

    return table


def projection_pictures(config, projections, layers, strides, energies, images, names, stride: int):
    """The projections as signed pictures, the figure (layers x images and methods) and a caption
    function for each picture."""
    gain = float(config.gain)
    shown = {(layer, method): np.stack([datasets.displayable(pictures.signed_image(g, gain))
                                        for g in getattr(projections[layer], method)])
             for layer in layers for method in C.METHODS}
    columns = [(i, method) for i in range(len(names)) for method in C.METHODS]
    grid_tiles = [shown[(layer, method)][i] for layer in layers for i, method in columns]

    def caption(layer, method, i):
        s = strides[layer]
        text = f"E{stride} {energies[(layer, method, stride)][i]:.2g}"
        if (layer, method, s) in energies and s != stride:
            text += f"  E{s} {energies[(layer, method, s)][i]:.2g}"
        return text

    figure = figures.projection_grid(
        np.stack([_rgb(images[i]) for i, _ in columns]),
        np.stack([[_rgb(shown[(layer, method)][i]) for i, method in columns] for layer in layers]),
        rows=[f"{layer} (S={strides[layer]}, ch. " + ",".join(str(int(c)) for c in projections[layer].channels) + ")"
              for layer in layers],
        columns=[f"{names[i]}: {LABELS[method]}" for i, method in columns],
        cells=[[caption(layer, method, i) for i, method in columns] for layer in layers])

    return shown, columns, grid_tiles, figure, caption


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    check_workdir(workdir)
    model = config_model(config)
    check_relu(model, "the checkerboard recipe (deconvnet and guided backprop)")  # before layers: none would do
    layers = projection_layers(config.layers, model)
    images, names, sources = load_images(config)
    images = model.from_rgb(images)  # the model's input: the images, or their BT.601 luma for a grayscale model
    check_memory(model, images.shape[1], images.shape[0] * len(layers), "image_size, max_images or layers")
    stride = int(config.stride)
    projections = C.project(model, jnp.asarray(images), layers, config.reduce)
    h, w = images.shape[1:3]
    strides = {layer: C.total_stride(model, layer) for layer in layers}
    energies = measure_energies(projections, layers, strides, stride)
    rows = energy_rows(energies, strides, projections, names, h, w)
    table = energy_table(model, config, energies, strides, layers, names, h, w, stride)
    shown, columns, grid_tiles, figure, caption = projection_pictures(config, projections, layers, strides, energies,
                                                                      images, names, stride)
    gain = float(config.gain)
    cards = [{"image": "figure.png", "caption": ["figure", "rows: layers deepest first; columns: images x methods"]},
             {"image": "grid.png", "caption": ["grid (pixel for pixel)", f"{len(layers)} rows x {len(columns)} columns"]}]
    entries = []
    with Staging(workdir) as stage:
        stage.save_png("figure.png", figure)
        for i, name in enumerate(names):
            stage.save_png(f"inputs/{name}.png", datasets.displayable(images[i]))
            cards.append({"image": f"inputs/{name}.png", "caption": [name, "input"]})
        for layer in layers:
            for i, name in enumerate(names):
                entry = {"layer": layer, "image": name, "source": sources[i],
                         "channel": int(projections[layer].channels[i]),
                         "activation": _sig(projections[layer].peaks[i]), "methods": {}}
                for method in C.METHODS:
                    rel = f"projections/{layer}_{name}_{method}.png"
                    stage.save_png(rel, shown[(layer, method)][i])
                    cards.append({"image": rel, "caption": [f"{layer} {name}: {LABELS[method]}",
                                                            f"channel {entry['channel']}", caption(layer, method, i)]})
                    entry["methods"][method] = {"picture": rel, **{f"energy_{s}": _sig(energies[(l, m, s)][i])
                                                                   for (l, m, s) in energies if l == layer and m == method}}
                entries.append(entry)
        stage.write_text("results.csv", _csv(rows))
        stage.write_text("table.md", "\n".join(table) + "\n")
        manifest = {
            "recipe": "checkerboard",
            "model": model.name,
            "model_source": model.source,
            "layers": layers,
            "layer_strides": strides,
            "stride": stride,
            "reduce": config.reduce,
            "methods": list(C.METHODS),
            "images": [{"name": n, "source": s} for n, s in zip(names, sources)],
            "image_size": [int(h), int(w)],
            "figure": "figure.png",
            "grid": "grid.png",
            "grid_layout": {"rows": layers, "columns": [f"{names[i]}:{m}" for i, m in columns],
                            "display": f"signed, 0 grey, largest magnitude to 0 or 1, gain {gain}"},
            "results": "results.csv",
            "table": "table.md",
            "mean_energy": {f"{l}:{m}:{s}": _sig(e.mean()) for (l, m, s), e in energies.items()},
            "projections": entries,
            "settings": config.to_dict(),
            "gallery": "index.html",
        }
        manifest.update(run_info(start))
        header = {"model": f"{model.name} ({model.source})", "layers": ", ".join(f"{l} (S={strides[l]})" for l in layers),
                  "images": ", ".join(names), "reduce": config.reduce,
                  "measure": f"checkerboard energy E_s, s = {stride} and the layer's stride S: table.md, results.csv",
                  "wall time (s)": manifest["wall_time_s"]}
        write_run(stage, manifest, f"{model.name} checkerboard analysis", cards, header, grid=grid_tiles,
                  grid_columns=len(columns))
    return manifest


RECIPE = Recipe(run=run, check=check)
