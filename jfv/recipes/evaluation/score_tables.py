"""The ``score`` recipe's tables: ``scores.csv`` (one row per visualisation) and ``scores.md`` (the
header, the summary, the rows and the processing path per layer)."""

from __future__ import annotations

import csv
import io
from typing import Any


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in rows])
    return buf.getvalue()


def fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown(title: str, header: dict, rows: list[dict], summary: dict, path_table: list[dict]) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += ["", "## Summary", "", "| measure | mean | spread (sd over channels) |", "|---|---|---|"]
    lines += [f"| {k} | {v['mean']:.3f} | {v['sd']:.3f} |" for k, v in summary.items()]
    lines += ["", "## Per visualisation", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(fmt(v) for v in r.values()) + " |" for r in rows]
    lines += ["", "## Processing path per layer (mean over visualisations)", "",
              "| layer | visualisation vs top | visualisation vs random | natural top-1 vs top | natural top-1 vs random |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['layer']} | {r['vis_top']:.3f} | {r['vis_random']:.3f} | {r['nat_top']:.3f} | "
              f"{r['nat_random']:.3f} |" for r in path_table]
    return "\n".join(lines) + "\n"
