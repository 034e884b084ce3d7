"""Transformation robustness: pure ``(key, images) -> images`` functions.

Each transform acts on one render's images, shape (..., H, W, C), applying the same random draw to
all of them, and returns a new array. Library transforms are frozen dataclasses that print as their
settings; ``compose`` splits the key between its members. Output shapes depend only on the settings
(never on the random draw), so every transform compiles once under ``jit``.

Mordvintsev et al. 2015 ("Inceptionism"), Olah et al. 2017 ("Feature Visualization");
``standard()`` is Lucid's ``transform.standard_transforms``.

Example:
    >>> t = compose(Pad(12, value=0.5), Jitter(8))
    >>> t(jax.random.key(0), jnp.zeros((1, 128, 128, 3))).shape
    (1, 144, 144, 3)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Transform = Callable[[Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class Pad:
    """Pads ``pixels`` on every side; ``mode`` 'constant' (with ``value``), 'reflect' or 'edge'."""

    pixels: int
    mode: str = "constant"
    value: float = 0.5

    def __post_init__(self):
        if self.pixels < 0:
            raise ValueError(f"Pad pixels must be >= 0, got {self.pixels}")
        if self.mode not in ("constant", "reflect", "edge"):
            raise ValueError(f"Pad mode must be 'constant', 'reflect' or 'edge', got {self.mode!r}")

    def __call__(self, key: Array, x: Array) -> Array:
        del key
        widths = [(0, 0)] * (x.ndim - 3) + [(self.pixels, self.pixels)] * 2 + [(0, 0)]
        if self.mode == "constant":
            return jnp.pad(x, widths, mode="constant", constant_values=self.value)
        return jnp.pad(x, widths, mode=self.mode)


@dataclasses.dataclass(frozen=True)
class Jitter:
    """A random crop ``pixels`` smaller in height and width: offsets uniform in 0..pixels.

    Lucid's ``jitter(d)``: the output is (H - d, W - d).
    """

    pixels: int

    def __post_init__(self):
        if self.pixels < 0:
            raise ValueError(f"Jitter pixels must be >= 0, got {self.pixels}")

    def __call__(self, key: Array, x: Array) -> Array:
        d = self.pixels
        h, w = x.shape[-3], x.shape[-2]
        if d >= min(h, w):
            raise ValueError(f"Jitter({d}) needs an image larger than {d} pixels, got {h}x{w}")
        oy, ox = jax.random.randint(key, (2,), 0, d + 1)
        zero = jnp.zeros((), jnp.int32)
        starts = [zero] * (x.ndim - 3) + [oy, ox, zero]
        sizes = list(x.shape[:-3]) + [h - d, w - d, x.shape[-1]]
        return jax.lax.dynamic_slice(x, starts, sizes)


def affine_resample(x: Array, matrix: Array, fill: float = 0.0) -> Array:
    """Bilinear resampling of (..., H, W, C) images about their centre, same output size.

    ``matrix`` (2x2) maps output offsets from the centre (y, x) to input offsets; samples outside the
    image take ``fill``. The image is padded by one pixel of ``fill`` and flattened, so the four taps
    of every output pixel are one gather (a single scatter-add in the backward pass), which compiles
    quickly and vmaps cleanly.
    """
    h, w = x.shape[-3], x.shape[-2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy, jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij")
    src = jnp.einsum("ij,jhw->ihw", matrix, jnp.stack([yy, xx]))
    # Coordinates in the padded image, clipped so every tap lands inside it (on the fill border
    # when the sample is outside the original image).
    sy = jnp.clip(src[0] + cy + 1.0, 0.0, h + 0.999)
    sx = jnp.clip(src[1] + cx + 1.0, 0.0, w + 0.999)
    y0, x0 = jnp.floor(sy), jnp.floor(sx)
    wy, wx = (sy - y0).reshape(-1, 1), (sx - x0).reshape(-1, 1)
    y0, x0 = y0.astype(jnp.int32).reshape(-1), x0.astype(jnp.int32).reshape(-1)
    pw = w + 2
    idx = jnp.stack([y0 * pw + x0, y0 * pw + x0 + 1, (y0 + 1) * pw + x0, (y0 + 1) * pw + x0 + 1], axis=-1)
    weights = jnp.concatenate([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], axis=-1)
    lead = [(0, 0)] * (x.ndim - 3)
    padded = jnp.pad(x, lead + [(1, 1), (1, 1), (0, 0)], constant_values=fill)
    flat = padded.reshape(x.shape[:-3] + ((h + 2) * pw, x.shape[-1]))
    taps = jnp.take(flat, idx, axis=-2)  # (..., H*W, 4, C)
    out = jnp.einsum("...pkc,pk->...pc", taps, weights.astype(x.dtype))
    return out.reshape(x.shape)


def _choose(key: Array, values: tuple[float, ...]) -> Array:
    return jnp.asarray(values, jnp.float32)[jax.random.randint(key, (), 0, len(values))]


@dataclasses.dataclass(frozen=True)
class RandomScale:
    """Zooms by a factor drawn uniformly from ``scales``, about the centre, keeping the size.

    Lucid's ``random_scale`` resizes the image to ``scale * size``; under ``jit`` shapes are static, so
    jfv resamples into the same size instead: a factor above 1 magnifies the content and crops the
    margin (the padding that ``Pad`` added), a factor below 1 shrinks it and fills with ``fill``.
    """

    scales: tuple[float, ...]
    fill: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"RandomScale needs positive scales, got {self.scales}")

    def __call__(self, key: Array, x: Array) -> Array:
        s = _choose(key, self.scales)
        return affine_resample(x, jnp.eye(2) / s, self.fill)


@dataclasses.dataclass(frozen=True)
class RandomRotate:
    """Rotates by an angle in degrees drawn uniformly from ``angles``, about the centre, bilinear.

    Lucid's ``random_rotate``; corners outside the source take ``fill`` (Lucid fills 0).
    """

    angles: tuple[float, ...]
    fill: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "angles", tuple(float(a) for a in self.angles))
        if not self.angles:
            raise ValueError("RandomRotate needs at least one angle")

    def __call__(self, key: Array, x: Array) -> Array:
        t = _choose(key, self.angles) * (math.pi / 180.0)
        c, s = jnp.cos(t), jnp.sin(t)
        return affine_resample(x, jnp.array([[c, -s], [s, c]]), self.fill)


def _concrete(x) -> float | None:
    try:
        return float(x)
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None


@dataclasses.dataclass(frozen=True)
class UniformScale:
    """Zooms by a factor drawn uniformly from [low, high], about the centre, keeping the size.

    As ``RandomScale`` but with a continuous range whose ends may be traced arrays, so a sweep over
    scale ranges is one vmapped computation (the output shape never depends on them). Requires
    ``0 < low <= high``; ``UniformScale(1, 1)`` is the identity.
    """

    low: float
    high: float
    fill: float = 0.5

    def __post_init__(self):
        lo, hi = _concrete(self.low), _concrete(self.high)
        if lo is not None and not lo > 0:
            raise ValueError(f"UniformScale low must be > 0, got {lo:g}")
        if lo is not None and hi is not None and not lo <= hi:
            raise ValueError(f"UniformScale range inverts: need 0 < low <= high, got low={lo:g} > high={hi:g}")

    def __call__(self, key: Array, x: Array) -> Array:
        s = jax.random.uniform(key, (), jnp.float32, self.low, self.high)
        return affine_resample(x, jnp.eye(2) / s, self.fill)


@dataclasses.dataclass(frozen=True)
class UniformRotate:
    """Rotates by an angle in degrees drawn uniformly from [low, high], about the centre, bilinear.

    As ``RandomRotate`` with a continuous range whose ends may be traced. Requires low <= high.
    """

    low: float
    high: float
    fill: float = 0.0

    def __post_init__(self):
        lo, hi = _concrete(self.low), _concrete(self.high)
        if lo is not None and hi is not None and not lo <= hi:
            raise ValueError(f"UniformRotate range inverts: need low <= high degrees, got low={lo:g} > high={hi:g}")

    def __call__(self, key: Array, x: Array) -> Array:
        t = jax.random.uniform(key, (), jnp.float32, self.low, self.high) * (math.pi / 180.0)
        c, s = jnp.cos(t), jnp.sin(t)
        return affine_resample(x, jnp.array([[c, -s], [s, c]]), self.fill)


def scale(factor: float) -> UniformScale:
    """Zoom uniformly in [1/factor, factor] (factor >= 1); the seed tests factor 1.0-1.4."""
    f = _concrete(factor)
    if f is not None and not f >= 1.0:
        raise ValueError(f"scale factor must be >= 1 (zoom in [1/factor, factor]), got {f:g}")
    return UniformScale(1.0 / factor, factor)


def rotate(degrees: float) -> UniformRotate:
    """Rotate uniformly in [-degrees, degrees]; the seed tests 15-180."""
    d = _concrete(degrees)
    if d is not None and not d >= 0.0:
        raise ValueError(f"rotate degrees must be >= 0 (angles in [-degrees, degrees]), got {d:g}")
    return UniformRotate(-degrees, degrees)


@dataclasses.dataclass(frozen=True)
class Compose:
    """Applies transforms in order, each with its own key split from the given one."""

    transforms: tuple[Transform, ...]

    def __call__(self, key: Array, x: Array) -> Array:
        if not self.transforms:
            return x
        keys = jax.random.split(key, len(self.transforms))
        for k, t in zip(keys, self.transforms):
            x = t(k, x)
        return x

    def __repr__(self) -> str:
        return "compose(" + ", ".join(map(repr, self.transforms)) + ")"


def compose(*transforms: Transform) -> Compose:
    return Compose(tuple(transforms))


def identity() -> Compose:
    return Compose(())


# Lucid's standard_transforms.
STANDARD_SCALES = tuple(1 + (i - 5) / 50.0 for i in range(11))
STANDARD_ANGLES = tuple(range(-10, 11)) + 5 * (0,)  # 0 appears six times in all


def standard() -> Compose:
    """Lucid's standard transforms: pad 12 (0.5), jitter 8, scale 0.9..1.1, rotate -10..10, jitter 4."""
    return compose(
        Pad(12, mode="constant", value=0.5),
        Jitter(8),
        RandomScale(STANDARD_SCALES),
        RandomRotate(STANDARD_ANGLES),
        Jitter(4),
    )


def _crop_matrix(start: Array, side: Array, size: int, n: int) -> Array:
    """(size, n) bilinear weights sampling ``size`` pixel centres evenly over [start, start + side)."""
    src = start + (jnp.arange(size, dtype=jnp.float32) + 0.5) * (side / size) - 0.5
    src = jnp.clip(src, 0.0, n - 1.0)
    lo = jnp.floor(src)
    w = (src - lo)[:, None]
    lo = lo.astype(jnp.int32)
    hi = jnp.minimum(lo + 1, n - 1)
    return (1.0 - w) * jax.nn.one_hot(lo, n, dtype=jnp.float32) + w * jax.nn.one_hot(hi, n, dtype=jnp.float32)


@dataclasses.dataclass(frozen=True)
class RandomCrops:
    """``crops`` random square crops of the image, each resized (bilinear) to ``size`` x ``size``.

    Crop ``k``'s side is ``s_k * min(H, W)`` with ``s_k`` uniform in ``box`` (fractions of the image);
    its centre is normal(0.5, ``centre_sd``) in fractional coordinates, moved so that the crop stays
    inside the image. Every image of the input gets the same crops: (..., H, W, C) in, (crops * n,
    size, size, C) out, crop-major (n the product of the leading axes); an objective that averages
    over the batch then averages over crops, as MACO's does. Sampling is two (size, H) / (size, W)
    bilinear weight matrices, so the gradient reaches exactly the pixels each crop reads.

    MACO's crops (Fel et al. 2023): Horama draws the side uniform in (0.20, 0.25) of a 1280 px canvas
    (its code in fact draws from (0.25, 0.30)) and resizes with ``roi_align``; Xplique draws it
    normal(mean, 0.05) clipped to [0.05, 1] and resizes with ``crop_and_resize``; neither keeps the
    crop inside the canvas (outside reads zeros).
    """

    crops: int
    size: int
    box: tuple[float, float] = (0.5, 0.8)
    centre_sd: float = 0.15

    def __post_init__(self):
        object.__setattr__(self, "box", tuple(float(b) for b in self.box))
        if self.crops < 1 or self.size < 1:
            raise ValueError(f"RandomCrops needs crops >= 1 and size >= 1, got crops={self.crops}, size={self.size}")
        if len(self.box) != 2 or not 0 < self.box[0] <= self.box[1] <= 1:
            raise ValueError(f"RandomCrops box must be (low, high) fractions with 0 < low <= high <= 1, got {self.box}")
        if self.centre_sd < 0:
            raise ValueError(f"RandomCrops centre_sd must be >= 0, got {self.centre_sd}")

    def __call__(self, key: Array, x: Array) -> Array:
        h, w = x.shape[-3], x.shape[-2]
        k_side, k_centre = jax.random.split(key)
        side = jax.random.uniform(k_side, (self.crops,), jnp.float32, self.box[0], self.box[1]) * min(h, w)
        centre = 0.5 + self.centre_sd * jax.random.normal(k_centre, (self.crops, 2), jnp.float32)
        top = jnp.clip(centre[:, 0] * h - side / 2, 0.0, h - side)
        left = jnp.clip(centre[:, 1] * w - side / 2, 0.0, w - side)
        ry = jax.vmap(lambda t, s: _crop_matrix(t, s, self.size, h))(top, side)  # (k, size, H)
        rx = jax.vmap(lambda t, s: _crop_matrix(t, s, self.size, w))(left, side)  # (k, size, W)
        flat = x.reshape((-1, h, w, x.shape[-1]))
        out = jnp.einsum("kiy,nyxc,kjx->knijc", ry, flat, rx)
        return out.reshape((-1, self.size, self.size, x.shape[-1]))


@dataclasses.dataclass(frozen=True)
class Noise:
    """Adds normal(0, ``sd``) and uniform(-``sd``/2, ``sd``/2) noise to every pixel (MACO's, both)."""

    sd: float

    def __post_init__(self):
        s = _concrete(self.sd)
        if s is not None and not s >= 0:
            raise ValueError(f"Noise sd must be >= 0, got {s:g}")

    def __call__(self, key: Array, x: Array) -> Array:
        k_normal, k_uniform = jax.random.split(key)
        normal = jax.random.normal(k_normal, x.shape, x.dtype)
        uniform = jax.random.uniform(k_uniform, x.shape, x.dtype, -0.5, 0.5)
        return x + self.sd * (normal + uniform)


MACO_NOISE = 0.05  # Horama's noise; Xplique uses 0.08
MACO_BOX = (0.5, 0.8)  # crop side as a fraction of a canvas only ~1-2x the model's input (Horama: 0.2-0.25 of 1280 px)


def maco(crops: int, size: int, box: tuple[float, float] = MACO_BOX, noise: float = MACO_NOISE) -> Compose:
    """MACO's transforms: ``crops`` random crops resized to ``size``, then noise.

    Example:
        >>> t = maco(4, 64)
        >>> t(jax.random.key(0), jnp.zeros((1, 128, 128, 3))).shape
        (4, 64, 64, 3)
    """
    return compose(RandomCrops(crops, size, box), Noise(noise))


def output_size(transform: Transform, size: int) -> int:
    """The side length ``transform`` produces from a ``size`` x ``size`` image (no FLOPs spent)."""
    out = jax.eval_shape(transform, jax.random.key(0), jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
    return int(out.shape[-2])


__all__ = [
    "Compose",
    "Jitter",
    "MACO_BOX",
    "MACO_NOISE",
    "Noise",
    "Pad",
    "RandomCrops",
    "RandomRotate",
    "RandomScale",
    "STANDARD_ANGLES",
    "STANDARD_SCALES",
    "Transform",
    "UniformRotate",
    "UniformScale",
    "affine_resample",
    "compose",
    "identity",
    "maco",
    "output_size",
    "rotate",
    "scale",
    "standard",
]
