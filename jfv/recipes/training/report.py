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


def result_accuracy(row: dict) -> float | None:
    """A run's headline test accuracy from its last ``metrics.csv`` row: the test-time augmented
    column when there is one, else the plain one (None where the test split was not read)."""
    tta = [k for k in row if k.startswith("test_accuracy_tta") and row[k] is not None]
    return row[tta[0]] if tta else row.get("test_accuracy")


def columns(rows: list[dict]) -> list[str]:
    """Every column of ``rows`` in first-seen order (a run resumed across versions may add some)."""
    return list(dict.fromkeys(k for r in rows for k in r))


def write_metrics(job: Job, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=columns(rows), restval="")
        w.writeheader()
        w.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    job.write_text("metrics.csv", buf.getvalue())
    plt = figures.pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    ep = [r["epoch"] for r in rows]
    held = "val" if any(r.get("val_accuracy") is not None for r in rows) else "test"

    def series(key):
        pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        return [e for e, _ in pts], [v for _, v in pts]

    axes[0].plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    axes[0].plot(*series(f"{held}_loss"), "o-", label=held)
    axes[0].set_title("loss (plain evaluation)")
    axes[1].plot(ep, [r["train_accuracy"] for r in rows], "o-", label="train (augmented)")
    axes[1].plot(*series(f"{held}_accuracy"), "o-", label=held)
    for k in columns(rows):
        if "_accuracy_tta" in k:
            axes[1].plot(*series(k), "s", label=k.replace("_accuracy_", " ").replace("tta", "TTA "))
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
    val = [k for k in ("val_accuracy_tta" + str(config.tta), "val_accuracy") if last.get(k) is not None]
    test = result_accuracy(last) if last else None
    header = {"arch": arch, "epochs done": f"{len(rows)} of {config.epochs}",
              **({"validation accuracy": last[val[0]]} if val else {}),
              "test accuracy": "-" if test is None else test, "batch size": config.batch_size,
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
