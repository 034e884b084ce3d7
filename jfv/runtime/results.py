"""What the one-call results share: ``jfv.visualise``'s ``Visualisation``, ``jfv.top_patches``'s
``TopPatches`` and ``jfv.attribute``'s ``Attribution``.

Each is a frozen dataclass over ``OneCallResult``: it draws its notebook picture (``grid``) and writes
its recipe's files into a staging folder (``write``); the base class shows the picture in Jupyter
(``_repr_png_``), claims the folder ``save`` writes into (refusing one that holds files unless
``overwrite``), and gives the manifest's closing keys (``run_info``).

Example:
    >>> v = jfv.visualise("vgg16", "conv4_3:48", steps=64)
    >>> v.save("/tmp/conv4_3_48")   # OneCallResult.save: claim, stage, v.write(stage), commit
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np


def first_few(items: Sequence[Any], most: int) -> str:
    """The first ``most`` items, comma-separated, then ``, ...`` when there are more (a repr's list).

    Args:
        items: what to list.
        most: how many to show.

    Returns:
        e.g. ``"0, 1, 2, ..."``.
    """
    return ", ".join(map(str, items[:most])) + (", ..." if len(items) > most else "")


class OneCallResult:
    """The part every one-call result shares: its picture in Jupyter and ``save``.

    A subclass is a frozen dataclass and defines ``grid`` (the picture a notebook shows) and
    ``write`` (its recipe's files). Each declares its own fields, ending in ``settings``,
    ``model_source`` and ``wall_time_s``, so that its constructor keeps its argument order.

    Attributes:
        model_source: where the model's weights came from.
        wall_time_s: seconds the call took.
    """

    wall_time_s: float

    def grid(self) -> np.ndarray:
        """The labelled grid a notebook shows, (H, W, 3) in [0, 1]."""
        raise NotImplementedError

    def write(self, stage: Any) -> None:
        """Writes the recipe's files into ``stage`` (a ``jfv.runtime.outputs.Staging``), ``manifest.json`` last."""
        raise NotImplementedError

    def _repr_png_(self) -> bytes:
        from jfv.runtime.jobs import png_bytes

        return png_bytes(self.grid())

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Writes the recipe's files (``write``) into ``directory``; ``manifest.json`` comes last: the
        run is complete when it exists.

        Args:
            directory: where to write; created if needed.
            overwrite: move files already there to ``<directory>.old-<time>`` first.

        Returns:
            The directory.

        Raises:
            WorkdirError: ``directory`` cannot be written, is in use by a jfv run, or already holds
                files (and ``overwrite`` is False).
        """
        from jfv.runtime.jobs import claim, claimable
        from jfv.runtime.outputs import Staging

        path = claimable(directory, overwrite)
        with claim(path, overwrite=overwrite), Staging(path) as stage:
            self.write(stage)
        return path

    def run_info(self, versions: Mapping[str, str]) -> dict:
        """The manifest's closing keys: ``versions`` (``jfv.models.weights.library_versions()``), the
        backend, the devices and ``wall_time_s``.

        Args:
            versions: the libraries' versions.

        Returns:
            ``{"versions", "backend", "devices", "wall_time_s"}``.
        """
        return {"versions": versions, "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
                "wall_time_s": self.wall_time_s}


__all__ = ["OneCallResult", "first_few"]
