"""Class names: ImageNet's 1,000 (from a labels file) and CIFAR-10's ten, and name -> index lookup.

A labels file has one ``INDEX NAME`` line per class, where NAME may list comma-separated synonyms
(``1 goldfish, Carassius auratus``). ``class_index("goldfish", labels)`` matches any synonym,
ignoring case, underscores and repeated spaces, or an index (``"517"``); a name several classes share
raises ``AmbiguousClassError`` listing them with their indices; an unknown name raises
``UnknownClassError`` listing the closest names and where all are listed.

Example:
    >>> class_index("goldfish", imagenet())
    1
    >>> class_index("cat", CIFAR10_CLASSES)
    3
"""

from __future__ import annotations

import difflib
import re
import os
from pathlib import Path
from typing import Sequence

from jfv.runtime.paths import SHARED_ENV, find_shared

IMAGENET_LABELS = Path("data/imagenet-labels/lucent_imagenet_labels.txt")  # relative to shared/
# Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images": class order of the
# CIFAR-10 batches (batches.meta label_names).
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


class UnknownClassError(ValueError):
    """A class name not in the labels; the message lists the closest ones."""


class AmbiguousClassError(UnknownClassError):
    """A class name several classes share; the message lists them with their indices."""


class LabelsError(FileNotFoundError):
    """A labels file that is missing or malformed; the message names it and the fix."""


def shared_dir() -> Path | None:
    """The shared data folder (``jfv.runtime.paths.find_shared``: ``$JFV_SHARED``, else ``<repo>/../shared``), or None."""
    return find_shared()


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


def where_listed(labels: Sequence[str]) -> str:
    """Where a user sees every class name with its index: inline for a few, else the labels file."""
    if len(labels) <= 20:
        return ", ".join(f"{i} {label}" for i, label in enumerate(labels))
    shared = shared_dir()
    if len(labels) == 1000 and shared is not None and (shared / IMAGENET_LABELS).is_file():
        return f"{shared / IMAGENET_LABELS} (one 'INDEX NAME' per line)"
    return "the model's labels (Model.labels)"


def class_index(name: str, labels: Sequence[str]) -> int:
    """The index of the class called ``name`` (any comma-separated synonym, case-insensitive), or
    given as its index (``"517"``).

    Raises:
        AmbiguousClassError: several classes have that name (ImageNet's ``crane``: the bird 134 and
            the machine 517); the message lists them with their indices.
        UnknownClassError: no class has that name; the message lists close matches and how to see
            every name.
    """
    if name.strip().isdigit():
        index = int(name)
        if index >= len(labels):
            raise UnknownClassError(f"class index {index} is out of range: the classes are 0..{len(labels) - 1}")
        return index
    want = _norm(name)
    found = [i for i, label in enumerate(labels) if want == _norm(label) or want in (_norm(s) for s in label.split(","))]
    if len(found) == 1:
        return found[0]
    if found:
        def context(i: int) -> str:
            near = [repr(labels[j].split(",")[0]) for j in (i - 1, i + 1) if 0 <= j < len(labels)]
            return f"{i} {labels[i]!r} (between {' and '.join(near)})"

        raise AmbiguousClassError(
            f"class name {name!r} is ambiguous: {'; '.join(context(i) for i in found)}. Pick one by "
            f"its index in place of the name, e.g. {found[0]}"
        )
    synonyms = {_norm(s): s.strip() for label in labels for s in label.split(",")}
    # names holding the word itself first ("cat": 'tabby cat', 'tiger cat'), then spelling neighbours
    # ("kat": 'cat'), then names that merely contain it ('wildcat')
    words = [s for s in synonyms if want and re.search(rf"(?<![a-z]){re.escape(want)}(?![a-z])", s)]
    close = list(dict.fromkeys(words + difflib.get_close_matches(want, list(synonyms), n=5, cutoff=0.6)
                               + [s for s in synonyms if want and want in s]))[:5]
    hint = f" Close matches: {', '.join(repr(synonyms[c]) for c in close)}." if close else ""
    raise UnknownClassError(
        f"no class named {name!r} among {len(labels)} classes.{hint} All names with their indices: "
        f"{where_listed(labels)}"
    )
