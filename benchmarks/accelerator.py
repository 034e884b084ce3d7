"""Whole-layer AM on an accelerator: VGG16 conv4_3, Lucid's recipe, fp32 and bf16.

    python benchmarks/accelerator.py [--channels=64,512] [--steps=512] [--size=128]
                                     [--precision=float32,bfloat16] [--batch=0] [--out=FILE]

Each case (channels x precision) runs in a fresh process, so its peak device memory is its own:
``Engine.render`` of every channel (Fourier + decorrelated colour, standard transforms, Adam 0.05,
``default_chunk()`` steps per compiled call) after a warm-up render of one group that compiles every
program. Recorded per case: wall seconds of the timed render (compilation excluded and reported
apart), channel-steps per second, XLA's FLOP count per channel-step (cost analysis of a one-step
program), the achieved FLOP rate against the device's peak (a table of datasheet figures for the
device kinds we know; "n/a" otherwise), and ``peak_bytes_in_use`` from the device's memory stats.
``--batch=0`` renders all channels of a case in one vmapped group, capped at 256 (memory); any
other value is the group size. Writes a markdown table to ``--out`` (default stdout).

The issue's target: a whole 512-channel layer at 128 px x 512 steps in under 60 s on one H100/H200.
Runs on a CPU too (slowly), e.g. ``--channels=8 --steps=2 --size=64`` as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Dense datasheet peaks in TFLOP/s: (fp32 without tensor cores, TF32 tensor, bf16 tensor). XLA runs
# fp32 convolutions on TF32 tensor cores by default on these GPUs, so fp32 cases are set against TF32.
PEAKS = {
    "H200": (67.0, 494.7, 989.4),
    "H100 80GB HBM3": (67.0, 494.7, 989.4),  # SXM
    "H100 PCIe": (51.2, 378.0, 756.0),
    "H100": (67.0, 494.7, 989.4),
    "A100": (19.5, 156.0, 312.0),
}

CASE = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np, optax
from jfv import models, objectives, parameterisations, transforms
from jfv.optvis.engine import Engine
channels, steps, size, precision, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
model = models.load("vgg16").with_precision(precision)
make = lambda c: objectives.channel("conv4_3", c)
param, tf, opt = parameterisations.image(size, fft=True, decorrelate=True), transforms.standard(), optax.adam(0.05)
b = min(batch or min(channels, 256), channels)
key = jax.random.key(0)
# FLOPs of one step of one group, from XLA's cost analysis of a one-step program.
one = Engine.for_channels(model, make, param, tf, opt, chunk=1)
cs, vs = np.arange(b, dtype=np.int32), np.zeros(b, np.float32)
state = one.init(key, cs, vs)
cost = one._advance.lower(model.params, state, jnp.asarray(cs), jnp.asarray(vs), jnp.int32(1)).compile().cost_analysis()
cost = cost[0] if isinstance(cost, (list, tuple)) else cost
flops = float(cost.get("flops", float("nan"))) / b
engine = Engine.for_channels(model, make, param, tf, opt)
t = time.perf_counter()
engine.render(list(range(b)), key, min(steps, engine.chunk), batch_size=b)  # compiles every program
compile_s = time.perf_counter() - t
t = time.perf_counter()
out = engine.render(list(range(channels)), key, steps, batch_size=b)
wall = time.perf_counter() - t
stats = jax.devices()[0].memory_stats() or {}
print(json.dumps({"wall_s": wall, "compile_s": compile_s, "batch": b, "chunk": engine.chunk,
                  "flops_per_channel_step": flops, "peak_bytes": stats.get("peak_bytes_in_use"),
                  "finite": bool(np.isfinite(out.images).all()), "objective_mean": float(np.mean(out.objective))}))
"""


def peaks(kind: str):
    for name, p in PEAKS.items():
        if name in kind:
            return p
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", default="64,512")
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--precision", default="float32,bfloat16")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import jax

    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    peak = peaks(kind)
    lines = [f"# `benchmarks/accelerator.py`, {time.strftime('%Y-%m-%d %H:%M')}",
             "",
             f"Device: {kind} ({dev.platform}, {jax.device_count()} device(s)); host {platform.node()} "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; jax {jax.__version__}. "
             f"VGG16 conv4_3, {args.size} px, {args.steps} steps, Lucid's recipe (Fourier + decorrelated, "
             f"standard transforms, Adam). Peak TFLOP/s used: "
             + (f"TF32 {peak[1]} for float32, bf16 {peak[2]} (dense datasheet)" if peak else "n/a (unknown device)"),
             "",
             "| precision | channels | group | wall (s) | compile (s) | channel-steps/s | GFLOP / channel-step | "
             "TFLOP/s | of peak | peak memory (GiB) | finite |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    for channels in [int(c) for c in args.channels.split(",")]:
        for precision in args.precision.split(","):
            res = subprocess.run([sys.executable, "-c", CASE, str(channels), str(args.steps), str(args.size),
                                  precision, str(args.batch)], cwd=ROOT, capture_output=True, text=True)
            if res.returncode != 0:
                row = f"| {precision} | {channels} | failed: {res.stderr.strip().splitlines()[-1][:200]} |"
            else:
                r = json.loads(res.stdout.strip().splitlines()[-1])
                rate = channels * args.steps / r["wall_s"]
                tflops = rate * r["flops_per_channel_step"] / 1e12
                p = None if peak is None else (peak[2] if precision == "bfloat16" else peak[1])
                mem = "n/a" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**30:.2f}"
                row = (f"| {precision} | {channels} | {r['batch']} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | "
                       f"{rate:.0f} | {r['flops_per_channel_step'] / 1e9:.2f} | {tflops:.1f} | "
                       f"{'n/a' if p is None else f'{tflops / p:.1%}'} | {mem} | {r['finite']} |")
            lines.append(row)
            print(row, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
