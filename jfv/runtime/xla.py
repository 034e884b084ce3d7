"""XLA settings jfv makes before JAX creates its CPU backend (imported first by ``jfv/__init__``).

On jaxlib 0.10 the CPU backend hands convolutions to the YNNPACK fusion, which is several times
slower than XLA's Eigen convolutions on the narrow layers of CIFAR networks (the weight gradient of a
32 -> 128 channel 3x3 conv at 15x15: 27 against 90 GFLOP/s on a 2-core AVX-512 machine) and no
faster on VGG16 (``benchmarks/train.md``). ``--xla_cpu_experimental_ynn_fusion_type=`` (empty)
turns that fusion off. The flag is added only when

- the installed jaxlib is a version it was measured on (an unknown XLA flag aborts the process),
- ``XLA_FLAGS`` does not already set it (yours wins), and
- ``JFV_KEEP_XLA_FLAGS`` is unset (set it to 1 to leave ``XLA_FLAGS`` alone).

It takes effect only if JAX has not yet created its CPU backend, i.e. when ``import jfv`` comes before
the first JAX computation; it changes floating-point summation order, not results beyond rounding.
"""

from __future__ import annotations

import os
from importlib import metadata

CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)
MEASURED_JAXLIB = ("0.10.",)  # version prefixes whose XLA knows CPU_FLAGS (measured)


def jaxlib_version() -> str:
    try:
        return metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return ""


def cpu_flags_to_add(environ=os.environ, version: str | None = None) -> list[str]:
    """The flags of ``CPU_FLAGS`` that ``apply`` would add to ``environ['XLA_FLAGS']``."""
    version = jaxlib_version() if version is None else version
    if environ.get("JFV_KEEP_XLA_FLAGS") or not version.startswith(MEASURED_JAXLIB):
        return []
    current = environ.get("XLA_FLAGS", "")
    return [f for f in CPU_FLAGS if f.split("=")[0] not in current]


def apply(environ=os.environ) -> list[str]:
    """Adds ``cpu_flags_to_add()`` to ``XLA_FLAGS``; returns what it added."""
    add = cpu_flags_to_add(environ)
    if add:
        environ["XLA_FLAGS"] = " ".join([environ.get("XLA_FLAGS", "").strip(), *add]).strip()
    return add


apply()
