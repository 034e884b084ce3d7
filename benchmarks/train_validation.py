"""The training recipe's figures on a validation split, over seeds: what the whitening fix changes,
what folding lookahead's last steps in changes, and what each of the recipe's levers is worth.

    python benchmarks/train_validation.py --out=/tmp/jfv_trainval [--seeds=0,1,2] [--epochs=16]
        [--variants=balanced,first5000,linear,...] [--val_per_class=500]

Each (variant, seed) is one run of the ``train`` recipe (``configs/cifar10_train.py`` with
``val_per_class`` training images of each class held out, AM snapshots off) in its own resumable
workdir ``<out>/<variant>_s<seed>``; re-running the command resumes the unfinished ones and skips the
finished. Variants:

- ``balanced``: the recipe as it is: the whitening layer fitted on 5,000 training images holding
  every class in proportion (``training.class_balanced``);
- ``first5000``: the whitening fitted on the first 5,000 training images, as before the fix (the
  class-major archive makes them all airplanes);
- one lever of the recipe turned back, everything else as ``balanced``: ``linear`` (the linear
  whitening layer, ``whiten_split=False``), ``bias_trained`` (the split layer's bias trains every
  epoch instead of holding after 3), ``no_lookahead`` (``lookahead=False``), ``bn01`` (BatchNorm's
  running statistics at momentum 0.1, torch's default, instead of 0.4).

Test-time augmentation needs no training run: every finished run's saved network is also scored on
the validation split at each TTA level (0 none, 1 mirror, 2 mirror and 1-pixel shifts).

At the end of each run the final lookahead state is finished both ways (the last ``steps % 5`` fast
steps folded in, as the recipe does, and dropped, as airbench does) and each is evaluated on the
validation split (plain and level-2 TTA). Writes ``<out>/results.json`` (one entry a run, appended as
runs finish) and prints a markdown table of validation accuracy, mean ± sd over seeds; the test split
is read by each run once, at its end (``test_accuracy_tta2``), and reported only for the chosen variant.

``--recorded`` (default ``benchmarks/train_validation_recorded.json``) holds runs recorded in
``benchmarks/train.md`` whose workdirs are gone: a (variant, seed) there that ``<out>`` lacks joins
the table, marked ``recorded``, so a later session's variants still pair with the recipe's seeds.
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
from jfv.models import convnet
from jfv.models.resnet import merge_batch_stats
from jfv.recipes.training import train as recipe, train_data

# variant -> the config keys it changes from the recipe's defaults (None: the run's epoch count)
VARIANTS = {
    "balanced": {},
    "first5000": {},
    "linear": {"whiten_split": False},
    "bias_trained": {"whiten_bias_epochs": None},
    "no_lookahead": {"lookahead": False},
    "bn01": {},
}
BN_MOMENTA = {"bn01": 0.1}  # variant -> convnet.BN_MOMENTUM for its run (the recipe: 0.4)


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
    for key, value in VARIANTS[variant].items():
        config[key] = epochs if value is None else value
    workdir = out / f"{variant}_s{seed}"
    record = {"variant": variant, "seed": seed, "epochs": epochs, "val_per_class": val_per_class}
    data = train_data.load_data(config)
    real_balanced, real_finish, real_bn = training.class_balanced, training.finish_lookahead, convnet.BN_MOMENTUM
    if variant == "first5000":
        training.class_balanced = lambda labels, n, seed=0: np.arange(min(int(n), len(labels)))
    training.finish_lookahead = finish_both_ways(record, config, data)
    convnet.BN_MOMENTUM = BN_MOMENTA.get(variant, real_bn)
    t0 = time.time()
    try:
        manifest = recipe.run(config, str(workdir))
    finally:
        training.class_balanced, training.finish_lookahead = real_balanced, real_finish
        convnet.BN_MOMENTUM = real_bn
    last = manifest["epochs"][-1]
    record.update({k: last.get(k) for k in ("val_accuracy", "val_accuracy_tta2", "test_accuracy", "test_accuracy_tta2")})
    record["train_seconds"] = round(sum(r["seconds"] for r in manifest["epochs"]), 1)
    record["wall_seconds_this_call"] = round(time.time() - t0, 1)
    record.update(tta_levels(workdir, data))
    return record


def tta_levels(workdir: Path, data) -> dict:
    """The run's saved network scored on the validation split at every TTA level."""
    model = convnet.load(weights_dir=workdir)
    apply = lambda p, x: model.module.apply({"params": p}, x)  # noqa: E731
    x, y = data.val
    return {f"val_tta{level}": training.evaluate(training.make_eval(apply, tta=level), model.params, x, y).accuracy
            for level in training.TTA_LEVELS}


RECORDED = Path(__file__).with_name("train_validation_recorded.json")


def with_recorded(results: list[dict], recorded: list[dict]) -> list[dict]:
    """``results`` plus each recorded run whose (variant, seed, epochs) ``results`` lacks, marked."""
    have = {(r["variant"], r["seed"], r["epochs"]) for r in results}
    return results + [dict(r, recorded=True) for r in recorded
                      if (r["variant"], r["seed"], r["epochs"]) not in have]


def table(results: list[dict]) -> str:
    """Mean ± sd over seeds of each variant's validation accuracy (percent), the paired difference
    from ``balanced`` (the recipe) by seed, and the test accuracy each run read once."""
    lines = ["| variant | seeds | val TTA 0 | val TTA 1 | val TTA 2 | val TTA 2 - recipe's, paired | "
             "val TTA 2, last steps dropped | test acc (TTA 2) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    base = {r["seed"]: r for r in results if r["variant"] == "balanced"}

    def ms(values):
        values = list(values)
        v = np.asarray([x for x in values if x is not None], np.float64) * 100
        if not len(v):
            return "-"
        text = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v[0]:.2f}"
        return text if len(v) == len(values) else f"{text} (n={len(v)})"  # a recorded run lacks it

    for variant in VARIANTS:
        rs = sorted((r for r in results if r["variant"] == variant), key=lambda r: r["seed"])
        if not rs:
            continue
        val2 = lambda r: r.get("val_tta2", r.get("val_accuracy_tta2"))  # noqa: E731
        diff = [val2(r) - val2(base[r["seed"]]) for r in rs if variant != "balanced" and r["seed"] in base]
        old = [str(r["seed"]) for r in rs if r.get("recorded")]
        name = variant + (f" (seed{'s' * (len(old) > 1)} {','.join(old)} recorded)" if old else "")
        lines.append(f"| {name} | {','.join(str(r['seed']) for r in rs)} | {ms(r.get('val_tta0') for r in rs)} | "
                     f"{ms(r.get('val_tta1') for r in rs)} | {ms(val2(r) for r in rs)} | {ms(diff) if diff else '-'} | "
                     f"{ms(r.get('val_accuracy_tta2_dropped') for r in rs)} | {ms(r.get('test_accuracy_tta2') for r in rs)} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--val_per_class", type=int, default=500)
    ap.add_argument("--recorded", default=str(RECORDED),
                    help="JSON list of recorded runs that join the table where <out> lacks them ('' for none)")
    args = ap.parse_args(argv)
    if args.recorded and not Path(args.recorded).is_file():  # before hours of training, not after
        sys.exit(f"no recorded runs at {args.recorded}; pass --recorded='' to table this folder's runs alone")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    recorded = json.loads(Path(args.recorded).read_text()) if args.recorded else []
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    for variant in variants:
        if variant not in VARIANTS:
            sys.exit(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    scored = [r for r in results if "val_tta1" not in r and (out / f"{r['variant']}_s{r['seed']}").is_dir()]
    if scored:  # runs finished before TTA levels were recorded: score their saved networks now
        config = cifar10_train.get_config()
        config.val_per_class = scored[0]["val_per_class"]
        data = train_data.load_data(config)
        for r in scored:
            r.update(tta_levels(out / f"{r['variant']}_s{r['seed']}", data))
        results_path.write_text(json.dumps(results, indent=1))
    for seed in seeds:  # seed-major: both variants of a seed before the next seed
        for variant in variants:
            if any(r["variant"] == variant and r["seed"] == seed and r["epochs"] == args.epochs for r in results):
                continue
            record = run_one(out, variant, seed, args.epochs, args.val_per_class)
            results.append(record)
            results_path.write_text(json.dumps(results, indent=1))
            print(json.dumps(record), flush=True)
    print(table([r for r in with_recorded(results, recorded) if r["epochs"] == args.epochs]))


if __name__ == "__main__":
    main()
