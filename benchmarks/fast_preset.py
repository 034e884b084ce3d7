"""How many steps does a feature visualisation need? The study behind ``preset=fast`` (issue 30).

    python benchmarks/fast_preset.py --out=/tmp/jfv_fast [--vgg_channels=4] [--resnet_channels=32]
        [--seeds=0,1] [--budget=128] [--ref_steps=512] [--layers=vgg16:conv3_3,...] [--candidates=round2]
    python benchmarks/fast_preset.py --out=/tmp/jfv_fast --time_only=fast

For each layer (VGG16 conv3_3, conv4_3, conv5_3 at 128 px; CIFAR ResNet-20's last block ``layer3`` at
32 px, with Lucid's transforms scaled to the image), a fixed random set of channels (seeded by the
layer's name) and each seed:

1. **Reference.** Lucid's recipe (Fourier + decorrelated colour, standard transforms, Adam 0.05) for
   ``ref_steps`` steps, with snapshots at 32, 64, 128, 256: these are the "lucid@N" candidates.
2. **Candidates** (``CANDIDATES``) at ``budget`` steps: optax schedules (warm-up + cosine, one-cycle,
   higher peaks), optimisers (NAdam, Lion) and a progressive start (the model sees a half-size image
   for the first half of the steps, a quarter of the cost), with snapshots at each quarter.
3. **Measures** of every image against the reference of the same channel and seed:
   (i) objective (the channel objective of the untransformed image) / the reference's;
   (ii) LPIPS (AlexNet) to the reference, against the reference's own seed-to-seed LPIPS;
   (iii) trust: high-frequency energy, the two-alternative test and the processing-path gap (natural
   images: ../shared/data/images for VGG16, 500 CIFAR-10 test images for ResNet-20).
   Wall time: seconds per channel from the median step time of each stage, measured in this run.

Choosing: the channels of each layer are split in two halves (even and odd positions). A candidate
passes when, over the *choosing* half (all layers and seeds pooled): median objective ratio >= 0.95;
median LPIPS to the reference <= median seed-to-seed LPIPS of the references; and each trust measure
is not worse than the reference's (the 95% bootstrap interval of the median paired difference does not
lie wholly on the worse side). The fastest passing candidate wins; its numbers are then reported on
the *held-out* half. Each layer's renders are saved in ``out`` (``<model>_<layer>.npz``) and reused by a
re-run, so a killed study continues. Writes ``out/results.json``, ``out/table.md`` and plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import jax
import numpy as np

from jfv import evaluation, models
from jfv.analysis import datasets, passes
from jfv.optvis import objectives, parameterisations, transforms
from jfv.optvis.presets import Preset, render_staged

REF_SNAPSHOTS = (32, 64, 128, 256)
LAYERS = {"vgg16": (("conv3_3", "conv4_3", "conv5_3"), 128), "cifar_resnet20": (("layer3",), 32)}
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
OBJECTIVE_TARGET = 0.95
TRIALS, TAIL = 100, 20


def candidates(budget: int) -> dict[str, Preset]:
    """The candidates at ``budget`` steps (names: optimiser, schedule, peak learning rate). Round 1 (low
    peaks decaying to 2%) lost to Lucid's recipe on conv3_3 and the 32 px pilot; round 2, the default,
    has the higher peaks the pilot favoured (``benchmarks/fast_preset.md``)."""
    b = budget
    round1 = {
        "adam-cosine-0.1": Preset("adam-cosine-0.1", b, "adam", 0.1, "cosine", warmup=0.05, end=0.02),
        "adam-cosine-0.2": Preset("adam-cosine-0.2", b, "adam", 0.2, "cosine", warmup=0.05, end=0.02),
        "adam-onecycle-0.15": Preset("adam-onecycle-0.15", b, "adam", 0.15, "onecycle"),
        "nadam-cosine-0.1": Preset("nadam-cosine-0.1", b, "nadam", 0.1, "cosine", warmup=0.05, end=0.02),
        "lion-cosine-0.02": Preset("lion-cosine-0.02", b, "lion", 0.02, "cosine", warmup=0.05, end=0.02),
        "adam-cosine-0.1-halfstart": Preset("adam-cosine-0.1-halfstart", b, "adam", 0.1, "cosine", warmup=0.05,
                                            end=0.02, start_size=0.5, start_steps=0.5),
    }
    round2 = {  # the higher peaks the 32 px pilot favoured; run on conv3_3 only
        "adam-cosine-0.4": Preset("adam-cosine-0.4", b, "adam", 0.4, "cosine", warmup=0.05, end=0.5),
        "adam-cosine-0.8": Preset("adam-cosine-0.8", b, "adam", 0.8, "cosine", warmup=0.05, end=0.25),
        "adam-onecycle-0.6": Preset("adam-onecycle-0.6", b, "adam", 0.6, "onecycle"),
        "adam-cosine-0.4-halfstart": Preset("adam-cosine-0.4-halfstart", b, "adam", 0.4, "cosine", warmup=0.05,
                                            end=0.5, start_size=0.5, start_steps=0.5),
    }
    final = {  # round 2's best two on conv3_3's choosing half, one-cycle peaks either side, and 1.5x the budget
        "adam-onecycle-0.6": round2["adam-onecycle-0.6"],
        "adam-cosine-0.4": round2["adam-cosine-0.4"],
        "adam-onecycle-0.4": Preset("adam-onecycle-0.4", b, "adam", 0.4, "onecycle"),
        "adam-onecycle-0.8": Preset("adam-onecycle-0.8", b, "adam", 0.8, "onecycle"),
        "adam-onecycle-1.0": Preset("adam-onecycle-1.0", b, "adam", 1.0, "onecycle"),
        f"adam-onecycle-0.6-{b * 3 // 2}": Preset(f"adam-onecycle-0.6-{b * 3 // 2}", b * 3 // 2, "adam", 0.6, "onecycle"),
        f"adam-onecycle-0.8-{b * 3 // 2}": Preset(f"adam-onecycle-0.8-{b * 3 // 2}", b * 3 // 2, "adam", 0.8, "onecycle"),
    }
    return {"round1": round1, "round2": round2, "final": final}


def layer_transforms(size: int) -> transforms.Transform:
    """Lucid's standard transforms, their pixel amounts scaled to a ``size`` px image (128: unchanged)."""
    if size == 128:
        return transforms.standard()
    f = size / 128
    return transforms.compose(transforms.Pad(max(1, round(12 * f)), mode="constant", value=0.5),
                              transforms.Jitter(max(1, round(8 * f))), transforms.RandomScale(transforms.STANDARD_SCALES),
                              transforms.RandomRotate(transforms.STANDARD_ANGLES), transforms.Jitter(max(1, round(4 * f))))


def pick_channels(model, layer: str, k: int) -> list[int]:
    n = int(model.check_layer(layer))  # the layer's channel count
    rng = np.random.default_rng(sum(map(ord, f"{model.name}:{layer}")))
    return sorted(int(c) for c in rng.choice(n, size=min(k, n), replace=False))


def render_layer(model, layer: str, size: int, channels: list[int], seeds: list[int], budget: int, ref_steps: int,
                 cands: dict[str, Preset], cache: Path) -> dict:
    """Every image of one layer: {"images"|"objective"|"seconds": {(label, seed): ...}}. Each run (recipe,
    seed) is saved in ``cache`` as it finishes and reused by a re-run, so a killed study continues."""
    tf = layer_transforms(size)
    param = parameterisations.image(size)
    objective_fn = lambda c: objectives.channel(layer, c)  # noqa: E731
    out: dict = {"images": {}, "objective": {}, "seconds": {}}
    lucid = Preset("lucid", ref_steps)
    todo = [("lucid", lucid, REF_SNAPSHOTS + (ref_steps,))] + [
        (name, p, tuple(p.steps * q // 4 for q in (1, 2, 3, 4))) for name, p in cands.items()]
    for name, preset, shots in todo:
        for seed in seeds:
            path = cache / f"{model.name}_{layer}_{name}_s{seed}.npz"
            if path.exists():
                run = load_run(path)
            else:
                t0 = time.time()
                steps = preset.steps
                stages = preset.stages(tf, steps, size)
                _, info = render_staged(model, objective_fn, param, stages, preset.optimiser_for(steps), channels,
                                        jax.random.key(seed), batch_size=len(channels), snapshots=shots)
                ends = [e for _, e in stages]
                run = {}
                for step, (imgs, obj) in info["snapshots"].items():
                    # seconds per channel to reach ``step``: each stage's steps up to it x its median step time
                    upto = np.clip(np.minimum(ends, step) - np.concatenate([[0], ends[:-1]]), 0, None)
                    run[step] = (np.asarray(imgs[:, 0], np.float32), np.asarray(obj, np.float32),
                                 float(np.dot(upto, info["step_seconds"])) / len(channels))
                save_run(path, run, channels)
                print(f"  {layer} {name} seed {seed}: {time.time() - t0:.0f} s wall, "
                      f"{run[max(run)][2]:.2f} s/channel (steady state)", flush=True)
            for step, (imgs, obj, secs) in run.items():
                label = f"lucid@{step}" if name == "lucid" else f"{name}@{step}"
                out["images"][(label, seed)], out["objective"][(label, seed)] = imgs, obj
                out["seconds"][(label, seed)] = secs
    return out


def save_run(path: Path, run: dict, channels: list[int]) -> None:
    arrays = {"channels": np.asarray(channels)}
    for step, (imgs, obj, secs) in run.items():
        arrays[f"images_{step}"], arrays[f"objective_{step}"], arrays[f"seconds_{step}"] = imgs, obj, np.float64(secs)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_run(path: Path) -> dict:
    z = np.load(path)
    steps = sorted(int(k.split("_")[1]) for k in z.files if k.startswith("images_"))
    return {s: (z[f"images_{s}"], z[f"objective_{s}"], float(z[f"seconds_{s}"])) for s in steps}


def natural_for(model, layer: str, size: int, channels: list[int]):
    path_layers = evaluation.layers_up_to(model, layer)
    if model.name.startswith("cifar"):
        source = datasets.cifar10("test", per_class=50, archive=SHARED / "data" / "cifar10" / "cifar10-jpeg.tar.gz")
    else:
        source = datasets.image_folder(SHARED / "data" / "images")
    return passes.natural_pass(model, source, layer, channels, path_layers, size, 32), path_layers


def measure_layer(model, layer: str, channels: list[int], seeds: list[int], ref_steps: int, budget: int,
                  rendered: dict, natural, path_layers) -> list[dict]:
    """One row per (label, seed, channel) with every measure."""
    rows = []
    ref_label = f"lucid@{ref_steps}"
    finals: dict[str, int] = {}  # each recipe's last step: its trust measures are taken there
    for label, _ in rendered["images"]:
        name, step = label.rsplit("@", 1)
        finals[name] = max(finals.get(name, 0), int(step))
    for (label, seed), imgs in rendered["images"].items():
        ref = rendered["images"][(ref_label, seed)]
        ref_obj = rendered["objective"][(ref_label, seed)]
        lp = np.asarray(evaluation.lpips(imgs, ref))
        hf = np.asarray(evaluation.high_frequency_energy(imgs))
        name, step = label.rsplit("@", 1)
        trust = None
        if label in (ref_label, "lucid@64", "lucid@128", "lucid@256") or name != "lucid" and int(step) == finals[name]:
            trust = evaluation.visualisation_measures(jax.random.key(7), model, path_layers, imgs, list(range(len(channels))),
                                                      channels, natural, trials=TRIALS, tail=TAIL)
        for i, c in enumerate(channels):
            row = {"model": model.name, "layer": layer, "label": label, "seed": seed, "channel": c,
                   "half": "choose" if i % 2 == 0 else "report", "objective": float(rendered["objective"][(label, seed)][i]),
                   "objective_ratio": float(rendered["objective"][(label, seed)][i] / ref_obj[i]),
                   "lpips_to_ref": float(lp[i]), "hf_energy": float(hf[i]), "seconds": rendered["seconds"][(label, seed)]}
            if trust is not None:
                row["two_afc"] = float(trust.two_afc[i])
                row["path_gap"] = float(np.asarray(trust.path.gap)[i])
            rows.append(row)
    if len(seeds) >= 2:  # seed-to-seed LPIPS of the references: every pair of seeds
        for a in range(len(seeds)):
            for b in range(a + 1, len(seeds)):
                d = np.asarray(evaluation.lpips(rendered["images"][(ref_label, seeds[a])], rendered["images"][(ref_label, seeds[b])]))
                for i, c in enumerate(channels):
                    rows.append({"model": model.name, "layer": layer, "label": "seed-to-seed", "seed": f"{seeds[a]}-{seeds[b]}",
                                 "channel": c, "half": "choose" if i % 2 == 0 else "report", "lpips_to_ref": float(d[i])})
    return rows


# -- choosing and reporting ---------------------------------------------------------------------------

BETTER = {"hf_energy": -1, "two_afc": +1, "path_gap": +1}  # which direction is better


def paired_ci(diff: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(diff, size=(reps, len(diff)), replace=True), axis=1)
    return float(np.median(diff)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def summarise(rows: list[dict], half: str, ref_label: str, models_filter=None) -> dict[str, dict]:
    sel = [r for r in rows if r["half"] == half and (models_filter is None or r["model"] in models_filter)]
    s2s = [r["lpips_to_ref"] for r in sel if r["label"] == "seed-to-seed"]
    refs = {(r["model"], r["layer"], r["seed"], r["channel"]): r for r in sel if r["label"] == ref_label}
    out = {}
    for label in sorted({r["label"] for r in sel} - {"seed-to-seed"}, key=lambda l: (l.split("@")[0], int(l.split("@")[1]))):
        rs = [r for r in sel if r["label"] == label]
        ratio = np.array([r["objective_ratio"] for r in rs])
        lp = np.array([r["lpips_to_ref"] for r in rs])
        entry = {"n": len(rs), "objective_ratio": float(np.median(ratio)),
                 "objective_ratio_iqr": [float(np.percentile(ratio, 25)), float(np.percentile(ratio, 75))],
                 "lpips_to_ref": float(np.median(lp)), "lpips_iqr": [float(np.percentile(lp, 25)), float(np.percentile(lp, 75))],
                 "seed_to_seed": float(np.median(s2s)) if s2s else float("nan"),
                 "seconds": float(np.mean([r["seconds"] for r in rs]))}
        entry["pass_objective"] = entry["objective_ratio"] >= OBJECTIVE_TARGET
        entry["pass_lpips"] = bool(s2s) and entry["lpips_to_ref"] <= entry["seed_to_seed"]
        trust_ok = True
        for m, sign in BETTER.items():
            pairs = [(r[m], refs[(r["model"], r["layer"], r["seed"], r["channel"])].get(m)) for r in rs if m in r]
            pairs = [(a, b) for a, b in pairs if b is not None]
            if not pairs:
                trust_ok = None if trust_ok else trust_ok
                continue
            d = np.array([a - b for a, b in pairs]) * sign  # > 0: better than the reference
            med, lo, hi = paired_ci(d)
            entry[m] = float(np.median([a for a, _ in pairs]))
            entry[f"{m}_vs_ref"] = [med * sign, lo * sign, hi * sign] if sign > 0 else [med * sign, hi * sign, lo * sign]
            worse = hi < 0
            entry[f"pass_{m}"] = not worse
            trust_ok = trust_ok and not worse
        entry["pass_trust"] = trust_ok
        out[label] = entry
    return out


def choose(summary: dict[str, dict], ref_label: str) -> str | None:
    """The passing candidate with the fewest steps (the cost; its measured seconds are too noisy to
    split recipes of equal step counts), then the highest objective ratio."""
    ok = [(int(label.rsplit("@", 1)[1]), -e["objective_ratio"], label) for label, e in summary.items()
          if label != ref_label and e["pass_objective"] and e["pass_lpips"] and e.get("pass_trust")]
    return min(ok)[2] if ok else None


def table(summary: dict[str, dict], title: str) -> str:
    head = ("| recipe@steps | n | objective / ref (median, IQR) | LPIPS to ref (median) | seed-to-seed | "
            "HF energy | 2AFC | path gap | s / channel | (i) | (ii) | (iii) |\n|" + " --- |" * 12)
    lines = [f"### {title}", "", head]
    for label, e in summary.items():
        f = lambda k: f"{e[k]:.3f}" if k in e else "-"  # noqa: E731
        mark = lambda k: "yes" if e.get(k) else ("-" if e.get(k) is None else "no")  # noqa: E731
        lines.append(f"| {label} | {e['n']} | {e['objective_ratio']:.3f} ({e['objective_ratio_iqr'][0]:.2f}-"
                     f"{e['objective_ratio_iqr'][1]:.2f}) | {e['lpips_to_ref']:.3f} | {e['seed_to_seed']:.3f} | "
                     f"{f('hf_energy')} | {f('two_afc')} | {f('path_gap')} | {e['seconds']:.2f} | {mark('pass_objective')} | "
                     f"{mark('pass_lpips')} | {mark('pass_trust')} |")
    return "\n".join(lines) + "\n"


def plots(rows: list[dict], out: Path, ref_steps: int) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    families: dict[str, list] = {}
    for r in rows:
        if r["label"] == "seed-to-seed":
            continue
        fam, step = r["label"].rsplit("@", 1)
        families.setdefault(fam, []).append((int(step), r))
    for metric, ylabel in (("objective_ratio", "objective / Lucid@%d" % ref_steps), ("lpips_to_ref", "LPIPS to Lucid@%d" % ref_steps)):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for fam, pts in sorted(families.items()):
            steps = sorted({s for s, _ in pts})
            y = [np.median([r[metric] for s2, r in pts if s2 == s]) for s in steps]
            x_sec = [np.median([r["seconds"] for s2, r in pts if s2 == s]) for s in steps]
            axes[0].plot(steps, y, marker="o", label=fam)
            axes[1].plot(x_sec, y, marker="o", label=fam)
        axes[0].set_xscale("log", base=2)
        axes[0].set_xlabel("steps")
        axes[1].set_xscale("log")
        axes[1].set_xlabel("seconds per channel (this CPU)")
        for ax in axes:
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        if metric == "objective_ratio":
            for ax in axes:
                ax.axhline(OBJECTIVE_TARGET, color="k", lw=0.8, ls="--")
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        name = f"fast_preset_{metric}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        names.append(name)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", default="vgg16:conv3_3,vgg16:conv4_3,vgg16:conv5_3,cifar_resnet20:layer3")
    ap.add_argument("--vgg_channels", type=int, default=4)
    ap.add_argument("--resnet_channels", type=int, default=32)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--budget", type=int, default=128)
    ap.add_argument("--ref_steps", type=int, default=512)
    ap.add_argument("--candidates", default="final", help="round1 | round2 | final | comma-separated names")
    ap.add_argument("--from_rows", action="store_true", help="only summarise out/rows.json of a finished study")
    ap.add_argument("--time_only", default="", help="a preset name (jfv.optvis.presets) or candidate: only measure "
                    "its time to quality against the PyTorch loop's Lucid 512 steps, on conv4_3")
    a = ap.parse_args()
    out = Path(a.out)
    if a.time_only:
        from jfv.optvis import presets

        every = {k: v for r in candidates(a.budget).values() for k, v in r.items()}
        res = time_to_quality(presets.PRESETS.get(a.time_only) or every[a.time_only])
        res["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"time_{a.time_only}.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    rounds = candidates(a.budget)
    every = {k: v for r in rounds.values() for k, v in r.items()}
    cands = rounds.get(a.candidates) or {k: every[k] for k in a.candidates.split(",")}
    rows: list[dict] = []
    started = time.time()
    loaded = {}
    if a.from_rows:  # summarise the rows a finished study measured (out/rows.json), rendering nothing
        rows = json.loads((out / "rows.json").read_text())
    for spec in ([] if a.from_rows else a.layers.split(",")):
        model_name, layer = spec.split(":")
        if model_name not in loaded:
            loaded[model_name] = models.load(model_name)
        model = loaded[model_name]
        size = LAYERS[model_name][1]
        k = a.vgg_channels if model_name == "vgg16" else a.resnet_channels
        channels = pick_channels(model, layer, k)
        print(f"{spec}: channels {channels}", flush=True)
        cache = out / "runs"
        cache.mkdir(exist_ok=True)
        rendered = render_layer(model, layer, size, channels, seeds, a.budget, a.ref_steps, cands, cache)
        natural, path_layers = natural_for(model, layer, size, channels)
        rows += measure_layer(model, layer, channels, seeds, a.ref_steps, a.budget, rendered, natural, path_layers)
        (out / "rows.json").write_text(json.dumps(rows))
    ref_label = f"lucid@{a.ref_steps}"
    choose_summary = summarise(rows, "choose", ref_label)
    winner = choose(choose_summary, ref_label)
    report_summary = summarise(rows, "report", ref_label)
    per_model = {m: summarise(rows, "report", ref_label, {m}) for m in sorted({r["model"] for r in rows})}
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}",
              "args": vars(a), "winner": winner, "choose": choose_summary, "report": report_summary,
              "report_per_model": per_model, "wall_s": time.time() - started}
    names = plots(rows, out, a.ref_steps)
    text = (f"machine: {result['machine']}; wall {result['wall_s']:.0f} s\n\nwinner (chosen on the choosing half): {winner}\n\n"
            + table(choose_summary, "choosing half (all layers)") + "\n" + table(report_summary, "held-out half (all layers)")
            + "".join("\n" + table(s, f"held-out half, {m}") for m, s in per_model.items()))
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    print(text)
    print("plots:", ", ".join(names))


def time_to_quality(preset: Preset, channels: int = 8, steps: int = 16) -> dict:
    """Seconds per channel, in one run on this machine: the PyTorch loop running Lucid's 512 steps
    (``benchmarks/am_throughput.torch_rate``: VGG16 to conv4_3 at 128 px, each image's own channel,
    ``channels`` at once) against jfv's ``preset`` (steady-state step time of each of its stages x its
    steps, the same channels at once). Also jfv's own Lucid 512 steps."""
    import torch

    from benchmarks.am_throughput import torch_rate

    vgg = models.load("vgg16")
    chans = list(range(channels))
    objective_fn = lambda c: objectives.channel("conv4_3", c)  # noqa: E731
    tf, param = transforms.standard(), parameterisations.image(128)
    secs = []
    for p in (Preset("lucid", steps), dataclasses.replace(preset, steps=max(steps, preset.steps))):
        stages = p.stages(tf, p.steps, 128)
        if p.name == "lucid":
            stages = [(tf, steps)]
        _, info = render_staged(vgg, objective_fn, param, stages, p.optimiser_for(p.steps), chans, jax.random.key(0),
                                batch_size=channels)
        secs.append(info["step_seconds"])
    lucid_step = secs[0][0]
    ends = [e for _, e in preset.stages(tf, preset.steps, 128)]
    fast_s = float(np.dot(np.diff([0] + ends), secs[1])) / channels
    torch_cs = torch_rate(vgg, channels, steps, sliced=True)
    torch_s = 512 / torch_cs
    return {"torch": torch.__version__, "channels_at_once": channels,
            "torch_lucid512_s_per_channel": torch_s, "jfv_lucid512_s_per_channel": 512 * lucid_step / channels,
            f"jfv_{preset.name}_s_per_channel": fast_s, "ratio_torch_lucid512_over_jfv_preset": torch_s / fast_s,
            "ratio_jfv_lucid512_over_jfv_preset": 512 * lucid_step / channels / fast_s}


if __name__ == "__main__":
    main()
