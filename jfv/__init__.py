"""jfv: see what convolutional networks have learned, in JAX/Flax.

Feature visualisation by activation maximisation (objectives, parameterisations, transforms, a
compiled many-channel render engine) on converted pretrained networks.

Example:
    >>> import jax, optax, jfv
    >>> model = jfv.models.load("vgg16")
    >>> out = jfv.render_channels(model, lambda c: jfv.objectives.channel("conv4_3", c),
    ...                           jfv.image(128), jfv.transforms.standard(), optax.adam(0.05),
    ...                           channels=range(8), key=jax.random.key(0), steps=256)
"""

from jfv import _xla  # noqa: F401  (first: XLA flags before JAX starts its CPU backend)
from jfv import models, objectives, octaves, parameterisations, regularisers, transforms
from jfv.engine import Engine, Setup
from jfv.objectives import Objective
from jfv.parameterisations import ImageParam, image
from jfv.render import Rendered, RenderState, channel_key, render, render_channels, render_sweep
from jfv import inversion  # noqa: E402  (feature inversion, caricature, accentuation)

__version__ = "0.1.0"

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
    "regularisers",
    "render_channels",
    "render_sweep",
    "transforms",
    "inversion",
]
