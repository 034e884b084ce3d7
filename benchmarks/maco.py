"""MACO against Lucid's parameterisation: time per channel-step on VGG16 conv4_3, as ratios in one run.

    python -m benchmarks.maco [--channels=4] [--size=64] [--steps=4] [--repeats=2]

Rows (same model, layer, channels, image size, steps, Adam; each engine compiled by a warm-up
render that is not timed, then ``repeats`` timed renders, interleaved row by row so that load from
other jobs hits every row alike; the best is kept):

- lucid: ``image(size)`` (Fourier + decorrelated colour + sigmoid), ``standard()`` transforms;
- maco, 1 crop: ``maco(size)``, ``transforms.maco(1, size)``: the parameterisation's own cost;
- maco, 4 crops: the config's default (``configs/vgg16_maco.py``): 4 model passes per step;
- maco, 4 crops + transparency: the same with ``transparency=True`` (the vjp split at the image).

Prints the machine (``lscpu`` model, cores, load average) and a markdown table to paste into
``benchmarks/maco.md``. Takes ~2-3 minutes on a 2-core CPU with the defaults.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import jax
import optax

from jfv import models
from jfv.optvis import objectives, parameterisations, transforms
from jfv.optvis.engine import Engine

LAYER = "conv4_3"


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = info.get("Model name", "?").strip()
        cpus = info.get("CPU(s)", "?").strip()
    except (OSError, subprocess.SubprocessError):
        model, cpus = platform.processor() or "?", str(os.cpu_count())
    return f"{model}, {cpus} CPU(s), {jax.default_backend()} backend, jax {jax.__version__}"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    model = models.load("vgg16")
    size, chans, key = args.size, list(range(args.channels)), jax.random.key(0)
    goal = lambda c: objectives.channel(LAYER, c)  # noqa: E731
    rows = {
        "lucid (Fourier + decorrelated, standard transforms)": (
            parameterisations.image(size), transforms.standard(), optax.adam(0.05), False),
        "maco, 1 crop": (parameterisations.maco(size), transforms.maco(1, size), optax.adam(0.2), False),
        "maco, 4 crops": (parameterisations.maco(size), transforms.maco(4, size), optax.adam(0.2), False),
        "maco, 4 crops + transparency": (parameterisations.maco(size), transforms.maco(4, size), optax.adam(0.2), True),
    }
    print(f"machine: {machine()}; load average at start {load()}")
    engines, compile_s = {}, {}
    for name, (param, tf, opt, transparency) in rows.items():
        engines[name] = Engine.for_channels(model, goal, param, tf, opt, transparency=transparency)
        t = time.perf_counter()
        engines[name].render(chans, key, 1)
        compile_s[name] = time.perf_counter() - t
    best = {name: float("inf") for name in rows}
    for _ in range(args.repeats):
        for name, engine in engines.items():
            t = time.perf_counter()
            engine.render(chans, key, args.steps)
            best[name] = min(best[name], time.perf_counter() - t)
    per = {name: s / (args.channels * args.steps) for name, s in best.items()}
    ref = per[next(iter(rows))]
    print(f"\nVGG16 {LAYER}, {args.channels} channels vmapped, {size} px, {args.steps} steps, best of {args.repeats}; "
          f"load average at end {load()}\n")
    print("| parameterisation | s / channel-step | relative to Lucid | first render (compile + 1 step), s |")
    print("|---|---|---|---|")
    for name in rows:
        print(f"| {name} | {per[name]:.3f} | {per[name] / ref:.2f} | {compile_s[name]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
