"""Recipe ``atlas``: a static, self-contained HTML site of a top-patches run and (optionally) the
activation maximisation images of a ``layer`` or ``channels`` run of the same model.

``python -m jfv --config=configs/atlas.py --workdir=SITE --config.top_patches_dir=DIR
--config.am_dir=AMDIR`` copies the pictures it shows into SITE (so the site stands alone) and writes
``index.html``, ``<layer>/index.html`` and ``<layer>/<cccc>.html`` (see ``jfv.analysis.atlas``), plus
``manifest.json``. Open ``SITE/index.html`` in a browser, from the file system.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from jfv.analysis import atlas
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes.common import ConfigError, parse_list, run_info
from jfv.recipes import Recipe

TOP_PATCHES_FIX = "point top_patches_dir at the workdir of a finished top_patches run (configs/vgg16_top_patches.py)"
AM_FIX = "point am_dir at the workdir of a finished layer or channels run of the same model, or leave it empty"


def place(src: Path, dst: Path) -> None:
    """``dst`` gets ``src``'s bytes: a hard link where the file system allows, else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def files_of(summary: dict, reductions) -> list[str]:
    """Every picture a layer's channel pages show (relative to the top-patches workdir)."""
    out = []
    for e in summary["channels"]:
        for r in reductions:
            out += [f for h in e.get(r, []) for f in (h["patch"], h.get("projection")) if f]
            if e.get(f"sheet_{r}"):
                out.append(e[f"sheet_{r}"])
    return out


def check(config: ml_collections.ConfigDict) -> None:
    if not config.top_patches_dir:
        raise ConfigError(f"top_patches_dir is empty: {TOP_PATCHES_FIX}")
    if int(config.bins) < 2:
        raise ConfigError(f"bins must be >= 2 (histogram bars), got {config.bins}")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    tp_dir = Path(config.top_patches_dir).expanduser()
    tp = atlas.read_manifest(tp_dir, ("top_patches",), "top_patches_dir", TOP_PATCHES_FIX)
    am_manifest, am_dir = {}, None
    if config.am_dir:
        am_dir = Path(config.am_dir).expanduser()
        am_manifest = atlas.read_manifest(am_dir, ("layer", "channels"), "am_dir", AM_FIX)
        atlas.check_same_model(tp["model"], am_manifest.get("model"), tp_dir, am_dir)
    layers = parse_list(config.layers, "layers", "conv5_3") if config.layers else list(tp["layers"])
    unknown = [layer for layer in layers if layer not in tp["layers"]]
    if unknown:
        raise ConfigError(f"layers {unknown} are not in the top patches {tp_dir}; it has {', '.join(tp['layers'])}")
    reductions = tp["reductions"]
    summaries = {layer: json.loads((tp_dir / tp["layers"][layer]["summary"]).read_text()) for layer in layers}
    am = {key: value for key, value in atlas.am_entries(am_manifest).items() if key[0] in layers}
    missing_am = [p for v in am.values() for p in v["images"] if not (am_dir / p).is_file()]
    if missing_am:
        raise atlas.AtlasError(f"the AM run {am_dir} lists {missing_am[0]} but it is missing: {AM_FIX}")
    classes = ()
    if tp["dataset"].startswith("CIFAR-10"):
        from jfv.models.labels import CIFAR10_CLASSES

        classes = tuple(CIFAR10_CLASSES)
    check_workdir(workdir)

    layer_channels = {layer: [e["channel"] for e in summaries[layer]["channels"]] for layer in layers}
    with np.load(tp_dir / tp["scores"], allow_pickle=False) as z:
        scores = {(layer, r): z[f"{layer}.{r}"] for layer in layers for r in reductions}
    with Staging(workdir) as stage:
        for layer in layers:
            for rel in files_of(summaries[layer], reductions):
                place(tp_dir / rel, stage.file(rel))
        for (layer, c), v in am.items():
            v["images"] = [f"am/{p}" for p in v["images"]]
            for p in v["images"]:
                place(am_dir / p[3:], stage.file(p))
        blocks = tp.get("best_feature_map_per_block")
        blocks_file = blocks["figure"] if isinstance(blocks, dict) else None
        if blocks_file:
            place(tp_dir / blocks_file, stage.file(blocks_file))
        pages = 0
        for layer in layers:
            chans = layer_channels[layer]
            stage.write_text(f"{layer}/index.html", atlas.page(
                f"{tp['model']} {layer}", atlas.layer_body(tp["model"], layer, summaries[layer], reductions, am, layers)))
            for i, entry in enumerate(summaries[layer]["channels"]):
                c = entry["channel"]
                histograms = {}
                for r in reductions:
                    kth = entry[r][-1]["value"] if entry.get(r) else None
                    marks = {f"top {len(entry[r])}": kth} if kth is not None else {}
                    histograms[r] = atlas.histogram_svg(scores[(layer, r)][:, c], int(config.bins), marks,
                                                        label=f"{r} of channel {c}, {len(scores[(layer, r)])} images")
                body = atlas.channel_body(
                    tp["model"], layer, entry, reductions, am.get((layer, c)), histograms,
                    atlas.channel_nav(layer, chans, i, layers, layer_channels), atlas.search_box(chans), classes,
                    summaries[layer]["projections"])
                stage.write_text(f"{layer}/{atlas.channel_file(c)}", atlas.page(f"{tp['model']} {layer} {c}", body))
                pages += 1
        header = {"model": tp["model"], "dataset": tp["dataset"], "images read / skipped": f"{tp['read']} / {tp['skipped']}",
                  "top k": tp["k"], "scores": ", ".join(reductions), "image size": tp["settings"]["image_size"],
                  "projections": tp["projections"], "top patches run": str(tp_dir),
                  "activation maximisation run": (f"{am_dir} ({am_manifest['recipe']}, {len(am)} channels here)"
                                                  if am_dir else "none")}
        manifest = {"recipe": "atlas", "model": tp["model"], "top_patches_dir": str(tp_dir),
                    "am_dir": str(am_dir) if am_dir else "", "layers": {layer: len(layer_channels[layer]) for layer in layers},
                    "channel_pages": pages, "am_channels": len(am), "settings": config.to_dict(), "gallery": "index.html"}
        manifest.update(run_info(start))
        write_run(stage, manifest, f"{tp['model']} atlas", page=atlas.page(
            f"{tp['model']} atlas", atlas.index_body(tp["model"], layers, summaries, header, blocks_file)))
    return manifest


RECIPE = Recipe(run=run, check=check)
