"""render_sweep: channels x strengths in one vmapped program equals the loop over them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfv.optvis import objectives, parameterisations, regularisers, transforms
from jfv.optvis.render import Setup, channel_key, render, render_sweep
from tiny_model import tiny_model

MODEL = tiny_model()
PARAM = parameterisations.pixel(24)
KEY = jax.random.key(0)
STEPS = 3


def tv_make(c, lam):
    return objectives.channel("conv2", c) + lam * objectives.total_variation(reduction="sum"), optax.adam(0.05)


def yosinski_make(c, row):
    steps = regularisers.yosinski_steps(row, radius=regularisers.gaussian_radius(1.0))
    return objectives.channel("conv2", c), regularisers.chain_image_steps(PARAM, optax.adam(0.05), *steps)


def scale_make(c, s):
    return Setup(objectives.channel("conv2", c), optax.adam(0.05), transforms.scale(s))


PRESETS = np.stack([s.as_array() for s in regularisers.YOSINSKI_PRESETS.values()])
CASES = {
    "tv": (tv_make, np.asarray([-0.01, -0.001, 0.0], np.float32)),
    "yosinski": (yosinski_make, PRESETS),
    "scale": (scale_make, np.asarray([1.0, 1.4], np.float32)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sweep_equals_loop_of_render(case):
    make, values = CASES[case]
    channels = [1, 5]
    out = render_sweep(MODEL, make, PARAM, transforms.identity(), channels, values, KEY, STEPS)
    assert out.images.shape == (2, len(values), 1, 24, 24, 3)
    assert out.objective.shape == (2, len(values)) and out.history.shape == (2, len(values), STEPS)
    # Two cells against single renders (each single render is its own compilation, so not all).
    for i, j in [(0, 0), (1, len(values) - 1)]:
        c, v = channels[i], values[j]
        o, opt, tf = make(c, v) if case == "scale" else (*make(c, v), transforms.identity())
        single = render(MODEL, o, PARAM, tf, opt, channel_key(KEY, c), STEPS)
        np.testing.assert_allclose(out.images[i, j], single.images, atol=2e-5, err_msg=f"{case} c={c} v={v}")
        np.testing.assert_allclose(out.history[i, j], single.history, rtol=1e-4, atol=1e-5)
    # The strength matters: different values give different images of the same channel.
    assert not np.allclose(out.images[0, 0], out.images[0, -1])


def test_sweep_batch_size_does_not_change_the_result():
    make, values = CASES["tv"]
    full = render_sweep(MODEL, make, PARAM, transforms.identity(), [1, 5], values, KEY, STEPS)
    batched = render_sweep(MODEL, make, PARAM, transforms.identity(), [1, 5], values, KEY, STEPS, batch_size=4)
    np.testing.assert_allclose(batched.images, full.images, atol=2e-5)


def test_sweep_compiles_once_for_all_values():
    from jfv.optvis.engine import Engine
    from jfv.optvis.render import reshape_sweep, sweep_cells

    make, values = CASES["tv"]
    engine = Engine(MODEL, make, PARAM, transforms.identity())
    first = reshape_sweep(engine.render_cells(*sweep_cells([1, 5], values), KEY, STEPS), 2)
    np.testing.assert_array_equal(
        first.images, render_sweep(MODEL, make, PARAM, transforms.identity(), [1, 5], values, KEY, STEPS).images)
    n_compiled = engine._advance._cache_size()
    assert n_compiled == 1
    engine.render_cells(*sweep_cells([2, 3], -values), KEY, STEPS)
    assert engine._advance._cache_size() == n_compiled  # new channels and strengths, no recompilation


def test_sweep_rejects_empty_and_unknown_layer():
    with pytest.raises(ValueError, match="at least one channel"):
        render_sweep(MODEL, tv_make, PARAM, transforms.identity(), [], [0.1], KEY, STEPS)
    bad = lambda c, v: (objectives.channel("conv9", c), optax.adam(0.1))  # noqa: E731
    with pytest.raises(ValueError, match="Valid layers: conv1, conv2"):
        render_sweep(MODEL, bad, PARAM, transforms.identity(), [0], [0.1], KEY, STEPS)


# ---------------------------------------------------------------------------------------------
# recipe="sweep": the study of one experiment (the config's family and strengths), one seed, no
# reference. Bad input fails before any compilation; a tiny run writes images, results.csv, the
# contact sheet (channels x strengths) and the gallery.


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    import os

    return os.environ.get("JFV_WEIGHTS_DIR") or str(tmp_path_factory.mktemp("weights"))


def sweep_config(weights_dir, **overrides):
    from configs import reg_sweep

    c = reg_sweep.get_config()
    c.weights_dir = weights_dir
    c.layer, c.channels, c.image_size, c.steps, c.progress = "conv2_1", "3,5", 32, 1, False
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def run_sweep(config, workdir):
    """What ``python -m jfv`` runs for the config (recipe=sweep names the study module)."""
    from jfv import recipes

    return recipes.recipe(config.recipe).run(config, str(workdir))


def results(workdir):
    import csv

    return list(csv.DictReader((workdir / "results.csv").open()))


def test_the_sweep_recipe_is_the_study_of_the_sweep_experiment():
    import warnings

    from jfv import recipes
    from jfv.recipes.evaluation import study

    assert recipes.get("sweep") is recipes.get("study") is study
    config = study.study_config(sweep_config(""))
    assert (config.experiments, config.seeds, config.reference, config.measures) == ("sweep", 1, "none", False)
    with pytest.raises(ValueError, match=r"recipe=sweep scores nothing .* use recipe=study with experiments=sweep"):
        study.check(sweep_config("", reference="lucid"))
    with warnings.catch_warnings(record=True) as caught:  # the old import path serves the study
        warnings.simplefilter("always")
        import jfv.recipes.optvis.sweep as old

    assert old.run is study.run and any("jfv.recipes.evaluation.study" in str(w.message) for w in caught)


@pytest.mark.parametrize("overrides, message", [
    (dict(regulariser="blur", strengths="1,-0.5"), r"blur radius sigma must be >= 0"),
    (dict(regulariser="clip_norm", strengths="50,120"), r"in \[0, 100\]"),
    (dict(regulariser="clip_contribution", strengths="-1"), r"in \[0, 100\]"),
    (dict(regulariser="scale", strengths="1.2,0.8"), r"scale factor must be >= 1"),
    (dict(regulariser="octaves", strengths="1.1,0.9"), r"octave scale factor must be >= 1"),
    (dict(regulariser="decay", strengths="0.1", param="fft"), r"use parameterisations.pixel\(size\)"),
    (dict(regulariser="octaves", strengths="1.1", param="fft"), r"fft=False"),
    (dict(regulariser="yosinski", strengths="row1"), r"valid: all, blur_norm"),
    (dict(regulariser="dropout"), r"valid: none, l1, l2, tv"),
    (dict(regulariser="tv", strengths="a,b"), r"comma-separated list of numbers"),
    (dict(param="cppn"), r"unknown param 'cppn'; valid: pixel, fft"),
    (dict(optimiser="lbfgs"), r"unknown optimiser 'lbfgs'; valid: adam, sgd"),
])
def test_recipe_bad_input(weights_dir, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message) as e:
        run_sweep(sweep_config(weights_dir, **overrides), tmp_path)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_recipe_writes_regulariser_and_strength_per_image(weights_dir, tmp_path):
    import json

    manifest = run_sweep(sweep_config(weights_dir, strengths="0,-0.005"), tmp_path)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["experiments"] == manifest["experiments"] and on_disk["recipe"] == "sweep"
    rows = results(tmp_path)
    # channel-major, strengths in the config's order, one seed: the config's
    assert [(r["experiment"], int(r["channel"]), float(r["value"]), int(r["seed"])) for r in rows] == [
        ("sweep", 3, 0.0, 0), ("sweep", 3, -0.005, 0), ("sweep", 5, 0.0, 0), ("sweep", 5, -0.005, 0)]
    assert all((tmp_path / r["image"]).is_file() for r in rows)
    assert set(rows[0]) == {"experiment", "value", "channel", "seed", "objective", "image"}  # unscored
    sweep = on_disk["experiments"]["sweep"]
    assert sweep["regulariser"] == "tv" and sweep["values"] == [0.0, -0.005]
    assert "once for all channels and values" in sweep["compiled"]
    assert on_disk["reference"]["kind"] == "none" and on_disk["grid_edges"] == []
    assert set(on_disk["timings_s"]) == {"render_s", "write_s"}  # no reference, no scores
    assert not (tmp_path / "table.md").exists() and not (tmp_path / "references").exists()
    page = (tmp_path / "index.html").read_text()
    assert "tv = -0.005" in page and "conv2_1 ch 5" in page
    from PIL import Image

    with Image.open(tmp_path / "contact_sheet.png") as im:  # a row per channel, a column per strength
        assert im.size == (2 * 32 + 2, 2 * 32 + 2)


def test_recipe_image_is_the_cells_render_from_its_channels_key(weights_dir, tmp_path):
    """Cell (c, v) starts from ``fold_in(key(seed), c)``: the recipe's image of one cell equals
    ``render`` of that cell alone (PNG rounding aside), whatever the other channels and strengths."""
    from jfv import models
    from jfv.optvis.render import render
    from jfv.runtime.outputs import load_image

    config = sweep_config(weights_dir, strengths="0,-0.005", seed=3, steps=2)
    run_sweep(config, tmp_path)
    rows = results(tmp_path)
    assert [int(r["seed"]) for r in rows] == [3] * 4
    row = rows[3]  # channel 5, strength -0.005
    model = models.load(config.model, weights_dir=weights_dir)
    objective = objectives.channel("conv2_1", 5) - 0.005 * objectives.total_variation(reduction="sum")
    one = render(model, objective, parameterisations.pixel(32), transforms.identity(), optax.adam(0.05),
                 channel_key(jax.random.key(3), 5), 2)
    np.testing.assert_allclose(load_image(tmp_path / row["image"], 32), one.images[0], atol=1.5 / 255)
    np.testing.assert_allclose(float(row["objective"]), float(one.objective), rtol=1e-4, atol=1e-4)


def test_recipe_sweeps_any_family_of_the_table_maco_included(weights_dir, tmp_path):
    """The recipe has no list of its own: ``regulariser=maco`` is the table's MACO entry (its param
    and crops), one cell per channel."""
    import json

    from jfv.optvis import families

    run_sweep(sweep_config(weights_dir, regulariser="maco", maco_crops=2, strengths=""), tmp_path)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert [(int(r["channel"]), float(r["value"])) for r in results(tmp_path)] == [(3, 0.0), (5, 0.0)]
    assert "with MACO (phase-only Fourier image, 2 crops + noise)" in on_disk["experiments"]["sweep"]["objective"]
    assert list(families.FAMILIES)[-1] == "maco"


def test_octave_sizes_and_yosinski_settings_are_columns_of_results(weights_dir, tmp_path):
    import json

    run_sweep(sweep_config(weights_dir, regulariser="octaves", strengths="1.0,1.2", octaves=2, channels="3"),
              tmp_path / "o")
    assert [int(r["size"]) for r in results(tmp_path / "o")] == [32, 38]
    run_sweep(sweep_config(weights_dir, regulariser="yosinski", strengths="decay_blur", channels="3"), tmp_path / "y")
    (row,) = results(tmp_path / "y")
    assert row["value"] == "decay_blur" and json.loads(row["settings"])["blur_every"] == 4


def test_a_grayscale_model_sweeps_unscored(tmp_path):
    """The sweep row renders the model's own channel count (gray_cnn: 1); the scored study refuses it."""
    from jfv.recipes.evaluation import study

    config = sweep_config("", model="gray_cnn", layer="relu3", channels="0", strengths="0,-0.01")
    run_sweep(config, tmp_path / "g")
    assert len(results(tmp_path / "g")) == 2
    scored = study.study_config(config).to_dict()
    scored.update(recipe="study", reference="lucid", reference_steps=2)
    import ml_collections

    with pytest.raises(ValueError, match="needs an RGB model"):
        study.run(ml_collections.ConfigDict(scored), str(tmp_path / "s"))
