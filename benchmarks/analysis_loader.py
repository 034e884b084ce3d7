"""Is the data loader a bottleneck of a dataset pass? Decode rates against the model's forward rate.

    python benchmarks/analysis_loader.py --images=400

Measures, in one run on the same machine:
1. ``jfv.analysis.datasets.batches`` alone: CIFAR-10 test images from the tar, decoded and fitted to 64 px;
   and the 20 ImageNet JPEGs of ``../shared/data/images/foolbox`` fitted to 224 px (repeated).
2. the top-k pass (``jfv.analysis.topk.run``, VGG16 ``conv5_3``, k = 9, max and mean) over the same CIFAR-10
   images at 64 px, with the decoder in a background thread (``prefetch_batches=2``) and inline (0),
   and the forward pass alone on batches already in memory.
Prints a markdown table (images per second).
"""

from __future__ import annotations

import argparse
import time

import jax

from jfv.analysis import datasets, topk
from jfv import models


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="CIFAR-10 test images (multiple of 10)")
    parser.add_argument("--batch_size", type=int, default=50)
    args = parser.parse_args()
    source = datasets.cifar10("test", per_class=args.images // 10)
    n = len(source)
    rows = []

    t = time.perf_counter()
    got = sum(int(b.mask.sum()) for b in datasets.batches(source, 64, args.batch_size, prefetch_batches=0))
    rows.append(("decode + fit CIFAR-10 JPEG (32 px -> 64 px), from the tar", rate(got, time.perf_counter() - t)))

    foolbox = datasets.image_folder(datasets.shared_dir() / "data/images/foolbox")
    photos = datasets.path_list([it.name for it in foolbox.items if it.name.endswith(".jpg")] * 5)
    t = time.perf_counter()
    got = sum(int(b.mask.sum()) for b in datasets.batches(photos, 224, 20, prefetch_batches=0))
    rows.append(("decode + fit ImageNet JPEG (~500x375 -> 224 px)", rate(got, time.perf_counter() - t)))

    model = models.load("vgg16")
    batches = list(datasets.batches(source, 64, args.batch_size))
    topk.run(model, ["conv5_3"], batches[:1], 9)  # compile
    t = time.perf_counter()
    jax.block_until_ready(topk.run(model, ["conv5_3"], batches, 9))
    rows.append(("top-k pass, VGG16 conv5_3 at 64 px, batches already decoded", rate(n, time.perf_counter() - t)))
    for depth in (2, 0):
        t = time.perf_counter()
        jax.block_until_ready(topk.run(model, ["conv5_3"], datasets.batches(source, 64, args.batch_size, prefetch_batches=depth), 9))
        rows.append((f"top-k pass streaming from the tar, prefetch_batches={depth}", rate(n, time.perf_counter() - t)))

    print(f"{n} CIFAR-10 test images, batch {args.batch_size}, {jax.default_backend()} ({len(jax.devices())} device(s))\n")
    print("| what | images/s |\n| --- | --- |")
    for what, r in rows:
        print(f"| {what} | {r} |")


if __name__ == "__main__":
    main()
