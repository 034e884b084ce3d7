"""Class names: ImageNet's 1,000 (from a labels file) and CIFAR-10's ten, and name -> index lookup.

A labels file has one ``INDEX NAME`` line per class, where NAME may list comma-separated synonyms
(``1 goldfish, Carassius auratus``). ``class_index("goldfish", labels)`` matches any synonym,
ignoring case, underscores and repeated spaces; an unknown name raises ``UnknownClassError`` listing
the closest names.

Example:
    >>> class_index("goldfish", imagenet())
    1
    >>> class_index("cat", CIFAR10_CLASSES)
    3
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Sequence

SHARED_ENV = "JFV_SHARED"
IMAGENET_LABELS = Path("data/imagenet-labels/lucent_imagenet_labels.txt")  # relative to shared/
# Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images": class order of the
# CIFAR-10 batches (batches.meta label_names).
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


class UnknownClassError(ValueError):
    """A class name not in the labels; the message lists the closest ones."""


class LabelsError(FileNotFoundError):
    """A labels file that is missing or malformed; the message names it and the fix."""


def shared_dir() -> Path | None:
    """The shared data folder: ``$JFV_SHARED``, else ``<repo>/../shared``, else ``/work/shared``."""
    env = os.environ.get(SHARED_ENV)
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[1].parent / "shared", Path("/work/shared")]
    for path in candidates:
        if path.is_dir():
            return path
    return None


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Reads an ``INDEX NAME`` file into names ordered by index; checks indices are 0..n-1."""
    path = Path(path)
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError as e:
        raise LabelsError(f"cannot read labels file {path} ({e})") from None
    names: dict[int, str] = {}
    for n, line in enumerate(lines, start=1):
        index, _, name = line.strip().partition(" ")
        if not index.isdigit() or not name.strip():
            raise LabelsError(f"{path}:{n}: expected 'INDEX NAME', got {line!r}")
        names[int(index)] = name.strip()
    if sorted(names) != list(range(len(names))):
        raise LabelsError(f"{path}: indices are not 0..{len(names) - 1}")
    return tuple(names[i] for i in range(len(names)))


def imagenet(path: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The 1,000 ImageNet class names, index order; from ``path`` or the shared labels file."""
    if path is None:
        shared = shared_dir()
        if shared is None:
            raise LabelsError(
                f"ImageNet labels not found: set ${SHARED_ENV} to the shared folder holding "
                f"{IMAGENET_LABELS}, or pass the labels file's path"
            )
        path = shared / IMAGENET_LABELS
    return read_labels(path)


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def class_index(name: str, labels: Sequence[str]) -> int:
    """The index of the class called ``name`` (any comma-separated synonym, case-insensitive).

    Raises:
        UnknownClassError: no class has that name; the message lists close matches.
    """
    want = _norm(name)
    for i, label in enumerate(labels):
        if want == _norm(label) or want in (_norm(s) for s in label.split(",")):
            return i
    synonyms = {_norm(s): s.strip() for label in labels for s in label.split(",")}
    close = difflib.get_close_matches(want, list(synonyms), n=5, cutoff=0.6)
    close += [s for s in synonyms if want and want in s and s not in close][: max(0, 5 - len(close))]
    hint = f" Close matches: {', '.join(repr(synonyms[c]) for c in close)}." if close else ""
    raise UnknownClassError(f"no class named {name!r} among {len(labels)} classes.{hint}")
