"""AM throughput on VGG16 conv4_3 at 128 px: channel-steps per second, FLOP rate, memory, compile.

    python benchmarks/am_throughput.py [--channels=1,8,32] [--steps=8] [--precision=float32,bfloat16]
                                       [--torch] [--memory] [--full-layers]

In one run it measures: the machine's fp32 matmul rate (a jitted 2048^3 matmul); for each channel
count, channel-steps per second of ``render_channels`` (Lucid's recipe: Fourier + decorrelated colour,
standard transforms, Adam) with ``batch_size=8`` and as one plain vmap; the AM step's FLOP rate from
XLA's own cost analysis as a fraction of the matmul rate; compile time of one step; optionally the
same work as a hand-written PyTorch loop (``--torch``) and the peak resident memory of 64 channels
with ``batch_size=8`` against one vmap of 64 (``--memory``, each in a fresh process). Prints a
markdown table to paste into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfv import models
from jfv.optvis import objectives, parameterisations, transforms
from jfv.optvis.engine import Engine
from jfv.models import plain

LAYER, SIZE = "conv4_3", 128


def objective_fn(c):
    return objectives.channel(LAYER, c)


def matmul_rate(n: int = 2048, reps: int = 10) -> float:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def am_rate(model, channels: int, steps: int, batch_size: int | None):
    param, tf, opt = parameterisations.image(SIZE), transforms.standard(), optax.adam(0.05)
    chs = list(range(channels))
    key = jax.random.key(0)
    # Compile time of one step, and its FLOPs from XLA's cost analysis.
    b = min(batch_size or channels, channels)
    engine = Engine.for_channels(model, objective_fn, param, tf, opt)
    cs, vs = np.arange(b, dtype=np.int32), np.zeros(b, np.float32)
    state = engine.init(key, cs, vs)
    t = time.perf_counter()
    compiled = engine._advance.lower(model.params, state, jnp.asarray(cs), jnp.asarray(vs), jnp.int32(1)).compile()
    compile_s = time.perf_counter() - t
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops_per_call = float(cost.get("flops", float("nan")))
    run = lambda: engine.render(chs, key, steps, batch_size=batch_size)  # noqa: E731
    run()  # warm: every program compiled
    t = time.perf_counter()
    run()
    wall = time.perf_counter() - t
    calls = -(-channels // b) * -(-steps // engine.chunk)
    return {
        "channel_steps_per_s": channels * steps / wall,
        "flop_rate": flops_per_call * calls / wall,
        "compile_s": compile_s,
        "flops_per_channel_step": flops_per_call / (b * engine.chunk),
    }


def torch_rate(model, channels: int, steps: int, sliced: bool = False) -> float:
    """The same work as a hand-written PyTorch loop: Fourier + decorrelated param, pad/jitter/
    scale/rotate/jitter, VGG16 to conv4_3, channel objective, Adam. ``sliced``: conv4_3 computes
    only each image's own channel (one grouped conv), as jfv does by default."""
    import math

    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    ws = []
    for b, widths in enumerate(((64, 64), (128, 128), (256, 256, 256), (512, 512, 512)), start=1):
        for i in range(1, len(widths) + 1):
            p = model.params[f"conv{b}_{i}"]
            ws.append((torch.from_numpy(np.array(p["kernel"])).permute(3, 2, 0, 1).contiguous(), torch.from_numpy(np.array(p["bias"]))))
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    n, h = channels, SIZE
    freqs = torch.from_numpy(parameterisations.rfft2d_freqs(h, h).astype(np.float32))
    scale = 1.0 / torch.clamp(freqs, min=1.0 / h) * h
    spec = (0.01 * torch.randn(2, n, 3, h, h // 2 + 1)).requires_grad_(True)
    colour = torch.from_numpy(parameterisations.COLOR_CORRELATION_SVD_SQRT / parameterisations.MAX_NORM_SVD_SQRT)
    opt = torch.optim.Adam([spec], lr=0.05)
    chan = torch.arange(n)

    def step():
        img = torch.fft.irfftn(torch.complex(spec[0], spec[1]) * scale, s=(h, h), dim=(-2, -1)) / 4
        img = torch.sigmoid(torch.einsum("nchw,dc->ndhw", img, colour))
        x = F.pad(img, (12, 12, 12, 12), value=0.5)
        oy, ox = np.random.randint(0, 9, 2)
        x = x[..., oy : oy + x.shape[-2] - 8, ox : ox + x.shape[-1] - 8]
        s = 1 + (np.random.randint(11) - 5) / 50
        a = math.radians(np.random.choice(list(range(-10, 11)) + [0] * 5))
        theta = torch.tensor([[math.cos(a) / s, -math.sin(a) / s, 0], [math.sin(a) / s, math.cos(a) / s, 0]], dtype=torch.float32)
        grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, align_corners=False)
        oy, ox = np.random.randint(0, 5, 2)
        x = x[..., oy : oy + x.shape[-2] - 4, ox : ox + x.shape[-1] - 4]
        x = (x - mean) / std
        k = 0
        for b, count in enumerate((2, 2, 3, 3)):
            for i in range(count):
                w, bias = ws[k]
                k += 1
                if k == len(ws) and sliced:  # conv4_3: image i's channel i only
                    hw = x.shape[-2:]
                    x = F.conv2d(x.reshape(1, -1, *hw), w[chan], bias[chan], padding=1, groups=n)[0]
                    continue
                x = F.conv2d(x, w, bias, padding=1)
                if not (b == 3 and i == count - 1):
                    x = F.relu(x)
            if b < 3:
                x = F.max_pool2d(x, 2)
        loss = -(x.mean(dim=(1, 2)).sum() if sliced else x[torch.arange(n), chan].mean(dim=(1, 2)).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()

    torch.set_num_threads(os.cpu_count() or 1)
    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return n * steps / (time.perf_counter() - t)


MEMORY = """
import resource, jax, optax, json, sys
from jfv import models, objectives, parameterisations, transforms
from jfv.optvis.render import render_channels
batch, channels = int(sys.argv[1]), int(sys.argv[2])
model = models.load("vgg16")
render_channels(model, lambda c: objectives.channel("conv4_3", c), parameterisations.image(128),
                transforms.standard(), optax.adam(0.05), list(range(channels)), jax.random.key(0), 1,
                batch_size=batch)
print(json.dumps({"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def peak_memory(batch_size: int, channels: int = 64) -> float:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", MEMORY, str(batch_size), str(channels)], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_gib"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", default="1,8,32")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--precision", default="float32,bfloat16")
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--full-layers", action="store_true",
                    help="also measure with JFV_FULL_LAYERS=1 (the objective's whole layer computed)")
    args = ap.parse_args()
    model = models.load("vgg16")
    mm = matmul_rate()
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}; fp32 matmul {mm / 1e9:.1f} GFLOP/s\n")
    print("| precision | channels | batch_size | channel-steps/s | GFLOP per channel-step | FLOP rate / matmul | "
          "compile one step (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for c in [int(x) for x in args.channels.split(",")]:
        for bs in sorted({min(8, c), c}):
            for precision in args.precision.split(","):
                for full in ((False, True) if args.full_layers else (False,)):
                    # JFV_FULL_LAYERS is read when a program is traced: each Engine compiles afresh
                    if full:
                        os.environ[plain.FULL_LAYERS_ENV] = "1"
                    try:
                        r = am_rate(model.with_precision(precision), c, args.steps, bs)
                    finally:
                        os.environ.pop(plain.FULL_LAYERS_ENV, None)
                    label = precision + (", whole layer (JFV_FULL_LAYERS=1)" if full else "")
                    print(f"| {label} | {c} | {bs} | {r['channel_steps_per_s']:.2f} | "
                          f"{r['flops_per_channel_step'] / 1e9:.1f} | {r['flop_rate'] / mm:.2f} | "
                          f"{r['compile_s']:.2f} |", flush=True)
    if args.torch:
        print("\n| PyTorch loop | channels | channel-steps/s |\n| --- | --- | --- |")
        for c in [int(x) for x in args.channels.split(",")]:
            if c <= 8:
                print(f"| whole conv4_3 | {c} | {torch_rate(model, c, args.steps):.2f} |", flush=True)
                print(f"| conv4_3 sliced to each image's channel | {c} | "
                      f"{torch_rate(model, c, args.steps, sliced=True):.2f} |", flush=True)
    if args.memory:
        print("\n| channels | batch_size | peak RSS (GiB) |\n| --- | --- | --- |")
        for channels, bs in ((64, 8), (512, 8), (64, 64)):
            print(f"| {channels} | {bs} | {peak_memory(bs, channels):.2f} |", flush=True)


if __name__ == "__main__":
    main()
