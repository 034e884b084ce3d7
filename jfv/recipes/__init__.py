"""Recipes: what ``python -m jfv`` runs, chosen by the config key ``recipe``.

A recipe is a module with ``run(config, workdir) -> dict`` (the manifest it wrote). Recipes are the
only library code that reads configs; they turn config keys into explicit, typed arguments.
"""

from __future__ import annotations

import importlib

# recipe name -> module (imported on use, so one recipe's dependencies never slow another's start)
RECIPES: dict[str, str] = {
    "channels": "jfv.recipes.channels",
    "layer": "jfv.recipes.layer",
    "attribute": "jfv.recipes.attribute",
    "sweep": "jfv.recipes.sweep",
    "gap_gmp": "jfv.recipes.gap_gmp",
    "study": "jfv.recipes.study",
    "filters": "jfv.recipes.filters",
    "activations": "jfv.recipes.activations",
    "embeddings": "jfv.recipes.embeddings",
    "top_patches": "jfv.recipes.top_patches",
    "atlas": "jfv.recipes.atlas",
    "train": "jfv.recipes.train",
    "sensitivity": "jfv.recipes.sensitivity",
    "train_study": "jfv.recipes.train_study",
    "checkerboard": "jfv.recipes.checkerboard",
    "score": "jfv.recipes.score",
    "invert": "jfv.recipes.invert",
    "accentuate": "jfv.recipes.accentuate",
    "interpolate": "jfv.recipes.interpolate",
}


class UnknownRecipeError(ValueError):
    """A recipe name that is not registered; the message lists the valid ones."""


def get(name: str):
    if name not in RECIPES:
        raise UnknownRecipeError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}")
    return importlib.import_module(RECIPES[name])
