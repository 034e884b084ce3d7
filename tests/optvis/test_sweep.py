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
# The ``sweep`` recipe: bad input fails before any compilation; a tiny run writes the gallery.


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
])
def test_recipe_bad_input(weights_dir, tmp_path, overrides, message):
    from jfv.recipes.optvis import sweep

    with pytest.raises(ValueError, match=message):
        sweep.run(sweep_config(weights_dir, **overrides), str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_recipe_writes_regulariser_and_strength_per_image(weights_dir, tmp_path):
    import json

    from jfv.recipes.optvis import sweep

    manifest = sweep.run(sweep_config(weights_dir, strengths="0,-0.005"), str(tmp_path))
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["images"] == manifest["images"]
    assert [(e["channel"], e["regulariser"], e["strength"]) for e in on_disk["images"]] == [
        (3, "tv", 0.0), (3, "tv", -0.005), (5, "tv", 0.0), (5, "tv", -0.005)]
    assert all((tmp_path / e["image"]).is_file() for e in on_disk["images"])
    assert "once for all channels and values" in on_disk["compiled"]
    page = (tmp_path / "index.html").read_text()
    assert "tv = -0.005" in page and "conv2_1 ch 5" in page


def test_recipe_sweeps_any_family_of_the_table_maco_included(weights_dir, tmp_path):
    """The recipe has no list of its own: ``regulariser=maco`` is the table's MACO entry (its param
    and crops), one cell per channel."""
    import json

    from jfv.recipes.optvis import sweep

    sweep.run(sweep_config(weights_dir, regulariser="maco", maco_crops=2, strengths=""), str(tmp_path))
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert [(e["channel"], e["regulariser"], e["strength"]) for e in on_disk["images"]] == [(3, "maco", 0.0),
                                                                                           (5, "maco", 0.0)]
    assert "with MACO (phase-only Fourier image, 2 crops + noise)" in on_disk["objective"]
    assert sweep.FAMILIES[-1] == "maco"
