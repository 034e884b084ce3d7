"""``preset`` through the recipes and the one call: preset=draft renders what the library renders with
the draft preset's optimiser and steps, the conformance properties hold for it (same seed same image,
vmap equals a loop, a killed layer job resumes byte-equal), the manifest records the steps it ran, a
layer job started with one preset refuses to resume with another, and the draft preset reaches 95% of
the 512-step Lucid objective in fewer steps than Lucid's recipe (step counts, not times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from configs import layer_tiny, tiny
from jfv import visualise
from jfv.optvis import objectives as O
from jfv.optvis import parameterisations as pz
from jfv.optvis import presets
from jfv.optvis import transforms as T
from jfv.optvis.render import render_channels
from jfv.recipes.optvis import settings
from jfv.recipes.optvis import channels as channels_recipe
from killable import run_jfv

ROOT = Path(__file__).resolve().parents[2]
DRAFT = presets.DRAFT


def draft_config(base):
    c = base.get_config()
    c.preset = "draft"
    return c


def test_resolve_preset_sets_steps_and_learning_rate_and_leaves_lucid_alone():
    c = tiny.get_config()
    assert settings.resolve_preset(c) is c
    f = settings.resolve_preset(draft_config(tiny))
    assert (f.steps, f.learning_rate) == (DRAFT.steps, DRAFT.learning_rate)
    assert draft_config(tiny).steps == tiny.get_config().steps  # the config itself is not changed


def test_channels_recipe_with_the_draft_preset_equals_the_library(tmp_path, vgg16):
    c = draft_config(tiny)
    manifest = channels_recipe.run(c, str(tmp_path))
    assert manifest["settings"]["steps"] == DRAFT.steps and manifest["settings"]["preset"] == "draft"
    want = render_channels(vgg16, lambda ch: O.channel(c.layer, ch), pz.image(c.image_size), T.standard(),
                           DRAFT.optimiser_for(DRAFT.steps), [3, 5], jax.random.key(c.seed), DRAFT.steps)
    got = np.array([e["objective"] for e in manifest["channels"]])
    np.testing.assert_allclose(got, np.round(want.objective, 6), rtol=0, atol=1e-6)


def test_draft_preset_same_seed_same_image_and_vmap_equals_a_loop(vgg16):
    args = (vgg16, lambda ch: O.channel("conv3_1", ch), pz.image(32), T.standard(), DRAFT.optimiser_for(16))
    together = render_channels(*args, [2, 5, 9], jax.random.key(4), 16)
    again = render_channels(*args, [2, 5, 9], jax.random.key(4), 16)
    np.testing.assert_array_equal(together.images, again.images)
    for i, ch in enumerate([2, 5, 9]):
        alone = render_channels(*args, [ch], jax.random.key(4), 16)
        np.testing.assert_allclose(alone.images[0], together.images[i], atol=1e-5)


def test_the_one_call_takes_the_preset(vgg16):
    v = visualise(vgg16, "conv3_1:3", preset="draft", steps=16, image_size=32, progress=False)
    want = render_channels(vgg16, lambda ch: O.channel("conv3_1", ch), pz.image(32), T.standard(),
                           DRAFT.optimiser_for(16), [3], jax.random.key(0), 16)
    np.testing.assert_array_equal(v.images, want.images[:, 0])
    assert v.settings["preset"] == "draft" and v.settings["steps"] == 16
    with pytest.raises(ValueError, match="preset 'draft' sets its own learning-rate schedule"):
        visualise(vgg16, "conv3_1:3", preset="draft", learning_rate=0.3, progress=False)
    with pytest.raises(ValueError, match="unknown preset 'slow'"):
        visualise(vgg16, "conv3_1:3", preset="slow", progress=False)
    with pytest.raises(ValueError, match="warm-up of 0.3 and a progressive start of 0 of the steps, which 3 "
                                         "steps cannot hold: use at least 4 steps"):
        visualise(vgg16, "conv3_1:3", preset="draft", steps=3, progress=False)


LAYER_ARGS = ["--config=configs/layer_tiny.py", "--config.preset=draft", "--config.checkpoint_every=32"]


def pngs(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workdir / "channels").glob("*.png"))}


def test_a_draft_layer_job_killed_and_resumed_equals_an_uninterrupted_one(tmp_path):
    ref = tmp_path / "ref"
    res = run_jfv([*LAYER_ARGS, f"--workdir={ref}"], None)
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((ref / "manifest.json").read_text())
    assert manifest["settings"]["steps"] == DRAFT.steps and manifest["complete"]
    killed = tmp_path / "killed"
    res = run_jfv([*LAYER_ARGS, f"--workdir={killed}"], ("save_state", 5, "SIGKILL"))
    assert res.returncode != 0
    res = run_jfv([*LAYER_ARGS, f"--workdir={killed}"], None)
    assert res.returncode == 0, res.stderr[-2000:]
    assert pngs(killed) == pngs(ref)
    # the same workdir with the other preset is another job: refused, naming the key
    res = run_jfv(["--config=configs/layer_tiny.py", f"--workdir={killed}"], None)
    assert res.returncode == 2 and "preset" in res.stderr, res.stderr[-2000:]


def test_draft_reaches_95_percent_of_lucids_512_step_objective_in_fewer_steps(vgg16):
    """Two channels of conv3_1 at 32 px: the draft preset's 192-step images reach 95% of the 512-step
    Lucid images' objective; Lucid's recipe after the same 192 steps does not."""
    objective_fn = lambda ch: O.channel("conv3_1", ch)  # noqa: E731
    args = (vgg16, objective_fn, pz.image(32), T.standard())
    key, chans = jax.random.key(0), [7, 33]
    lucid = optax.adam(0.05)
    lucid_512 = render_channels(*args, lucid, chans, key, 512).objective
    lucid_192 = render_channels(*args, lucid, chans, key, DRAFT.steps).objective
    draft = render_channels(*args, DRAFT.optimiser_for(DRAFT.steps), chans, key, DRAFT.steps).objective
    assert (draft >= 0.95 * lucid_512).all(), (draft, lucid_512)
    assert (lucid_192 < 0.95 * lucid_512).all(), (lucid_192, lucid_512)
