"""The whole-layer job's checkpoint overhead, measured against its own render time in one run.

    python benchmarks/layer_job.py [--size 128] [--batch 8] [--steps 6]

1. One group of ``batch`` VGG16 conv4_3 channels with Lucid's recipe at ``size`` px: seconds per
   step (after a warm-up), and seconds per checkpoint of that group's state (the layer recipe's own
   ``save``: every leaf of the engine state plus the history, one ``.npz`` written atomically).
   Overhead at an interval of k steps = save / (k x step).
2. The same as whole jobs: the layer recipe run twice on fresh workdirs, ``checkpoint_every=1``
   (a checkpoint after every step: the worst case) and ``0`` (none), wall time and this process's
   CPU time (user + system) of each; CPU time is what to compare on a shared, loaded machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jfv import models  # noqa: E402
from jfv.runtime.jobs import Job, StopFlag  # noqa: E402
from jfv.recipes.optvis import channels as layer  # noqa: E402
from jfv.recipes.optvis.channels_job import ChannelsJob  # noqa: E402
from jfv.recipes.optvis.settings import make_transforms  # noqa: E402


def cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def config(size, batch, steps, every, channels):
    from configs import vgg16_layer

    c = vgg16_layer.get_config()
    c.image_size, c.batch_size, c.steps, c.checkpoint_every = size, batch, steps, every
    c.channels, c.progress = channels, False
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    print(f"# {os.uname().machine}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"jax {jax.__version__} on {jax.default_backend()}")

    cfg = config(args.size, args.batch, args.steps, 0, f"0:{args.batch}")
    model = models.load("vgg16")
    with tempfile.TemporaryDirectory() as d:
        job = Job(d, "layer", {})
        job.create()
        work = ChannelsJob(cfg, model, ["conv4_3"], {"conv4_3": list(range(args.batch))}, job, None,
                           make_transforms(cfg.transforms, cfg), lambda *a: None, StopFlag())
        engine = work.engines["conv4_3"]
        cs, vs = np.arange(args.batch, dtype=np.int32), np.zeros(args.batch, np.float32)
        state = engine.init(jax.random.key(0), cs, vs)
        state, hist = engine.advance_group(state, cs, vs, 1)  # compile
        t = time.perf_counter()
        state, hist = engine.advance_group(state, cs, vs, 1 + args.steps, history=np.pad(hist, ((0, 0), (0, args.steps))))
        step_s = (time.perf_counter() - t) / args.steps
        saves = []
        for _ in range(5):
            t = time.perf_counter()
            work.save("conv4_3_g0000", state, hist, cs)
            saves.append(time.perf_counter() - t)
        save_s = float(np.median(saves))
        size_mb = job.state_path("conv4_3_g0000").stat().st_size / 2**20
        job.close()
    print(f"\n## One group: {args.batch} channels, {args.size} px, Lucid's recipe\n")
    print("| step (s) | checkpoint save (s) | checkpoint size (MiB) | overhead at 64 steps | at 16 steps |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {step_s:.3f} | {save_s:.4f} | {size_mb:.2f} | {100 * save_s / (64 * step_s):.2f}% | "
          f"{100 * save_s / (16 * step_s):.2f}% |")

    print(f"\n## Whole jobs: {2 * args.batch} channels in 2 groups, {args.steps} steps each\n")
    print("| checkpoint_every | wall (s) | CPU (s) |")
    print("| --- | --- | --- |")
    walls, cpus = {}, {}
    for every in (0, 1, 0, 1):
        with tempfile.TemporaryDirectory() as d:
            t, c = time.perf_counter(), cpu_seconds()
            layer.run(config(args.size, args.batch, args.steps, every, f"0:{2 * args.batch}"), d)
            walls.setdefault(every, []).append(time.perf_counter() - t)
            cpus.setdefault(every, []).append(cpu_seconds() - c)
    for every in walls:
        print(f"| {every} | {' / '.join(f'{x:.1f}' for x in walls[every])} | "
              f"{' / '.join(f'{x:.1f}' for x in cpus[every])} |")
    print(f"\nworst case (a checkpoint every step) / none, CPU time: {min(cpus[1]) / min(cpus[0]):.3f}; "
          f"wall: {min(walls[1]) / min(walls[0]):.3f}")


if __name__ == "__main__":
    main()
