"""The files datasets come in: CIFAR-10's forms and ImageNet's validation labels; ``DatasetError``.

``jfv.analysis.datasets`` builds its sources on these (and re-exports every public name here); this
module only finds, recognises and parses files, and holds nothing beyond the batch being read.

CIFAR-10 (Krizhevsky 2009) is read in three forms, each packed (``.tar.gz``) or, for the releases,
extracted, recognised from what the path is rather than its name (``cifar10_layout``):

- jfv's JPEG archive ``<shared>/data/cifar10/cifar10-jpeg.tar.gz`` (``train/<class>/NNNN.jpg``),
- the python version ``cifar-10-python.tar.gz`` / ``cifar-10-batches-py/`` (pickled batches),
- the binary version ``cifar-10-binary.tar.gz`` / ``cifar-10-batches-bin/`` (3073-byte records).

Where it is: ``find_cifar10`` (a path, else ``$JFV_CIFAR10``, else the shared folder). Image ``i`` of
a class is that class's ``i``-th image in the release's order (batches 1..5, rows in order), which
is how the JPEG archive numbers its files, so every form gives the same subsets.

ImageNet's validation images come as wnid class folders or a flat folder with a labels file
(``val_labels``: Kaggle's ``LOC_val_solution.csv`` or the devkit's ground truth with its
``meta.mat``); wnids become ImageNet's class indices through the shared folder's labels
(``imagenet_synsets``).

Example:
    >>> layout = cifar10_layout(find_cifar10("~/data/cifar-10-python.tar.gz"))
    >>> layout.kind, layout.packed
    ('python', True)
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import tarfile
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from jfv.models.labels import CIFAR10_CLASSES  # Krizhevsky 2009: the label order of the releases
from jfv.runtime.paths import find_shared, shared_candidates

CIFAR10_FOLDER = "data/cifar10"  # relative to the shared folder: where jfv looks for CIFAR-10 by default
CIFAR10_ARCHIVE = f"{CIFAR10_FOLDER}/cifar10-jpeg.tar.gz"  # the shared copy (JPEG), the default when it is there
CIFAR10_SIZE = 32
CIFAR10_ENV = "JFV_CIFAR10"  # a CIFAR-10 archive or folder, when no path is given
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"  # Krizhevsky's page: the python and binary versions
# The official releases (Krizhevsky 2009): each a .tar.gz of one folder of batches, in the order
# data_batch_1..5 (train, 10,000 images each) and test_batch; a python batch is a pickled dict
# (b"data": (N, 3072) uint8, each row R, G, B planes of 32x32; b"labels": N class indices), a binary
# batch N records of one label byte and the same 3072 bytes.
PYTHON_FOLDER, BINARY_FOLDER = "cifar-10-batches-py", "cifar-10-batches-bin"
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
BINARY_RECORD = 1 + 3 * CIFAR10_SIZE * CIFAR10_SIZE  # label byte + pixels, CHW
# What jfv looks for in <shared>/data/cifar10/, in this order: the JPEG copy first, then the releases.
CIFAR10_NAMES = ("cifar10-jpeg.tar.gz", "cifar-10-python.tar.gz", PYTHON_FOLDER, "cifar-10-binary.tar.gz",
                 BINARY_FOLDER)
CIFAR10_LAYOUTS = (f"the python version (cifar-10-python.tar.gz or its folder {PYTHON_FOLDER}/: data_batch_1..5, "
                   f"test_batch), the binary version (cifar-10-binary.tar.gz or {BINARY_FOLDER}/: data_batch_1.bin..5, "
                   f"test_batch.bin) or jfv's JPEG archive (train/<class>/NNNN.jpg, test/...)")


class DatasetError(ValueError):
    """A dataset that is missing, or a subset it cannot supply; the message names the fix."""


# What reading a damaged .tar.gz raises: gzip's EOFError (truncated) or BadGzipFile (an OSError),
# zlib's error, tarfile's ReadError.
ARCHIVE_ERRORS = (EOFError, OSError, zlib.error, tarfile.TarError)


def damaged_archive(path: str | os.PathLike, error: BaseException | str, kind: str = "jpeg") -> DatasetError:
    """The one-line error for a CIFAR-10 archive that cannot be read to its end (truncated, corrupt).

    Args:
        path: the archive (or the folder of batches).
        error: what reading it raised, or a description of what is wrong.
        kind: its form (``CifarLayout.kind``): ``"jpeg"`` for the shared JPEG copy, ``"python"`` or
            ``"binary"`` for a release, ``"unknown"`` when it could not be told.

    Returns:
        A ``DatasetError`` naming the archive, what is wrong and where to get a good copy.
    """
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    detail = " ".join(detail.split())
    fix = {"jpeg": f"copy or download it again to <shared>/{CIFAR10_ARCHIVE}",
           "unknown": f"copy or download it again (jfv's JPEG copy to <shared>/{CIFAR10_ARCHIVE}, or a release "
                      f"from {CIFAR10_URL})"}.get(kind, f"download it again from {CIFAR10_URL}")
    return DatasetError(f"CIFAR-10 archive {path} is damaged (truncated or corrupt: {detail}): {fix}")


# ---------------------------------------------------------------------------------------------------
# CIFAR-10: where it is and in which form

GET_CIFAR10 = (f"download the python version (cifar-10-python.tar.gz) from {CIFAR10_URL} and pass "
               f"cifar10_path=PATH (the .tar.gz or the folder it unpacks to) or set {CIFAR10_ENV}=PATH")


def find_cifar10(cifar10_path: str | os.PathLike = "", shared: str = "") -> Path:
    """Where CIFAR-10 is: ``cifar10_path``, else ``$JFV_CIFAR10``, else the first of ``CIFAR10_NAMES``
    in the shared folder's ``data/cifar10/`` (the JPEG copy ``cifar10-jpeg.tar.gz`` when it is there).

    Any of the forms ``cifar10_layout`` reads will do: a release's ``.tar.gz``, the folder it unpacks
    to, or jfv's JPEG archive. The path is only found here, not read.

    Args:
        cifar10_path: an archive or folder ("" to look further).
        shared: the shared folder (``shared_dir``'s rule).

    Returns:
        The path (a file or a folder) that exists.

    Raises:
        DatasetError: one line saying where jfv looked (the path, the variable, the shared folder)
            and where to get CIFAR-10.

    Example:
        >>> find_cifar10("~/data/cifar-10-python.tar.gz")
        PosixPath('/home/me/data/cifar-10-python.tar.gz')
    """
    for given, how in ((str(cifar10_path), f"cifar10_path={cifar10_path}"),
                       (os.environ.get(CIFAR10_ENV, ""), f"${CIFAR10_ENV}={os.environ.get(CIFAR10_ENV, '')}")):
        if given:
            path = Path(given).expanduser()
            if not path.exists():
                raise DatasetError(f"CIFAR-10 archive not found at {path} ({how}): {GET_CIFAR10}")
            return path
    shared_path = find_shared(shared)
    looked = f"cifar10_path is not given, ${CIFAR10_ENV} is not set"
    if shared_path is None:
        tried = ", ".join(str(c) for c in shared_candidates(shared))
        raise DatasetError(f"CIFAR-10 archive not found: {looked}, and shared folder not found (tried {tried}): "
                           f"{GET_CIFAR10}, or pass shared_dir=PATH (a folder holding {CIFAR10_ARCHIVE})")
    folder = shared_path / CIFAR10_FOLDER
    for name in CIFAR10_NAMES:
        if (folder / name).exists():
            return folder / name
    raise DatasetError(f"CIFAR-10 archive not found at {folder}: {looked}, and that folder holds none of "
                       f"{', '.join(CIFAR10_NAMES)}: {GET_CIFAR10}")


class CifarLayout(NamedTuple):
    """CIFAR-10 on disk: ``kind`` "jpeg" (jfv's JPEG archive), "python" or "binary" (the official
    releases); ``path`` the archive, or the folder holding the batches; ``packed`` True for an archive."""

    kind: str
    path: Path
    packed: bool


def tar_mode(path: Path) -> str:
    """The ``tarfile.open`` mode for ``path``: gzip for ``.gz``/``.tgz`` (so a file that is not gzip says so), else any."""
    return "r:gz" if path.name.endswith((".gz", ".tgz")) else "r:*"


def member_name(name: str) -> str:
    """A tar member's name without a leading ``./``."""
    return name[2:] if name.startswith("./") else name


def cifar10_layout(path: str | os.PathLike) -> CifarLayout:
    """Which form of CIFAR-10 ``path`` is, from what it is (not its name).

    A folder holding ``data_batch_1``/``test_batch`` (or ``.bin``), or holding ``cifar-10-batches-py/``
    (or ``-bin/``), is an extracted release; a file is a tar whose first members say which: a
    release's folder, or the JPEG archive's ``train/`` and ``test/``. Only a few member headers are
    read.

    Args:
        path: the archive or folder (``find_cifar10``).

    Returns:
        The ``CifarLayout``.

    Raises:
        DatasetError: ``path`` is missing, an archive that cannot be read (damaged), or neither
            layout (naming what was expected).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        for folder in (path, path / PYTHON_FOLDER, path / BINARY_FOLDER):
            for kind, suffix in (("python", ""), ("binary", ".bin")):
                if any((folder / f"{b}{suffix}").is_file() for bs in CIFAR10_BATCHES.values() for b in bs):
                    return CifarLayout(kind, folder, False)
        raise DatasetError(f"CIFAR-10 folder {path} holds no CIFAR-10 batches: expected {CIFAR10_LAYOUTS}")
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 archive {path} not found: {GET_CIFAR10}")
    if path.name.removesuffix(".bin") in {b for bs in CIFAR10_BATCHES.values() for b in bs}:
        raise DatasetError(f"CIFAR-10 path {path} is one batch of a release: pass the folder holding the batches "
                           f"({path.parent})")
    seen = []
    try:
        with tarfile.open(path, tar_mode(path)) as tar:
            for member in tar:
                top = member_name(member.name).split("/", 1)[0]
                kind = {PYTHON_FOLDER: "python", BINARY_FOLDER: "binary", "train": "jpeg", "test": "jpeg"}.get(top)
                if kind is not None:
                    return CifarLayout(kind, path, True)
                seen.append(member.name)
                if len(seen) == 16:
                    break
    except ARCHIVE_ERRORS as e:
        raise damaged_archive(path, e, "jpeg" if path.name == Path(CIFAR10_ARCHIVE).name else "unknown") from None
    first = f"its members start {', '.join(seen[:3])}" if seen else "it is an empty tar"
    raise DatasetError(f"CIFAR-10 archive {path} has an unknown layout ({first}): expected {CIFAR10_LAYOUTS}")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 python batch and nothing else: a pickle runs whatever its globals name, so
    only those of a dict of numpy arrays, lists and bytes are allowed."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR-10 batch")
        return super().find_class(module, name)


def _python_batch(raw: bytes, layout: CifarLayout, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # a cut or foreign pickle raises any of a dozen types; all mean "damaged"
        raise damaged_archive(layout.path, f"{name}: {type(e).__name__}: {e}", layout.kind) from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (BINARY_RECORD - 1,)
            or not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data)):
        raise damaged_archive(layout.path, f"{name} is not a CIFAR-10 python batch, a dict of b'data' (N, 3072) "
                                           f"uint8 and b'labels' (N class indices)", layout.kind)
    return data, np.asarray(labels, np.int64)


def _binary_batch(raw: bytes, layout: CifarLayout, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not raw or len(raw) % BINARY_RECORD:
        raise damaged_archive(layout.path, f"{name} has {len(raw)} bytes, not a whole number of {BINARY_RECORD}-byte "
                                           f"records (a label byte and 3072 pixel bytes)", layout.kind)
    records = np.frombuffer(raw, np.uint8).reshape(-1, BINARY_RECORD)
    return records[:, 1:], records[:, 0].astype(np.int64)


def read_batches(layout: CifarLayout, names: Sequence[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Each batch of a release, once, in the order they are stored (one sequential pass over an archive).

    A python batch is unpickled allowing only the globals of numpy arrays (a pickle runs what it
    names); a binary batch is split into 3073-byte records. Rows are CHW planes, returned HWC.

    Args:
        layout: a python or binary release (``cifar10_layout``).
        names: batch names without suffix (``CIFAR10_BATCHES``: ``data_batch_1``, ``test_batch``).

    Yields:
        (name, images (N, 32, 32, 3) uint8, labels (N,) int64 in 0..9).

    Raises:
        DatasetError: a batch is missing, not a batch (a pickle that fails, a ``.bin`` of another
            length, labels outside 0..9), or the archive is truncated: one line naming it.
    """
    suffix, parse = {"python": ("", _python_batch), "binary": (".bin", _binary_batch)}[layout.kind]
    files = {f"{n}{suffix}": n for n in names}

    def checked(file: str, raw: bytes) -> tuple[str, np.ndarray, np.ndarray]:
        data, labels = parse(raw, layout, file)
        bad = labels[(labels < 0) | (labels >= len(CIFAR10_CLASSES))]
        if bad.size:
            raise damaged_archive(layout.path, f"{file} has label {int(bad[0])}, not a CIFAR-10 class index 0..9",
                                  layout.kind)
        images = data.reshape(-1, 3, CIFAR10_SIZE, CIFAR10_SIZE).transpose(0, 2, 3, 1)  # CHW rows -> HWC
        return files[file], images, labels

    folder = PYTHON_FOLDER if layout.kind == "python" else BINARY_FOLDER
    lacks = (f"CIFAR-10 archive {layout.path} lacks {{}}: the {layout.kind} version holds "
             f"{', '.join(files)}; download it again from {CIFAR10_URL}")
    if not layout.packed:
        for file in files:
            if not (layout.path / file).is_file():
                raise DatasetError(lacks.format(file))
            try:
                raw = (layout.path / file).read_bytes()
            except OSError as e:
                raise damaged_archive(layout.path, f"{file}: {type(e).__name__}: {e}", layout.kind) from None
            yield checked(file, raw)
        return
    left = set(files)
    try:
        with tarfile.open(layout.path, tar_mode(layout.path)) as tar:
            for member in tar:
                head, _, file = member_name(member.name).partition("/")
                if head == folder and file in left and member.isfile():
                    left.discard(file)
                    yield checked(file, tar.extractfile(member).read())
                    if not left:
                        return
    except ARCHIVE_ERRORS as e:
        raise damaged_archive(layout.path, e, layout.kind) from None
    raise DatasetError(lacks.format(f"{folder}/{sorted(left)[0]}"))


def release_order(layout: CifarLayout, split: str) -> list[list[tuple[str, int]]]:
    """Every image of ``split`` in a release, per class, in the release's order.

    Batches in order, rows in order: the order the JPEG archive numbers its files in, so its file
    ``NNNN`` of a class is that class's ``NNNN``-th image here. Reads the split's batches once.

    Args:
        layout: a python or binary release.
        split: "train" or "test".

    Returns:
        For each class index, its images as (batch name, row).
    """
    names = CIFAR10_BATCHES[split]
    labels = {name: lab for name, _, lab in read_batches(layout, names)}
    order: list[list[tuple[str, int]]] = [[] for _ in CIFAR10_CLASSES]
    for name in names:
        for i, c in enumerate(labels[name].tolist()):
            order[c].append((name, i))
    return order


def too_few(path: Path, split: str, order: Sequence[Sequence], k: int, key: str) -> DatasetError | None:
    """The error for asking ``k`` images of each class when a class of ``order`` has fewer, else None.

    Args:
        path: the archive, for the message.
        split: its split, for the message.
        order: per class, its images (any sequence).
        k: images per class asked for.
        key: the argument to lower, named in the fix (``per_class``, ``test_per_class``).

    Returns:
        A ``DatasetError`` naming the class and the largest count that works, or None.
    """
    have = min(len(o) for o in order)
    if k <= have:
        return None
    c = min(range(len(order)), key=lambda i: len(order[i]))
    return DatasetError(f"{path} has {have} {split} images of class {CIFAR10_CLASSES[c]}, fewer than the {k} asked "
                        f"for: use {key} <= {have}")


def release_subsets(layout: CifarLayout, per_class: Mapping[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``jfv.analysis.datasets.cifar10_subsets`` of a release, in one pass over it.

    Each batch keeps the first ``k`` rows of each class (the split's first ``k`` are among them);
    they are merged in the release's order.

    Args:
        layout: a python or binary release.
        per_class: split -> images per class (>= 1).

    Returns:
        split -> (images (10 * k, 32, 32, 3) uint8, labels (10 * k,) int32), class-major.

    Raises:
        DatasetError: a batch is missing or damaged, or a class has fewer than ``k`` images.
    """
    split_of = {name: split for split in per_class for name in CIFAR10_BATCHES[split]}
    kept: dict[str, list[np.ndarray]] = {}
    for name, images, labels in read_batches(layout, list(split_of)):
        k = int(per_class[split_of[name]])
        kept[name] = [images[np.flatnonzero(labels == c)[:k]].copy() for c in range(len(CIFAR10_CLASSES))]
    out = {}
    for split, k in per_class.items():
        k = int(k)
        per = [np.concatenate([kept[name][c] for name in CIFAR10_BATCHES[split]]) for c in range(len(CIFAR10_CLASSES))]
        error = too_few(layout.path, split, per, k, f"{split}_per_class")
        if error is not None:
            raise error
        out[split] = (np.concatenate([p[:k] for p in per]),
                      np.repeat(np.arange(len(CIFAR10_CLASSES), dtype=np.int32), k))
    return out


# ---------------------------------------------------------------------------------------------------
# ImageNet's validation labels

# ImageNet's validation images: class folders named by wnid, or a flat folder and a labels file.
IMAGENET_SYNSETS = "data/imagenet-labels/imagenet_class_index_synset_fullname.json"  # shared: index -> [wnid, name]
WNID = re.compile(r"n\d{8}")  # a WordNet id, ImageNet's class folder names (n01440764: tench)
IMAGENET_VAL_NAME = "ILSVRC2012_val_{:08d}"  # the devkit's line n labels this image (n from 1)
DEVKIT_META = "meta.mat"  # beside ILSVRC2012_validation_ground_truth.txt in the devkit's data/: ILSVRC2012_ID -> wnid


def imagenet_synsets(shared: str = "") -> tuple[tuple[str, str], ...] | None:
    """ImageNet's 1,000 classes as (wnid, name) in class-index order (the models' logits), from the
    shared folder's ``data/imagenet-labels/``; None when it is absent.

    Args:
        shared: the shared folder (``shared_dir``'s rule).

    Returns:
        1,000 (wnid, name) pairs, or None.
    """
    folder = find_shared(shared)
    path = folder / IMAGENET_SYNSETS if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        table = json.loads(path.read_text())
        return tuple((str(table[str(i)][0]), str(table[str(i)][1])) for i in range(len(table)))
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise DatasetError(f"ImageNet labels {path} cannot be read ({type(e).__name__}: {e}): copy it again "
                           f"(index -> [wnid, name] as JSON)") from None


def _devkit_wnids(meta: Path) -> dict[int, str]:
    """The devkit's ``meta.mat``: ILSVRC2012_ID -> wnid of its 1,000 leaf synsets (torchvision's reading)."""
    try:
        import scipy.io
    except ImportError:
        raise DatasetError(f"reading {meta} needs scipy: pip install scipy") from None
    try:
        synsets = scipy.io.loadmat(str(meta), squeeze_me=True)["synsets"]
        return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in np.atleast_1d(synsets) if int(s["num_children"]) == 0}
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise DatasetError(f"{meta} is not the ImageNet devkit's meta.mat ({type(e).__name__}: {e}): use the one "
                           f"from ILSVRC2012_devkit_t12/data/") from None


def val_labels(labels_file: str | os.PathLike) -> dict[str, str]:
    """ImageNet validation labels: image name (without extension) -> wnid.

    Two files are read:

    - ``LOC_val_solution.csv`` (Kaggle's ImageNet localisation challenge): a header
      ``ImageId,PredictionString``, then ``ILSVRC2012_val_00000001,n01751748 x0 y0 x1 y1 ...``; the
      first word of the prediction string is the class.
    - The devkit's ``ILSVRC2012_validation_ground_truth.txt``: line ``n`` is the ILSVRC2012_ID (1..1000)
      of ``ILSVRC2012_val_<n, 8 digits>``; the IDs are the devkit's own numbering, mapped to wnids
      through ``meta.mat`` beside the file (as in the devkit's ``data/`` folder).

    Args:
        labels_file: either file.

    Returns:
        {image name: wnid}.

    Raises:
        DatasetError: the file is missing or of neither form, or the devkit's ``meta.mat`` is not
            beside it.
    """
    path = Path(labels_file).expanduser()
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"labels_file {path} cannot be read ({type(e).__name__}: {e}): pass ImageNet's "
                           f"LOC_val_solution.csv or the devkit's ILSVRC2012_validation_ground_truth.txt") from None
    expected = ("expected LOC_val_solution.csv (ImageId,PredictionString with the wnid first) or the devkit's "
                "ILSVRC2012_validation_ground_truth.txt (one class index 1..1000 per line)")
    if lines and lines[0].replace(" ", "").lower() == "imageid,predictionstring":
        out = {}
        for n, line in enumerate(lines[1:], start=2):
            image, _, prediction = line.partition(",")
            words = prediction.split()
            if not words or not WNID.fullmatch(words[0]):
                raise DatasetError(f"{path}:{n}: {line[:60]!r} names no wnid (n########) first: {expected}")
            out[image.strip()] = words[0]
        return out
    if lines and all(line.isdigit() for line in lines):
        meta = path.parent / DEVKIT_META
        if not meta.is_file():
            raise DatasetError(f"{path} numbers classes by the devkit's ILSVRC2012_ID, which {meta} maps to wnids, "
                               f"and it is missing: keep the devkit's data/ folder together, or pass "
                               f"LOC_val_solution.csv")
        wnids = _devkit_wnids(meta)
        unknown = sorted({int(line) for line in lines} - set(wnids))
        if unknown:
            raise DatasetError(f"{path} has class index {unknown[0]}, which {meta} does not list: {expected}")
        return {IMAGENET_VAL_NAME.format(n): wnids[int(line)] for n, line in enumerate(lines, start=1)}
    raise DatasetError(f"labels_file {path} is of neither known form: {expected}")


def wnid_labels(wnids: Iterable[str], shared: str = "") -> tuple[dict[str, int], tuple[str, ...], str]:
    """Labels for ImageNet wnids.

    ImageNet's class indices and names (the models' logits) when the shared folder's labels list
    every wnid (``imagenet_synsets``); else the index among the sorted wnids, with the wnids as class
    names (ImageNet's own order when all 1,000 are there).

    Args:
        wnids: the wnids present.
        shared: the shared folder (``shared_dir``'s rule).

    Returns:
        (wnid -> label, the classes labels index, how they were found: "ImageNet class indices" or
        "sorted wnids").
    """
    wnids = set(wnids)
    synsets = imagenet_synsets(shared)
    if synsets is not None and wnids <= {w for w, _ in synsets}:
        return ({w: i for i, (w, _) in enumerate(synsets)}, tuple(name for _, name in synsets),
                "ImageNet class indices")
    order = sorted(wnids)
    return {w: i for i, w in enumerate(order)}, tuple(order), "sorted wnids"


