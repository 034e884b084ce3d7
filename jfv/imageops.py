"""Image operations every part of jfv shares: Gaussian blur, resize, and mapping over padded chunks.

One implementation each, with one convention each:

- ``gaussian_blur(x, sigma, radius=None, *, truncate=4.0, mode="symmetric")``: a separable,
  normalised Gaussian over the H and W axes of (..., H, W, C) images. The kernel is truncated at
  ``radius = int(truncate * sigma + 0.5)`` pixels (scipy's rule) unless a static ``radius`` is given;
  edges are mirrored with the edge pixel repeated (``mode="symmetric"``: ``d c b a | a b c d``,
  scipy's ``"reflect"``) unless ``mode="reflect"`` (numpy's: ``d c b | a b c d``) is asked for. The
  image-space blur step and the blur penalty use the defaults; the insertion/deletion baseline of
  ``jfv.attribution.faithfulness`` keeps its own radius (``max(1, int(3 sigma))``) and numpy's
  reflection, so its curves are unchanged.
- ``resize(x, size, *, channels=True)``: bilinear (``jax.image.resize``'s ``"linear"``, which
  antialiases when shrinking) over the two spatial axes: (..., H, W, C) images, or (..., H, W)
  maps with ``channels=False``.
- ``map_chunks(fn, *arrays, batch)``: ``fn`` over the leading axis in chunks of exactly ``batch``
  rows, the last chunk padded by repeating its last row, so one compiled shape serves any length.

Everything here is pure; ``gaussian_blur`` and ``resize`` can be jitted and vmapped.

Example:
    >>> x = jnp.zeros((1, 9, 9, 1)).at[0, 4, 4, 0].set(1.0)
    >>> gaussian_blur(x, 1.0)[0, :, 4, 0]   # the normalised kernel of radius 4
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

GAUSSIAN_TRUNCATE = 4.0  # kernel half-width in standard deviations; scipy.ndimage.gaussian_filter's default
BLUR_MODES = ("symmetric", "reflect")  # jnp.pad modes: edge pixel repeated (scipy's "reflect"), or not (numpy's)


def concrete(x: Any) -> float | None:
    """``x`` as a float when it is a concrete scalar (a number or a 0-d array, not a tracer), else None."""
    if isinstance(x, numbers.Number):
        return float(x)
    if isinstance(x, (np.ndarray, np.generic)) and np.ndim(x) == 0:
        return float(x)
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and x.ndim == 0:
        return float(x)
    return None


def check_sigma(sigma: Any, name: str = "blur radius sigma") -> None:
    """Refuses a concrete negative (or NaN) ``sigma``; a traced one passes."""
    v = concrete(sigma)
    if v is not None and not v >= 0.0:
        raise ValueError(f"{name} must be >= 0 pixels (0 = no blur), got {v:g}")


# ---------------------------------------------------------------------------------------------
# Gaussian blur.


def gaussian_radius(sigma: float, truncate: float = GAUSSIAN_TRUNCATE) -> int:
    """Kernel half-width in pixels for a concrete ``sigma``: ``int(truncate * sigma + 0.5)`` (scipy's)."""
    check_sigma(sigma)
    return int(truncate * float(sigma) + 0.5)


def gaussian_kernel(sigma: float | Array, radius: int) -> Array:
    """The normalised 1-D Gaussian ``w_k = exp(-k^2 / (2 sigma^2)) / Z`` for k in -radius..radius.

    ``sigma`` may be traced; ``sigma = 0`` gives the identity kernel (1 at k = 0).

    Returns:
        (2 radius + 1,) float32 weights summing to 1.
    """
    k = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    s = jnp.asarray(sigma, jnp.float32)
    safe = jnp.where(s > 0, s, 1.0)
    w = jnp.exp(-0.5 * (k / safe) ** 2)
    w = w / jnp.sum(w)
    return jnp.where(s > 0, w, (k == 0).astype(jnp.float32))


def gaussian_blur(x: Array, sigma: float | Array, radius: int | None = None, *,
                  truncate: float = GAUSSIAN_TRUNCATE, mode: str = "symmetric") -> Array:
    """Separable Gaussian blur of (..., H, W, C) images over H and W.

    ``(G_sigma * x)[y, x] = sum_{i,j} w_i w_j x[y + i, x + j]`` for i, j in -radius..radius, with the
    kernel of ``gaussian_kernel``. With the defaults it matches
    ``scipy.ndimage.gaussian_filter(x, (0, sigma, sigma, 0), mode="reflect", truncate=4)``.

    Args:
        x: images (..., H, W, C).
        sigma: standard deviation in pixels, >= 0; may be traced when ``radius`` is given.
        radius: static kernel half-width, at most min(H, W); default ``gaussian_radius(sigma, truncate)``.
        truncate: kernel half-width in standard deviations when ``radius`` is not given.
        mode: edges: ``"symmetric"`` (``d c b a | a b c d``) or ``"reflect"`` (``d c b | a b c d``).

    Returns:
        Blurred images, same shape and dtype.

    Example:
        >>> gaussian_blur(jnp.ones((2, 32, 32, 3)), 1.5).shape   # (2, 32, 32, 3); a constant stays constant

    Yosinski et al. 2015, "Understanding neural networks through deep visualization".
    """
    check_sigma(sigma)
    if mode not in BLUR_MODES:
        raise ValueError(f"blur mode must be one of {', '.join(BLUR_MODES)}, got {mode!r}")
    if radius is None:
        s = concrete(sigma)
        if s is None:
            raise ValueError("gaussian_blur with a traced sigma needs a static radius= (kernel half-width)")
        radius = gaussian_radius(s, truncate)
    if radius < 0:
        raise ValueError(f"blur kernel radius must be >= 0 pixels, got {radius}")
    if radius == 0:
        return x
    h, w = x.shape[-3], x.shape[-2]
    if radius > min(h, w):
        raise ValueError(f"blur kernel radius {radius} exceeds the image size {h}x{w}; use a smaller sigma")
    kern = gaussian_kernel(sigma, radius).astype(x.dtype)
    lead = [(0, 0)] * (x.ndim - 3)
    xp = jnp.pad(x, lead + [(radius, radius), (0, 0), (0, 0)], mode=mode)
    x = sum(kern[i] * xp[..., i : i + h, :, :] for i in range(2 * radius + 1))
    xp = jnp.pad(x, lead + [(0, 0), (radius, radius), (0, 0)], mode=mode)
    return sum(kern[i] * xp[..., :, i : i + w, :] for i in range(2 * radius + 1))


# ---------------------------------------------------------------------------------------------
# Resize.


def resize(x: Array, size: int | tuple[int, int], *, channels: bool = True) -> Array:
    """Bilinear resize of the two spatial axes: (..., H, W, C) -> (..., h, w, C), or (..., H, W) ->
    (..., h, w) maps with ``channels=False``.

    ``jax.image.resize(x, shape, "linear")``: a triangle kernel on half-pixel centres, widened by the
    scale factor when shrinking (antialiasing), so a constant image stays constant.

    Args:
        x: images (channels last) or maps.
        size: the new side (square) or (h, w).
        channels: whether the last axis is channels (not resized).

    Returns:
        The resized array, float.

    Example:
        >>> resize(jnp.ones((2, 32, 32, 3)), 64).shape   # (2, 64, 64, 3)
    """
    hw = (int(size), int(size)) if isinstance(size, numbers.Integral) else tuple(int(s) for s in size)
    if len(hw) != 2:
        raise ValueError(f"resize size must be one side or (height, width), got {size!r}")
    shape = x.shape[:-3] + hw + x.shape[-1:] if channels else x.shape[:-2] + hw
    return jax.image.resize(x, shape, "linear")


# ---------------------------------------------------------------------------------------------
# Map over padded chunks.


def map_chunks(fn: Callable[..., Any], *arrays, batch: int,
               progress: Callable[[int, int], None] | None = None) -> Any:
    """``fn(*chunks)`` over the leading axis of ``arrays`` in chunks of exactly ``batch`` rows.

    The last chunk is padded by repeating its last row (always valid input: a real image, an index
    in range), so every call has one shape and a jitted ``fn`` compiles once for any length; the
    padded rows' outputs are dropped. ``fn`` must treat rows independently.

    Args:
        fn: (batch, ...) arrays -> an array, or a pytree of arrays, with leading axis batch.
        arrays: numpy or JAX arrays with the same leading length n >= 1.
        batch: rows per call, >= 1 (pass ``min(batch, n)`` to avoid padding short inputs).
        progress: called as ``progress(rows_done, n)`` after every chunk.

    Returns:
        ``fn``'s outputs for the n rows, concatenated along the leading axis (JAX arrays).

    Example:
        >>> map_chunks(lambda a: a * 2, jnp.arange(5), batch=2)   # [0, 2, 4, 6, 8], 3 calls of 2 rows
    """
    if not arrays:
        raise ValueError("map_chunks needs at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"map_chunks arrays must share their leading length, got {[len(a) for a in arrays]}")
    if n < 1:
        raise ValueError("map_chunks needs at least one row")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    out = []
    for s in range(0, n, batch):
        parts = [a[s : s + batch] for a in arrays]
        k = len(parts[0])
        if k < batch:
            parts = [_pad_edge(p, batch - k) for p in parts]
        out.append(jax.tree.map(lambda y: y[:k], fn(*parts)))
        if progress is not None:
            progress(s + k, n)
    return jax.tree.map(lambda *ys: jnp.concatenate(ys), *out)


def _pad_edge(a, extra: int):
    """``a`` with its last row repeated ``extra`` more times along the leading axis."""
    xp = jnp if isinstance(a, jax.Array) else np
    return xp.concatenate([a, xp.repeat(a[-1:], extra, axis=0)])


__all__ = [
    "BLUR_MODES",
    "GAUSSIAN_TRUNCATE",
    "check_sigma",
    "concrete",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_radius",
    "map_chunks",
    "resize",
]
