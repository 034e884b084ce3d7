"""Tiny data the tests build themselves: CIFAR-10 in the shared copy's JPEG layout and in the official
releases' (python, binary; packed and extracted), and ImageNet's validation layouts."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from jfv.analysis.datasets import CIFAR10_CLASSES


def cifar_archive(path: Path, per_class: int = 5, cut: float = 1.0) -> Path:
    """A tiny ``.tar.gz`` in the CIFAR-10 JPEG layout (``test/<class>/NNNN.jpg`` then ``train/...``,
    32x32 noise JPEGs, so it barely compresses and a cut lands inside the members), its first ``cut``
    of bytes kept (0.3: it ends inside the test split)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split in ("test", "train"):
            for cls in CIFAR10_CLASSES:
                for i in range(per_class):
                    jpeg = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(jpeg, "JPEG", quality=90)
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
                    info.size = len(jpeg.getvalue())
                    jpeg.seek(0)
                    tar.addfile(info, jpeg)
    data = buf.getvalue()
    path.write_bytes(data[: int(len(data) * cut)])
    return path


# -- CIFAR-10's official releases (Krizhevsky's python and binary versions), tiny --------------------

RELEASE_FOLDERS = {"python": "cifar-10-batches-py", "binary": "cifar-10-batches-bin"}


def cifar_release(per_class: int = 3, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tiny CIFAR-10 splits in a release's order: split -> (images (10 * per_class, 32, 32, 3) uint8 HWC,
    labels), classes shuffled through the split (as in the real batches), noise pixels."""
    rng = np.random.default_rng(seed)
    out = {}
    for split in ("train", "test"):
        labels = rng.permutation(np.repeat(np.arange(len(CIFAR10_CLASSES)), per_class))
        out[split] = (rng.integers(0, 256, (len(labels), 32, 32, 3), np.uint8), labels)
    return out


def release_batches(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The splits as the releases batch them: train over data_batch_1..5 in order, test as test_batch."""
    x, y = data["train"]
    parts = np.array_split(np.arange(len(y)), 5)
    return [(f"data_batch_{i + 1}", x[p], y[p]) for i, p in enumerate(parts)] + [("test_batch", *data["test"])]


def release_files(data, kind: str) -> dict[str, bytes]:
    """File name -> bytes of a release's folder: pickled dicts (b"data" (N, 3072) CHW rows, b"labels")
    or binary records (label byte + 3072 bytes), plus batches.meta / batches.meta.txt."""
    files = {}
    for name, x, y in release_batches(data):
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # HWC -> the release's CHW rows
        if kind == "python":
            batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y], b"data": rows,
                     b"filenames": [f"{name}_{i}.png".encode() for i in range(len(y))]}
            files[name] = pickle.dumps(batch, protocol=2)  # as the release's Python 2 cPickle files
        else:
            files[f"{name}.bin"] = np.concatenate([y.astype(np.uint8)[:, None], rows], axis=1).tobytes()
    if kind == "python":
        files["batches.meta"] = pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, protocol=2)
    else:
        files["batches.meta.txt"] = "\n".join(CIFAR10_CLASSES).encode()
    files["readme.html"] = b"<html>tiny</html>"
    return files


def cifar_release_archive(path: Path, kind: str = "python", packed: bool = True, per_class: int = 3, seed: int = 0,
                          cut: float = 1.0, files: dict[str, bytes] | None = None) -> Path:
    """A tiny official release at ``path``: ``kind`` "python" or "binary"; ``packed`` a ``.tar.gz`` of its
    folder (members in a shuffled order, as the real archive's are not sorted), cut to its first
    ``cut`` of bytes, else the extracted folder ``path/cifar-10-batches-py`` (returned). ``files``
    replaces the batches (``release_files``)."""
    path = Path(path)
    files = files if files is not None else release_files(cifar_release(per_class, seed), kind)
    folder = RELEASE_FOLDERS[kind]
    if not packed:
        (path / folder).mkdir(parents=True, exist_ok=True)
        for name, raw in files.items():
            (path / folder / name).write_bytes(raw)
        return path / folder
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        names = list(files)
        for i in np.random.default_rng(seed + 1).permutation(len(names)):
            info = tarfile.TarInfo(f"{folder}/{names[i]}")
            info.size = len(files[names[i]])
            tar.addfile(info, io.BytesIO(files[names[i]]))
    data = buf.getvalue()
    path.write_bytes(data[: int(len(data) * cut)])
    return path


def cifar_jpeg_archive_of(path: Path, data) -> Path:
    """The JPEG archive's layout (``split/<class>/NNNN.jpg``, NNNN counting each class in the release's
    order) holding ``data``'s images losslessly (PNG bytes: PIL reads by content), to compare forms."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for split in ("test", "train"):
            x, y = data[split]
            seen = [0] * len(CIFAR10_CLASSES)
            for image, label in zip(x, y):
                png = io.BytesIO()
                Image.fromarray(image).save(png, "PNG")
                info = tarfile.TarInfo(f"{split}/{CIFAR10_CLASSES[label]}/{seen[label]:04d}.jpg")
                seen[label] += 1
                info.size = len(png.getvalue())
                png.seek(0)
                tar.addfile(info, png)
    return path


# -- ImageNet's validation layouts, tiny --------------------------------------------------------------

IMAGENET_WNIDS = ("n01440764", "n01443537", "n02119789")  # tench, goldfish, kit fox: ImageNet classes 0, 1, 278
DEVKIT_IDS = {"n01440764": 449, "n01443537": 450, "n02119789": 1}  # their ILSVRC2012_IDs in the devkit's meta.mat


def imagenet_val(root: Path, labels: Sequence[int] = (2, 0, 1, 0, 2), layout: str = "flat") -> list[np.ndarray]:
    """Tiny ImageNet validation images ``ILSVRC2012_val_0000000n.png`` (n from 1) of classes
    ``IMAGENET_WNIDS[labels[n - 1]]``: ``layout`` "flat" (one folder, plus ``LOC_val_solution.csv``,
    the devkit's ``ILSVRC2012_validation_ground_truth.txt`` and a ``meta.mat`` beside the images'
    folder) or "classes" (``root/<wnid>/``). Returns the images (16x16 uint8) in file order."""
    root = Path(root)
    rng = np.random.default_rng(3)
    images = []
    for n, label in enumerate(labels, start=1):
        folder = root if layout == "flat" else root / IMAGENET_WNIDS[label]
        folder.mkdir(parents=True, exist_ok=True)
        images.append(rng.integers(0, 256, (16, 16, 3), np.uint8))
        Image.fromarray(images[-1]).save(folder / f"ILSVRC2012_val_{n:08d}.png")
    if layout == "flat":
        rows = [f"ILSVRC2012_val_{n:08d},{IMAGENET_WNIDS[lab]} 1 2 30 40 {IMAGENET_WNIDS[lab]} 5 6 7 8"
                for n, lab in enumerate(labels, start=1)]
        (root.parent / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows[::-1]) + "\n")
        devkit = root.parent / "devkit" / "data"
        devkit.mkdir(parents=True, exist_ok=True)
        (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text(
            "".join(f"{DEVKIT_IDS[IMAGENET_WNIDS[lab]]}\n" for lab in labels))
        devkit_meta(devkit / "meta.mat")
    return images


def devkit_meta(path: Path) -> Path:
    """A tiny devkit ``meta.mat``: the ``synsets`` struct array with the fields torchvision reads
    (ILSVRC2012_ID, WNID, words, num_children), one non-leaf synset among them."""
    import scipy.io

    rows = [(DEVKIT_IDS[w], w, f"words of {w}", 0) for w in IMAGENET_WNIDS] + [(1001, "n00001740", "entity", 5)]
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    synsets = np.array([tuple(r) for r in rows], dtype=dtype).reshape(-1, 1)
    scipy.io.savemat(str(path), {"synsets": synsets})
    return path
