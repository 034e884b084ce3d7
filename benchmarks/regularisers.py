"""Benchmark: the cost of each regulariser relative to plain AM, and a batched sweep vs separate runs.

    JFV_WEIGHTS_DIR=/tmp/jfv-weights python -m benchmarks.regularisers [--steps 8 --size 64]

Part 1 renders the same 4 VGG16 channels for the same steps with each regulariser (one strength) and
reports the steady-state time per step (after a compiled warm-up) relative to no regulariser.
Part 2 renders 4 channels x 8 values of lambda_tv twice: as one ``render_sweep`` (one compilation,
32 images vmapped) and as 8 separate ``render_channels`` runs (one per value, each its own objective
and so its own compilation, as 8 processes would) and reports both wall times, compilation included,
and their ratio. Part 3 (``--processes``) does the same through ``python -m jfv`` (configs/reg_tv.py): one
process for all 8 values vs 8 processes of one value each. All numbers come from one run on one machine, so the ratios are comparable even on a
shared CPU; absolute times are not.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np
import optax

from jfv import models
from jfv.optvis import objectives, octaves, parameterisations, regularisers, transforms
from jfv.optvis.engine import Engine
from jfv.optvis.render import render_channels, render_sweep

CHANNELS = [48, 62, 73, 91]  # the seed's
TV_VALUES = [0.0, -1e-5, -3e-5, -1e-4, -3e-4, -1e-3, -3e-3, -5e-3]


def block(x):
    return jax.tree.map(lambda a: np.asarray(a), x)


def time_channels(model, objective_fn, param, tf, opt, steps, key):
    """Steady-state seconds per step: one engine; a 1-step warm-up compiles, then ``steps`` are timed."""
    engine = Engine.for_channels(model, objective_fn, param, tf, opt)
    engine.render(CHANNELS, key, 1)
    t = time.perf_counter()
    block(engine.render(CHANNELS, key, steps))
    return (time.perf_counter() - t) / steps


def part1(model, layer, size, steps, key):
    pixel = parameterisations.pixel(size)
    adam = optax.adam(0.05)
    goal = lambda c: objectives.channel(layer, c)  # noqa: E731

    def pen(p):
        return lambda c: objectives.channel(layer, c) - 0.005 * p

    def steps_(*s):
        return regularisers.chain_image_steps(pixel, adam, *s)

    cases = {
        "none (plain AM)": (goal, transforms.identity(), adam),
        "l1 penalty": (pen(objectives.l1(reduction="sum")), transforms.identity(), adam),
        "l2 penalty": (pen(objectives.l2(reduction="norm")), transforms.identity(), adam),
        "tv penalty": (pen(objectives.total_variation(reduction="sum")), transforms.identity(), adam),
        "blur penalty (sigma 1)": (pen(objectives.blur_penalty(1.0, "sum")), transforms.identity(), adam),
        "decay step": (goal, transforms.identity(), steps_(regularisers.decay(1e-4))),
        "blur step (sigma 1, every 4)": (goal, transforms.identity(), steps_(regularisers.blur_step(1.0, 4))),
        "clip_norm step (20%)": (goal, transforms.identity(), steps_(regularisers.clip_norm(20.0))),
        "clip_contribution step (90%)": (goal, transforms.identity(), steps_(regularisers.clip_contribution(90.0))),
        "yosinski decay_blur": (goal, transforms.identity(), steps_(*regularisers.yosinski("decay_blur"))),
        "jitter 8": (goal, transforms.Jitter(8), adam),
        "scale 1.4": (goal, transforms.scale(1.4), adam),
        "rotate 45": (goal, transforms.rotate(45.0), adam),
        "standard transforms": (goal, transforms.standard(), adam),
    }
    rows = {}
    for name, (fn, tf, opt) in cases.items():
        rows[name] = time_channels(model, fn, pixel, tf, opt, steps, key)
        print(f"  {name:32s} {rows[name]:.3f} s/step  x{rows[name] / rows['none (plain AM)']:.2f}", flush=True)
    # Octaves: same total steps in 2 stages at size and 1.2 size (warm-up compiles both stages).
    sched, engines = octaves.Octaves(2, 1.2, max(1, steps // 2)), {}
    octaves.render_octaves(model, goal, pixel, transforms.identity(), adam, CHANNELS, key, octaves.Octaves(2, 1.2, 1),
                           engines=engines)
    t = time.perf_counter()
    block(octaves.render_octaves(model, goal, pixel, transforms.identity(), adam, CHANNELS, key, sched,
                                 engines=engines))
    rows["octaves (2 x 1.2)"] = (time.perf_counter() - t) / sched.total_steps
    print(f"  {'octaves (2 x 1.2)':32s} {rows['octaves (2 x 1.2)']:.3f} s/step  "
          f"x{rows['octaves (2 x 1.2)'] / rows['none (plain AM)']:.2f}", flush=True)
    return rows


def part2(model, layer, size, steps, key):
    pixel = parameterisations.pixel(size)

    def make(c, lam):
        return objectives.channel(layer, c) + lam * objectives.total_variation(reduction="sum"), optax.adam(0.05)

    t = time.perf_counter()
    sweep = block(render_sweep(model, make, pixel, transforms.identity(), CHANNELS, TV_VALUES, key, steps))
    t_sweep = time.perf_counter() - t
    print(f"  one render_sweep 4 x 8: {t_sweep:.1f} s", flush=True)

    t = time.perf_counter()
    separate = []
    for lam in TV_VALUES:
        fn = lambda c, lam=lam: make(c, lam)[0]  # noqa: E731  (a new objective: a new compilation)
        separate.append(block(render_channels(model, fn, pixel, transforms.identity(), optax.adam(0.05),
                                              CHANNELS, key, steps)))
    t_sep = time.perf_counter() - t
    print(f"  8 separate render_channels: {t_sep:.1f} s  -> sweep is {t_sep / t_sweep:.2f}x faster", flush=True)
    diff = max(float(np.max(np.abs(sweep.images[:, j] - s.images))) for j, s in enumerate(separate))
    print(f"  max |sweep - separate| pixel difference: {diff:.2e}", flush=True)
    return {"sweep_s": t_sweep, "separate_s": t_sep, "speedup": t_sep / t_sweep, "max_abs_diff": diff}


def part3(size, steps, workdir):
    """The same sweep through the command line: one process for all 8 values vs one per value."""
    import os
    import subprocess
    import sys

    values = ",".join(f"{v:g}" for v in TV_VALUES)
    base = [sys.executable, "-m", "jfv", "--config=configs/reg_tv.py", f"--config.image_size={size}",
            f"--config.steps={steps}", "--config.progress=False"]
    env = dict(os.environ)
    t = time.perf_counter()
    subprocess.run(base + [f"--workdir={workdir}/all", f"--config.strengths={values}"], check=True, env=env)
    t_one = time.perf_counter() - t
    print(f"  one process, 8 values: {t_one:.1f} s", flush=True)
    t = time.perf_counter()
    for j, v in enumerate(TV_VALUES):
        subprocess.run(base + [f"--workdir={workdir}/{j}", f"--config.strengths={v:g}"], check=True, env=env)
    t_sep = time.perf_counter() - t
    print(f"  8 processes, one value each: {t_sep:.1f} s  -> one process is {t_sep / t_one:.2f}x faster", flush=True)
    return {"one_process_s": t_one, "separate_processes_s": t_sep, "speedup": t_sep / t_one}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", default="conv4_3")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per regulariser in part 1")
    ap.add_argument("--sweep-steps", type=int, default=16)
    ap.add_argument("--skip-part1", action="store_true")
    ap.add_argument("--skip-part2", action="store_true")
    ap.add_argument("--processes", action="store_true", help="part 3: the sweep as 1 vs 8 jfv processes")
    ap.add_argument("--workdir", default="/tmp/jfv_bench_regularisers")
    args = ap.parse_args()
    model = models.load("vgg16")
    key = jax.random.key(0)
    print(f"machine: {platform.processor() or platform.machine()}, jax {jax.__version__}, "
          f"{jax.devices()[0].platform}; VGG16 {args.layer}, channels {CHANNELS}, {args.size} px", flush=True)
    out = {"layer": args.layer, "size": args.size}
    if not args.skip_part1:
        print(f"part 1: seconds per step, 4 channels vmapped, {args.steps} timed steps after warm-up")
        out["per_step_s"] = part1(model, args.layer, args.size, args.steps, key)
    if not args.skip_part2:
        print(f"part 2: 4 channels x 8 lambda_tv, {args.sweep_steps} steps, compilation included")
        out["sweep"] = part2(model, args.layer, args.size, args.sweep_steps, key)
    if args.processes:
        print(f"part 3: configs/reg_tv.py, 4 channels x 8 lambda_tv, {args.sweep_steps} steps, whole processes")
        out["processes"] = part3(args.size, args.sweep_steps, args.workdir)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
