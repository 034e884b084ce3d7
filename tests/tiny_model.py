"""A two-conv Flax network with random weights: the engine tests' model (fast to compile on CPU)."""

from __future__ import annotations

from typing import Callable

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


class TinyClassifier(nn.Module):
    """conv1 (3x3, 8) -> relu -> 2x2 max pool -> conv2 (3x3, 8) -> relu -> global average pool ->
    dense (``classes``): the attribution conformance model (a swappable ``relu`` field for guided
    backprop and deconvnet, a GAP + dense head for CAM); named activations of every step."""

    classes: int = 4
    relu: Callable = nn.relu

    @nn.compact
    def __call__(self, x):
        out = {}
        x = out["conv1"] = nn.Conv(8, (3, 3), name="conv1")(x - 0.5)
        x = out["relu1"] = self.relu(x)
        x = out["pool1"] = nn.max_pool(x, (2, 2), (2, 2))
        x = out["conv2"] = nn.Conv(8, (3, 3), name="conv2")(x)
        x = out["relu2"] = self.relu(x)
        out["logits"] = nn.Dense(self.classes, name="dense")(x.mean(axis=(1, 2)))
        return out


def tiny_classifier(seed: int = 0) -> Model:
    module = TinyClassifier()
    params = module.init(jax.random.key(seed), jnp.zeros((1, 16, 16, 3)))["params"]
    layers = {k: v.shape[-1] for k, v in module.apply({"params": params}, jnp.zeros((1, 16, 16, 3))).items()}
    return Model(name="tiny_classifier", module=module, params=params, layers=layers, image_size=16,
                 source=f"random init (seed {seed})")
