"""The study recipe: the refined-range rule on a made-up table, and the tiny study end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jfv.recipes.evaluation import study, study_scores, study_tables
from jfv.recipes.evaluation.experiments import EXPERIMENTS


def noise_images(folder: Path, n: int, shape=(48, 40, 3), seed: int = 0) -> str:
    """``n`` uniform-noise PNGs in ``folder`` (natural-image stand-ins for the tiny study); its path."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.uniform(size=shape) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return str(folder)


def test_refined_range_on_a_made_up_table():
    values = [-0.05, -0.01, -0.005, -0.001, -0.0001]
    scores = [1.20, 1.00, 0.96, 0.98, 1.10]  # best 0.96; tolerance 5% admits <= 1.008
    assert study_tables.refined_range(values, scores, 0.05) == (-0.01, -0.001)
    assert study_tables.refined_range(values, scores, 0.0) == (-0.005, -0.005)
    assert study_tables.refined_range(values, scores, 1.0) == (-0.05, -0.0001)
    # Unsorted input gives the same range.
    order = [3, 0, 4, 2, 1]
    assert study_tables.refined_range([values[i] for i in order], [scores[i] for i in order], 0.05) == (-0.01, -0.001)


def test_best_per_cell_and_improvement():
    rows = [{"experiment": e, "channel": c, "value": v, "lpips": x}
            for e, c, v, x in [("none", 1, 0.0, 1.0), ("none", 1, 0.0, 1.2),
                               ("tv", 1, -0.1, 0.9), ("tv", 1, -0.1, 0.7), ("tv", 1, -0.01, 0.85)]]
    best = study_tables.best_per_cell(rows)
    assert best[("none", 1)][:2] == (1.1, np.std([1.0, 1.2]))
    assert best[("tv", 1)][0] == 0.8 and best[("tv", 1)][2] == -0.1
    np.testing.assert_allclose(study_tables.improvement(best, "tv", [1]), (1.1 - 0.8) / 1.1)
    assert study_tables.improvement(best, "tv", [2]) is None


def _rows(cells):
    """Made-up ``results.csv`` rows from (experiment, channel, value, [lpips per seed])."""
    return [{"experiment": e, "channel": c, "value": v, "lpips": x, "seed": s}
            for e, c, v, xs in cells for s, x in enumerate(xs)]


def test_grid_edges_flag_a_best_value_on_either_end_of_the_grid_and_not_an_interior_one():
    tv = [-0.0005, -0.005, -0.001]  # given unsorted: the edges are the numeric min and max
    rows = _rows([("none", 48, 0.0, [0.60, 0.62]), ("none", 62, 0.0, [0.61, 0.61]), ("none", 73, 0.0, [0.5, 0.5])]
                 # ch 48: best at the strongest lambda (-0.005, the grid's min) by its mean, although
                 # one seed of -0.001 is lower than either seed of -0.005.
                 + [("tv", 48, v, xs) for v, xs in zip(tv, ([0.58, 0.58], [0.45, 0.47], [0.40, 0.56]))]
                 # ch 62: best interior (-0.001)
                 + [("tv", 62, v, xs) for v, xs in zip(tv, ([0.59, 0.59], [0.55, 0.55], [0.50, 0.52]))]
                 # ch 73: best at the weakest lambda (-0.0005, the grid's max)
                 + [("tv", 73, v, xs) for v, xs in zip(tv, ([0.40, 0.40], [0.45, 0.47], [0.41, 0.41]))]
                 # jitter: two values only, no interior, never flagged
                 + [("jitter", c, v, [x]) for c in (48, 62, 73) for v, x in ((2, 0.5), (4, 0.6))])
    edges = study_tables.grid_edges(rows, ["none", "tv", "jitter"], [48, 62, 73])
    assert [(d["experiment"], d["grid"], d["channel"], d["value"], d["side"]) for d in edges] == [
        ("tv", "grid.tv", 48, -0.005, "min"), ("tv", "grid.tv", 73, -0.0005, "max")]
    assert edges[0]["tested"] == [-0.005, -0.001, -0.0005]
    assert study_tables.grid_edges(rows, ["tv"], [62]) == []  # the interior best alone: nothing flagged
    assert [d["channel"] for d in study_tables.grid_edges(rows, ["jitter"], [48], min_values=2)] == [48]

    table = study_tables.table_markdown(rows, ["none", "tv", "jitter"], [48, 62, 73], 2)
    tv_line = next(x for x in table.splitlines() if x.startswith("| Total variation |"))
    cells = [x.strip() for x in tv_line.split("|")[2:5]]
    assert cells == ["0.460 ± 0.010 @ -0.005 †", "0.510 ± 0.010 @ -0.001", "0.400 ± 0.000 @ -0.0005 †"]
    assert "†" not in next(x for x in table.splitlines() if x.startswith("| Transformation: Jitter |"))
    warnings = [x for x in table.splitlines() if "grid's edge" in x]
    assert warnings == ["† Total variation: best value on the grid's edge: extend grid.tv (above -0.0005 and "
                        "below -0.005; channel 48 at -0.005, channel 73 at -0.0005)."]
    interior = [r for r in rows if not (r["experiment"] == "tv" and r["channel"] != 62)]
    assert "†" not in study_tables.table_markdown(interior, ["none", "tv"], [62], 2)


def test_tiny_study_end_to_end(tmp_path):
    from jfv import main  # noqa: F401  (the CLI's entry point imports cleanly)
    from configs import regulariser_study_tiny

    config = regulariser_study_tiny.get_config()
    config.reference_images = noise_images(tmp_path / "images", 2)
    config.grid.tv = "0,-0.001,-0.01"  # 3 values: the grid-edge check applies (scale's 2 values: it does not)
    workdir = tmp_path / "run"
    manifest = study.run(config, str(workdir))

    for name in ("results.csv", "table.md", "refined_ranges.md", "contact_sheet.png", "index.html",
                 "manifest.json", "plots/tv.png", "plots/scale.png", "references/conv3_1_0003.png"):
        assert (workdir / name).is_file() and (workdir / name).stat().st_size > 0, name
    assert not list(workdir.glob(".jfv-staging-*"))
    rows = list(csv.DictReader((workdir / "results.csv").open()))
    assert len(rows) == (3 + 2) * 1 * 2  # values of both experiments x channels x seeds
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
    assert saved["images_rendered"] == 10 == manifest["images_rendered"]
    # The grid-edge flag, recomputed from results.csv: TV's best mean LPIPS over seeds on channel 3.
    means = {v: np.mean([float(r["lpips"]) for r in rows if r["experiment"] == "tv" and float(r["value"]) == v])
             for v in (0.0, -0.001, -0.01)}
    best = min(means, key=means.get)
    on_edge = best in (0.0, -0.01)
    assert saved["grid_edges"] == ([{"experiment": "tv", "grid": "grid.tv", "channel": 3, "value": best,
                                     "side": "max" if best == 0 else "min", "tested": [-0.01, -0.001, 0.0]}]
                                   if on_edge else [])
    assert ("extend grid.tv" in table) == on_edge == ("extend grid.tv" in (workdir / "refined_ranges.md").read_text())
    assert "grid.scale" not in table
    assert set(saved["timings_s"]) == {"reference_s", "render_s", "score_s", "write_s"}
    assert saved["outputs"]["plots"] == ["plots/tv.png", "plots/scale.png"]


def test_the_maco_experiment_renders_macos_param_and_crops(tmp_path):
    """The study's ``maco`` row is ``families.Maco``: its image is the one ``render`` gives with
    MACO's phase-only param and crops, the channel's key and the study's optimiser."""
    import jax
    import optax

    from configs import regulariser_study_tiny
    from jfv import models
    from jfv.optvis import objectives, parameterisations, transforms
    from jfv.optvis.engine import channel_key
    from jfv.optvis.render import render

    config = regulariser_study_tiny.get_config()
    config.reference_images = noise_images(tmp_path / "images", 1, (40, 40, 3), seed=1)
    config.experiments, config.seeds, config.maco_crops = "maco", 1, 2
    manifest = study.run(config, str(tmp_path / "run"))
    assert manifest["experiments"]["maco"]["values"] == [0.0]
    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert [(r["experiment"], r["channel"]) for r in rows] == [("maco", "3")]
    model = models.load(config.model, weights_dir=config.weights_dir or None)
    one = render(model, objectives.channel("conv3_1", 3), parameterisations.maco(32), transforms.maco(2, 32),
                 optax.adam(config.learning_rate), channel_key(jax.random.key(config.seed), 3), config.steps)
    with Image.open(tmp_path / "run" / rows[0]["image"]) as im:
        saved = np.asarray(im, np.float32) / 255
    np.testing.assert_allclose(saved, one.images[0], atol=1.5 / 255)
    assert "| MACO" in (tmp_path / "run" / "table.md").read_text()


def test_the_measures_equal_a_direct_call_of_the_metrics_on_the_written_images(tmp_path):
    """measures=True adds two_afc and path_gap to every row (and measures.md): they equal
    ``evaluation.two_afc`` / ``evaluation.processing_path`` called on the written images (PNG rounding
    aside) against the same natural images, trials and baseline."""
    import jax

    from configs import regulariser_study_tiny
    from jfv.analysis import datasets, passes
    from jfv import evaluation, models
    from jfv.runtime.outputs import load_image

    images = noise_images(tmp_path / "images", 6, (40, 40, 3))
    config = regulariser_study_tiny.get_config()
    config.reference_images = config.measure_images = images
    config.experiments, config.grid.tv, config.channels = "none,tv", "-0.001", "3,5"
    config.measures, config.measure_trials, config.measure_tail, config.path_top, config.path_random = True, 20, 2, 2, 3
    workdir = tmp_path / "run"
    manifest = study.run(config, str(workdir))
    rows = list(csv.DictReader((workdir / "results.csv").open()))
    assert len(rows) == 2 * 2 * 2 and {"two_afc", "path_gap"} <= set(rows[0])
    assert manifest["outputs"]["measures"] == "measures.md" and manifest["measures"]["natural_images"] == 6

    model = models.load(config.model, weights_dir=config.weights_dir or None)
    layers = evaluation.layers_up_to(model, "conv3_1")
    natural = passes.natural_pass(model, datasets.image_folder(images), "conv3_1", [3, 5], layers, 32, 8)
    written = np.stack([load_image(workdir / r["image"], 32) for r in rows])
    cols = [[3, 5].index(int(r["channel"])) for r in rows]
    k_afc, k_path = jax.random.split(jax.random.key(config.seed + study_scores.MEASURE_SEED_OFFSET))
    afc = evaluation.two_afc(k_afc, written[:, None], natural.images, natural.scores[:, cols],
                          np.asarray([int(r["channel"]) for r in rows]), 20, 2, config.lpips_net)
    got = np.asarray([float(r["two_afc"]) for r in rows])
    assert np.abs(got - np.asarray(afc.accuracy)).max() <= 0.1 + 1e-6  # PNG rounding may flip a trial or two
    top, _ = evaluation.tail_indices(natural.scores, 2)
    rand = np.asarray(jax.random.choice(k_path, 6, (3,), replace=False))
    path = evaluation.processing_path(evaluation.activation_profiles(model, written, layers),
                                   {n: natural.profiles[n][np.asarray(top)[cols]] for n in layers},
                                   {n: natural.profiles[n][rand] for n in layers}, layers)
    np.testing.assert_allclose([float(r["path_gap"]) for r in rows], np.asarray(path.gap), atol=0.03)
    # measures.md: per experiment the mean over seeds of the per-seed means, with their spread.
    text = (workdir / "measures.md").read_text()
    for e in ("none", "tv"):
        per_seed = [np.mean([float(r["two_afc"]) for r in rows if r["experiment"] == e and r["seed"] == s])
                    for s in ("0", "1")]
        label = EXPERIMENTS[e].label
        line = next(x for x in text.splitlines() if x.startswith(f"| {label} |"))
        assert f"{np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}" in line.split("|")[4]
    assert "Best mean per measure" in text


def test_seed_spread_and_the_measures_table_on_made_up_rows():
    rows = [{"experiment": e, "seed": s, "lpips": x, "activation": 1.0, "two_afc": a, "path_gap": 0.1}
            for e, s, x, a in [("none", 0, 0.6, 0.5), ("none", 1, 0.8, 0.7), ("lucid", 0, 0.4, 0.9),
                               ("lucid", 0, 0.2, 0.7), ("lucid", 1, 0.5, 1.0)]]
    assert study_tables.seed_spread(rows, "none", "lpips") == (0.7, np.std([0.6, 0.8]))
    m, sd = study_tables.seed_spread(rows, "lucid", "two_afc")  # seed 0: mean(0.9, 0.7) = 0.8; seed 1: 1.0
    np.testing.assert_allclose((m, sd), (0.9, 0.1))
    text = study_tables.measures_markdown(rows, ["none", "lucid"])
    assert "- LPIPS to the reference: Lucid's full recipe" in text
    assert "- two-alternative accuracy: Lucid's full recipe (Fourier + decorrelated + standard) (0.900 ± 0.100)" in text


def test_measures_without_the_natural_images_they_need_fail_before_rendering(tmp_path):
    from configs import regulariser_study_tiny

    config = regulariser_study_tiny.get_config()
    config.reference_images = noise_images(tmp_path / "images", 1)
    config.measures, config.measure_images = True, str(tmp_path / "missing")
    with pytest.raises(ValueError, match="does not exist: pass a folder of images"):
        study.run(config, str(tmp_path / "a"))
    config.measure_images = config.reference_images  # one image: no two tails to draw from
    with pytest.raises(ValueError, match=r"at least 2 readable natural images in measure_images=.*found 1"):
        study.run(config, str(tmp_path / "b"))
    config.measure_images, config.similarity = str(tmp_path / "images"), "euclid"
    with pytest.raises(ValueError, match="unknown similarity 'euclid'; valid: spearman, cosine"):
        study.run(config, str(tmp_path / "c"))
    for name in "abc":
        assert not (tmp_path / name).exists() or list((tmp_path / name).iterdir()) == []


def test_a_grayscale_model_is_refused_in_one_line_naming_the_fix(tmp_path):
    from configs import regulariser_study_tiny

    config = regulariser_study_tiny.get_config()
    config.model, config.layer, config.channels = "gray_cnn", "relu1", "0"
    with pytest.raises(ValueError, match=r"needs an RGB model.*gray_cnn takes 1-channel.*3-channel model \(--config.model=NAME\) or the sweep") as e:
        study.run(config, str(tmp_path / "g"))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "g").exists() or list((tmp_path / "g").iterdir()) == []


def test_the_sweep_experiment_is_scored_beside_the_table_presets_included(tmp_path):
    """experiments=...,sweep scores the config's regulariser like any row; preset names (not numbers)
    show in the table, and get no grid-edge flag, refined range or plot."""
    from configs import regulariser_study_tiny

    config = regulariser_study_tiny.get_config()
    config.reference_images = noise_images(tmp_path / "images", 2)
    config.experiments, config.regulariser, config.strengths, config.seeds = "none,sweep", "yosinski", \
        "blur_norm,decay_blur,decay_norm", 1
    manifest = study.run(config, str(tmp_path / "run"))
    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert [(r["experiment"], r["value"]) for r in rows] == [("none", "0"), ("sweep", "blur_norm"),
                                                            ("sweep", "decay_blur"), ("sweep", "decay_norm")]
    assert json.loads(rows[2]["settings"])["decay"] == 0.0001 and rows[0]["settings"] == ""
    assert manifest["experiments"]["sweep"]["regulariser"] == "yosinski" and manifest["grid_edges"] == []
    assert manifest["outputs"]["plots"] == []
    best = min(rows[1:], key=lambda r: float(r["lpips"]))["value"]
    assert "| Sweep of the config's regulariser | " in (tmp_path / "run" / "table.md").read_text()
    assert f"@ {best} |" in (tmp_path / "run" / "table.md").read_text()
