"""Recipes: what ``python -m jfv`` runs, chosen by the config key ``recipe``.

A recipe is a module that declares itself once, ``RECIPE = Recipe(...)``: ``run(config, workdir)
-> dict`` (the manifest it wrote), ``check(config)`` (refuses a bad config before anything is
loaded or written; ``run`` calls it first), whether it is resumable, and so on. Recipes are the
only library code that reads configs; they turn config keys into explicit, typed arguments.
Modules are grouped as the library is: ``recipes/optvis``, ``attribution``, ``analysis``,
``evaluation``, ``training``; ``common.py`` holds what they share.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

# recipe name -> module (imported on use, so one recipe's dependencies never slow another's start)
RECIPES: dict[str, str] = {
    "channels": "jfv.recipes.optvis.channels",
    "layer": "jfv.recipes.optvis.channels",  # one recipe, two names: the whole-layer config
    "attribute": "jfv.recipes.attribution.attribute",
    "sweep": "jfv.recipes.evaluation.study",  # the study of one experiment, unscored (study.SWEEP)
    "gap_gmp": "jfv.recipes.attribution.gap_gmp",
    "study": "jfv.recipes.evaluation.study",
    "filters": "jfv.recipes.analysis.filters",
    "activations": "jfv.recipes.analysis.activations",
    "embeddings": "jfv.recipes.analysis.embeddings",
    "top_patches": "jfv.recipes.analysis.top_patches",
    "atlas": "jfv.recipes.analysis.atlas",
    "train": "jfv.recipes.training.train",
    "sensitivity": "jfv.recipes.attribution.sensitivity",
    "train_study": "jfv.recipes.training.train_study",
    "checkerboard": "jfv.recipes.attribution.checkerboard",
    "score": "jfv.recipes.evaluation.score",
    "invert": "jfv.recipes.optvis.invert",
    "accentuate": "jfv.recipes.optvis.invert",  # the invert recipe's accentuation (invert.task)
    "interpolate": "jfv.recipes.optvis.interpolate",
}


class UnknownRecipeError(ValueError):
    """A recipe name that is not registered; the message lists the valid ones."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a recipe module declares as ``RECIPE``; ``jfv.main`` reads nothing else of it.

    Attributes:
        run: ``(config, workdir) -> manifest``; checks the config first.
        check: ``(config) -> None``; raises ``ConfigError`` naming the key and the fix. Only what
            the config alone decides (a layer that the model lacks is found once it is loaded).
        resumable: the recipe holds its workdir through ``jfv.runtime.jobs.Job`` (``job.json``,
            lock, resume, ``--config.resume=False``) rather than ``--overwrite``.
        run_keys: for a resumable recipe, the config keys that change no output, so a resume may
            change them.
        check_workdir: ``(config, workdir) -> None``, refusals that must come before the workdir is
            claimed or moved aside (``score`` refuses to write into the run it scores).
    """

    run: Callable[[Any, str], dict]
    check: Callable[[Any], None]
    resumable: bool = False
    run_keys: tuple[str, ...] = ()
    check_workdir: Callable[[Any, str], None] | None = None


def get(name: str):
    """The recipe's module (its ``RECIPE``, helpers and constants)."""
    if name not in RECIPES:
        raise UnknownRecipeError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}")
    return importlib.import_module(RECIPES[name])


def recipe(name: str) -> Recipe:
    """The recipe ``name`` declares (``RECIPE`` of its module)."""
    return get(name).RECIPE
