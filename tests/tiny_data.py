"""Tiny data the tests build themselves: a CIFAR-10 archive in the shared copy's JPEG layout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

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
