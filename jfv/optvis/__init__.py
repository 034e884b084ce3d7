"""Feature visualisation by activation maximisation.

What to maximise (``objectives``), the space the optimiser moves in (``parameterisations``), the
random transforms that make an image robust (``transforms``), penalties and image steps
(``regularisers``), the compiled many-cell loop (``engine``) and its callers (``render``,
``octaves``, ``inversion``, ``interpolation``, and ``visualise``, the one call from a spec string to a
picture), the named optimisation recipes (``presets``: Lucid's, and the fast one), the regulariser families a sweep or study varies
(``families``) and the reference images LPIPS compares against (``references``).
"""

from jfv.runtime.lazy import submodules

MODULES = ("engine", "families", "interpolation", "inversion", "objectives", "octaves", "parameterisations",
           "presets", "references", "regularisers", "render", "transforms", "visualise")
__getattr__, __dir__ = submodules(__name__, MODULES)
