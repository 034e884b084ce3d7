"""Class activation maps: CAM for global-pooling + dense heads, and Grad-CAM for any layer.

CAM (Zhou et al. 2016, "Learning Deep Features for Discriminative Localization"): for a head
``logits = dense(pool(f))`` with ``pool`` global average (GAP) or global max (GMP) pooling,

    CAM_c(x, y) = sum_k w[k, c] f_k(x, y)

the dense weights of class c times the last feature maps; for GAP its mean over positions is the
class logit less the bias. Grad-CAM (Selvaraju et al. 2017) weighs the maps of any layer by the
mean gradient of the target's score instead:

    alpha_k = mean_{x,y} d score / d f_k(x, y),   Grad-CAM(x, y) = ReLU(sum_k alpha_k f_k(x, y))

Gradients at an inner layer come from ``activation_gradient``, which adds a zero "tap" to the one
call that produces the layer (a submodule's output, or the model's ``relu`` / ``pool`` field),
found by tracing: no hooks, no global state, any Model.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jfv.attribution.targets import Target, TargetError
from jfv.imageops import resize
from jfv.models.base import Model

Array = jax.Array


class NoSpatialExtentError(ValueError):
    """A layer whose activations have no spatial map (or a 1x1 one), so a heatmap is meaningless."""


class HeadError(ValueError):
    """A model whose head is not global pooling + dense over the given layer, for CAM."""


def _tapped(model: Model, tap: Callable[[int, Array], Array]) -> Callable[[Any, Array], dict]:
    """``apply`` in which every producing call's output y becomes ``tap(call_index, y)``."""

    def apply(params, images):
        count = [0]

        def tagged(y):
            i = count[0]
            count[0] += 1
            return tap(i, y)

        fields = {}
        for name in ("relu", "pool"):
            f = getattr(model.module, name, None)
            if callable(f):
                fields[name] = (lambda g: lambda *a, **k: tagged(g(*a, **k)))(f)
        module = model.module.clone(**fields) if fields else model.module

        def interceptor(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name == "__call__" and context.module.parent is not None and isinstance(out, jax.Array):
                out = tagged(out)
            return out

        with nn.intercept_methods(interceptor):
            return module.apply({"params": params}, images)

    return apply


def _producer(model: Model, params, layer: str, images_shape) -> int:
    """The index of the call whose output is ``model(images)[layer]`` (found by tracing once)."""
    seen: list[Array] = []
    apply = _tapped(model, lambda i, y: seen.append(y) or y)
    found = []

    def probe(params, x):
        seen.clear()
        acts = apply(params, x)
        found.extend(i for i, y in enumerate(seen) if y is acts[layer])
        return acts[layer]

    jax.eval_shape(probe, params, jax.ShapeDtypeStruct(images_shape, jnp.float32))
    if not found:
        raise TargetError(
            f"cannot take gradients at {model.name} layer {layer!r}: it is not the output of a "
            f"submodule or of the model's relu/pool field"
        )
    return found[-1]


def activation_gradient(model: Model, params, images: Array, layer: str, score: Callable[[dict], Array]):
    """(activations, d score(activations).sum() / d activations[layer]) for any model and layer."""
    index = _producer(model, params, layer, images.shape)
    shape = jax.eval_shape(model.apply, params, images)[layer]

    def run(eps):
        apply = _tapped(model, lambda i, y: y + eps if i == index else y)
        acts = apply(params, images)
        return score(acts).sum(), acts

    grad, acts = jax.grad(run, has_aux=True)(jnp.zeros(shape.shape, shape.dtype))
    return acts, grad


def check_spatial(model: Model, layer: str, image_hw: tuple[int, int]) -> tuple[int, int]:
    """The layer's map size at this image size; NoSpatialExtentError when it has none (or 1x1)."""
    model.check_layer(layer)
    hw = (int(image_hw[0]), int(image_hw[1]))
    shapes = model.output_shapes(hw)
    shape = shapes[layer]
    if len(shape) != 4 or shape[1] * shape[2] <= 1:
        what = f"shape {shape[1:]}" if len(shape) == 4 else f"no spatial axes (shape {shape})"
        spatial = [k for k, s in shapes.items() if len(s) == 4 and s[1] * s[2] > 1]
        raise NoSpatialExtentError(
            f"{model.name} layer {layer!r} has {what} at image size {hw[0]}x{hw[1]}, so it gives no map: "
            f"use a layer with a spatial map (e.g. {', '.join(spatial[-3:]) or 'an earlier conv'}) or larger images"
        )
    return shape[1], shape[2]


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def _grad_cam(params, images, target: Target, *, model: Model, layer: str):
    acts, grad = activation_gradient(model, params, images, layer, target.score)
    a = acts[layer]
    alpha = grad.mean(axis=(1, 2), keepdims=True)
    return jax.nn.relu((alpha * a).sum(-1))


def grad_cam(model: Model, images: Array, target: Target, layer: str) -> Array:
    """Grad-CAM of ``target`` at any spatial ``layer`` of any model, (n, h, w) at the layer's size.

    Example:
        >>> maps = grad_cam(model, images, channel("conv5_3", 7), "conv4_3")
        >>> upsample(maps, images.shape[1:3])   # (n, H, W)
    """
    target.check(model, images.shape[1:3])
    check_spatial(model, layer, images.shape[1:3])
    return _grad_cam(model.params, jnp.asarray(images, jnp.float32), target, model=model.static, layer=layer)


def head_kernel(model: Model, layer: str, logits: str = "logits") -> Array:
    """The dense kernel (C, classes) that maps the pooled ``layer`` to ``logits``, found in the params.

    Raises HeadError when there is not exactly one (pass ``kernel=`` to ``cam`` then).
    """
    c = model.check_layer(layer)
    if logits not in model.layers:
        raise HeadError(f"{model.name} has no {logits!r} layer, so it has no classifier head for CAM")
    k = model.layers[logits]
    found = [
        leaf for path, leaf in jax.tree_util.tree_leaves_with_path(model.params)
        if getattr(path[-1], "key", None) == "kernel" and tuple(leaf.shape) == (c, k)
    ]
    if len(found) != 1:
        raise HeadError(
            f"found {len(found)} dense kernels of shape ({c}, {k}) in {model.name}'s params; CAM needs a head "
            f"that is global pooling + one dense layer over {layer!r}: pass kernel= explicitly"
        )
    return found[0]


@functools.partial(jax.jit, static_argnames=("model", "layer", "logits"))
def _features_and_logits(params, images, *, model: Model, layer: str, logits: str):
    acts = model.apply(params, images)
    return acts[layer], acts[logits]


def cam_from_features(features: Array, kernel: Array, classes: Array) -> Array:
    """sum_k kernel[k, c] features[..., k] for each image's classes: (n, h, w, C), (C, K), (n, m) -> (n, m, h, w)."""
    w = kernel.T[classes]  # (n, m, C)
    return jnp.einsum("nhwc,nmc->nmhw", features, w)


def cam(model: Model, images: Array, classes, layer: str, kernel: Array | None = None,
        logits: str = "logits") -> Array:
    """Class activation maps of ``classes`` from the feature maps at ``layer``, (n, m, h, w).

    Args:
        classes: an int, (m,) ints for every image, or (n, m) per image.
        layer: the last feature maps, the input of the head's global pooling.
        kernel: the head's dense kernel (C, classes); found in the params when None.
    """
    check_spatial(model, layer, images.shape[1:3])
    kernel = head_kernel(model, layer, logits) if kernel is None else jnp.asarray(kernel)
    n, k = images.shape[0], kernel.shape[1]
    classes = np.asarray(classes, np.int32)
    classes = np.broadcast_to(classes.reshape((1, -1)) if classes.ndim < 2 else classes, (n, max(1, classes.shape[-1] if classes.ndim else 1)))
    bad = sorted({int(c) for c in jnp.ravel(classes) if not 0 <= int(c) < k})
    if bad:
        raise TargetError(f"class(es) {bad} outside {model.name}'s head, which has {k} classes: use 0..{k - 1}")
    feats, _ = _features_and_logits(model.params, jnp.asarray(images, jnp.float32), model=model.static, layer=layer, logits=logits)
    return cam_from_features(feats, kernel, classes)


def cam_top_k(model: Model, images: Array, k: int, layer: str, kernel: Array | None = None,
              logits: str = "logits"):
    """CAMs of each image's k most probable classes (Zhou et al.'s figure 4).

    Returns: (maps (n, k, h, w), classes (n, k), probabilities (n, k)).
    """
    check_spatial(model, layer, images.shape[1:3])
    kernel = head_kernel(model, layer, logits) if kernel is None else jnp.asarray(kernel)
    if not 1 <= k <= kernel.shape[1]:
        raise ValueError(f"k={k} must be in 1..{kernel.shape[1]} (the head's classes)")
    feats, z = _features_and_logits(model.params, jnp.asarray(images, jnp.float32), model=model.static, layer=layer, logits=logits)
    probs, classes = jax.lax.top_k(jax.nn.softmax(z, -1), k)
    return cam_from_features(feats, kernel, classes), classes, probs


def upsample(maps: Array, size: tuple[int, int]) -> Array:
    """Bilinear resize of (..., h, w) maps to (..., *size)."""
    return resize(maps, tuple(size), channels=False)
