"""Summaries of samples: mean, spread and standard error, as reports give them."""

from __future__ import annotations

import math

import numpy as np



def sample_stats(values) -> dict[str, float]:
    """mean, std (ddof 1), standard error std / sqrt(n) and n of a sample (std 0 for one value)."""
    v = np.asarray(values, np.float64)
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "sem": std / math.sqrt(v.size), "n": int(v.size)}
