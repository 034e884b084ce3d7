"""The public face: ``import jfv`` gives one explicit list of names over the packages, loads
subpackages lazily, and keeps every jfv 0.1 import path working through one table with a warning."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import jfv
from jfv.runtime import moved
from tiny_model import tiny_model

REPO = Path(__file__).resolve().parents[1]


def fresh(code: str) -> str:
    """Runs ``code`` in a new interpreter (nothing of jfv imported yet) from the repository; its stdout."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_every_public_name_resolves():
    for name in jfv.__all__:
        assert getattr(jfv, name) is not None, name
        assert name in dir(jfv)
    for name in ("optvis", "attribution", "analysis", "evaluation", "models", "training", "runtime", "recipes"):
        mod = getattr(jfv, name)
        assert isinstance(mod, types.ModuleType) and mod is importlib.import_module(f"jfv.{name}")


@pytest.mark.parametrize("package", ["jfv.optvis", "jfv.analysis", "jfv.runtime"])
def test_a_lazy_package_lists_exactly_its_modules(package):
    pkg = importlib.import_module(package)
    folder = Path(pkg.__file__).parent
    on_disk = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"} | {p.parent.name for p in folder.glob("*/__init__.py")}
    assert set(pkg.MODULES) == on_disk
    for name in pkg.MODULES:
        assert getattr(pkg, name) is importlib.import_module(f"{package}.{name}")


def test_import_jfv_then_attribute_access_loads_lazily():
    out = fresh("import sys, jfv; before = [m for m in ('jfv.attribution', 'jfv.evaluation', 'jfv.analysis') if m in sys.modules]; "
                "f = jfv.attribution.saliency; g = jfv.evaluation.lpips; h = jfv.analysis.topk.init; "
                "print(len(before), 'jfv.analysis.topk' in sys.modules, callable(f) and callable(g) and callable(h))")
    assert out.split() == ["0", "True", "True"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'atribution'"):
        jfv.atribution  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'tpk'"):
        jfv.analysis.tpk  # noqa: B018
    # the flags module is not part of the API (asked in a fresh interpreter: any test that imports
    # jfv.main binds it on the package, as Python does for every imported submodule)
    assert fresh("import jfv; print(hasattr(jfv, 'main'))").strip() == "False"


OLD_PATHS = sorted(moved.MODULES)


def test_every_old_module_path_imports_warns_once_and_forwards():
    """In one fresh interpreter: each old path imports (twice), warns exactly once naming the new path,
    and its attributes are the new module's objects, read and set."""
    code = f"""
import importlib, json, warnings
import jfv
from jfv.runtime import moved
out = {{}}
for old in {OLD_PATHS!r}:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = importlib.import_module(old)
        b = importlib.import_module(old)
    new = importlib.import_module(moved.MODULES[old])
    names = [n for n in dir(new) if not n.startswith("_")]
    same = a is b and all(getattr(a, n) is getattr(new, n) for n in names)
    out[old] = [len(w), str(w[0].message) if w else "", same, len(names) > 0]
out["setattr"] = False
import jfv.jobs as old_jobs
from jfv.runtime import jobs
old_jobs.SENTINEL = 7
out["setattr"] = getattr(jobs, "SENTINEL", None) == 7
print(json.dumps(out))
"""
    out = json.loads(fresh(code))
    assert out.pop("setattr")
    for old, (n_warnings, message, same, has_names) in out.items():
        assert n_warnings == 1 and moved.MODULES[old] in message and "deprecated" in message, (old, message)
        assert same and has_names, old


def test_from_jfv_import_old_name_warns_and_works():
    out = fresh("import warnings; warnings.simplefilter('error')\n"
                "try:\n    from jfv import metrics\nexcept DeprecationWarning as e:\n    print('warned', e)\n"
                "warnings.simplefilter('ignore')\nfrom jfv import metrics\nimport jfv\n"
                "print(metrics.lpips is jfv.evaluation.lpips, metrics.sample_stats is jfv.evaluation.sample_stats)")
    first, second = out.strip().splitlines()
    assert first.startswith("warned jfv.metrics is deprecated: import jfv.evaluation")
    assert second == "True True"


@pytest.mark.parametrize("module, old, new", [(m, o, n) for m, t in moved.NAMES.items() for o, n in t.items()])
def test_renamed_names_warn_and_resolve(module, old, new):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=new.rpartition(".")[2]):
        got = getattr(mod, old)
    assert got is moved.resolve(new)


def test_old_module_commands_still_run():
    res = subprocess.run([sys.executable, "-m", "jfv.convert", "--help"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0 and "usage: python -m jfv.convert" in res.stdout, res.stderr[-500:]
    res = subprocess.run([sys.executable, "-m", "jfv.weights", "--model=nope"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 2 and "jfv.weights: error: unknown model 'nope'" in res.stderr, res.stderr[-500:]


def test_render_is_the_module_and_the_function_keeps_its_names():
    from jfv.optvis.render import render

    assert isinstance(jfv.optvis.render, types.ModuleType) and jfv.optvis.render.__name__ == "jfv.optvis.render"
    assert jfv.render_image is render is jfv.optvis.render.render


def test_calling_the_old_render_module_warns_and_renders_the_same_image():
    model = tiny_model()
    args = (model, jfv.objectives.channel("conv2", 3), jfv.parameterisations.image(16), jfv.transforms.compose(),
            optax.adam(0.05), jax.random.key(0), 2)
    moved._warned.discard("call jfv.render")
    with pytest.warns(DeprecationWarning, match=r"call jfv.render_image"):
        old = jfv.render(*args)
    new = jfv.render_image(*args)
    np.testing.assert_array_equal(np.asarray(old.images), np.asarray(new.images))
    assert np.asarray(new.images).shape[-3:] == (16, 16, 3)
