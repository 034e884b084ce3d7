"""The study recipe: the refined-range rule on a made-up table, and the tiny study end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from jfv.recipes import study


def test_refined_range_on_a_made_up_table():
    values = [-0.05, -0.01, -0.005, -0.001, -0.0001]
    scores = [1.20, 1.00, 0.96, 0.98, 1.10]  # best 0.96; tolerance 5% admits <= 1.008
    assert study.refined_range(values, scores, 0.05) == (-0.01, -0.001)
    assert study.refined_range(values, scores, 0.0) == (-0.005, -0.005)
    assert study.refined_range(values, scores, 1.0) == (-0.05, -0.0001)
    # Unsorted input gives the same range.
    order = [3, 0, 4, 2, 1]
    assert study.refined_range([values[i] for i in order], [scores[i] for i in order], 0.05) == (-0.01, -0.001)


def test_best_per_cell_and_improvement():
    rows = [{"experiment": e, "channel": c, "value": v, "lpips": x}
            for e, c, v, x in [("none", 1, 0.0, 1.0), ("none", 1, 0.0, 1.2),
                               ("tv", 1, -0.1, 0.9), ("tv", 1, -0.1, 0.7), ("tv", 1, -0.01, 0.85)]]
    best = study.best_per_cell(rows)
    assert best[("none", 1)][:2] == (1.1, np.std([1.0, 1.2]))
    assert best[("tv", 1)][0] == 0.8 and best[("tv", 1)][2] == -0.1
    np.testing.assert_allclose(study.improvement(best, "tv", [1]), (1.1 - 0.8) / 1.1)
    assert study.improvement(best, "tv", [2]) is None


def test_tiny_study_end_to_end(tmp_path):
    from jfv import main  # noqa: F401  (the CLI's entry point imports cleanly)
    from configs import regulariser_study_tiny

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.uniform(size=(48, 40, 3)) * 255).astype(np.uint8)).save(images / f"{i}.png")
    config = regulariser_study_tiny.get_config()
    config.reference_images = str(images)
    workdir = tmp_path / "run"
    manifest = study.run(config, str(workdir))

    for name in ("results.csv", "table.md", "refined_ranges.md", "contact_sheet.png", "index.html",
                 "manifest.json", "plots/tv.png", "plots/scale.png", "references/conv3_1_0003.png"):
        assert (workdir / name).is_file() and (workdir / name).stat().st_size > 0, name
    assert not list(workdir.glob(".jfv-staging-*"))
    rows = list(csv.DictReader((workdir / "results.csv").open()))
    assert len(rows) == 2 * 2 * 1 * 2  # experiments x values x channels x seeds
    assert set(rows[0]) >= {"experiment", "value", "channel", "seed", "lpips", "activation", "objective",
                            "hf_energy", "tv", "diversity", "image"}
    for r in rows:
        assert (workdir / r["image"]).is_file()
        assert 0 < float(r["lpips"]) < 2 and 0 <= float(r["hf_energy"]) <= 1 and float(r["diversity"]) > 0
    table = (workdir / "table.md").read_text()
    assert "| Total variation |" in table and "| Transformation: Scale |" in table and "Channel 3" in table
    assert "| Total variation | lambda_tv" in (workdir / "refined_ranges.md").read_text()
    with Image.open(workdir / "contact_sheet.png") as im:  # reference row + one row per experiment
        assert im.size == (32, 3 * 32 + 2 * 2)
    saved = json.loads((workdir / "manifest.json").read_text())
    assert saved["images_rendered"] == 8 == manifest["images_rendered"]
    assert set(saved["timings_s"]) == {"reference_s", "render_s", "score_s", "write_s"}
    assert saved["outputs"]["plots"] == ["plots/tv.png", "plots/scale.png"]
