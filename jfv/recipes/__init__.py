"""Recipes: what ``python -m jfv`` runs, chosen by the config key ``recipe``.

A recipe is a module with ``run(config, workdir) -> dict`` (the manifest it wrote). Recipes are the
only library code that reads configs; they turn config keys into explicit, typed arguments.
"""

from __future__ import annotations

import importlib

# recipe name -> module (imported on use, so one recipe's dependencies never slow another's start)
RECIPES: dict[str, str] = {
    "channels": "jfv.recipes.optvis.channels",
    "layer": "jfv.recipes.optvis.layer",
    "attribute": "jfv.recipes.attribution.attribute",
    "sweep": "jfv.recipes.optvis.sweep",
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
    "accentuate": "jfv.recipes.optvis.accentuate",
    "interpolate": "jfv.recipes.optvis.interpolate",
}


class UnknownRecipeError(ValueError):
    """A recipe name that is not registered; the message lists the valid ones."""


def get(name: str):
    if name not in RECIPES:
        raise UnknownRecipeError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}")
    return importlib.import_module(RECIPES[name])
