"""The two-alternative test's LPIPS distances: each image through LPIPS's backbone once (jfv since
2026-12-07: ``lpips_features`` + ``lpips_between``) against once per pair (before: ``lpips_pairs`` on
every (reference, query) pair), on the ``score`` recipe's default shapes, with the distances compared.

    python benchmarks/trust_lpips.py [--channels=8] [--refs=1] [--tail=20] [--swaps=7] [--size=128]
        [--net=alexnet] [--repeats=2]

The swap control answers each channel's test with ``swaps`` other channels' references: per pair that
is 2 x channels x swaps x refs x 2 tail backbone passes; per image, channels x (swaps x refs + 2 tail).
Prints seconds (best of ``repeats``, after one compiling call) and the largest difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import jfv  # noqa: F401  (XLA flags first)
import jax
import jax.numpy as jnp
import numpy as np

from jfv.evaluation import trust


def per_pair(references, queries, net, batch):
    """The distances as jfv computed them before: the backbone on both images of every pair."""
    c, r = references.shape[:2]
    q = queries.shape[1]
    a = jnp.broadcast_to(references[:, :, None], (c, r, q) + references.shape[2:]).reshape((-1,) + references.shape[2:])
    b = jnp.broadcast_to(queries[:, None], (c, r, q) + queries.shape[2:]).reshape((-1,) + queries.shape[2:])
    return trust.lpips_pairs(a, b, net, batch).reshape(c, r, q)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--refs", type=int, default=1)
    ap.add_argument("--tail", type=int, default=20)
    ap.add_argument("--swaps", type=int, default=7)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--net", default="alexnet")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    c, m, s = args.channels, min(args.swaps, args.channels - 1), args.size
    refs = jnp.asarray(rng.uniform(size=(c, args.refs, s, s, 3)), jnp.float32)
    queries = jnp.asarray(rng.uniform(size=(c, 2 * args.tail, s, s, 3)), jnp.float32)
    others = np.stack([np.roll(np.arange(c), -k)[1 : m + 1] for k in range(c)])  # (C, M)

    def workload(distances):
        own = distances(refs, queries, args.net, trust.LPIPS_BATCH)
        swapped = [distances(refs[others[i]].reshape((1, -1, s, s, 3)), queries[i][None], args.net, trust.LPIPS_BATCH)
                   for i in range(c)]
        return jax.block_until_ready((own, jnp.stack(swapped)))

    results, seconds = {}, {}
    for name, fn in (("per image", trust.reference_distance_matrix), ("per pair", per_pair)):
        results[name] = workload(fn)  # compiles
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            workload(fn)
            times.append(time.perf_counter() - t)
        seconds[name] = min(times)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(results["per image"], results["per pair"]))
    pairs = c * args.refs * 2 * args.tail * (1 + m)
    print(f"{c} channels x {args.refs} refs, tails of {args.tail}, {m} swaps, {s} px, LPIPS {args.net}: {pairs} distances")
    print(f"backbone passes: per pair {2 * pairs}, per image {c * (args.refs + 2 * args.tail) + c * (m * args.refs + 2 * args.tail)}")
    for name in seconds:
        print(f"{name}: {seconds[name]:.2f} s")
    print(f"speed-up: {seconds['per pair'] / seconds['per image']:.1f}x; largest difference {diff:.2e}")


if __name__ == "__main__":
    main()
