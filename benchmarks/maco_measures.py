"""MACO against Lucid's recipe under the trust measures (issue 14's benchmark): one command, one table.

    python -m benchmarks.maco_measures [--root=runs/maco_measures] [--seeds=0,1]

Renders, for each seed, with ``python -m jfv --config=...`` and ``--config.`` overrides only:

- VGG16 ``conv4_3`` channels 0-15, 64 px, 64 steps, batch 16: Lucid's recipe
  (``configs/vgg16_channels.py``: Fourier + decorrelated colour, standard transforms, Adam 0.05) and
  MACO (``configs/vgg16_maco.py``: phase only, fixed natural magnitude, Adam 0.2, crops + noise) with
  ``maco_crops=2`` (not the config's 4: 2 model passes per step keep the script within ~20 minutes on
  2 cores);
- CIFAR ResNet-20 classes 0-9 through its logits, 32 px, 128 steps: Lucid's parameterisation
  (``configs/cifar_resnet20_class.py``, transforms off) and MACO (``param=maco``, ``transforms=maco``
  with the default 4 crops, Adam 0.2);

then scores each run's DIR with ``configs/score.py`` (500 CIFAR-10 test images; the two-alternative
test for the VGG16 channels, ResNet-20 / -32 / -44 / -56 class probabilities and margins for the
classes, the processing path for both) and prints a markdown table: per recipe and model, each
measure's mean over seeds of the per-run mean, the sd over channels (mean over seeds) and the spread
between seeds (max - min of the per-run means), and the render's wall time. Converts the CIFAR ResNet
weights from ``../shared/weights/cifar10-resnet/`` into ``weights/`` first if they are missing.
A run whose ``manifest.json`` exists is reused, so a re-run after an interruption continues.
Took 669 s on the 2-core CPU (load ~1-4); results in ``benchmarks/maco_measures.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CIFAR_WEIGHTS = {
    "cifar_resnet20": "resnet20-12fca82f.th",
    "cifar_resnet32": "resnet32-d509ac18.th",
    "cifar_resnet44": "resnet44-014dd654.th",
    "cifar_resnet56": "resnet56-4bfd9763.th",
}

VGG = ["--config.channels=0:16", "--config.image_size=64", "--config.steps=64", "--config.batch_size=16",
       "--config.progress=False"]
RESNET = ["--config.steps=128", "--config.image_size=32", "--config.progress=False"]
RUNS = {  # name -> (model label, config, overrides)
    "resnet20_lucid": ("ResNet-20 classes", "configs/cifar_resnet20_class.py", RESNET),
    "resnet20_maco": ("ResNet-20 classes", "configs/cifar_resnet20_class.py",
                      RESNET + ["--config.param=maco", "--config.transforms=maco", "--config.learning_rate=0.2"]),
    "vgg16_lucid": ("VGG16 conv4_3", "configs/vgg16_channels.py", VGG),
    "vgg16_maco": ("VGG16 conv4_3", "configs/vgg16_maco.py", VGG + ["--config.maco_crops=2"]),
}


def sh(cmd: list[str], log) -> float:
    """Runs one command from the repository root, its output appended to the log; returns seconds."""
    print("$ " + " ".join(cmd), file=log, flush=True)
    start = time.time()
    subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.time() - start


def convert_weights(log) -> None:
    shared = REPO / ".." / "shared" / "weights" / "cifar10-resnet"
    for model, name in CIFAR_WEIGHTS.items():
        if not (REPO / "weights" / model / "manifest.json").exists():
            sh([sys.executable, "-m", "jfv.models", "convert", f"--model={model}", f"--checkpoint={shared / name}"], log)


def run_one(root: Path, name: str, seed: int, log) -> dict:
    _, config, overrides = RUNS[name]
    run_dir, score_dir = root / f"{name}_s{seed}", root / f"{name}_s{seed}_scores"
    if not (run_dir / "manifest.json").exists():
        sh([sys.executable, "-m", "jfv", f"--config={config}", f"--workdir={run_dir}", f"--config.seed={seed}",
            *overrides], log)
    if not (score_dir / "manifest.json").exists():
        sh([sys.executable, "-m", "jfv", "--config=configs/score.py", f"--config.run_dir={run_dir}",
            f"--workdir={score_dir}"], log)
    render = json.loads((run_dir / "manifest.json").read_text())
    scores = json.loads((score_dir / "manifest.json").read_text())
    return {"summary": scores["summary"], "render_s": render["wall_time_s"], "score_s": scores["wall_time_s"]}


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| model | recipe | measure | mean over seeds | sd over channels | spread between seeds |",
             "|---|---|---|---|---|---|"]
    for name, runs in results.items():
        model, recipe = RUNS[name][0], name.split("_")[1]
        for measure in runs[0]["summary"]:
            means = [r["summary"][measure]["mean"] for r in runs]
            sds = [r["summary"][measure]["sd"] for r in runs]
            lines.append(f"| {model} | {recipe} | {measure} | {statistics.mean(means):.3f} | "
                         f"{statistics.mean(sds):.3f} | {max(means) - min(means):.3f} |")
        renders = ", ".join(f"{r['render_s']:.0f}" for r in runs)
        scores = ", ".join(f"{r['score_s']:.0f}" for r in runs)
        lines.append(f"| {model} | {recipe} | render / score wall time per seed, s | {renders} / {scores} | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/maco_measures", help="folder of the runs and their scores")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    args = parser.parse_args(argv)
    root = (REPO / args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.time()
    with open(root / "log.txt", "a") as log:
        convert_weights(log)
        results = {name: [run_one(root, name, seed, log) for seed in seeds] for name in RUNS}
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
    print(f"machine: {model_name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"total wall time {time.time() - start:.0f} s\n")
    print(table(results))
    (root / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
