"""CPPN images (Lucid's ``param.cppn``): a compositional pattern-producing network's weights are
the parameters, and the image is the network evaluated on pixel coordinates.

Mordvintsev et al. 2018, "Differentiable Image Parameterizations" (Distill).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


# Lucid's ``param.cppn``: ``_composite_activation``'s scales, the RMS of atan(z) and atan(z)^2 for
# z ~ N(0, 1) (Lucid computed them from 10^6 samples; biased variant).
CPPN_ATAN_RMS = 0.67
CPPN_ATAN_SQ_RMS = 0.6
CPPN_BIAS_SD = 0.1  # Lucid: biases ~ N(0, 0.1); weights variance-scaled (fan in, truncated normal)


@dataclasses.dataclass(frozen=True)
class CPPNParam:
    """A compositional pattern-producing network whose weights are the parameters.

    Each pixel's coordinates ``(x, y)`` in ``[-sqrt 3, sqrt 3]`` (unit variance) go through ``layers``
    1x1 layers ``h <- [atan(W h + b) / 0.67, atan(W h + b)^2 / 0.6]`` (Lucid's composite activation,
    2 x ``hidden`` features) and a last layer ``sigmoid(W h + b)`` to RGB whose weights start at zero,
    so the first image is flat. Each of the ``batch`` images has its own network (Lucid's batch shares
    one); ``init(key) -> pytree``, ``to_image(pytree) -> (batch, size, size, 3)`` in [0, 1], like
    ``ImageParam``. It has no ``init_from_image`` (a network is not the inverse of an image), so it
    cannot seed accentuation. Lucid's notebook uses Adam with a lower learning rate (0.005) than for
    Fourier images.

    Stanley 2007, "Compositional pattern producing networks"; Mordvintsev et al. 2018,
    "Differentiable Image Parameterizations" (Distill); Lucid's ``optvis.param.cppn``.

    Example:
        >>> param = cppn(64)
        >>> param.to_image(param.init(jax.random.key(0))).shape
        (1, 64, 64, 3)
    """

    size: int
    batch: int = 1
    hidden: int = 24
    layers: int = 8

    def __post_init__(self):
        if self.size < 1 or self.batch < 1 or self.hidden < 1 or self.layers < 1:
            raise ValueError(f"cppn size, batch, hidden and layers must be >= 1, got {self}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.size, self.size, 3)

    def init(self, key: Array) -> dict:
        """``{"hidden": [(W (n, in, hidden), b (n, hidden)) x layers], "out": (W (n, 2 hidden, 3) = 0, b)}``."""
        fan_in = [2] + [2 * self.hidden] * (self.layers - 1)
        keys = jax.random.split(key, 2 * self.layers + 1)
        init_w = jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1,
                                                      batch_axis=0)
        hidden = []
        for i, n_in in enumerate(fan_in):
            w = init_w(keys[2 * i], (self.batch, n_in, self.hidden), jnp.float32)
            b = CPPN_BIAS_SD * jax.random.normal(keys[2 * i + 1], (self.batch, self.hidden), jnp.float32)
            hidden.append((w, b))
        out = (jnp.zeros((self.batch, 2 * self.hidden, 3), jnp.float32),
               CPPN_BIAS_SD * jax.random.normal(keys[-1], (self.batch, 3), jnp.float32))
        return {"hidden": hidden, "out": out}

    def coordinates(self) -> np.ndarray:
        """(size, size, 2) pixel coordinates (x, y), each with unit variance."""
        r = 3.0**0.5
        c = np.linspace(-r, r, self.size, dtype=np.float32)
        y, x = np.meshgrid(c, c, indexing="ij")
        return np.stack([x, y], -1)

    def to_image(self, p: dict) -> Array:
        """Images (n, H, W, 3) in [0, 1]."""
        h = jnp.broadcast_to(jnp.asarray(self.coordinates()), (self.batch, self.size, self.size, 2))
        for w, b in p["hidden"]:
            z = jnp.arctan(jnp.einsum("nyxi,nio->nyxo", h, w) + b[:, None, None, :])
            h = jnp.concatenate([z / CPPN_ATAN_RMS, z * z / CPPN_ATAN_SQ_RMS], -1)
        w, b = p["out"]
        return jax.nn.sigmoid(jnp.einsum("nyxi,nio->nyxo", h, w) + b[:, None, None, :])


def cppn(size: int, batch: int = 1, *, hidden: int = 24, layers: int = 8) -> CPPNParam:
    """Lucid's ``param.cppn``: 8 layers of 24 composite-activation units, to RGB through a sigmoid."""
    return CPPNParam(size, batch, hidden, layers)


__all__ = ["CPPNParam", "cppn"]
