"""Subpackages that load their modules on first attribute access (PEP 562).

``import jfv`` must stay fast, so ``jfv.analysis`` does not import scikit-learn or matplotlib until
``jfv.analysis.embeddings`` or ``jfv.analysis.figures`` is used.
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence


def submodules(package: str, names: Sequence[str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``, importing ``package.<name>`` when first read."""
    names = tuple(names)

    def __getattr__(name: str):
        if name in names:
            return importlib.import_module(f"{package}.{name}")  # the import sets it on the package too
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(importlib.import_module(package).__dict__) | set(names))

    return __getattr__, __dir__
