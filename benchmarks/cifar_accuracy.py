"""Top-1 accuracy of the converted CIFAR-10 ResNets on the 10,000 JPEG test images, both normalisations.

    JFV_WEIGHTS_DIR=/tmp/jfv-weights python benchmarks/cifar_accuracy.py [--models=20,32,44,56]

Converts each akamaster checkpoint from ``<shared>/weights/cifar10-resnet/`` on first use (needs
torch), then classifies ``<shared>/data/cifar10/cifar10-jpeg.tar.gz``'s ``test/<class>/NNNN.jpg``
with the normalisation the weights were trained with (torchvision's ImageNet statistics, as in
akamaster's ``trainer.py``) and with the CIFAR-10 statistics, and prints a Markdown table for
``benchmarks/models.md``. Reported error on the lossless test set: 8.27 / 7.37 / 6.90 / 6.61 %
(akamaster README); the JPEG copies (quality ~75) cost a few points.
"""

from __future__ import annotations

import argparse
import io
import tarfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jfv.models import convert, labels
from jfv import models
from jfv.models import cifar_resnet
from jfv.models.weights import MANIFEST, weights_dir

BATCH = 500


def read_test_set(path) -> tuple[np.ndarray, np.ndarray]:
    """(10000, 32, 32, 3) float32 in [0, 1] and (10000,) labels, in archive order."""
    images, targets = [], []
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[0] == "test" and parts[2].endswith(".jpg"):
                data = tar.extractfile(member).read()
                images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255.0)
                targets.append(labels.CIFAR10_CLASSES.index(parts[1]))
    return np.stack(images), np.asarray(targets)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="20,32,44,56")
    args = parser.parse_args()
    shared = labels.shared_dir()
    if shared is None:
        raise SystemExit("shared folder not found: set JFV_SHARED")
    t = time.time()
    x, y = read_test_set(shared / "data/cifar10/cifar10-jpeg.tar.gz")
    print(f"read {len(y)} test JPEGs in {time.time() - t:.1f} s")
    rows = []
    for depth in (int(d) for d in args.models.split(",")):
        name = f"cifar_resnet{depth}"
        if not (weights_dir() / name / MANIFEST).exists():
            checkpoint = next((shared / "weights/cifar10-resnet").glob(f"resnet{depth}-*.th"))
            convert.convert(name, checkpoint, weights_dir() / name)
        model = models.load(name)
        row = [name]
        for mean, std in ((cifar_resnet.IMAGENET_MEAN, cifar_resnet.IMAGENET_STD),
                          (cifar_resnet.CIFAR10_MEAN, cifar_resnet.CIFAR10_STD)):
            module = model.module.clone(mean=mean, std=std)
            predict = jax.jit(lambda p, im: jnp.argmax(module.apply({"params": p}, im)["logits"], -1))
            t = time.time()
            pred = np.concatenate([np.asarray(predict(model.params, x[i:i + BATCH])) for i in range(0, len(x), BATCH)])
            row.append(f"{100 * np.mean(pred == y):.2f}")
            print(f"{name} mean={mean}: {row[-1]} % ({time.time() - t:.1f} s)", flush=True)
        rows.append(row)
    print("\n| model | ImageNet mean/std (trained with) | CIFAR-10 mean/std |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {row[0]} | {row[1]} % | {row[2]} % |")


if __name__ == "__main__":
    main()
