"""XLA:CPU's convolution kernels against PyTorch's (oneDNN), shape by shape, in one run.

    python benchmarks/kernels.py [--reps 5] [--no-train]

jfv's AM and training loops are measured against PyTorch loops doing the same work
(`am_throughput.py`, `train_throughput.py`). This script asks what is left once the loops are
equal: the same convolution, with the same operands and threads, through each framework's kernel.

1. The fp32 matmul rate of each (n x n by n x n), the machine's reference.
2. Every 3x3 convolution of VGG16 up to ``conv4_3`` as the AM benchmark runs it (8 images; 128 px
   padded to 140 by Lucid's transforms): forward, and the gradient at the input (all AM needs).
3. Every 3x3 convolution of the CIFAR-10 training convnet (widths 32,128,128, batch 1024): forward,
   input gradient and weight gradient.

Each row is the best of ``reps`` timed calls after a warm-up; rates are 2 x MACs / seconds. XLA runs
with jfv's flags (``import jfv`` first); PyTorch with 2 threads (or the cores there are), NHWC
(channels_last) operands, its fastest layout in ``train_throughput.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jfv  # noqa: E402,F401  (jfv's XLA flags before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

# (label, batch, side, c_in, c_out)
AM_CONVS = [("conv1_1", 8, 140, 3, 64), ("conv1_2", 8, 140, 64, 64), ("conv2_1", 8, 70, 64, 128), ("conv2_2", 8, 70, 128, 128),
            ("conv3_1", 8, 35, 128, 256), ("conv3_2", 8, 35, 256, 256), ("conv4_1", 8, 17, 256, 512),
            ("conv4_2", 8, 17, 512, 512)]
TRAIN_CONVS = [("conv1", 1024, 31, 12, 32), ("conv2", 1024, 15, 32, 32), ("conv3", 1024, 15, 32, 128),
               ("conv4", 1024, 7, 128, 128), ("conv6", 1024, 3, 128, 128)]


def best(f, reps: int) -> float:
    f()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def xla_conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def rates(batch, side, cin, cout, reps, kinds):
    """{kind: (xla GFLOP/s, torch GFLOP/s)} for kinds among forward, input, weight."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, side, side, cin), dtype=np.float32)
    w = (rng.standard_normal((3, 3, cin, cout), dtype=np.float32) / np.sqrt(9 * cin)).astype(np.float32)
    g = rng.standard_normal((batch, side, side, cout), dtype=np.float32)
    jx, jw, jg = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous()
    tg = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    flops = 2 * batch * side * side * cin * cout * 9
    xla = {
        "forward": jax.jit(xla_conv),
        "input": jax.jit(lambda x, w, g: jax.vjp(lambda x: xla_conv(x, w), x)[1](g)[0]),
        "weight": jax.jit(lambda x, w, g: jax.vjp(lambda w: xla_conv(x, w), w)[1](g)[0]),
    }
    ours = {"forward": (jx, jw), "input": (jx, jw, jg), "weight": (jx, jw, jg)}

    def backward(mask):  # what autograd calls for a conv2d's backward
        return lambda: torch.ops.aten.convolution_backward(tg, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

    theirs = {
        "forward": lambda: torch.nn.functional.conv2d(tx, tw, padding=1),
        "input": backward([True, False, False]),
        "weight": backward([False, True, False]),
    }
    out = {}
    with torch.no_grad():
        for kind in kinds:
            f, args = xla[kind], ours[kind]
            t_xla = best(lambda: f(*args).block_until_ready(), reps)
            t_torch = best(theirs[kind], reps)
            out[kind] = (flops / t_xla / 1e9, flops / t_torch / 1e9)
    return out


def table(title, convs, kinds, reps):
    print(f"\n## {title}\n")
    head = " | ".join(f"{k}: XLA / PyTorch GFLOP/s (PyTorch/XLA)" for k in kinds)
    print(f"| conv | batch x side, channels | {head} |")
    print("| --- | --- |" + " --- |" * len(kinds))
    total = {k: [0.0, 0.0] for k in kinds}
    for label, batch, side, cin, cout in convs:
        r = rates(batch, side, cin, cout, reps, kinds)
        flops = 2 * batch * side * side * cin * cout * 9
        cells = []
        for k in kinds:
            a, b = r[k]
            total[k][0] += flops / a / 1e9
            total[k][1] += flops / b / 1e9
            cells.append(f"{a:.0f} / {b:.0f} ({b / a:.2f})")
        print(f"| {label} | {batch} x {side}, {cin} -> {cout} | {' | '.join(cells)} |", flush=True)
    sums = " | ".join(f"{total[k][0]:.3f} / {total[k][1]:.3f} s ({total[k][0] / total[k][1]:.2f})" for k in kinds)
    print(f"| all (seconds) | | {sums} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-train", action="store_true", help="skip the training convnet's shapes")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"# {os.uname().machine}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"jax {jax.__version__} on {jax.default_backend()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    print("\n## fp32 matmul (n x n by n x n)\n")
    print("| n | XLA GFLOP/s | PyTorch GFLOP/s | PyTorch/XLA |")
    print("| --- | --- | --- | --- |")
    for n in (1024, 2048):
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        ja, ta = jnp.asarray(a), torch.from_numpy(a)
        f = jax.jit(lambda m: m @ m)
        t_xla = best(lambda: f(ja).block_until_ready(), args.reps)
        t_torch = best(lambda: torch.mm(ta, ta), args.reps)
        print(f"| {n} | {2 * n**3 / t_xla / 1e9:.0f} | {2 * n**3 / t_torch / 1e9:.0f} | {t_xla / t_torch:.2f} |")
    table("VGG16 AM shapes (8 images, 140 px)", AM_CONVS, ("forward", "input"), args.reps)
    if not args.no_train:
        table("Training convnet shapes (batch 1024)", TRAIN_CONVS, ("forward", "input", "weight"), args.reps)


if __name__ == "__main__":
    main()
