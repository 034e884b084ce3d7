"""Pieces several recipes share: parsing channel lists, meshes, progress bars, run metadata."""

from __future__ import annotations

import re
import sys
import time
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from jfv.models.weights import library_versions


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and the valid values."""


_RANGE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_channels(spec: str | int | Sequence[int]) -> list[int]:
    """``"0:64"`` (half-open range), ``"48,62,73,91"`` (list) or ``"7"`` -> list of ints."""
    if isinstance(spec, int):
        return [spec]
    if not isinstance(spec, str):
        return [int(c) for c in spec]
    m = _RANGE.match(spec)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if b <= a:
            raise ConfigError(f"channels range {spec!r} is empty: use a:b with b > a, e.g. 0:8")
        return list(range(a, b))
    try:
        out = [int(x) for x in spec.split(",") if x.strip() != ""]
    except ValueError:
        out = []
    if not out or any(c < 0 for c in out):
        raise ConfigError(
            f"cannot read channels {spec!r}: use a half-open range a:b (e.g. 0:64) "
            f"or a comma-separated list (e.g. 48,62,73,91)"
        )
    return out


def make_mesh(devices: int) -> Mesh | None:
    """0 -> no mesh (default device); n > 0 -> the first n devices; -1 -> all devices."""
    if devices == 0:
        return None
    available = jax.devices()
    n = len(available) if devices < 0 else devices
    if n > len(available):
        raise ConfigError(
            f"devices={devices} but only {len(available)} are visible ({available[0].platform}); "
            f"use devices <= {len(available)}, or -1 for all"
        )
    return Mesh(np.array(available[:n]), ("channels",))


class Progress:
    """A tqdm bar with an ETA on stderr, fed by the render engine's progress callback."""

    def __init__(self, description: str, enabled: bool = True):
        self.enabled = enabled
        self.description = description
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.description, unit="ch-step", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_info(start: float) -> dict:
    return {
        "versions": library_versions(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "wall_time_s": round(time.time() - start, 3),
    }
