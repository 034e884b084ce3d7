"""Helpers shared by recipes (jfv/recipes/common.py, and the AM recipes' jfv/recipes/optvis/settings.py):
the config's transforms and objectives, and that recipes take them from there rather than from each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jfv.optvis import objectives, transforms
from jfv.recipes import common
from jfv.recipes.optvis import settings

REPO = Path(__file__).resolve().parents[1]


def test_make_transforms_builds_the_named_ones():
    assert repr(settings.make_transforms("standard")) == repr(transforms.standard())
    x = jax.random.uniform(jax.random.key(0), (16, 16, 3))
    np.testing.assert_array_equal(settings.make_transforms("none")(jax.random.key(1), x), x)
    c = ml_collections.ConfigDict(dict(maco_crops=2, image_size=16, maco_box=(0.5, 0.7), maco_noise=0.05))
    assert repr(settings.make_transforms("maco", c)) == repr(transforms.maco(2, 16, (0.5, 0.7), 0.05))


@pytest.mark.parametrize("call, message", [
    (lambda: settings.make_transforms("jitter"), r"unknown transforms 'jitter'; valid: standard, none, maco"),
    (lambda: settings.make_transforms("maco"), r"only available in the channels recipe"),
    (lambda: settings.objective_factory("pixel", "conv1", 0.0), r"valid: channel, neuron, class"),
])
def test_bad_names_list_the_valid_ones(call, message):
    with pytest.raises(common.ConfigError, match=message):
        call()


def test_objective_factory_values():
    acts = {"conv1": jnp.arange(2 * 3 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 3, 4)}
    make = settings.objective_factory("channel", "conv1", 0.0)
    assert float(make(2)(acts)) == float(objectives.channel("conv1", 2)(acts)) == float(acts["conv1"][..., 2].mean())
    with_div = settings.objective_factory("neuron", "conv1", 0.5)(1)
    expect = objectives.neuron("conv1", 1)(acts) + 0.5 * objectives.gram_diversity("conv1")(acts)
    np.testing.assert_allclose(float(with_div(acts)), float(expect), rtol=1e-6)


def test_study_does_not_import_the_channels_recipe_and_layer_is_channels():
    from jfv import recipes

    assert recipes.get("layer") is recipes.get("channels")  # one recipe, two names
    code = "import sys, jfv.recipes.evaluation.study; print('jfv.recipes.optvis.channels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    from jfv.recipes.optvis import channels, channels_job  # they take them from their one home

    assert channels.make_transforms is settings.make_transforms
    assert channels_job.objective_factory is settings.objective_factory


def test_no_recipe_imports_another_recipe():
    """Recipes share helpers through jfv.recipes.common only: no recipe module imports another."""
    import ast

    from jfv.recipes import RECIPES

    folder = Path(common.__file__).parent
    recipe_modules = set(RECIPES.values())
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                assert t not in recipe_modules, f"{path.relative_to(folder)} imports the recipe {t}"


def test_parse_list_strips_and_refuses_empty_or_repeated_items():
    assert common.parse_list(" conv3_1, conv4_3 ,", "layers", "conv4_3") == ["conv3_1", "conv4_3"]
    with pytest.raises(common.ConfigError, match=r"cannot read layers ' , ': .* e\.g\. conv4_3"):
        common.parse_list(" , ", "layers", "conv4_3")
    with pytest.raises(common.ConfigError, match="names a layer twice"):
        common.parse_list("a,b,a", "layers", "conv4_3", item="a layer")


# -- the recipe protocol ---------------------------------------------------------------------------

CONFIGS = sorted(p for p in (REPO / "configs").glob("*.py") if p.name != "__init__.py")


def test_every_recipe_declares_itself_once():
    from jfv import recipes

    for name in recipes.RECIPES:
        declared = recipes.recipe(name)
        module = recipes.get(name)
        assert isinstance(declared, recipes.Recipe), name
        assert declared.run is module.run and declared.check is module.check, name
        assert not hasattr(module, "RESUMABLE") and not hasattr(module, "check_config"), name
        assert declared.resumable or not declared.run_keys, name  # run_keys only mean something on resume


# configs that name an input the user must give; check refuses them with the key to set
NEEDS_INPUT = {"atlas": "top_patches_dir is empty"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_passes_its_recipes_check(path):
    """``check`` reads the config alone (no model, no files), and the configs users start from pass it."""
    from jfv import recipes
    from jfv.main import load_config

    config = load_config(str(path))
    if path.stem in NEEDS_INPUT:
        with pytest.raises(common.ConfigError, match=NEEDS_INPUT[path.stem]):
            recipes.recipe(config.recipe).check(config)
    else:
        recipes.recipe(config.recipe).check(config)
