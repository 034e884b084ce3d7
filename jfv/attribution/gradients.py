"""Gradient attributions: saliency, gradient x input, SmoothGrad, guided backprop, deconvnet.

All are one backward pass of a target's score to the pixels. Guided backprop and deconvnet differ
from the plain gradient only in how the backward pass crosses a ReLU, so they swap the model's
``relu`` field for a ReLU with a ``jax.custom_vjp`` (no global gradient overrides, no hooks):

    plain ReLU          g_in = g_out * [x > 0]
    deconvnet ReLU      g_in = max(g_out, 0)                      (Zeiler & Fergus 2014)
    guided ReLU         g_in = max(g_out, 0) * [x > 0]            (Springenberg et al. 2015)

The max-pool's gradient routes each signal to the window's argmax: exactly the switch unpooling of
Zeiler & Fergus, so ``deconvnet`` equals the explicit ``deconvnet_switches`` (tested on VGG16).

Every function takes (model, images (n, H, W, C) in [0, 1], C = ``model.channels``, target) and
is jit-compiled per (model, settings, the target's layer and reduction): the target's channel or
class is traced data, so a second call with same-shaped images, or another class, does not
recompile.

What a model must provide: saliency, gradient x input and SmoothGrad need only ``apply``.
Guided backprop and deconvnet swap the ReLU: the model's module needs a ``relu`` field applied at
every ReLU (``Model.with_module(relu=...)``); a module without one raises ``MissingFieldError``
(for a wrapped module: add ``relu: Callable = nn.relu`` and call ``self.relu``).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from jfv.attribution.targets import Target
from jfv.models.base import Model

Array = jax.Array


def _backward(rule: Callable[[Array | None, Array], Array], keep_input: bool = False) -> Callable:
    """Decorator: the ReLU ``fn`` as a ``jax.custom_vjp`` whose backward pass maps the incoming
    signal ``g`` to ``rule(x, g)`` (``x``: the forward input, kept only with ``keep_input``; else None)."""

    def wrap(fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
        relu = jax.custom_vjp(fn)
        relu.defvjp(lambda x: (fn(x), x if keep_input else None), lambda x, g: (rule(x, g),))
        return relu

    return wrap


@_backward(lambda _, g: jnp.maximum(g, 0))
def deconvnet_relu(x: Array) -> Array:
    """ReLU forward; backward rectifies the incoming signal, ignoring the forward input."""
    return jnp.maximum(x, 0)


@_backward(lambda x, g: jnp.where((x > 0) & (g > 0), g, jnp.zeros_like(g)), keep_input=True)
def guided_relu(x: Array) -> Array:
    """ReLU forward; backward passes only positive signals where the forward input was positive."""
    return jnp.maximum(x, 0)

RELUS: dict[str, Callable | None] = {"plain": None, "deconvnet": deconvnet_relu, "guided": guided_relu}


def _check_images(images: Array, model: Model) -> None:
    model.check_input(images)  # (n, H, W, model.channels), else one line naming the fix


def check_relu(model: Model, method: str) -> None:
    """Raises MissingFieldError naming the fix when ``model``'s module has no ``relu`` field to swap."""
    if callable(getattr(model.module, "relu", None)):
        return
    from jfv.models.wrap import MissingFieldError

    raise MissingFieldError(
        f"{method} swaps the model's ReLU, but {model.name}'s module ({type(getattr(model.module, 'module', model.module)).__name__}) "
        f"has no relu field: add 'relu: Callable = nn.relu' to it and call self.relu(x) at every ReLU, "
        f"or use saliency, grad_cam or occlusion")


@functools.partial(jax.jit, static_argnames=("model", "relu"))
def _gradient(params, images, target: Target, *, model: Model, relu: str) -> Array:
    m = model if RELUS[relu] is None else model.with_module(relu=RELUS[relu])
    return jax.grad(lambda x: target.score(m.apply(params, x)).sum())(images)


def gradient(model: Model, images: Array, target: Target, relu: str = "plain") -> Array:
    """d score / d pixels, through ``relu`` = plain | deconvnet | guided ReLUs.

    Returns: (n, H, W, C), the same shape as ``images``. Images are independent (the score is
    summed over the batch, and no layer mixes images).
    """
    _check_images(images, model)
    target.check(model, images.shape[1:3])
    if relu not in RELUS:
        raise ValueError(f"unknown relu {relu!r}; valid: {', '.join(RELUS)}")
    if RELUS[relu] is not None:
        check_relu(model, {"guided": "guided backprop", "deconvnet": "deconvnet"}[relu])
    return _gradient(model.params, jnp.asarray(images, jnp.float32), target, model=model.static, relu=relu)


def saliency(model: Model, images: Array, target: Target) -> Array:
    """Simonyan et al. 2014's saliency map: max over colour of |d score / d pixel|, (n, H, W)."""
    return jnp.abs(gradient(model, images, target)).max(-1)


def gradient_x_input(model: Model, images: Array, target: Target) -> Array:
    """sum over colour of gradient * input (Shrikumar et al. 2016), signed, (n, H, W).

    The input is the [0, 1] image, so the baseline is black.
    """
    return (gradient(model, images, target) * images).sum(-1)


@functools.partial(jax.jit, static_argnames=("model", "samples"))
def _smoothgrad(params, images, key, noise, target: Target, *, model: Model, samples: int) -> Array:
    span = images.max(axis=(1, 2, 3), keepdims=True) - images.min(axis=(1, 2, 3), keepdims=True)
    grad = jax.grad(lambda x: target.score(model.apply(params, x)).sum())

    def one(total, k):
        # one draw per sample, shared by the images (scaled to each one's range): an image's map
        # does not depend on the batch it is in (tests/attribution/test_attribution_conformance.py)
        eps = jax.random.normal(k, images.shape[1:], images.dtype)[None] * noise * span
        return total + grad(images + eps), None

    total, _ = jax.lax.scan(one, jnp.zeros_like(images), jax.random.split(key, samples))
    return total / samples


def smoothgrad(model: Model, images: Array, target: Target, key: Array, samples: int = 16, noise: float = 0.15) -> Array:
    """SmoothGrad (Smilkov et al. 2017): the saliency of the gradient averaged over noisy copies.

        map = max_colour | (1/N) sum_i grad(x + eps_i) |,  eps_i ~ N(0, (noise * (max x - min x))^2)

    Args:
        key: PRNG key for the noise; the same key gives the same map, alone or in any batch (every
            image gets the same standard-normal draws, scaled to its own range).
        samples: N, noisy copies (the paper uses ~50; 16 is enough for a picture).
        noise: the noise's standard deviation as a fraction of each image's value range (paper: 0.1-0.2).
    Returns: (n, H, W).
    """
    _check_images(images, model)
    target.check(model, images.shape[1:3])
    if samples < 1:
        raise ValueError(f"smoothgrad samples must be >= 1, got {samples}")
    g = _smoothgrad(model.params, jnp.asarray(images, jnp.float32), key, jnp.float32(noise), target,
                    model=model.static, samples=int(samples))
    return jnp.abs(g).max(-1)


def guided_backprop(model: Model, images: Array, target: Target) -> Array:
    """Guided backpropagation (Springenberg et al. 2015): the gradient through guided ReLUs, (n, H, W, 3)."""
    return gradient(model, images, target, relu="guided")


def deconvnet(model: Model, images: Array, target: Target) -> Array:
    """Zeiler & Fergus 2014's deconvnet projection as a gradient through deconvnet ReLUs, (n, H, W, 3).

    Max-pool gradients unpool through the forward argmax (the switches), convolution gradients are
    the transposed convolutions, and the deconvnet ReLU rectifies the signal: the deconvnet exactly.
    ``deconvnet_switches`` computes the same with the switches as explicit data.
    """
    return gradient(model, images, target, relu="deconvnet")
