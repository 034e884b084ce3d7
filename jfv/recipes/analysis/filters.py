"""Recipe ``filters``: the first-layer filters of a model as one grid (seed 002's "Visualize Filters").

Writes into the workdir: ``filters.png`` (every filter of the convolution that reads the image,
normalised as ``normalise`` says, enlarged by ``scale`` with nearest neighbours, ``columns`` per
row, in channel order), ``index.html`` and ``manifest.json`` (the layer, the kernel shape in torch's
O x I x kh x kw order as the seeds write it, and each filter's L2 norm).
"""

from __future__ import annotations

import math
import time
from typing import Any

import ml_collections
import numpy as np

from jfv.analysis import filters
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes.common import ConfigError, config_model, run_info
from jfv.recipes import Recipe

TILE_PX = 40  # the enlarged size a filter tile aims at when scale = 0 (auto)


def check(config: ml_collections.ConfigDict) -> None:
    if config.normalise not in filters.NORMALISATIONS:
        raise ConfigError(f"normalise must be one of {', '.join(filters.NORMALISATIONS)}, got {config.normalise!r}")
    for key in ("columns", "scale", "pad"):
        if int(config[key]) < 0:
            raise ConfigError(f"{key} must be >= 0 (0 = automatic for columns and scale), got {config[key]}")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check(config)
    check_workdir(workdir)
    model = config_model(config)
    name, kernel = filters.first_conv(model)
    kh, kw, cin, cout = kernel.shape
    tiles = np.asarray(filters.normalise_filters(kernel, config.normalise))
    scale = int(config.scale) or max(1, round(TILE_PX / kh))
    columns = int(config.columns) or math.ceil(math.sqrt(cout))
    grid = filters.filter_grid(tiles, columns=columns, scale=scale, pad=int(config.pad))
    shape = f"{cout}x{cin}x{kh}x{kw}"
    with Staging(workdir) as stage:
        stage.save_png("filters.png", grid)
        manifest = {
            "recipe": "filters",
            "model": model.name,
            "model_source": model.source,
            "layer": name,
            "kernel_shape": shape,
            "normalise": config.normalise,
            "grid": "filters.png",
            "grid_layout": {"columns": columns, "rows": math.ceil(cout / columns), "tile_px": kh * scale,
                            "order": "channel order, row-major"},
            "filter_l2_norms": [round(float(v), 6) for v in np.sqrt((kernel ** 2).sum(axis=(0, 1, 2)))],
            "settings": config.to_dict(),
            "gallery": "index.html",
        }
        manifest.update(run_info(start))
        header = {"model": model.name, "layer": f"{name} ({shape}, O x I x kh x kw)", "normalise": config.normalise,
                  "source": model.source}
        cards = [{"image": "filters.png", "caption": [f"{model.name} {name}", f"{cout} filters {kh}x{kw}"]}]
        write_run(stage, manifest, f"{model.name} first-layer filters", cards, header)
    return manifest


RECIPE = Recipe(run=run, check=check)
