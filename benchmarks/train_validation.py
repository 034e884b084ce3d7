"""The training recipe's figures on a validation split, over seeds: what the whitening fix changes,
and what folding lookahead's last steps in changes.

    python benchmarks/train_validation.py --out=/tmp/jfv_trainval [--seeds=0,1,2] [--epochs=16]
        [--variants=balanced,first5000] [--val_per_class=500]

Each (variant, seed) is one run of the ``train`` recipe (``configs/cifar10_train.py`` with
``val_per_class`` training images of each class held out, AM snapshots off) in its own resumable
workdir ``<out>/<variant>_s<seed>``; re-running the command resumes the unfinished ones and skips the
finished. Variants:

- ``balanced``: the recipe as it is: the whitening layer fitted on 5,000 training images holding
  every class in proportion (``training.class_balanced``);
- ``first5000``: the whitening fitted on the first 5,000 training images, as before the fix (the
  class-major archive makes them all airplanes).

At the end of each run the final lookahead state is finished both ways (the last ``steps % 5`` fast
steps folded in, as the recipe does, and dropped, as airbench does) and each is evaluated on the
validation split (plain and level-2 TTA). Writes ``<out>/results.json`` (one entry a run, appended as
runs finish) and prints a markdown table of validation accuracy, mean ± sd over seeds; the test split
is read by each run once, at its end (``test_accuracy_tta2``), and reported only for the chosen variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import jfv  # noqa: F401  (XLA flags first)
import numpy as np

from configs import cifar10_train
from jfv import training
from jfv.models.resnet import merge_batch_stats
from jfv.recipes.training import train as recipe, train_data

VARIANTS = ("balanced", "first5000")


def finish_both_ways(record: dict, config, data):
    """Wraps ``training.finish_lookahead`` so that the run's last call also scores the other ending."""
    real = training.finish_lookahead

    def finish(state, decay=None, every=training.LOOKAHEAD_EVERY):
        module, _ = recipe.build_module(config)
        eval_module = module.clone(train=False)
        plain = training.make_eval(lambda p, x: eval_module.apply({"params": p}, x), tta=0)
        tta = training.make_eval(lambda p, x: eval_module.apply({"params": p}, x), tta=2)
        x, y = data.val
        for name, d in (("folded", decay), ("dropped", None)):
            st = real(state, d, every)
            params = merge_batch_stats(st.params, st.batch_stats)
            record[f"val_accuracy_{name}"] = training.evaluate(plain, params, x, y).accuracy
            record[f"val_accuracy_tta2_{name}"] = training.evaluate(tta, params, x, y).accuracy
        record["pending_steps"] = int(state.step) % every
        return real(state, decay, every)

    return finish


def run_one(out: Path, variant: str, seed: int, epochs: int, val_per_class: int) -> dict:
    config = cifar10_train.get_config()
    config.seed, config.epochs, config.val_per_class = seed, epochs, val_per_class
    config.am_steps, config.progress = 0, False
    workdir = out / f"{variant}_s{seed}"
    record = {"variant": variant, "seed": seed, "epochs": epochs, "val_per_class": val_per_class}
    data = train_data.load_data(config)
    real_balanced, real_finish = training.class_balanced, training.finish_lookahead
    if variant == "first5000":
        training.class_balanced = lambda labels, n, seed=0: np.arange(min(int(n), len(labels)))
    training.finish_lookahead = finish_both_ways(record, config, data)
    t0 = time.time()
    try:
        manifest = recipe.run(config, str(workdir))
    finally:
        training.class_balanced, training.finish_lookahead = real_balanced, real_finish
    last = manifest["epochs"][-1]
    record.update({k: last.get(k) for k in ("val_accuracy", "val_accuracy_tta2", "test_accuracy", "test_accuracy_tta2")})
    record["train_seconds"] = round(sum(r["seconds"] for r in manifest["epochs"]), 1)
    record["wall_seconds_this_call"] = round(time.time() - t0, 1)
    return record


def table(results: list[dict]) -> str:
    lines = ["| variant | seeds | val acc (plain) | val acc (TTA 2) | val TTA 2, last steps dropped | test acc (TTA 2) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant in VARIANTS:
        rs = [r for r in results if r["variant"] == variant]
        if not rs:
            continue

        def ms(key):
            v = np.asarray([r[key] for r in rs if r.get(key) is not None], np.float64) * 100
            if not len(v):
                return "-"
            return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v[0]:.2f}"

        lines.append(f"| {variant} | {','.join(str(r['seed']) for r in rs)} | {ms('val_accuracy')} | "
                     f"{ms('val_accuracy_tta2')} | {ms('val_accuracy_tta2_dropped')} | {ms('test_accuracy_tta2')} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--val_per_class", type=int, default=500)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    for seed in seeds:  # seed-major: both variants of a seed before the next seed
        for variant in variants:
            if variant not in VARIANTS:
                sys.exit(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
            if any(r["variant"] == variant and r["seed"] == seed and r["epochs"] == args.epochs for r in results):
                continue
            record = run_one(out, variant, seed, args.epochs, args.val_per_class)
            results.append(record)
            results_path.write_text(json.dumps(results, indent=1))
            print(json.dumps(record), flush=True)
    print(table([r for r in results if r["epochs"] == args.epochs]))


if __name__ == "__main__":
    main()
