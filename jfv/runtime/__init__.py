"""The edges every recipe shares: long jobs in a workdir (``jobs``), run outputs written atomically
(``outputs``), how command lines end (``errors``), where shared data is found (``paths``), XLA's
CPU settings (``xla``), the progress bar (``progress``), subpackages loaded on use (``lazy``) and the table of moved import paths
(``moved``).
"""

from jfv.runtime.lazy import submodules

MODULES = ("errors", "jobs", "lazy", "moved", "outputs", "paths", "progress", "version", "xla")
__getattr__, __dir__ = submodules(__name__, MODULES)
