"""What the network has learned, snapshotted as the ``train`` recipe goes: each epoch's first-layer
filters and an AM image of one tracked filter per layer (``evolution/``; epoch 0 is the
initialisation)."""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jfv.analysis import filters
from jfv.models import convnet
from jfv.optvis import objectives, parameterisations, transforms
from jfv.optvis.engine import Engine
from jfv.runtime.jobs import Job
from jfv.runtime.outputs import sprite


def conv_layers(module: Any, params: dict) -> list[str]:
    """The activations of the 3x3 convolutions, in order (``conv1``.. for the convnet, block outputs
    for the ResNets)."""
    if isinstance(module, convnet.ConvNet):
        return [k for k in params if re.fullmatch(r"conv\d+", k)]
    return ["conv1"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(module.blocks)]


def first_filters(module: Any, params: dict) -> np.ndarray:
    """The first trained layer's filters as RGB tiles (N, kh, kw, 3) in [0, 1], shared scaling."""
    kernel = convnet.rgb_filters(params) if isinstance(module, convnet.ConvNet) else np.asarray(params["conv1"]["kernel"])
    return np.asarray(filters.normalise_filters(kernel, "layer"))


class Snapshots:
    """AM images of one tracked channel per layer, one compiled program for every layer and epoch."""

    def __init__(self, eval_module, params, layers: list[str], channels: list[int], steps: int, seed: int):
        from jfv.models.base import Model
        import optax

        self.layers, self.channels, self.steps, self.seed = layers, channels, steps, seed
        model = Model("training", eval_module, params, {k: 0 for k in layers}, 32)
        tracked = list(zip(layers, channels))

        def objective_fn(c):
            def fn(acts):
                return jnp.stack([jnp.mean(acts[name][..., ch]) for name, ch in tracked])[c]
            return objectives.Objective(fn, "tracked filter", tuple(layers))

        self.engine = Engine.for_channels(model, objective_fn, parameterisations.image(32),
                                          transforms.compose(transforms.Jitter(2)), optax.adam(0.05))

    def render(self, params) -> np.ndarray:
        self.engine.use_params(params)
        out = self.engine.render(list(range(len(self.layers))), jax.random.key(self.seed), self.steps)
        return out.images[:, 0]


def upscale(tiles: np.ndarray, px: int) -> np.ndarray:
    s = max(1, px // tiles.shape[1])
    return np.repeat(np.repeat(tiles, s, axis=1), s, axis=2)


def snapshot(job: Job, epoch: int, module: Any, params: Any, snaps: Snapshots | None) -> None:
    params = jax.device_get(params)  # on the host: the snapshots' program runs on the default device
    tiles = upscale(first_filters(module, params), 16)
    job.save_png(f"evolution/filters_{epoch:04d}.png", sprite(list(tiles), columns=len(tiles), pad=1))
    if snaps is not None:
        am = upscale(snaps.render(params), 64)
        job.save_png(f"evolution/am_{epoch:04d}.png", sprite(list(am), columns=len(am), pad=2))
