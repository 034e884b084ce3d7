"""The one deprecation table: every import path and name jfv has moved, and where it lives now.

Old paths keep working for one release. ``import jfv.engine`` (or ``from jfv import metrics``, or
``jfv.datasets`` as an attribute) warns once with the new path and gives a stand-in module that
forwards every attribute, read or set, to the new module (``jfv.metrics``, split in three, forwards
to ``jfv.evaluation``, which re-exports all of them). ``python -m jfv.weights`` and ``python -m
jfv.convert`` run the moved code unchanged. A renamed function or type (``regularisers.blur`` ->
``blur_step``) resolves through the module's ``__getattr__`` with a warning that names the new one.

To move something: add its row here, nowhere else.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

# old module -> new module (the layout by concern: optvis, attribution, analysis, evaluation, models,
# training, runtime, recipes)
MODULES: dict[str, str] = {
    "jfv._xla": "jfv.runtime.xla",
    "jfv.errors": "jfv.runtime.errors",
    "jfv.jobs": "jfv.runtime.jobs",
    "jfv.outputs": "jfv.runtime.outputs",
    "jfv.paths": "jfv.runtime.paths",
    "jfv.objectives": "jfv.optvis.objectives",
    "jfv.parameterisations": "jfv.optvis.parameterisations",
    "jfv.spectrum": "jfv.optvis.parameterisations.spectrum",
    "jfv.transforms": "jfv.optvis.transforms",
    "jfv.regularisers": "jfv.optvis.regularisers",
    "jfv.families": "jfv.optvis.families",
    "jfv.engine": "jfv.optvis.engine",
    "jfv.render": "jfv.optvis.render",
    "jfv.octaves": "jfv.optvis.octaves",
    "jfv.inversion": "jfv.optvis.inversion",
    "jfv.interpolation": "jfv.optvis.interpolation",
    "jfv.references": "jfv.optvis.references",
    "jfv.heads": "jfv.attribution.heads",
    "jfv.datasets": "jfv.analysis.datasets",
    "jfv.topk": "jfv.analysis.topk",
    "jfv.patches": "jfv.analysis.patches",
    "jfv.embeddings": "jfv.analysis.embeddings",
    "jfv.activations": "jfv.analysis.activations",
    "jfv.filters": "jfv.analysis.filters",
    "jfv.checkerboard": "jfv.analysis.checkerboard",
    "jfv.atlas": "jfv.analysis.atlas",
    "jfv.figures": "jfv.analysis.figures",
    "jfv.receptive": "jfv.models.receptive",
    "jfv.labels": "jfv.models.labels",
    "jfv.convert": "jfv.models.convert",
    "jfv.weights": "jfv.models.weights_command",
    "jfv.metrics": "jfv.evaluation",
    "jfv.train": "jfv.training",
    "jfv.recipes.channels": "jfv.recipes.optvis.channels",
    "jfv.recipes.layer": "jfv.recipes.optvis.channels",
    "jfv.recipes.optvis.layer": "jfv.recipes.optvis.channels",  # merged into channels (one recipe, two names)
    "jfv.recipes.sweep": "jfv.recipes.evaluation.study",
    "jfv.recipes.optvis.sweep": "jfv.recipes.evaluation.study",  # merged into study (recipe=sweep: one experiment)
    "jfv.recipes.invert": "jfv.recipes.optvis.invert",
    "jfv.recipes.accentuate": "jfv.recipes.optvis.invert",
    "jfv.recipes.optvis.accentuate": "jfv.recipes.optvis.invert",  # merged into invert (one recipe, two names)
    "jfv.recipes.interpolate": "jfv.recipes.optvis.interpolate",
    "jfv.recipes.study": "jfv.recipes.evaluation.study",
    "jfv.recipes.score": "jfv.recipes.evaluation.score",
    "jfv.recipes.attribute": "jfv.recipes.attribution.attribute",
    "jfv.recipes.gap_gmp": "jfv.recipes.attribution.gap_gmp",
    "jfv.recipes.checkerboard": "jfv.recipes.attribution.checkerboard",
    "jfv.recipes.sensitivity": "jfv.recipes.attribution.sensitivity",
    "jfv.recipes.activations": "jfv.recipes.analysis.activations",
    "jfv.recipes.embeddings": "jfv.recipes.analysis.embeddings",
    "jfv.recipes.filters": "jfv.recipes.analysis.filters",
    "jfv.recipes.top_patches": "jfv.recipes.analysis.top_patches",
    "jfv.recipes.atlas": "jfv.recipes.analysis.atlas",
    "jfv.recipes.train": "jfv.recipes.training.train",
    "jfv.recipes.train_study": "jfv.recipes.training.train_study",
}

# module (new path) -> {old name: new dotted name}: names that were renamed in place (issue 15).
NAMES: dict[str, dict[str, str]] = {
    "jfv.optvis.regularisers": {"blur": "jfv.optvis.regularisers.blur_step"},
    "jfv.optvis.objectives": {"diversity": "jfv.optvis.objectives.gram_diversity"},
    "jfv.attribution.faithfulness": {"blur": "jfv.attribution.faithfulness.blurred_baseline"},
    "jfv.attribution": {"blur": "jfv.attribution.faithfulness.blurred_baseline"},
    "jfv.analysis.datasets": {"Batch": "jfv.analysis.datasets.PaddedBatch"},
    "jfv.recipes.attribution.gap_gmp": {"summary": "jfv.evaluation.sample_stats"},
    "jfv.evaluation": {"natural_pass": "jfv.analysis.passes.natural_pass"},
}

# old module -> the function that calling it used to call (``jfv.render(...)`` in the flat layout,
# when the package's ``render`` was the one-image function).
CALLABLE: dict[str, str] = {"jfv.render": "jfv.render_image"}

_warned: set[str] = set()


def _warn_once(what: str, message: str, stacklevel: int = 3) -> None:
    if what not in _warned:
        _warned.add(what)
        warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)


def resolve(dotted: str):
    """``"jfv.optvis.regularisers.blur_step"`` -> that object (the module imported first)."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def renamed(module: str):
    """A module's ``__getattr__`` for its renamed names: ``__getattr__ = moved.renamed(__name__)``."""
    table = NAMES[module]

    def __getattr__(name: str):
        if name in table:  # warned at every use, as Python's filters allow (once per calling line by default)
            warnings.warn(f"{module}.{name} is deprecated: use {table[name]}, the same "
                          f"{'type' if name[:1].isupper() else 'function'}", DeprecationWarning, stacklevel=2)
            return resolve(table[name])
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


class _Stand(types.ModuleType):
    """An old module path: every attribute read or set goes to the new module."""

    def __getattr__(self, name):
        return getattr(importlib.import_module(self.__dict__["_new"]), name)

    def __setattr__(self, name, value):
        if name.startswith("__") or name == "_new":
            super().__setattr__(name, value)
        else:
            setattr(importlib.import_module(self.__dict__["_new"]), name, value)

    def __dir__(self):
        return dir(importlib.import_module(self.__dict__["_new"]))

    def __call__(self, *args, **kwargs):
        old = self.__name__
        if old not in CALLABLE:
            raise TypeError(f"'module' object {old!r} is not callable")
        _warn_once(f"call {old}", f"calling the module {old} is deprecated: call {CALLABLE[old]}(...), "
                   "the same function")
        return resolve(CALLABLE[old])(*args, **kwargs)


def stand_in(old: str, stacklevel: int = 4) -> types.ModuleType:
    """The stand-in module for ``old`` (in ``sys.modules`` once made), warning once."""
    if old in sys.modules:
        return sys.modules[old]
    new = MODULES[old]
    _warn_once(old, f"{old} is deprecated: import {new} (jfv's modules moved into subpackages; the old path goes in a later release)", stacklevel=stacklevel)
    importlib.import_module(new)
    module = _Stand(old, f"Moved to {new}.")
    module._new = new
    sys.modules[old] = module
    return module


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        return stand_in(spec.name)

    def exec_module(self, module):
        pass

    def get_code(self, fullname):
        """``python -m OLD`` runs the new module's code as ``__main__``."""
        spec = importlib.util.find_spec(MODULES[fullname])
        return spec.loader.get_code(spec.name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MODULES:
            new = importlib.util.find_spec(MODULES[fullname])  # its file, for ``python -m OLD``'s argv[0]
            return importlib.util.spec_from_loader(fullname, _Loader(), origin=new.origin if new else None)
        return None


def install() -> None:
    """Puts the finder of old paths on ``sys.meta_path`` (``import jfv`` does it once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())


def package_attribute(package: str, name: str):
    """``jfv.<name>`` for an old top-level module name, else None."""
    old = f"{package}.{name}"
    if old in MODULES:
        return stand_in(old, stacklevel=5)
    return None
