"""Datasets read straight from the shared archives (no extraction): a class-balanced CIFAR-10 subset.

One of the few modules that touch files (with ``jfv.outputs``). The CIFAR-10 archive is
``<shared>/data/cifar10/cifar10-jpeg.tar.gz``: 32x32 JPEGs laid out ``train/<class>/NNNN.jpg``
(5000 per class) and ``test/<class>/NNNN.jpg`` (1000 per class).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image

# Krizhevsky 2009; the label order of the binary release (also the archive's sorted folder names).
from jfv.labels import CIFAR10_CLASSES  # one list of the ten names
CIFAR10_ARCHIVE = "data/cifar10/cifar10-jpeg.tar.gz"  # relative to the shared folder
CIFAR10_SIZE = 32


class DatasetError(ValueError):
    """A dataset that is missing, or a subset it cannot supply; the message names the fix."""


def shared_dir(explicit: str = "") -> Path:
    """``explicit``, else ``$JFV_SHARED``, else ``../shared`` beside the repository."""
    repo = Path(__file__).resolve().parents[1]
    candidates = [explicit] if explicit else [os.environ.get("JFV_SHARED", ""), str(repo.parent / "shared")]
    for c in candidates:
        if c and Path(c).expanduser().is_dir():
            return Path(c).expanduser()
    tried = ", ".join(c for c in candidates if c) or "(none)"
    raise DatasetError(
        f"shared folder not found (tried {tried}): pass --config.shared_dir=PATH or set JFV_SHARED"
    )


def cifar10_subsets(archive: str | os.PathLike, per_class: Mapping[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Class-balanced subsets of CIFAR-10: for each split, files 0000 .. per_class-1 of every class.

    Deterministic (the numbered files, not a random draw) and read in one pass over the archive.

    Args:
        archive: the ``cifar10-jpeg.tar.gz``.
        per_class: split ("train" / "test") -> images per class (>= 1).
    Returns:
        split -> (images (10 * k, 32, 32, 3) uint8, labels (10 * k,) int32), class-major order
        (labels index ``CIFAR10_CLASSES``).

    Example:
        >>> data = cifar10_subsets(shared_dir() / CIFAR10_ARCHIVE, {"train": 100, "test": 50})
        >>> data["train"][0].shape
        (1000, 32, 32, 3)
    """
    path = Path(archive)
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 archive {path} not found: it should be <shared>/{CIFAR10_ARCHIVE}")
    bad = {s: k for s, k in per_class.items() if s not in ("train", "test") or int(k) < 1}
    if bad:
        raise DatasetError(f"per_class must map 'train' / 'test' to counts >= 1, got {bad}")
    found: dict[tuple[str, int, int], np.ndarray] = {}
    classes_seen: set[str] = set()
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in per_class:
                continue
            split, cls, fname = parts
            classes_seen.add(cls)
            stem = fname.rsplit(".", 1)[0]
            if cls not in CIFAR10_CLASSES or not stem.isdigit() or int(stem) >= per_class[split]:
                continue
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as im:
                found[(split, CIFAR10_CLASSES.index(cls), int(stem))] = np.asarray(im.convert("RGB"), np.uint8)
    if classes_seen != set(CIFAR10_CLASSES):
        raise DatasetError(
            f"{path} has class folders {sorted(classes_seen)}, expected the CIFAR-10 classes {list(CIFAR10_CLASSES)}"
        )
    out = {}
    for split, k in per_class.items():
        keys = [(split, c, i) for c in range(len(CIFAR10_CLASSES)) for i in range(int(k))]
        missing = [key for key in keys if key not in found]
        if missing:
            have = min(sum(1 for key in found if key[:2] == (split, c)) for c in range(len(CIFAR10_CLASSES)))
            raise DatasetError(
                f"{path} lacks {len(missing)} of the {len(keys)} {split} images asked for "
                f"(e.g. {missing[0][0]}/{CIFAR10_CLASSES[missing[0][1]]}/{missing[0][2]:04d}.jpg): "
                f"use {split}_per_class <= {have}"
            )
        images = np.stack([found[key] for key in keys])
        if images.shape[1:] != (CIFAR10_SIZE, CIFAR10_SIZE, 3):
            raise DatasetError(f"{path}: expected {CIFAR10_SIZE}x{CIFAR10_SIZE} RGB images, got {images.shape[1:]}")
        labels = np.repeat(np.arange(len(CIFAR10_CLASSES), dtype=np.int32), int(k))
        out[split] = (images, labels)
    return out
