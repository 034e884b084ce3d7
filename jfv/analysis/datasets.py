"""Datasets, streamed: image folders, lists of paths and CIFAR-10, in fixed-size batches.

One of the few modules that touch files (with ``jfv.runtime.outputs``). A ``Source`` is a list of items
(id, name, label) and a way to read their bytes (or pixels) in the cheapest order; ``batches`` decodes them,
resizes and centre-crops each to ``size`` (``fit``), and yields fixed-size ``PaddedBatch``es: the last one
padded, with a validity mask, so one compiled program serves every batch. Nothing is held beyond the
batch being filled (and ``prefetch`` more decoded by a background thread). An unreadable or corrupt
image is skipped and reported in the batch's ``skipped`` (``(name, reason)``, the reason naming the
file, never an object's address), not raised; but a source none of whose images can be read is
refused (``DatasetError`` naming it), and so is a CIFAR-10 archive that is truncated or corrupt.

Sources:

- ``image_folder(root, labels_file)``: ``root/<class>/*.jpg|png|...`` (labels = sorted class folder
  names; ImageNet wnid folders get ImageNet's class indices) or a flat folder of images (no labels,
  or ImageNet validation labels from ``labels_file``); ids in sorted path order.
- ``path_list(paths, labels)``: any files, ids in the given order.
- ``cifar10(split, per_class, archive)``: CIFAR-10 read sequentially, never extracted, from any of
  its forms (``jfv.analysis.dataset_formats``): the shared JPEG archive
  ``<shared>/data/cifar10/cifar10-jpeg.tar.gz`` (the default when it is there), or the official python
  or binary release, packed (``cifar-10-python.tar.gz``) or extracted (``cifar-10-batches-py/``),
  found through ``archive``, ``$JFV_CIFAR10`` or the shared folder (``find_cifar10``). A release's
  pixels are handed on as arrays, never re-encoded. Ids are class-major, as ``cifar10_subsets``, and
  the same in every form.

Example:
    >>> source = cifar10(split="test", per_class=20)
    >>> for batch in batches(source, size=64, batch_size=32):
    ...     acts = model(batch.images)           # (32, 64, 64, 3) in [0, 1]; batch.mask (32,) bool

A model with other input channels takes ``batches(source, 64, 32, convert=model.from_rgb)``: each
decoded RGB image becomes the model's input (ITU-R BT.601 luma for a grayscale model).
"""

from __future__ import annotations

import dataclasses
import io
import os
import queue
import re
import tarfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
from PIL import Image

# Krizhevsky 2009; the label order of the binary release (also the archive's sorted folder names).
from jfv.models.labels import CIFAR10_CLASSES  # one list of the ten names
from jfv.models.stream import PaddedBatch  # the one batch type (defined beside the pass's loop)
from jfv.runtime.paths import find_shared, shared_candidates
from jfv.runtime import moved
from jfv.analysis import loading
# The files datasets come in (CIFAR-10's forms, ImageNet's labels) and the error: defined there, reached
# through this module too (``datasets.DatasetError``, ``datasets.find_cifar10``; CIFAR10_ARCHIVE only
# re-exported, for the callers that name ``datasets.CIFAR10_ARCHIVE``).
from jfv.analysis.dataset_formats import (
    ARCHIVE_ERRORS, CIFAR10_ARCHIVE, CIFAR10_SIZE, GET_CIFAR10, WNID, CifarLayout, DatasetError,
    cifar10_layout, damaged_archive, find_cifar10, member_name, read_batches, release_order, release_subsets, tar_mode,
    too_few, val_labels, wnid_labels,
)


def shared_dir(explicit: str = "") -> Path:
    """``explicit``, else ``$JFV_SHARED``, else ``../shared`` beside the repository (``jfv.runtime.paths``).

    Raises:
        DatasetError: none of them is a folder; the message lists what was tried and the fix.
    """
    found = find_shared(explicit)
    if found is not None:
        return found
    tried = ", ".join(str(c) for c in shared_candidates(explicit))
    raise DatasetError(
        f"shared folder not found (tried {tried}): pass shared_dir=PATH or set JFV_SHARED"
    )


def cifar10_subsets(archive: str | os.PathLike, per_class: Mapping[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Class-balanced subsets of CIFAR-10: for each split, images 0 .. per_class-1 of every class.

    Deterministic (the first images of each class in the release's order, which the JPEG archive's
    file numbers follow, not a random draw) and read in one pass over the archive. Any form
    ``cifar10_layout`` reads: the JPEG archive, the python or the binary release, packed or extracted;
    they give the same images (the JPEG copy's lossy).

    Args:
        archive: the archive or folder (``find_cifar10``).
        per_class: split ("train" / "test") -> images per class (>= 1).

    Returns:
        split -> (images (10 * k, 32, 32, 3) uint8, labels (10 * k,) int32), class-major order
        (labels index ``CIFAR10_CLASSES``).

    Raises:
        DatasetError: the archive is missing, damaged or of another layout, or holds fewer images
            of a class than asked for.

    Example:
        >>> data = cifar10_subsets(find_cifar10(), {"train": 100, "test": 50})
        >>> data["train"][0].shape
        (1000, 32, 32, 3)
    """
    path = Path(archive).expanduser()
    if not path.exists():
        raise DatasetError(f"CIFAR-10 archive {path} not found: {GET_CIFAR10}")
    bad = {s: k for s, k in per_class.items() if s not in ("train", "test") or int(k) < 1}
    if bad:
        raise DatasetError(f"per_class must map 'train' / 'test' to counts >= 1, got {bad}")
    layout = cifar10_layout(path)
    if layout.kind != "jpeg":
        return release_subsets(layout, per_class)
    found: dict[tuple[str, int, int], np.ndarray] = {}
    classes_seen: set[str] = set()
    try:
        with tarfile.open(path, tar_mode(path)) as tar:
            for member in tar:
                parts = member_name(member.name).split("/")
                if not member.isfile() or len(parts) != 3 or parts[0] not in per_class:
                    continue
                split, cls, fname = parts
                classes_seen.add(cls)
                stem = fname.rsplit(".", 1)[0]
                if cls not in CIFAR10_CLASSES or not stem.isdigit() or int(stem) >= per_class[split]:
                    continue
                raw = tar.extractfile(member).read()
                try:
                    with Image.open(io.BytesIO(raw)) as im:
                        image = np.asarray(im.convert("RGB"), np.uint8)
                except READ_ERRORS as e:
                    why = read_reason(e, member.name)
                    raise DatasetError(f"{path}: {member.name} is not a readable image ({why}): copy or download "
                                       f"the archive again") from None
                found[(split, CIFAR10_CLASSES.index(cls), int(stem))] = image
    except ARCHIVE_ERRORS as e:
        raise damaged_archive(path, e) from None
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


# ---------------------------------------------------------------------------------------------------
# Streamed sources

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")  # what PIL decodes here
CIFAR10_PER_CLASS = {"train": 5000, "test": 1000}  # images per class in each split of the archive
RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
            "lanczos": Image.LANCZOS}
# What a corrupt, truncated or unreadable file raises in PIL / the file system.
READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError)


def read_reason(error: BaseException, name: str) -> str:
    """Why an image could not be read, as ``"Type: message"`` naming the file ``name``: PIL names a
    file it was handed as bytes by the buffer's address (``<_io.BytesIO object at 0x...>``), which
    changes from run to run; that becomes ``'name'``."""
    text = re.sub(r"<[\w.]+ object at 0x[0-9a-fA-F]+>", lambda m: repr(str(name)), str(error))
    return f"{type(error).__name__}: {' '.join(text.split())}"


class Item(NamedTuple):
    """One image of a source: its ``id`` (an int, unique in the source), ``name`` (a path, or the
    archive member) and ``label`` (an index into the source's classes, -1 when unlabelled)."""

    id: int
    name: str
    label: int = -1


Raw = "bytes | np.ndarray | BaseException"  # what a reader hands on per item: file bytes, decoded pixels, or why not
Reader = Callable[[Sequence[Item]], Iterator[tuple[Item, Raw]]]  # Source.reader


@dataclasses.dataclass(frozen=True, repr=False)
class Source:
    """A list of images and how to read their bytes.

    Attributes:
        items: the images, in the order they are read.
        classes: class names (labels index them); () when unlabelled.
        description: where the images come from, for manifests.
        reader: ``items -> iterator of (item, raw)``, each item once, in the cheapest order: files
            in the order of ``items``, a CIFAR-10 archive in its own order (one sequential pass).
            ``raw`` is the image file's bytes (decoded by ``decode``), an (H, W, 3) uint8 array
            already decoded (a CIFAR-10 release's pixels: only resized, never re-encoded), or the
            exception reading it raised (the item is skipped, with the reason).
        part_of: 0 for a whole source; for a ``select``ion of some of its images (a resumed pass
            streams the images not yet seen), the size of the source it was selected from.
            ``batches`` refuses a whole source none of whose images can be read, never a part (the
            rest may have been read).
    """

    items: tuple[Item, ...]
    classes: tuple[str, ...]
    description: str
    reader: Reader
    part_of: int = 0

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Source({self.description})"

    @property
    def ids(self) -> np.ndarray:
        return np.asarray([it.id for it in self.items], np.int64)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([it.label for it in self.items], np.int32)

    def name(self, id: int) -> str:
        return self._by_id()[int(id)].name

    def _by_id(self) -> dict[int, Item]:
        return {it.id: it for it in self.items}

    def select(self, ids: Iterable[int]) -> "Source":
        """The same source restricted to ``ids`` (kept in the source's order; unknown ids raise); every
        id: the source itself (a pass that starts afresh streams its whole source)."""
        wanted = {int(i) for i in ids}
        have = {it.id for it in self.items}
        unknown = wanted - have
        if unknown:
            raise DatasetError(f"ids {sorted(unknown)[:5]} are not in {self.description}: use ids from its items")
        if wanted == have:
            return self
        return dataclasses.replace(self, items=tuple(it for it in self.items if it.id in wanted),
                                   part_of=self.part_of or len(self.items))

    def take(self, n: int) -> "Source":
        """The first ``n`` items."""
        if n < 1:
            raise DatasetError(f"take needs n >= 1, got {n}")
        return dataclasses.replace(self, items=self.items[:n])


def _read_files(items: Sequence[Item]) -> Iterator[tuple[Item, Raw]]:
    for it in items:
        try:
            yield it, Path(it.name).read_bytes()
        except OSError as e:
            yield it, e


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def image_folder(root: str | os.PathLike, labels_file: str | os.PathLike = "", shared: str = "") -> Source:
    """Images under ``root``: class folders, a flat folder, or a flat folder and its labels file.

    - ``root/<class>/<images>``: labelled; classes are the sorted folder names and labels their
      index, except that folders named by ImageNet wnids (``n01440764/``: ImageNet's validation
      images sorted into class folders) are labelled with ImageNet's class indices and names (the
      models' logits) when the shared folder's ImageNet labels list them all (else by sorted wnid,
      which is ImageNet's order when all 1,000 are there). Images are found at any depth below each
      class folder.
    - a flat folder: unlabelled, or, with ``labels_file`` (``val_labels``: ``LOC_val_solution.csv`` or
      the devkit's ``ILSVRC2012_validation_ground_truth.txt``), labelled by file name as wnid folders
      are.

    Ids number the images 0.. in sorted (class, path) order. Extensions: ``IMAGE_EXTENSIONS``.

    Args:
        root: the folder.
        labels_file: labels for a flat folder of ImageNet validation images ("" for none).
        shared: the shared folder, for ImageNet's labels (``imagenet_synsets``).

    Returns:
        The ``Source``.

    Raises:
        DatasetError: no folder, no images, class folders beside loose images, a labels file for
            class folders, or images the labels file does not name.

    Example:
        >>> source = image_folder("~/imagenet/val", labels_file="~/imagenet/LOC_val_solution.csv")
    """
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(f"dataset folder {path} does not exist: pass a folder of images or of <class>/ folders of images")
    loose = sorted(p for p in path.iterdir() if _is_image(p))
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = [(f.name, sorted(p for p in f.rglob("*") if _is_image(p))) for f in folders]
    per_class = [(c, files) for c, files in per_class if files]
    if per_class and loose:
        raise DatasetError(
            f"{path} holds both class folders ({', '.join(c for c, _ in per_class[:3])}...) and {len(loose)} loose "
            f"images (e.g. {loose[0].name}): move the loose images into a class folder, or point at a flat folder"
        )
    if per_class and str(labels_file):
        raise DatasetError(f"{path} holds class folders, whose names are the labels: labels_file is for a flat "
                           f"folder of images; pass labels_file=\"\"")
    if per_class and all(WNID.fullmatch(c) for c, _ in per_class):
        index, classes, how = wnid_labels((c for c, _ in per_class), shared)
        files = [(str(f), index[c]) for c, fs in per_class for f in fs]
        kind = f"{len(per_class)} wnid class folders, labels: {how}"
    elif per_class:
        classes = tuple(c for c, _ in per_class)
        files = [(str(f), label) for label, (_, fs) in enumerate(per_class) for f in fs]
        kind = f"{len(classes)} classes"
    elif loose and str(labels_file):
        wnid_of = val_labels(labels_file)
        unlabelled = [p.name for p in loose if p.stem not in wnid_of]
        if unlabelled:
            raise DatasetError(f"{len(unlabelled)} of the {len(loose)} images in {path} have no label in {labels_file} "
                               f"(e.g. {unlabelled[0]}): pass the labels file of these images, or remove the others")
        index, classes, how = wnid_labels((wnid_of[p.stem] for p in loose), shared)
        files = [(str(p), index[wnid_of[p.stem]]) for p in loose]
        kind = f"flat, labels from {Path(labels_file).name}: {how}"
    elif loose:
        classes, files, kind = (), [(str(f), -1) for f in loose], "flat"
    else:
        raise DatasetError(
            f"dataset folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)}): point at a folder "
            f"of images or of <class>/ folders of images"
        )
    items = tuple(Item(i, name, label) for i, (name, label) in enumerate(files))
    return Source(items, classes, f"image folder {path} ({kind}, {len(items)} images)", _read_files)


def path_list(paths: Sequence[str | os.PathLike], labels: Sequence[int] | None = None,
              classes: Sequence[str] = ()) -> Source:
    """Images at ``paths`` (ids 0.. in the given order), optionally labelled.

    A path that turns out unreadable is skipped when streamed (and reported), not here; an empty
    list, or labels of another length, raise.
    """
    paths = [str(Path(p).expanduser()) for p in paths]
    if not paths:
        raise DatasetError("path_list got no paths: pass at least one image path")
    if labels is not None and len(labels) != len(paths):
        raise DatasetError(f"path_list got {len(paths)} paths but {len(labels)} labels: pass one label per path")
    labs = [int(x) for x in labels] if labels is not None else [-1] * len(paths)
    items = tuple(Item(i, p, lab) for i, (p, lab) in enumerate(zip(paths, labs)))
    return Source(items, tuple(classes), f"{len(items)} listed paths", _read_files)


# In a loader worker process (``jfv.analysis.loading``), which asks for one chunk of items at a time,
# the archive readers keep what they read: the JPEG archive's members of the splits asked for, and the
# releases' decoded batches (one pass over the file per worker, not one per chunk).
WORKER_CACHE: dict | None = None


def enter_worker() -> None:
    """In a loader worker process: from now on the archive readers keep what they read (``WORKER_CACHE``)."""
    global WORKER_CACHE
    if WORKER_CACHE is None:
        WORKER_CACHE = {}


def _cached_members(archive: Path, prefixes: set[str]) -> dict[str, bytes]:
    key = ("tar", str(archive), tuple(sorted(prefixes)))
    if key not in WORKER_CACHE:
        members: dict[str, bytes] = {}
        try:
            with tarfile.open(archive, tar_mode(archive)) as tar:
                for member in tar:
                    name = member_name(member.name)
                    if member.isfile() and any(name.startswith(p) for p in prefixes):
                        members[name] = tar.extractfile(member).read()
        except ARCHIVE_ERRORS as e:
            raise damaged_archive(archive, e) from None
        WORKER_CACHE[key] = members
    return WORKER_CACHE[key]


def _tar_reader(archive: Path) -> Reader:
    def read(items: Sequence[Item]) -> Iterator[tuple[Item, Raw]]:
        if WORKER_CACHE is not None:
            members = _cached_members(archive, {it.name.split("/", 1)[0] + "/" for it in items})
            for it in items:
                yield it, members[it.name] if it.name in members else FileNotFoundError(f"{it.name} is not in {archive}")
            return
        wanted = {it.name: it for it in items}
        prefixes = {name.split("/", 1)[0] + "/" for name in wanted}
        seen_wanted = False
        try:  # a truncated or corrupt archive fails here, at the member it ends in: one line, not EOFError
            with tarfile.open(archive, tar_mode(archive)) as tar:
                for member in tar:
                    name = member_name(member.name)
                    if name in wanted:
                        seen_wanted = True
                        it = wanted.pop(name)
                        data = tar.extractfile(member).read()
                        yield it, data
                        if not wanted:
                            return
                    elif seen_wanted and not any(name.startswith(p) for p in prefixes):
                        break  # the archive is sorted by split: nothing wanted lies further on
        except ARCHIVE_ERRORS as e:
            raise damaged_archive(archive, e) from None
        for it in wanted.values():
            yield it, FileNotFoundError(f"{it.name} is not in {archive}")

    return read


def _release_position(name: str) -> tuple[str, int]:
    """``"data_batch_3[456]"`` or ``"data_batch_3.bin[456]"`` (an item of a release) -> ("data_batch_3", 456)."""
    batch, _, index = name.rstrip("]").partition("[")
    return batch.removesuffix(".bin"), int(index)


def _release_reader(layout: CifarLayout) -> Reader:
    """Items named ``<batch>[<row>]``, read as (32, 32, 3) uint8 arrays, batch by batch in the order
    they are stored (one pass over an archive)."""

    def read(items: Sequence[Item]) -> Iterator[tuple[Item, Raw]]:
        wanted: dict[str, list[tuple[int, Item]]] = {}
        for it in items:
            batch, row = _release_position(it.name)
            wanted.setdefault(batch, []).append((row, it))
        if WORKER_CACHE is not None:
            missing = [b for b in wanted if ("release", str(layout.path), b) not in WORKER_CACHE]
            for batch, images, _ in read_batches(layout, missing) if missing else ():
                WORKER_CACHE[("release", str(layout.path), batch)] = images
            batches = ((b, WORKER_CACHE[("release", str(layout.path), b)], None) for b in wanted)
        else:
            batches = read_batches(layout, list(wanted))
        for batch, images, _ in batches:
            for row, it in wanted[batch]:
                yield it, (np.ascontiguousarray(images[row]) if row < len(images)
                           else IndexError(f"{it.name}: {batch} has {len(images)} images"))

    return read


def cifar10(split: str = "test", per_class: int | None = None, archive: str | os.PathLike | None = None,
            shared: str = "") -> Source:
    """CIFAR-10 streamed: images ``0 .. per_class-1`` of every class of ``split``.

    The same ids, labels and images (to the JPEG copy's loss) from every form ``cifar10_layout``
    reads. Ids are class-major, ``class * per_class + i`` (the order ``cifar10_subsets`` uses), where
    image ``i`` of a class is its ``i``-th in the release's order (the JPEG archive's file
    ``NNNN.jpg``); labels index ``CIFAR10_CLASSES``. Items are named ``split/class/NNNN.jpg`` in the
    JPEG archive and ``<batch>[<row>]`` (``test_batch[1234]``, ``data_batch_2.bin[7]``) in a release.
    Streaming reads an archive once, sequentially: the JPEG archive up to the split's last wanted
    member, a release batch by batch; a release's pixels are handed on as arrays, never re-encoded.
    Listing a release's items reads its labels, so the split's batches once.

    Args:
        split: "train" or "test".
        per_class: images per class (default: all, 5000 train / 1000 test; for a release, as many as
            its smallest class has).
        archive: the archive or folder (default: ``find_cifar10("", shared)``: ``$JFV_CIFAR10``, else
            the shared folder's ``data/cifar10/``).
        shared: the shared folder (see ``shared_dir``), used when ``archive`` is not given.

    Returns:
        The ``Source`` (classes ``CIFAR10_CLASSES``).

    Raises:
        DatasetError: a bad split or count, or an archive that is missing, damaged, of another
            layout, or short of images (the message names it and the fix).

    Example:
        >>> source = cifar10("test", per_class=20, archive="~/data/cifar-10-python.tar.gz")
        >>> len(source), source.name(0)
        (200, 'test_batch[3]')
    """
    if split not in CIFAR10_PER_CLASS:
        raise DatasetError(f"CIFAR-10 split must be 'train' or 'test', got {split!r}")
    most = CIFAR10_PER_CLASS[split]
    k = most if per_class is None else int(per_class)
    if not 1 <= k <= most:
        raise DatasetError(f"CIFAR-10 {split} has {most} images per class: use 1 <= per_class <= {most}, got {k}")
    path = Path(archive).expanduser() if archive is not None else find_cifar10("", shared)
    if not path.exists():
        raise DatasetError(f"CIFAR-10 archive {path} not found: {GET_CIFAR10}")
    layout = cifar10_layout(path)
    if layout.kind == "jpeg":
        items = tuple(Item(c * k + i, f"{split}/{cls}/{i:04d}.jpg", c)
                      for c, cls in enumerate(CIFAR10_CLASSES) for i in range(k))
        return Source(items, tuple(CIFAR10_CLASSES), f"CIFAR-10 {split}, {k} per class ({path})", _tar_reader(path))
    order = release_order(layout, split)
    if per_class is None:
        k = max(1, min(len(o) for o in order))
    error = too_few(layout.path, split, order, k, "per_class")
    if error is not None:
        raise error
    suffix = ".bin" if layout.kind == "binary" else ""
    items = tuple(Item(c * k + i, f"{batch}{suffix}[{row}]", c)
                  for c in range(len(CIFAR10_CLASSES)) for i, (batch, row) in enumerate(order[c][:k]))
    return Source(items, tuple(CIFAR10_CLASSES), f"CIFAR-10 {split}, {k} per class ({layout.kind} version, {path})",
                  _release_reader(layout))


# ---------------------------------------------------------------------------------------------------
# Decoding and batching


def fit(image: Image.Image, size: int, resample: str = "bicubic") -> np.ndarray:
    """An image as (size, size, 3) float32 RGB in [0, 1]: shorter side resized to ``size``, then
    centre-cropped (``jfv.runtime.outputs.load_image``'s convention)."""
    im = image.convert("RGB")
    w, h = im.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), RESAMPLE[resample])
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, np.float32) / 255.0


def decode(raw: bytes, size: int, resample: str = "bicubic") -> np.ndarray:
    """Image file bytes -> (size, size, 3) float32 in [0, 1] (``fit``); raises READ_ERRORS when corrupt."""
    with Image.open(io.BytesIO(raw)) as im:
        im.load()  # decode fully here, so a truncated file fails now
        return fit(im, size, resample)


def _check_batching(size: int, batch_size: int, resample: str) -> None:
    if int(size) < 1:
        raise DatasetError(f"image size must be >= 1, got {size}")
    if int(batch_size) < 1:
        raise DatasetError(f"batch_size must be >= 1, got {batch_size}")
    if resample not in RESAMPLE:
        raise DatasetError(f"unknown resample {resample!r}; valid: {', '.join(RESAMPLE)}")


Convert = Callable[[np.ndarray], np.ndarray]  # (..., H, W, 3) RGB in [0, 1] -> (..., H, W, C): Model.from_rgb


def converted_channels(convert: Convert | None) -> int:
    """The channels ``convert`` gives (3 without one), from a one-pixel probe; raises DatasetError
    (with the converter's own message, e.g. ``Model.from_rgb``'s fix) when it cannot convert."""
    if convert is None:
        return 3
    try:
        out = np.asarray(convert(np.zeros((1, 1, 3), np.float32)))
    except ValueError as e:
        raise DatasetError(str(e)) from None
    if out.ndim != 3 or out.shape[:2] != (1, 1) or out.shape[-1] < 1:
        raise DatasetError(f"the image converter turned a (1, 1, 3) image into shape {out.shape}: it must give "
                           f"(H, W, channels) for (H, W, 3)")
    return int(out.shape[-1])


def displayable(images: np.ndarray) -> np.ndarray:
    """Model-input images (..., C) as pictures: 1 (grayscale) or 3 (RGB) channels as they are; any
    other count as the mean over channels, a grayscale picture (stated wherever it is shown)."""
    a = np.asarray(images, np.float32)
    return a if a.shape[-1] in (1, 3) else a.mean(axis=-1, keepdims=True)


def decode_raw(it: Item, raw: Any, size: int, resample: str) -> tuple[Item, np.ndarray | None, str]:
    """One item as its reader handed it on (file bytes, decoded pixels, or the error reading it):
    ``(item, (size, size, 3) float32 RGB or None, the reason it could not be read or "")``."""
    if isinstance(raw, BaseException):
        return it, None, read_reason(raw, it.name)
    try:
        image = fit(Image.fromarray(raw), size, resample) if isinstance(raw, np.ndarray) else decode(raw, size, resample)
    except READ_ERRORS as e:
        return it, None, read_reason(e, it.name)
    return it, image, ""


def _decoded(source: Source, size: int, resample: str, convert: Convert | None = None, workers: int = 0
             ) -> Iterator[tuple[Item, np.ndarray | None, str]]:
    if workers:  # grain worker processes read and decode; the model's converter runs here
        stream = loading.decoded(source, size, resample, workers, decode_raw, enter_worker, (DatasetError,))
    else:
        stream = (decode_raw(it, raw, size, resample) for it, raw in source.reader(source.items))
    for it, image, reason in stream:
        yield it, (image if convert is None or image is None else np.asarray(convert(image), np.float32)), reason


def _batched(source: Source, size: int, batch_size: int, resample: str, convert: Convert | None = None,
             workers: int = 0) -> Iterator[PaddedBatch]:
    channels = converted_channels(convert)

    def empty():
        return (np.zeros((batch_size, size, size, channels), np.float32), np.full((batch_size,), -1, np.int32),
                np.full((batch_size,), -1, np.int32), np.zeros((batch_size,), bool))

    images, ids, labels, mask = empty()
    n, skipped, read = 0, [], 0
    for it, image, reason in _decoded(source, size, resample, convert, workers):
        if image is None:
            skipped.append((it.name, reason))
            continue
        images[n], ids[n], labels[n], mask[n] = image, it.id, it.label, True
        n += 1
        read += 1
        if n == batch_size:
            yield PaddedBatch(images, ids, labels, mask, tuple(skipped))
            images, ids, labels, mask = empty()
            n, skipped = 0, []
    if not read and skipped and not source.part_of:
        raise unreadable(source, skipped)
    if n or skipped:
        yield PaddedBatch(images, ids, labels, mask, tuple(skipped))


def unreadable(source: Source, skipped: Sequence[tuple[str, str]]) -> DatasetError:
    """The one-line error for a source none of whose images could be read."""
    return DatasetError(
        f"none of the {len(skipped)} images of {source.description} can be read (e.g. {skipped[0][1]}): replace "
        f"or remove the unreadable files, or point at a folder of images (JPEG, PNG, ...)")


def prefetch(iterator: Iterator, depth: int) -> Iterator:
    """Runs ``iterator`` in a background thread, ``depth`` items ahead (0: in the caller's thread).

    PIL decodes and the tar's inflate release the GIL, so reading overlaps the model's compiled
    calls. Exceptions are re-raised in the caller; closing the consumer stops the thread.
    """
    if depth <= 0:
        yield from iterator
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for x in iterator:
                while not stop.is_set():
                    try:
                        q.put((x, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as e:  # handed to the consumer
            q.put((done, e))

    thread = threading.Thread(target=work, name="jfv-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            x, error = q.get()
            if x is done:
                if error is not None:
                    raise error
                return
            yield x
    finally:
        stop.set()
        thread.join(timeout=5)


def batches(source: Source, size: int, batch_size: int, resample: str = "bicubic",
            prefetch_batches: int = 2, convert: Convert | None = None, workers: int = 0) -> Iterator[PaddedBatch]:
    """The source decoded and fitted to ``size``, in batches of exactly ``batch_size``.

    Images are decoded as RGB; ``convert`` (a model's ``from_rgb``: ITU-R BT.601 luma for a
    grayscale model, its declared converter for other channel counts) turns each into the model's
    input, in the decoding thread, so a batch is (B, S, S, channels).

    The last batch is padded with zero images (``mask`` False, id -1). Images that cannot be read
    or decoded are left out and named in ``PaddedBatch.skipped`` (a batch holding only skips can come
    last). ``prefetch_batches`` batches are decoded ahead in a background thread; with ``workers`` > 0
    grain worker processes read and decode the images (``jfv.analysis.loading``), the same batches.

    Raises (when the stream gets there, in the consumer's thread):
        DatasetError: no image of a whole ``source`` (not a ``select``ion) could be read, naming the
            source, the first reason and the fix; or the CIFAR-10 archive is truncated or corrupt.

    Example:
        >>> for b in batches(image_folder("photos"), size=224, batch_size=16):
        ...     feats = f(b.images)[b.mask]
    """
    _check_batching(size, batch_size, resample)
    converted_channels(convert)  # a converter that cannot convert fails here, before the thread starts
    workers = loading.check_workers(workers)
    return prefetch(_batched(source, int(size), int(batch_size), resample, convert, workers), prefetch_batches)


def load(source: Source, ids: Iterable[int], size: int, resample: str = "bicubic",
         convert: Convert | None = None) -> dict[int, np.ndarray]:
    """The images with ``ids``, fitted to ``size`` (and ``convert``ed, as ``batches``), in one pass:
    {id: (size, size, channels) float32}.

    Ids whose image cannot be read are missing from the result.
    """
    _check_batching(size, 1, resample)
    converted_channels(convert)
    sub = source.select(ids)
    return {it.id: image for it, image, _ in _decoded(sub, int(size), resample, convert) if image is not None}


def count_skipped(stream: Iterable[PaddedBatch]) -> tuple[list[PaddedBatch], list[tuple[str, str]]]:
    """Drains a stream: (its batches, every skipped (name, reason)). For small sources and tests."""
    out, skipped = [], []
    for b in stream:
        out.append(b)
        skipped.extend(b.skipped)
    return out, skipped


__getattr__ = moved.renamed(__name__)  # old names (jfv.runtime.moved.NAMES)
