"""What the ``train`` recipe writes as it goes: ``metrics.csv`` and its plot, the montages of
filters and AM images over epochs, and the page (``index.html``, rewritten after every epoch)."""

from __future__ import annotations

import csv
import html
import io

import numpy as np

from jfv.analysis import figures
from jfv.runtime.jobs import Job
from jfv.runtime.outputs import GALLERY_CSS, header_table, write_run
from jfv.recipes.common import run_info


def write_metrics(job: Job, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    job.write_text("metrics.csv", buf.getvalue())
    plt = figures.pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    ep = [r["epoch"] for r in rows]
    axes[0].plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    axes[0].plot(ep, [r["test_loss"] for r in rows], "o-", label="test")
    axes[0].set_title("loss")
    axes[1].plot(ep, [r["train_accuracy"] for r in rows], "o-", label="train")
    axes[1].plot(ep, [r["test_accuracy"] for r in rows], "o-", label="test")
    axes[1].set_title("accuracy")
    axes[2].plot(ep, [r["learning_rate"] for r in rows], "o-")
    axes[2].set_title("learning rate (end of epoch)")
    for a in axes:
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    job.write_bytes("metrics.png", figures.png_bytes(fig, dpi=90))


def montage(job: Job, pattern: str, out: str, columns: int) -> None:
    """Stacks the per-epoch strips ``evolution/<pattern>`` (one row an epoch) into ``out``."""
    from PIL import Image

    rows = [np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in sorted((job.path / "evolution").glob(pattern))]
    if rows:
        job.save_png(out, np.concatenate([np.pad(r, ((0, 2), (0, 0), (0, 0)), constant_values=1.0) for r in rows]))


def write_summary(job: Job, config, arch: str, rows: list[dict], start: float, complete: bool, extra: dict) -> dict:
    manifest = {"recipe": "train", "arch": arch, "complete": complete, "epochs": rows,
                "settings": config.to_dict(), "gallery": "index.html", **extra}
    manifest.update(run_info(start))
    last = rows[-1] if rows else {}
    header = {"arch": arch, "epochs done": f"{len(rows)} of {config.epochs}",
              "test accuracy": last.get("test_accuracy", "-"), "batch size": config.batch_size,
              "learning rate": f"{config.learning_rate} ({config.schedule})", "seed": config.seed}
    images = [("metrics.png", "loss, accuracy and learning rate per epoch"),
              ("filters_over_time.png", "first-layer filters, one row per epoch (top: initialisation)"),
              ("am_over_time.png", "one tracked filter per layer by AM, one row per epoch (columns: "
               + ", ".join(f"{a}:{c}" for a, c in extra.get("tracked", [])) + ")")]
    figures = "".join(f'<figure><img src="{p}" alt="{html.escape(t)}"><figcaption>{html.escape(t)}</figcaption></figure>'
                      for p, t in images if (job.path / p).exists())
    refresh = "" if complete else '<meta http-equiv="refresh" content="60">'
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>training {html.escape(arch)}</title>
<style>{GALLERY_CSS} img {{ image-rendering: pixelated; max-width: 100%; }}</style></head>
<body><h1>{html.escape(arch)} on CIFAR-10: {'complete' if complete else 'in progress (reloads every minute)'}</h1>
{header_table(header)}
<p><a href="metrics.csv">metrics.csv</a> · model: <code>jfv.models.load({arch!r}, weights_dir="{html.escape(str(job.path))}")</code></p>
{figures}
</body></html>
"""
    return write_run(job, manifest, f"training {arch}", page=page)


def write_epoch(job: Job, config, arch: str, rows: list[dict], start: float, extra: dict, am: bool) -> None:
    """The outputs rewritten after every epoch: metrics, the montages and the page."""
    write_metrics(job, rows)
    montage(job, "filters_*.png", "filters_over_time.png", 0)
    if am:
        montage(job, "am_*.png", "am_over_time.png", 0)
    write_summary(job, config, arch, rows, start, False, extra)
