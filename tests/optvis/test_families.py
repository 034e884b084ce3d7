"""jfv.optvis.families: every entry parses its values, builds the hand-written Setup, says whether it
changes shapes, renders through ``render_family`` exactly as ``render.render`` renders the cell; and
no recipe dispatches on a family's name any more."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jfv.optvis import families, objectives, octaves, parameterisations, regularisers, transforms
from jfv.optvis.engine import activations, channel_key
from jfv.optvis.render import render
from tiny_model import tiny_model

MODEL = tiny_model()
KEY = jax.random.key(0)
PARAM = parameterisations.pixel(16)
OPT = optax.adam(0.05)
STEPS = 3
LAYER = "conv2"
GOAL = lambda c: objectives.channel(LAYER, c)  # noqa: E731
IMAGE = jax.random.uniform(jax.random.key(7), (1, 16, 16, 3))  # a fixed image the objectives are read at
BASE = transforms.compose(transforms.Jitter(1))

# name -> (entry, config string, parsed values, hand-written Setup pieces of (c, v): objective,
# image steps (None: the plain optimiser), extra transform after the base (None: the base alone))
PRESETS = list(regularisers.YOSINSKI_PRESETS)
CASES = {
    "none": (families.NoRegulariser(), "anything", [0.0], lambda c, v: (GOAL(c), None, None)),
    "l1": (families.L1(0.3, "sum"), "0,-0.01", [0.0, -0.01],
           lambda c, v: (GOAL(c) + v * objectives.l1(0.3, "sum"), None, None)),
    "l2": (families.L2(0.5, "norm"), "-0.01, -0.001", [-0.01, -0.001],
           lambda c, v: (GOAL(c) + v * objectives.l2(0.5, "norm"), None, None)),
    "tv": (families.TotalVariation(2.0, "mean"), "0,-0.5", [0.0, -0.5],
           lambda c, v: (GOAL(c) + v * objectives.total_variation(2.0, "mean"), None, None)),
    "blur_penalty": (families.BlurPenalty(1.5, "sum"), "-0.1", [-0.1],
                     lambda c, v: (GOAL(c) + v * objectives.blur_penalty(1.5, "sum"), None, None)),
    "decay": (families.Decay(), "0,0.2", [0.0, 0.2], lambda c, v: (GOAL(c), (regularisers.decay(v),), None)),
    "blur": (families.Blur(every=2), "0.5,1", [0.5, 1.0],
             lambda c, v: (GOAL(c), (regularisers.blur_step(v, 2, radius=regularisers.gaussian_radius(1.0)),), None)),
    "clip_norm": (families.ClipNorm(), "10,50", [10.0, 50.0],
                  lambda c, v: (GOAL(c), (regularisers.clip_norm(v),), None)),
    "clip_contribution": (families.ClipContribution(), "20", [20.0],
                          lambda c, v: (GOAL(c), (regularisers.clip_contribution(v),), None)),
    "yosinski": (families.Yosinski(), "all", PRESETS,
                 lambda c, v: (GOAL(c), regularisers.yosinski_steps(v, radius=regularisers.gaussian_radius(1.0)), None)),
    "scale": (families.Scale(), "1.0,1.3", [1.0, 1.3], lambda c, v: (GOAL(c), None, transforms.scale(v))),
    "rotate": (families.Rotate(), "0,30", [0.0, 30.0], lambda c, v: (GOAL(c), None, transforms.rotate(v))),
    "jitter": (families.Jitter(), "1,2", [1.0, 2.0], lambda c, v: (GOAL(c), None, transforms.Jitter(int(v)))),
    "octaves": (families.Octaves(octaves=1, steps=STEPS), "1.0,1.2", [1.0, 1.2], lambda c, v: (GOAL(c), None, None)),
    "maco": (families.Maco(crops=2), "", [0.0], lambda c, v: (GOAL(c), None, None)),
}


def test_the_table_holds_every_family_once_in_order():
    assert list(families.FAMILIES) == list(CASES)
    assert {n for n, f in families.FAMILIES.items() if f.shaped} == {"jitter", "octaves"}
    assert repr(families.TotalVariation(1.0, "sum")) == "TotalVariation(beta=1.0, reduction='sum')"


@pytest.mark.parametrize("name", list(CASES))
def test_entry_parses_and_builds_the_hand_written_setup(name):
    family, spec, expected, hand = CASES[name]
    assert family.name == name and family.shaped == (name in ("jitter", "octaves"))
    values = family.parse(spec)
    assert values == expected
    numeric = family.numeric(values)
    assert len(numeric) == len(values)
    make = family.make(GOAL, PARAM, BASE, OPT, values)
    acts = activations(MODEL, MODEL.params, IMAGE, IMAGE)
    grads = jax.random.normal(jax.random.key(3), IMAGE.shape)
    params = PARAM.init(jax.random.key(2))
    for j, v in enumerate(values):
        c = np.int32(5)
        setup = make(c, numeric[j])
        objective, steps, extra = hand(c, numeric[j] if name == "yosinski" else v)
        # The objective at a fixed image equals the hand-written one.
        np.testing.assert_allclose(float(setup.objective(acts)), float(objective(acts)), rtol=1e-6)
        # The optimiser step: the same update of the same parameters and gradient.
        opt = OPT if steps is None else regularisers.chain_image_steps(PARAM, OPT, *steps)
        got, _ = setup.optimiser.update(grads, setup.optimiser.init(params), params)
        want, _ = opt.update(grads, opt.init(params), params)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-7)
        # The transforms: a transform range after the base; shaped families per pass.
        if isinstance(family, families.TransformRange):
            k = jax.random.key(11)
            np.testing.assert_allclose(np.asarray(setup.transforms(k, IMAGE)),
                                       np.asarray(transforms.compose(BASE, extra)(k, IMAGE)), atol=1e-6)
        else:
            assert setup.transforms is None
    passes = family.passes(values, BASE, PARAM)
    assert sorted(j for p in passes for j in p.indices) == list(range(len(values)))
    assert len(passes) == (len(values) if family.shaped else 1)
    if name == "jitter":
        assert [repr(p.transforms) for p in passes] == [repr(transforms.compose(BASE, transforms.Jitter(int(v))))
                                                        for v in values]
    if name == "maco":  # MACO's own param and crops replace the caller's
        assert repr(passes[0].param) == repr(parameterisations.maco(16))
        assert repr(passes[0].transforms) == repr(transforms.maco(2, 16))
    if name == "octaves":
        assert [p.schedule for p in passes] == [octaves.Octaves(1, v, STEPS) for v in values]


@pytest.mark.parametrize("name, spec, message", [
    ("tv", "a,b", "comma-separated list of numbers"),
    ("tv", "-0.01,nan", "strengths must be finite numbers, got nan"),
    ("yosinski", "row1", "valid: all, blur_norm"),
    ("jitter", "1.5", "whole pixels"),
])
def test_bad_values_are_refused_with_the_fix(name, spec, message):
    with pytest.raises(ValueError, match=message):
        families.FAMILIES[name]().parse(spec)


@pytest.mark.parametrize("name, values, message", [
    ("blur", [1.0, -0.5], "blur radius sigma must be >= 0"),
    ("scale", [1.2, 0.8], "scale factor must be >= 1"),
    ("octaves", [1.1, 0.9], "octave scale factor must be >= 1"),
    ("clip_norm", [120.0], r"in \[0, 100\]"),
])
def test_check_refuses_bad_values_before_compiling(name, values, message):
    with pytest.raises(ValueError, match=message):
        families.FAMILIES[name]().check(MODEL, LAYER, GOAL, PARAM, None, OPT, values)


def test_image_steps_and_octaves_refuse_a_fourier_param():
    fft = parameterisations.image(16)
    with pytest.raises(ValueError, match=r"use parameterisations.pixel\(size\)"):
        families.Decay().check(MODEL, LAYER, GOAL, fft, None, OPT, [0.1])
    with pytest.raises(ValueError, match="fft=False"):
        families.Octaves(steps=2).check(MODEL, LAYER, GOAL, fft, None, OPT, [1.1])


def test_from_config_reads_the_declared_keys():
    config = {"penalty_constant": 0.2, "penalty_reduction": "sum", "tv_beta": 2.0, "blur_sigma": 0.7,
              "blur_every": 3, "octaves": 4, "steps": 5}
    assert families.from_config("l2", config) == families.L2(0.2, "sum")
    assert families.from_config("tv", config) == families.TotalVariation(2.0, "sum")
    assert families.from_config("blur", config) == families.Blur(3)
    assert families.from_config("octaves", config) == families.Octaves(4, 5)
    with pytest.raises(ValueError, match="valid: none, l1, l2, tv"):
        families.from_config("dropout", config)


@pytest.mark.parametrize("name", ["tv", "yosinski", "scale", "jitter", "octaves", "maco"])
def test_render_family_equals_render_of_each_cell(name):
    family, spec, _, _ = CASES[name]
    values = family.parse(spec)
    numeric = family.numeric(values)
    chans = [1, 6]
    out = families.render_family(MODEL, family, GOAL, PARAM, None, OPT, chans, values, KEY, STEPS)
    assert out.objective.shape == (2, len(values))
    make = family.make(GOAL, PARAM, None, OPT, values)
    passes = {j: p for p in family.passes(values, None, PARAM) for j in p.indices}
    for i, j in [(0, 0), (1, len(values) - 1)]:  # two cells (each single render compiles afresh)
        c = chans[i]
        setup = make(np.int32(c), numeric[j])
        tf = setup.transforms or passes[j].transforms or transforms.identity()
        pm = passes[j].param or PARAM
        one = render(MODEL, setup.objective, pm, tf, setup.optimiser, channel_key(KEY, c), STEPS)
        np.testing.assert_allclose(out.images[i][j], one.images, atol=2e-5, err_msg=f"{name} c={c} v={values[j]}")
        np.testing.assert_allclose(out.objective[i, j], one.objective, rtol=1e-4, atol=1e-5)
    if name not in ("octaves", "maco"):  # (one octave: no stage for the factor to act on; maco: one value)
        assert not np.allclose(out.images[0][0], out.images[0][-1])  # the value matters


def test_octaves_with_a_fixed_scale_give_the_values_to_the_inner_family():
    tv = families.TotalVariation(1.0, "sum")
    family = families.Octaves(octaves=2, steps=2, scale=1.25, inner=tv)
    assert family.parse("-0.01") == [-0.01] and family.total_steps(99) == 4
    out = families.render_family(MODEL, family, GOAL, PARAM, None, OPT, [3], [-0.01], KEY, 99)
    make = tv.make(GOAL, PARAM, None, OPT, [-0.01])
    ref, sizes = octaves.render_octave_cells(MODEL, make, PARAM, transforms.identity(), [3], [-0.01], KEY,
                                             octaves.Octaves(2, 1.25, 2))
    assert sizes == (16, 20) and out.images[0][0].shape == (1, 20, 20, 3)
    np.testing.assert_array_equal(out.images[0][0], ref.images[0])
    assert "over Octaves(octaves=2, scale=1.25, steps=2)" in family.describe("g")


def test_engines_are_reused_across_calls():
    family = families.Jitter()
    engines: dict = {}
    a = families.render_family(MODEL, family, GOAL, PARAM, None, OPT, [2], [1.0, 2.0], KEY, 2, engines=engines)
    held = dict(engines)
    b = families.render_family(MODEL, family, GOAL, PARAM, None, OPT, [2], [1.0, 2.0], jax.random.key(1), 2,
                               engines=engines)
    assert engines == held and len(engines) == 2  # one engine per jitter value, kept
    assert all(e._advance._cache_size() == 1 for e in engines.values())
    assert not np.allclose(a.images[0][0], b.images[0][0])  # another key, another image


def test_no_regulariser_dispatch_in_the_recipes():
    """A recipe reads the table; it never branches on a family's name (``family == "tv"``,
    ``name in ("jitter", "octaves")``)."""
    names = "|".join(sorted(set(families.FAMILIES) - {"none", "maco"}) + ["tv_octaves", "tv_standard"])  # (none, maco: also transforms and param names)
    branch = re.compile(rf"""\b(family|regulariser|experiment)\s*(==|!=|\bin\b)|(==|!=)\s*["']({names})["']"""
                        rf"""|\b(if|elif|and|or)\b[^:]*\bin\s*\([^)]*["']({names})["']""")
    offenders = []
    for path in sorted((Path(__file__).parents[2] / "jfv" / "recipes").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if branch.search(line.split("#")[0]):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []
    # The pattern finds what it is for.
    assert branch.search('if family == "tv":') and branch.search('if name in ("jitter", "octaves"):')
