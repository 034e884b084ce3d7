"""A two-conv Flax network with random weights: the engine tests' model (fast to compile on CPU)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jfv.models.base import Model


class TinyNet(nn.Module):
    """conv1 (3x3, 8) -> relu -> 2x2 max pool -> conv2 (3x3, 8); pre-ReLU outputs by name."""

    @nn.compact
    def __call__(self, x):
        out = {}
        x = nn.Conv(8, (3, 3), name="conv1")(x - 0.5)
        out["conv1"] = x
        x = nn.max_pool(nn.relu(x), (2, 2), (2, 2))
        x = nn.Conv(8, (3, 3), name="conv2")(x)
        out["conv2"] = x
        return out


def tiny_model(seed: int = 0) -> Model:
    module = TinyNet()
    params = module.init(jax.random.key(seed), jnp.zeros((1, 16, 16, 3)))["params"]
    return Model(name="tiny", module=module, params=params, layers={"conv1": 8, "conv2": 8}, image_size=32,
                 source=f"random init (seed {seed})")
