"""Forward and activation-maximisation-step throughput of ResNet-50 against VGG16, 224 px, batch 8.

    PYTHONPATH=. python benchmarks/models_throughput.py [--batch=8 --size=224 --repeats=5]

Random weights (throughput does not depend on them). "forward" is the jitted apply returning every
named activation; "AM step" is ``jax.value_and_grad`` of ``channel(layer, 0)`` with respect to the
input images, the inner step of ``jfv.optvis.render``. Both models are timed in one process, alternating,
so that the ratio is measured under the same load (the CPU is shared with other jobs): report the
ratio before the absolute numbers. Median of ``--repeats`` timed calls after one compiling call.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp

from jfv import models
from jfv.optvis import objectives

CASES = (("resnet50", "layer4"), ("vgg16_classifier", "conv5_3"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    x = jax.random.uniform(jax.random.key(0), (args.batch, args.size, args.size, 3))
    programs = {}
    for name, layer in CASES:
        model = models.load(name, pretrained=False)
        objective = objectives.channel(layer, 0)
        # params are arguments, never closed over: as constants XLA would fold the input-independent
        # half of the backward pass at compile time and time a different program.
        forward = jax.jit(model.apply)
        step = jax.jit(jax.value_and_grad(lambda im, p, m=model, o=objective: o(m.apply(p, im))))
        for kind, fn in (("forward", lambda im, f=forward, p=model.params: f(p, im)),
                         ("AM step", lambda im, f=step, p=model.params: f(im, p))):
            t = time.perf_counter()
            jax.block_until_ready(fn(x))
            print(f"{name} {kind}: compiled and ran once in {time.perf_counter() - t:.1f} s", flush=True)
            programs[(name, kind)] = fn
    times = {key: [] for key in programs}
    for _ in range(args.repeats):
        for key, fn in programs.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(x))
            times[key].append(time.perf_counter() - t)
    print(f"\nJAX {jax.__version__}, {platform.processor() or platform.machine()}, {jax.devices()[0].device_kind}, "
          f"batch {args.batch}, {args.size} px, median of {args.repeats}\n")
    print("| model | forward (img/s) | AM step (img/s) |\n| --- | --- | --- |")
    rate = {key: args.batch / statistics.median(v) for key, v in times.items()}
    for name, _ in CASES:
        print(f"| {name} | {rate[(name, 'forward')]:.2f} | {rate[(name, 'AM step')]:.2f} |")
    for kind in ("forward", "AM step"):
        print(f"ResNet-50 / VGG16 {kind} throughput ratio: {rate[('resnet50', kind)] / rate[('vgg16_classifier', kind)]:.2f}")


if __name__ == "__main__":
    main()
