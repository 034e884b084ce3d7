"""Attribution throughput on this machine, with occlusion's FLOP rate against the matmul rate.

    PYTHONPATH=. JFV_WEIGHTS_DIR=/tmp/jfv-weights python benchmarks/attribution.py [--out benchmarks/RESULTS.md]

Occlusion: VGG16 at 224 px, a 32 px grey window with stride 16 (13 x 13 = 169 positions), target
the summed map of conv5_3 channel 0, batched (vmapped chunks under one jit) against a loop of one
jitted call per window in the same run. FLOPs come from XLA's cost analysis of the compiled chunk.
The machine's matmul rate is a 2048 x 2048 f32 matmul under jit. Then images per second of CAM
(VGG16 + a random GAP + dense head), Grad-CAM, guided backprop and deconvnet (both formulations).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jfv import attribution as A
from jfv import models
from jfv.attribution.occlusion import occlude
from jfv.models import vgg
from jfv.models.base import Model

SIZE, WINDOW, STRIDE = 224, 32, 16


def best_time(fn, repeats: int, warm=None) -> float:
    jax.block_until_ready((warm or fn)())  # compile and warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def flops_of(jitted, *args, **kwargs) -> float:
    cost = jitted.lower(*args, **kwargs).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def matmul_rate() -> float:
    a = jax.random.normal(jax.random.key(0), (2048, 2048), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    return 2 * 2048**3 / best_time(lambda: f(a), 10)


class GapVGG(nn.Module):
    """VGG16's convolutions + a random global-average-pooling + dense head (for CAM's speed only)."""

    relu: object = nn.relu

    @nn.compact
    def __call__(self, x):
        out = vgg.VGG16Features(relu=self.relu, name="features")(x)
        out["logits"] = nn.Dense(1000, name="fc")(out["relu5_3"].mean((1, 2)))
        return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="")
    p.add_argument("--batch", type=int, default=13, help="occluded images per call")
    p.add_argument("--images", type=int, default=2, help="batch for the per-image-rate methods")
    p.add_argument("--repeats", type=int, default=1, help="timed runs (best kept) after a warm-up")
    args = p.parse_args()

    model = models.load("vgg16")
    img = jax.random.uniform(jax.random.key(1), (1, SIZE, SIZE, 3))
    target = A.channel("conv5_3", 0)
    rate = matmul_rate()
    lines = [f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"jax {jax.__version__} ({jax.default_backend()})",
             f"matmul rate (2048^2 f32, jit): {rate / 1e9:.1f} GFLOP/s", ""]

    # -- occlusion, batched
    ys = A.window_positions(SIZE, WINDOW, STRIDE)
    n_win = len(ys) ** 2
    b = args.batch
    idx = np.zeros(b, np.int32)
    chans = target.channels(1)
    fill = jnp.float32(0.5)
    chunk_flops = flops_of(A.occlusion_chunk, model.params, img, chans, idx, idx, idx, fill,
                           model=model, target=target, window=WINDOW)
    total_flops = chunk_flops * (-(-n_win // b))
    warm_chunk = lambda: A.occlusion_chunk(model.params, img, chans, idx, idx, idx, fill, model=model, target=target, window=WINDOW)
    t_batch = best_time(lambda: A.occlusion(model, img, target, WINDOW, STRIDE, batch_size=b).scores, args.repeats, warm_chunk)

    # -- occlusion, one window per call
    one = jax.jit(lambda params, im, y, x: target.score(model.apply(params, occlude(im, y, x, WINDOW, fill)[None])))
    grid = [(int(y), int(x)) for y in ys for x in ys]
    one_flops = flops_of(one, model.params, img[0], 0, 0) * n_win

    def loop():
        return [one(model.params, img[0], y, x) for y, x in grid]

    t_loop = best_time(loop, args.repeats, lambda: one(model.params, img[0], 0, 0))
    lines += [
        f"## Occlusion, VGG16 {SIZE} px, window {WINDOW}, stride {STRIDE} ({n_win} windows, target conv5_3 ch 0)",
        "",
        "| variant | time (s) | windows/s | GFLOP | GFLOP/s | fraction of matmul rate |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| batched, {b} windows per call | {t_batch:.2f} | {n_win / t_batch:.1f} | {total_flops / 1e9:.0f} | "
        f"{total_flops / t_batch / 1e9:.1f} | {total_flops / t_batch / rate:.2f} |",
        f"| loop, 1 window per call | {t_loop:.2f} | {n_win / t_loop:.1f} | {one_flops / 1e9:.0f} | "
        f"{one_flops / t_loop / 1e9:.1f} | {one_flops / t_loop / rate:.2f} |",
        "",
        f"batched / loop speed-up: {t_loop / t_batch:.2f}x",
        "",
    ]

    # -- per-image rates
    n = args.images
    imgs = jax.random.uniform(jax.random.key(2), (n, SIZE, SIZE, 3))
    head = GapVGG()
    hp = head.init(jax.random.key(3), jnp.zeros((1, 32, 32, 3)))["params"]
    hp["features"] = model.params
    gap = Model("vgg16+gap", head, hp, {"relu5_3": 512, "logits": 1000}, SIZE)
    t5 = A.strongest("relu5_3", 0)
    rates = {
        "CAM (VGG16 + GAP head, top-1 map at relu5_3)": lambda: A.cam(gap, imgs, 0, "relu5_3"),
        "Grad-CAM (relu4_3, target relu5_3 ch 0)": lambda: A.grad_cam(model, imgs, t5, "relu4_3"),
        "guided backprop": lambda: A.guided_backprop(model, imgs, t5),
        "deconvnet (gradient formulation)": lambda: A.deconvnet(model, imgs, t5),
        "deconvnet (explicit switches)": lambda: A.deconvnet_switches(model, imgs, t5)[0],
        "saliency": lambda: A.saliency(model, imgs, t5),
    }
    lines += [f"## Images per second, VGG16 {SIZE} px, batch {n}", "", "| method | images/s |", "| --- | --- |"]
    for name, fn in rates.items():
        lines.append(f"| {name} | {n / best_time(fn, args.repeats):.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(f"\n## benchmarks/attribution.py ({time.strftime('%Y-%m-%d')})\n\n" + text)


if __name__ == "__main__":
    main()
