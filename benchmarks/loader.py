"""Decode rates of the dataset loader: the one background thread against grain worker processes.

    python benchmarks/loader.py [--out=benchmarks/loader.md]

Streams ``jfv.analysis.datasets.batches`` to the end, with no model, for: CIFAR-10's test split (the
shared JPEG archive, 10,000 images) at 64 px, and the shared Open Images photos (JPEG, about 1 MP,
repeated to 240 images) at 224 px; with ``workers`` 0 (decoding in one background thread, the
default) and 1, 2 and 4 grain worker processes. Reports images/s after the first batch (so worker
start-up is counted apart) and the start-up itself. Each configuration yields the same images
(checked by a sum of all pixels).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from jfv.analysis import datasets


def measure(source, size: int, workers: int, batch: int = 64) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    it = datasets.batches(source, size, batch, workers=workers)
    first = next(it)
    t1 = time.perf_counter()
    total, n = float(first.images.sum()), int(first.mask.sum())
    for b in it:
        total += float(b.images.sum())
        n += int(b.mask.sum())
    t2 = time.perf_counter()
    return t1 - t0, (n - int(first.mask.sum())) / (t2 - t1), total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="")
    parser.add_argument("--workers", default="0,1,2,4")
    args = parser.parse_args()
    shared = datasets.shared_dir()
    photos = sorted(str(p) for p in (shared / "data" / "images" / "openimages").glob("*.jpg"))
    cases = [("CIFAR-10 test (JPEG archive), 10,000 images", datasets.cifar10("test"), 64),
             (f"Open Images photos x{-(-240 // len(photos))} ({len(photos)} JPEGs), 240 images",
              datasets.path_list((photos * (-(-240 // len(photos))))[:240]), 224)]
    lines = [f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
             f"{time.strftime('%Y-%m-%d')}", "",
             "| data | px | loader | start-up (s) | images/s after the first batch | same images |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, source, size in cases:
        reference = None
        for w in [int(x) for x in args.workers.split(",")]:
            start, rate, total = measure(source, size, w)
            reference = total if reference is None else reference
            loader = "one thread" if w == 0 else f"grain, {w} worker{'s' if w > 1 else ''}"
            lines.append(f"| {name} | {size} | {loader} | {start:.1f} | {rate:.0f} | "
                         f"{'yes' if np.isclose(total, reference, rtol=1e-6) else 'NO'} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
