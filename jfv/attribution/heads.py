"""Class activation heads: global pooling + dense on any model's layer, their init and their training.

Zhou et al. ("Learning Deep Features for Discriminative Localization", CVPR 2016) replace a
network's last layers by a 3x3 convolution, global pooling and one dense layer over a layer's maps
f_k(x, y), so that

    logits_c = sum_k w[k, c] pool_{x,y} f_k(x, y) + b_c,     CAM_c(x, y) = sum_k w[k, c] f_k(x, y)

with ``pool`` global average (GAP) or global max (GMP) pooling. ``PoolingHead`` is that head;
``with_head(model, layer, head, params)`` puts it on any Model's layer (a built-in linen model or
one made with ``jfv.models.wrap``), giving a Model with the head's activations and ``logits``, so
``jfv.attribution.cam`` finds the dense kernel and the faithfulness curves run through the whole
network. ``train_head`` trains a head on cached (frozen) layer activations.

Example:
    >>> head = PoolingHead(width=16, classes=10, pool="gap")
    >>> trained = train_head(head, features, labels, jax.random.key(0), epochs=3, batch_size=16,
    ...                      learning_rate=1e-3)
    >>> full = with_head(model, "relu3", head, trained.params)
    >>> maps = jfv.attribution.cam(full, images, classes, "head_relu")
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfv import imageops
from jfv.attribution.cam import cam_from_features
from jfv.models.base import Model
from jfv.models.stream import map_images

Array = jax.Array

POOLS: dict[str, Callable[[Array], Array]] = {
    "gap": lambda maps: maps.mean(axis=(1, 2)),  # global average pooling
    "gmp": lambda maps: maps.max(axis=(1, 2)),  # global max pooling
}
TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2] (jax.nn.initializers)


def lecun_normal_flat(key: Array, shape, dtype=jnp.float32) -> Array:
    """Flax's default kernel init (LeCun normal: truncated normal, variance 1 / fan_in), drawn flat.

    The same distribution as ``nn.initializers.lecun_normal()``; drawing a flat vector and reshaping
    avoids XLA:CPU's slow compilation of multi-dimensional random draws (~7 s for a 3x3x512 kernel).
    """
    fan_in = math.prod(shape[:-1])
    flat = jax.random.truncated_normal(key, -2.0, 2.0, (math.prod(shape),), dtype)
    return (flat * (math.sqrt(1.0 / fan_in) / TRUNCATED_NORMAL_STD)).reshape(shape)


class PoolingHead(nn.Module):
    """The CAM head: 3x3 conv (padding 1) + ReLU + global pooling + dense.

    Returns named activations: ``head_conv`` (n, h, w, width) before the ReLU, ``head_relu`` after
    it (the maps CAM weighs), ``pooled`` (n, width) and ``logits`` (n, classes).
    """

    width: int = 256
    classes: int = 10
    pool: str = "gap"  # "gap" | "gmp"

    @nn.compact
    def __call__(self, features: Array) -> dict[str, Array]:
        x = nn.Conv(self.width, (3, 3), padding=((1, 1), (1, 1)), kernel_init=lecun_normal_flat, name="conv")(features)
        maps = nn.relu(x)
        pooled = POOLS[self.pool](maps)
        logits = nn.Dense(self.classes, kernel_init=lecun_normal_flat, name="dense")(pooled)
        return {"head_conv": x, "head_relu": maps, "pooled": pooled, "logits": logits}


@dataclasses.dataclass(frozen=True, eq=False)
class HeadOn:
    """A model's module (linen or ``jfv.models.wrap``'s ``Wrapped``) with a head on one of its layers.

    The interface ``Model.module`` needs: ``apply({"params": {"features": ..., "head": ...}},
    images)`` returns every named activation of the model plus the head's; ``clone(**fields)``
    replaces fields of the model's module (``relu`` for deconvnet and guided backprop) and reading
    a field reads the model's module's.
    """

    features: Any
    head: nn.Module
    layer: str

    def apply(self, variables: Mapping, images: Array) -> dict[str, Array]:
        params = variables["params"]
        acts = dict(self.features.apply({"params": params["features"]}, images))
        acts.update(self.head.apply({"params": params["head"]}, acts[self.layer]))
        return acts

    def clone(self, **fields: Any) -> "HeadOn":
        return dataclasses.replace(self, features=self.features.clone(**fields))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("features", "head", "layer"):
            raise AttributeError(name)
        return getattr(self.features, name)


def with_head(model: Model, layer: str, head: PoolingHead, head_params) -> Model:
    """``model`` with ``head`` on ``layer`` as one Model (with ``logits``), for CAM and faithfulness.

    Works on any Model: a built-in one or one made with ``jfv.models.wrap``. The head's activations
    (``head_conv``, ``head_relu``, ``pooled``, ``logits``) replace any of the same name.

    Args:
        layer: a spatial layer of ``model`` (n, h, w, C); the head's conv takes its C channels.
        head_params: the head's ``params`` (``train_head(...).params``).

    Returns:
        A Model whose params are ``{"features": model.params, "head": head_params}``.
    """
    model.check_layer(layer)
    module = HeadOn(features=model.module, head=head, layer=layer)
    params = {"features": model.params, "head": head_params}
    x = jax.ShapeDtypeStruct((1, model.image_size, model.image_size, model.channels), jnp.float32)
    shapes = jax.eval_shape(lambda p, im: module.apply({"params": p}, im), params, x)
    layers = {k: int(v.shape[-1]) for k, v in shapes.items()}
    return Model(name=f"{model.name}+{head.pool}", module=module, params=params, layers=layers,
                 image_size=model.image_size, channels=model.channels,
                 source=f"{model.source} + {head.pool} head trained on {layer}")


# ---------------------------------------------------------------------------------------------------
# Frozen features


@dataclasses.dataclass(frozen=True)
class FrozenFeatures:
    """The pass step (``jfv.models.stream``) of ``extract_features``: ``layer`` of the images
    upsampled to ``size`` (``upsample_images``), output ``features``."""

    layer: str
    size: int

    def __call__(self, model, params, carry, images, ids, mask):
        return carry, {"features": model.apply(params, upsample_images(images, self.size))[self.layer]}


def upsample_images(images: Array, size: int) -> Array:
    """(n, h, w, c) uint8 or [0, 1] floats -> (n, size, size, c) float32 in [0, 1], bilinear."""
    x = jnp.asarray(images)
    x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
    return jnp.clip(imageops.resize(x, size), 0.0, 1.0)


def extract_features(model: Model, images: np.ndarray, layer: str, size: int, batch_size: int,
                     log: Callable[[str], None] = lambda s: None) -> np.ndarray:
    """Frozen ``layer`` activations of ``images`` upsampled to ``size``: (n, h, w, C) float32.

    ``jfv.models.stream.map_images`` of ``FrozenFeatures(layer, size)``: one compiled function called
    per batch from Python (XLA:CPU runs convolutions inside loops ~2x slower, jax#12868); the last
    batch is padded so nothing recompiles.

    Args:
        images: (n, h, w, model.channels) uint8 or [0, 1] floats.
    """
    n = images.shape[0]
    start = time.time()

    def progress(done: int, total: int | None) -> None:
        if done:  # after each batch (not at the start)
            log(f"features {done}/{total} ({time.time() - start:.0f} s)")

    return map_images(model, FrozenFeatures(layer, int(size)), images, min(batch_size, n), progress)["features"]


# ---------------------------------------------------------------------------------------------------
# Training


class TrainResult(NamedTuple):
    """params of the head; losses (epochs,) mean training loss per epoch."""

    params: Any
    losses: np.ndarray


def _loss(params, head: PoolingHead, x, y, w):
    logits = head.apply({"params": params}, x)["logits"]
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return (losses * w).sum() / jnp.maximum(w.sum(), 1.0)


def train_head(head: PoolingHead, features: np.ndarray, labels: np.ndarray, key: Array, epochs: int,
               batch_size: int, learning_rate: float) -> TrainResult:
    """Adam on softmax cross-entropy over cached features; batches in Python, one compiled step.

    The init and each epoch's shuffle come from ``key`` alone, so heads trained with the same key see
    the same initial weights (when their shapes agree) and the same batches in the same order. The
    last batch of an epoch is padded with zero-weight examples (no recompilation). (``jfv.training``'s
    step is for whole networks with batch statistics and SGD parameter groups; a head on frozen
    features needs none of that.)

    Args:
        features: (n, h, w, C); labels: (n,) ints in [0, head.classes).
    Returns: ``TrainResult``.
    """
    n = features.shape[0]
    b = min(batch_size, n)
    init_key, order_key = jax.random.split(key)
    params = head.init(init_key, jnp.asarray(features[:1]))["params"]
    optimiser = optax.adam(learning_rate)
    state = optimiser.init(params)

    @jax.jit
    def step(params, state, x, y, w):
        loss, grads = jax.value_and_grad(_loss)(params, head, x, y, w)
        updates, state = optimiser.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    steps = math.ceil(n / b)
    losses = []
    for epoch in range(epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(order_key, epoch), n))
        order = np.concatenate([order, np.zeros(steps * b - n, order.dtype)])
        weight = (np.arange(steps * b) < n).astype(np.float32)
        total = 0.0
        for s in range(steps):
            idx = order[s * b : (s + 1) * b]
            w = weight[s * b : (s + 1) * b]
            params, state, loss = step(params, state, features[idx], labels[idx], w)
            total += float(loss) * w.sum()
        losses.append(total / n)
    return TrainResult(params, np.asarray(losses, np.float32))


@functools.partial(jax.jit, static_argnames=("head",))
def head_outputs(params, features, *, head: PoolingHead) -> dict[str, Array]:
    """The head's named activations on cached features."""
    return head.apply({"params": params}, features)


def head_cam(head: PoolingHead, params, features: Array, classes: Array) -> Array:
    """CAM of each image's class: dense kernel times the head's ReLU maps, (n, h, w)."""
    maps = head_outputs(params, jnp.asarray(features), head=head)["head_relu"]
    return cam_from_features(maps, params["dense"]["kernel"], jnp.asarray(classes)[:, None])[:, 0]


__all__ = ["POOLS", "FrozenFeatures", "HeadOn", "PoolingHead", "TrainResult", "extract_features", "head_cam", "head_outputs",
           "lecun_normal_flat", "train_head", "upsample_images", "with_head"]
