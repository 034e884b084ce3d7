"""Where jfv finds the shared data folder (``../shared``): one rule for every reader of it.

The folder holds what jfv reads but does not ship: CIFAR-10's JPEG archive, photos, ImageNet's
labels file, CIFAR ResNet checkpoints. It is, in order: the folder a caller names (a config's
``shared_dir``), else ``$JFV_SHARED``, else ``shared/`` beside the repository (``<repo>/../shared``).
No absolute path is built in; the first of these that is a folder wins.

Example:
    >>> find_shared()            # $JFV_SHARED's folder, else <repo>/../shared, else None
    >>> find_shared("~/data")    # only the named folder is tried
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "JFV_SHARED"
REPO = Path(__file__).resolve().parents[2]  # the checkout holding jfv/ (or site-packages when installed)


def shared_candidates(explicit: str | os.PathLike = "") -> list[Path]:
    """The folders tried, in order: ``[explicit]`` when given, else ``$JFV_SHARED`` (when set) and ``<repo>/../shared``."""
    if str(explicit):
        return [Path(explicit).expanduser()]
    env = os.environ.get(SHARED_ENV, "")
    return ([Path(env).expanduser()] if env else []) + [REPO.parent / "shared"]


def find_shared(explicit: str | os.PathLike = "") -> Path | None:
    """The shared data folder (the first of ``shared_candidates(explicit)`` that is a folder), or None."""
    for path in shared_candidates(explicit):
        if path.is_dir():
            return path
    return None


__all__ = ["REPO", "SHARED_ENV", "find_shared", "shared_candidates"]
