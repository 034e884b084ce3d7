"""The edges every recipe shares: long jobs in a workdir (``jobs``), run outputs written atomically
(``outputs``), how command lines end (``errors``), where shared data is found (``paths``), XLA's
CPU settings (``xla``), the progress bar (``progress``), subpackages loaded on use (``lazy``), the table of moved import paths
(``moved``), jax.distributed's start and barrier (``distributed``), what the one-call results share
(``results``) and the docs site's build command (``docs``).
"""

from jfv.runtime.lazy import submodules

MODULES = ("distributed", "docs", "errors", "jobs", "lazy", "moved", "outputs", "paths", "progress", "results", "version",
           "xla")
__getattr__, __dir__ = submodules(__name__, MODULES)
