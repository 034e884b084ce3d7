"""The dataset pass and training on an accelerator, for ``benchmarks/accelerator.sh``.

    python benchmarks/pass_accelerator.py --out=PASS.md [--images=4096] [--size=224] [--workers=0,4,8]
        [--train_epochs=0]

1. **The pass:** VGG16 ``conv5_3`` top-9 (max and mean) over ``images`` photos at ``size`` px (the shared
   photos, repeated), batches of ``batch``: images/s of (a) decoding alone (``datasets.batches``), (b)
   the model and top-k alone (the same step over batches already in memory) and (c) the whole pass
   (``passes.run``), for each grain worker count; where the time goes is (c) against (a) and (b).
2. **Training** (``--train_epochs`` > 0): the default recipe (``configs/cifar10_train.py``) for that
   many epochs, its wall time and test accuracy (on the shared JPEG-75 copy of CIFAR-10, not the
   lossless original airbench reports on).

Writes a markdown table to ``--out`` and stdout, with the device.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np


def rate(n: int, seconds: float) -> str:
    return f"{n / max(seconds, 1e-9):.0f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", default="0,4,8")
    ap.add_argument("--train_epochs", type=int, default=0)
    args = ap.parse_args()

    from jfv import models
    from jfv.analysis import datasets, passes, topk
    from jfv.models import stream

    shared = datasets.shared_dir()
    photos = sorted(str(p) for p in (shared / "data" / "images").rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    paths = (photos * (-(-args.images // len(photos))))[: args.images]
    source = datasets.path_list(paths)
    model = models.load("vgg16")
    init = lambda: topk.init_states(model, ["conv5_3"], 9)  # noqa: E731
    step = topk.Step()
    lines = [f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}); "
             f"{time.strftime('%Y-%m-%d')}; VGG16 conv5_3 top-9, {args.images} images of {len(photos)} shared "
             f"photos repeated, {args.size} px, batches of {args.batch}", "",
             "| loader | decode only (img/s) | model + top-k only (img/s) | whole pass (img/s) | start-up (s) |",
             "| --- | --- | --- | --- | --- |"]
    # the model alone, on batches held in memory (compiled first)
    held = list(datasets.batches(source, args.size, args.batch, prefetch_batches=0))
    carry, _ = stream.apply(model, step, init(), held[0])
    jax.block_until_ready(carry)
    for _ in range(2):  # the second, warm, counts
        t = time.perf_counter()
        carry = init()
        for b in held:
            carry, _ = stream.apply(model, step, carry, b)
        jax.block_until_ready(carry)
        model_rate = rate(args.images, time.perf_counter() - t)
    del held
    for w in [int(x) for x in args.workers.split(",")]:
        t0 = time.perf_counter()
        it = datasets.batches(source, args.size, args.batch, workers=w)
        next(it)
        t1 = time.perf_counter()
        n = args.batch + sum(int(b.mask.sum()) for b in it)
        decode = rate(n - args.batch, time.perf_counter() - t1)
        t2 = time.perf_counter()
        passes.run(model, source, step, init(), size=args.size, batch_size=args.batch, workers=w)
        whole = rate(args.images, time.perf_counter() - t2)
        loader = "one thread" if w == 0 else f"grain, {w} workers"
        lines.append(f"| {loader} | {decode} | {model_rate} | {whole} | {t1 - t0:.1f} |")
        print(lines[-1], flush=True)
    if args.train_epochs > 0:
        with tempfile.TemporaryDirectory() as work:
            t = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "jfv", "--config=configs/cifar10_train.py", f"--workdir={work}/run",
                                  f"--config.epochs={args.train_epochs}", "--config.progress=False"],
                                 capture_output=True, text=True)
            wall = time.perf_counter() - t
            if res.returncode == 0:
                manifest = json.loads(Path(work, "run", "manifest.json").read_text())
                model_info = manifest.get("model", {})
                lines += ["", "| training (configs/cifar10_train.py) | epochs | wall (s) | train (s) | test accuracy |",
                          "| --- | --- | --- | --- | --- |",
                          f"| default recipe, shared CIFAR-10 (JPEG-75) | {args.train_epochs} | {wall:.1f} | "
                          f"{model_info.get('train_seconds')} | {model_info.get('test_accuracy')} |"]
            else:
                lines += ["", f"training failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}"]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
