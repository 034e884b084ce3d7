"""Top-k pass throughput: jfv's compiled pass against a plain PyTorch loop doing the same forward passes.

    python benchmarks/top_patches.py --vgg_images=1000 --resnet_images=10000

Two cases of the issue: VGG16 ``conv5_3`` (512 channels) on CIFAR-10 test images at 64 px, and CIFAR
ResNet-20 ``layer3`` (its last block, 64 channels) at 32 px; k = 9, scores max and mean. In one run,
on the same decoded batches held in memory (decoding is measured apart: ``analysis_loader.py``):

- jfv: the recipe's pass, ``jfv.models.stream.run`` of ``top_patches.STEP`` (``topk.Step``: model,
  scores, top-k merge, one compiled program per batch; every image's scores gathered by id on the
  host), over the decoded batches; compile time (``stream.apply`` of the first batch) reported apart.
- PyTorch 2.13 (CPU, its default threads): ``torch.inference_mode``, the same network to the same
  layer (``jfv.models.torch_reference``; weights do not change the speed), max and mean over
  positions, and a running ``torch.topk`` merge.
- jfv streaming from the tar (decoding in a background thread): ``jfv.analysis.passes.run``, the
  recipe's own call less its checkpoints.

Prints a markdown table: images, wall time, images per second, and PyTorch / jfv time ratio; plus the
machine (CPU model, load average before and after). A subset of the 10,000 images is extrapolated
linearly to 10,000 and says so.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import jax
import numpy as np

from jfv.analysis import datasets, passes, topk
from jfv import models
from jfv.models import stream
from jfv.recipes.analysis.top_patches import STEP

FULL = 10_000  # CIFAR-10 test images
K = 9
REDUCTIONS = ("max", "mean")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def decoded(n: int, size: int, batch_size: int) -> list[datasets.PaddedBatch]:
    source = datasets.cifar10("test", per_class=n // 10)
    return list(datasets.batches(source, size, batch_size, prefetch_batches=0))


def jfv_pass(model, layer, batches) -> tuple[float, float, topk.TopK]:
    """(compile + first batch seconds, seconds for the recipe's pass over all batches after, the max state)."""
    states = topk.init_states(model, [layer], K, REDUCTIONS)
    t = time.perf_counter()
    warm, _ = stream.apply(model, STEP, states, batches[0])
    jax.block_until_ready(warm)
    first = time.perf_counter() - t
    n = sum(int(b.mask.sum()) for b in batches)
    t = time.perf_counter()
    state = stream.run(model, STEP, batches, states, n=n)
    jax.block_until_ready(state.carry)
    return first, time.perf_counter() - t, state.carry[layer]["max"]


def jfv_stream(model, layer, n: int, size: int, batch_size: int) -> float:
    source = datasets.cifar10("test", per_class=n // 10)
    states = topk.init_states(model, [layer], K, REDUCTIONS)
    t = time.perf_counter()
    state = passes.run(model, source, STEP, states, size=size, batch_size=batch_size, prefetch=2)
    jax.block_until_ready(state.carry)
    return time.perf_counter() - t


def torch_net(name: str, layer: str):
    import torch

    from jfv.models import torch_reference

    if name == "vgg16":
        net = torch_reference.VGG16().eval()
        stop = [i for i, m in enumerate(net.features) if isinstance(m, torch.nn.Conv2d)][-1]  # conv5_3
        body = torch.nn.Sequential(net.norm, *net.features[: stop + 1])
        return body
    net = torch_reference.build(name)
    return torch.nn.Sequential(net.norm, net.conv1, net.bn1, torch.nn.ReLU(), net.layer1, net.layer2, net.layer3).eval()


def torch_pass(body, batches) -> tuple[float, np.ndarray]:
    """Seconds for all batches (after one warm-up batch) and the max top-k ids."""
    import torch

    def step(state, x, ids, mask):
        a = body(x)  # (n, C, h, w)
        out = []
        for r, (values, kept) in zip(REDUCTIONS, state):
            s = a.amax(dim=(2, 3)) if r == "max" else a.mean(dim=(2, 3))
            s = torch.where(mask[:, None], s, torch.tensor(-float("inf")))
            allv = torch.cat([values, s.T], dim=1)
            alli = torch.cat([kept, ids[None, :].expand(s.shape[1], -1)], dim=1)
            v, order = torch.topk(allv, K, dim=1)
            out.append((v, torch.gather(alli, 1, order)))
        return out

    tensors = [(torch.from_numpy(b.images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(b.ids.astype(np.int64)),
                torch.from_numpy(b.mask)) for b in batches]
    with torch.inference_mode():
        c = body(tensors[0][0]).shape[1]
        fresh = [(torch.full((c, K), -float("inf")), torch.full((c, K), -1, dtype=torch.int64)) for _ in REDUCTIONS]
        step(fresh, *tensors[0])
        state = fresh
        t = time.perf_counter()
        for x, ids, mask in tensors:
            state = step(state, x, ids, mask)
        seconds = time.perf_counter() - t
    return seconds, state[0][1].numpy()


def case(name: str, layer: str, n: int, size: int, batch_size: int, stream: bool) -> list[str]:
    model = models.load(name)
    batches = decoded(n, size, batch_size)
    first, jfv_s, state = jfv_pass(model, layer, batches)
    body = torch_net(name, layer)
    torch_s, _ = torch_pass(body, batches)
    stream_s = jfv_stream(model, layer, n, size, batch_size) if stream else None
    scale = FULL / n
    row = [f"{name} `{layer}` ({model.layers[layer]} ch), {size} px", f"{n:,}", f"{first:.1f}",
           f"{n / jfv_s:,.1f}", f"{jfv_s:.1f}" + (f" (x{scale:g} = {jfv_s * scale:.0f})" if scale != 1 else ""),
           f"{n / torch_s:,.1f}", f"{torch_s:.1f}" + (f" (x{scale:g} = {torch_s * scale:.0f})" if scale != 1 else ""),
           f"{torch_s / jfv_s:.2f}",
           f"{n / stream_s:,.1f}" if stream_s else "-"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vgg_images", type=int, default=1000, help="CIFAR-10 test images for VGG16 (multiple of 10)")
    parser.add_argument("--resnet_images", type=int, default=FULL, help="for ResNet-20 (multiple of 10)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="also time jfv streaming from the tar")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = [case("vgg16", "conv5_3", args.vgg_images, 64, args.batch_size, args.stream),
            case("cifar_resnet20", "layer3", args.resnet_images, 32, args.batch_size, args.stream)]
    load_after = os.getloadavg()
    import torch

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average before {load_before[0]:.2f} "
          f"after {load_after[0]:.2f}; jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), batch {args.batch_size}\n")
    print("| case | images | jfv compile + 1st batch (s) | jfv img/s | jfv wall (s) | PyTorch img/s | PyTorch wall (s) "
          "| PyTorch / jfv time | jfv streaming from the tar, img/s |")
    print("| --- " * 9 + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
