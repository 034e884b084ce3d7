"""Training throughput of the default CIFAR-10 convnet: jfv's jitted step against a PyTorch loop.

    python benchmarks/train_throughput.py [--widths=32,128,128] [--batch=1024] [--steps=6] [--no-torch]
                                          [--first=split-held|split|linear]

In one run it measures, on random uint8 images (throughput does not depend on the data):

- the machine's fp32 matmul rate (a jitted 2048^3 matmul), the reference every figure is read against;
- jfv: images per second of ``jfv.training.make_step`` (augmentation, forward, backward, SGD with the
  recipe's parameter groups) with the default XLA flags jfv sets, and in a fresh process with
  ``JFV_KEEP_XLA_FLAGS=1`` (XLA's own CPU defaults: convolutions through the YNNPACK fusion);
- PyTorch: the same network (whitening, blocks of conv-pool-BN-ReLU-conv-BN-ReLU, global max,
  linear / 9), the same augmentation (reflect-padded random 2-px translate, random mirror), the same
  loss and Nesterov SGD, in NCHW and in channels_last memory format; torch uses every core;
- compile time of jfv's step.

``--first`` picks the first layer on both sides: ``split-held`` (the recipe's default after its
third epoch: whitening of both signs, a bias held fixed, a ReLU), ``split`` (the same with the bias
training, the first three epochs) or ``linear`` (12 whitened channels straight into conv1).

Prints a markdown table to paste into ``benchmarks/train.md``.
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

import jfv  # noqa: F401  (XLA flags first)
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.am_throughput import matmul_rate  # the same reference in every benchmark


FIRST_LAYERS = ("split-held", "split", "linear")


def jfv_rate(widths, batch: int, steps: int, first: str = "split-held") -> dict:
    from jfv import training
    from jfv.models import convnet

    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (batch * 2, 32, 32, 3), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, batch * 2).astype(np.int32))
    module = convnet.ConvNet(widths=tuple(widths), whiten_split=first != "linear", train=True)
    params = convnet.initialise(module, jax.random.key(0), np.asarray(images[:512]))
    tx = training.optimiser(training.lr_schedule("triangular", 1.3, 100), 0.85, True, 0.00153, 64.0,
                         frozen=("whiten/kernel",), plain=("whiten/bias",), freeze_bn_scale=True)
    state = training.init_state(module, jax.random.key(0), tx, params=params)
    step = training.make_step(module, tx, 0.2, 2, True, hold=("whiten/bias",) if first == "split-held" else ())
    idx = jnp.arange(batch, dtype=jnp.int32)
    t = time.perf_counter()
    compiled = step.lower(state, images, labels, idx, training.batch_key(0, 0, 0)).compile()
    compile_s = time.perf_counter() - t
    state, (loss, _) = compiled(state, images, labels, idx, training.batch_key(0, 0, 0))
    loss.block_until_ready()
    t = time.perf_counter()
    for i in range(steps):
        state, (loss, _) = compiled(state, images, labels, idx, training.batch_key(0, 0, i + 1))
    loss.block_until_ready()
    return {"images_per_s": batch * steps / (time.perf_counter() - t), "compile_s": compile_s}


def torch_rate(widths, batch: int, steps: int, channels_last: bool, first: str = "split-held") -> float:
    import torch
    from torch import nn
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(cout),
                             nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    if first == "linear":
        layers, c = [nn.Conv2d(3, 12, 2, bias=False)], 12
    else:
        layers, c = [nn.Conv2d(3, 24, 2, bias=True), nn.ReLU()], 24
    for w in widths:
        layers.append(block(c, w))
        c = w
    net = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, 10, bias=False))
    net[0].weight.requires_grad_(False)
    if first == "split-held":
        net[0].bias.requires_grad_(False)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    bn = [p for n, p in net.named_parameters() if p.requires_grad and p.ndim == 1]
    rest = [p for n, p in net.named_parameters() if p.requires_grad and p.ndim > 1]
    opt = torch.optim.SGD([{"params": rest, "lr": 1.3, "weight_decay": 0.00153},
                           {"params": bn, "lr": 1.3 * 64, "weight_decay": 0.00153 / 64}], momentum=0.85, nesterov=True)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 10, batch))
    mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
    std = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)

    def step():
        x = images.permute(0, 3, 1, 2).float() / 255
        padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
        shifts = torch.randint(0, 5, (batch, 2))
        out = torch.empty_like(x)
        for dy in range(5):  # airbench's batch_crop: one slice per distinct shift
            for dx in range(5):
                m = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                out[m] = padded[m, :, dy:dy + 32, dx:dx + 32]
        flip = torch.rand(batch) < 0.5
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
        out = ((out - mean) / std).contiguous(memory_format=fmt)
        loss = F.cross_entropy(net(out) / 9, labels, label_smoothing=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", default="32,128,128")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--first", choices=FIRST_LAYERS, default="split-held")
    ap.add_argument("--only-jfv", action="store_true", help=argparse.SUPPRESS)  # the fresh-process child
    a = ap.parse_args()
    widths = [int(w) for w in a.widths.split(",")]
    if a.only_jfv:
        print(json.dumps(jfv_rate(widths, a.batch, a.steps, a.first)))
        return
    rate = matmul_rate()
    ours = jfv_rate(widths, a.batch, a.steps, a.first)
    env = dict(os.environ, JFV_KEEP_XLA_FLAGS="1")
    env.pop("XLA_FLAGS", None)
    child = subprocess.run([sys.executable, __file__, f"--widths={a.widths}", f"--batch={a.batch}",
                            f"--steps={a.steps}", f"--first={a.first}", "--only-jfv"], env=env, capture_output=True, text=True, check=True)
    xla_default = json.loads(child.stdout.strip().splitlines()[-1])
    rows = [("jfv (jfv's XLA flags)", ours["images_per_s"]), ("jfv (XLA's CPU defaults: YNNPACK convs)",
                                                             xla_default["images_per_s"])]
    if not a.no_torch:
        import torch

        rows += [(f"PyTorch {torch.__version__} NCHW", torch_rate(widths, a.batch, a.steps, False, a.first)),
                 (f"PyTorch {torch.__version__} channels_last", torch_rate(widths, a.batch, a.steps, True, a.first))]
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}; "
          f"fp32 matmul {rate / 1e9:.1f} GFLOP/s; convnet widths {a.widths}, first layer {a.first}, batch {a.batch}, "
          f"{a.steps} timed steps")
    print(f"# jfv step compile: {ours['compile_s']:.2f} s\n")
    print("| loop | images/s | vs jfv |\n| --- | --- | --- |")
    for name, r in rows:
        print(f"| {name} | {r:.0f} | {r / ours['images_per_s']:.2f} |")


if __name__ == "__main__":
    main()
