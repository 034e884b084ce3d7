"""The flat API: every module is an attribute of ``jfv``, loaded lazily; ``jfv.render`` is the module."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import jfv
from tiny_model import tiny_model

REPO = Path(__file__).resolve().parents[1]


def fresh(code: str) -> str:
    """Runs ``code`` in a new interpreter (nothing of jfv imported yet) from the repository; its stdout."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_every_listed_module_exists_and_is_reachable():
    for name in jfv.SUBMODULES:
        mod = getattr(jfv, name)
        assert isinstance(mod, types.ModuleType) and mod is importlib.import_module(f"jfv.{name}"), name
        assert name in dir(jfv)
    on_disk = {p.stem for p in (REPO / "jfv").glob("*.py")} | {p.parent.name for p in (REPO / "jfv").glob("*/__init__.py")}
    assert set(jfv.SUBMODULES) <= on_disk


def test_import_jfv_then_attribute_access_loads_lazily():
    out = fresh("import sys, jfv; before = 'jfv.attribution' in sys.modules or 'jfv.metrics' in sys.modules; "
                "f = jfv.attribution.saliency; g = jfv.metrics.lpips; "
                "print(before, 'jfv.attribution' in sys.modules, callable(f) and callable(g))")
    assert out.split() == ["False", "True", "True"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'atribution'"):
        jfv.atribution  # noqa: B018
    # the flags module is not part of the API (asked in a fresh interpreter: any test that imports
    # jfv.main binds it on the package, as Python does for every imported submodule)
    assert fresh("import jfv; print(hasattr(jfv, 'main'))").strip() == "False"


def test_render_is_the_module_and_the_function_keeps_its_names():
    from jfv.render import render

    assert isinstance(jfv.render, types.ModuleType) and jfv.render.__name__ == "jfv.render"
    assert jfv.render_image is render is jfv.render.render
    assert fresh("from jfv import render; print(render.__name__)").strip() == "jfv.render"


def test_calling_the_module_warns_and_renders_the_same_image():
    model = tiny_model()
    args = (model, jfv.objectives.channel("conv2", 3), jfv.parameterisations.image(16), jfv.transforms.compose(),
            optax.adam(0.05), jax.random.key(0), 2)
    with pytest.warns(DeprecationWarning, match=r"call jfv.render_image"):
        old = jfv.render(*args)
    new = jfv.render_image(*args)
    np.testing.assert_array_equal(np.asarray(old.images), np.asarray(new.images))
    assert np.asarray(new.images).shape[-3:] == (16, 16, 3)
