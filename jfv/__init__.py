"""jfv: see what convolutional networks have learned, in JAX/Flax.

Feature visualisation by activation maximisation (objectives, parameterisations, transforms, a
compiled many-channel render engine) on converted pretrained networks.

Example:
    >>> import jax, optax, jfv
    >>> model = jfv.models.load("vgg16")
    >>> out = jfv.render_channels(model, lambda c: jfv.objectives.channel("conv4_3", c),
    ...                           jfv.image(128), jfv.transforms.standard(), optax.adam(0.05),
    ...                           channels=range(8), key=jax.random.key(0), steps=256)

Every module a user needs is an attribute of the package (``jfv.attribution``, ``jfv.metrics``,
``jfv.datasets``, ...); those not imported here load on first use (``SUBMODULES``), so ``import jfv``
stays as fast as it was. ``jfv.render`` is the module; its one-image function is ``jfv.render_image``
(``jfv.render.render``).
"""

from jfv import _xla  # noqa: F401  (first: XLA flags before JAX starts its CPU backend)
from jfv import models, objectives, octaves, parameterisations, regularisers, transforms
from jfv.engine import Engine, Setup
from jfv.objectives import Objective
from jfv.parameterisations import ImageParam, image
from jfv.render import Rendered, RenderState, channel_key, render_channels, render_sweep
from jfv.render import render as render_image  # not ``render``: that name is the module jfv.render
from jfv import inversion  # noqa: E402  (feature inversion, caricature, accentuation)

__version__ = "0.1.0"

# Modules loaded on first attribute access (PEP 562): ``jfv.attribution`` works after ``import jfv``.
SUBMODULES = (
    "activations", "atlas", "attribution", "checkerboard", "datasets", "embeddings", "engine", "errors",
    "figures", "filters", "imageops", "inversion", "jobs", "labels", "metrics", "models", "objectives",
    "octaves", "outputs", "parameterisations", "patches", "paths", "receptive", "references",
    "regularisers", "render", "spectrum", "topk", "train", "transforms",
)
SUBMODULES += ("interpolation",)  # channel interpolation strips (docs/interpolation.md)
SUBMODULES += ("families",)  # the table of regulariser families (docs/regularisers.md)

SUBMODULES += ("heads",)  # the CAM head on any model (jfv.heads)


def __getattr__(name: str):
    if name in SUBMODULES:
        import importlib

        return importlib.import_module(f"jfv.{name}")  # the import also sets it on the package
    raise AttributeError(f"module 'jfv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(SUBMODULES))


__all__ = [
    "Engine",
    "Setup",
    "ImageParam",
    "Objective",
    "RenderState",
    "Rendered",
    "channel_key",
    "image",
    "models",
    "octaves",
    "objectives",
    "parameterisations",
    "render",
    "render_image",
    "regularisers",
    "render_channels",
    "render_sweep",
    "transforms",
    "inversion",
    *(m for m in SUBMODULES if m not in ("models", "octaves", "objectives", "parameterisations", "render",
                                         "regularisers", "transforms", "inversion")),
]
