"""jfv: see what convolutional networks have learned, in JAX/Flax.

The package is laid out by concern; ``import jfv`` gives a flat public face over it (``__all__``,
the one list of public names, as optax keeps one):

- ``jfv.optvis``: activation maximisation: objectives, parameterisations, transforms, regularisers,
  the render engine, octaves, inversion, interpolation, regulariser families;
- ``jfv.attribution``: saliency, guided backprop, deconvnet, CAM and Grad-CAM, occlusion, heads;
- ``jfv.analysis``: datasets and the dataset-level analyses (top-k patches, embeddings,
  activation grids, first-layer filters, checkerboards, the atlas, figures);
- ``jfv.evaluation``: LPIPS and image measures, trust measures, map statistics;
- ``jfv.models``: converted networks, the registry, wrapping a user's Flax module, weights;
- ``jfv.training``: training a classifier (augmentation, schedule, step, evaluation);
- ``jfv.runtime``: jobs and workdirs, outputs, errors, paths, XLA settings;
- ``jfv.recipes``: what ``python -m jfv --config=...`` runs, grouped the same way.

Example:
    >>> import jax, optax, jfv
    >>> model = jfv.models.load("vgg16")
    >>> out = jfv.render_channels(model, lambda c: jfv.objectives.channel("conv4_3", c),
    ...                           jfv.image(128), jfv.transforms.standard(), optax.adam(0.05),
    ...                           channels=range(8), key=jax.random.key(0), steps=256)

Subpackages not imported here load on first use, so ``import jfv`` stays fast. Import paths of
the flat layout (``jfv.engine``, ``jfv.metrics``, ...) still work for one release, with a warning naming the
new path: ``jfv.runtime.moved`` is their one table.
"""

from typing import TYPE_CHECKING

from jfv.runtime import xla  # noqa: F401  (first: XLA flags before JAX starts its CPU backend)
from jfv.runtime import moved as _moved

_moved.install()

from jfv import models  # noqa: E402
from jfv.optvis import inversion, objectives, octaves, parameterisations, presets, regularisers, transforms  # noqa: E402
from jfv.optvis.engine import Engine, Setup  # noqa: E402
from jfv.optvis.objectives import Objective  # noqa: E402
from jfv.optvis.parameterisations import ImageParam, image  # noqa: E402
from jfv.optvis.render import Rendered, RenderState, channel_key, render_channels, render_sweep  # noqa: E402
from jfv.optvis.render import render as render_image  # noqa: E402
from jfv.optvis.visualise import Visualisation, visualise  # noqa: E402

from jfv.runtime.version import __version__  # noqa: E402

# One call each from a model to attribution maps of a photo and to top patches over a folder: loaded
# on first use like their packages (``import jfv`` imports neither jfv.attribution nor jfv.analysis).
LAZY_NAMES = {"attribute": "jfv.attribution.attribute", "Attribution": "jfv.attribution.attribute",
              "top_patches": "jfv.analysis.top_patches", "TopPatches": "jfv.analysis.top_patches"}
if TYPE_CHECKING:  # for type checkers and the API reference; nothing is imported at run time
    from jfv.analysis.top_patches import TopPatches, top_patches  # noqa: F401
    from jfv.attribution.attribute import Attribution, attribute  # noqa: F401

# Subpackages and modules loaded on first attribute access (PEP 562): ``jfv.attribution`` works
# after ``import jfv``.
LAZY = {
    "optvis": "jfv.optvis", "attribution": "jfv.attribution", "analysis": "jfv.analysis",
    "evaluation": "jfv.evaluation", "training": "jfv.training", "runtime": "jfv.runtime",
    "recipes": "jfv.recipes", "imageops": "jfv.imageops",
}

__all__ = [
    # subpackages
    "analysis", "attribution", "evaluation", "models", "optvis", "recipes", "runtime", "training",
    # activation maximisation, flat
    "Engine", "ImageParam", "Objective", "RenderState", "Rendered", "Setup", "channel_key", "image",
    "render_channels", "render_image", "render_sweep",
    # one call from a model and a spec string to a picture
    "Visualisation", "visualise",
    # one call from a model and a photo to attribution maps; from a model and a folder to top patches
    "Attribution", "attribute", "TopPatches", "top_patches",
    "objectives", "parameterisations", "transforms", "regularisers", "octaves", "inversion", "presets",
    # image operations every part shares
    "imageops",
]


def __getattr__(name: str):
    if name in LAZY:
        import importlib

        module = importlib.import_module(LAZY[name])
        globals()[name] = module
        return module
    if name in LAZY_NAMES:
        import importlib

        value = globals()[name] = getattr(importlib.import_module(LAZY_NAMES[name]), name)
        return value
    old = _moved.package_attribute(__name__, name)
    if old is not None:
        return old
    raise AttributeError(f"module 'jfv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
