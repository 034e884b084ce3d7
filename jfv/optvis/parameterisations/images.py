"""Image parameterisations: ``init(key) -> pytree`` and ``to_image(pytree) -> images``.

A parameterisation is the space the optimiser moves in. Lucid's strong prior is a Fourier basis
scaled by 1/f (so all frequencies move at the same rate), a decorrelated colour basis, and a sigmoid
that keeps pixels in [0, 1]. ``to_image`` returns (n, H, W, 3) in [0, 1].

Olah et al. 2017, "Feature Visualization" (Distill), section "Preconditioning and
Parameterization"; Lucid's ``optvis.param.spatial`` and ``param.color``.

Example:
    >>> param = image(128, fft=True, decorrelate=True)
    >>> p = param.init(jax.random.key(0))
    >>> param.to_image(p).shape
    (1, 128, 128, 3)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Square root of ImageNet's colour correlation matrix; Lucid's ``color_correlation_svd_sqrt``.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32
)
MAX_NORM_SVD_SQRT = float(np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0)))
COLOR_MEAN = (0.48, 0.46, 0.41)  # Lucid: ImageNet mean colour, used without a sigmoid
FFT_OUTPUT_SCALE = 4.0  # Lucid divides the inverse FFT by 4 so the initial image has small variance
# ``init_from_image`` clamps pixels to [eps, 1 - eps] before the logit, so 0 and 1 map to finite values
# (logit(1e-3) = -6.9); a sigmoid parameterisation then reproduces them within eps.
LOGIT_EPSILON = 1e-3


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """Frequency magnitude of each rfft2 coefficient of an (h, w) image: shape (h, w // 2 + 1)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def decorrelate_colour(t: Array) -> Array:
    """Maps decorrelated colour coordinates to RGB offsets: ``t @ (C / max_norm(C))^T``."""
    c = jnp.asarray(COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT, t.dtype)
    return t @ c.T


@dataclasses.dataclass(frozen=True)
class ImageParam:
    """Images of ``batch`` x ``size`` x ``size`` x 3 parameterised in pixel or Fourier space.

    Attributes:
        size: height and width in pixels.
        batch: images per render (more than one for diversity objectives).
        fft: Fourier basis, coefficients scaled by ``1 / max(f, 1/size)^decay_power``.
        decorrelate: optimise in the decorrelated colour basis.
        sigmoid: squash to [0, 1] with a sigmoid; otherwise clip with a straight-through gradient.
        sd: standard deviation of the initial values.
        decay_power: the exponent of the 1/f spectrum scaling.
        channels: colour channels of the image (3 RGB; 1 for a grayscale model, any n for a
            wrapped one); ``decorrelate`` needs 3.
    """

    size: int
    batch: int = 1
    fft: bool = True
    decorrelate: bool = True
    sigmoid: bool = True
    sd: float = 0.01
    decay_power: float = 1.0
    channels: int = 3

    def __post_init__(self):
        if self.size < 1 or self.batch < 1:
            raise ValueError(f"image size and batch must be >= 1, got size={self.size}, batch={self.batch}")
        if self.sd < 0:
            raise ValueError(f"sd must be >= 0, got {self.sd}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if self.decorrelate and self.channels != 3:
            raise ValueError(f"decorrelate maps 3 decorrelated coordinates to RGB, but the image has "
                             f"{self.channels} channel(s): set decorrelate=False")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.size, self.size, self.channels)

    def init(self, key: Array) -> Array:
        """Initial parameters: normal(0, sd) spectrum (2, n, 3, H, W//2+1) or pixels (n, H, W, 3)."""
        if self.fft:
            freqs = rfft2d_freqs(self.size, self.size)
            shape = (2, self.batch, self.channels) + freqs.shape
        else:
            shape = self.shape
        # Drawn flat and reshaped: XLA:CPU takes ~10 s to compile threefry for a 5-D shape and
        # ~1 s for a 1-D one.
        return self.sd * jax.random.normal(key, (int(np.prod(shape)),), jnp.float32).reshape(shape)

    def _spectrum_scale(self) -> Array:
        """Lucid's per-frequency scale 1 / max(f, 1/size)^decay_power * size, (size, size // 2 + 1)."""
        h = w = self.size
        scale = 1.0 / np.maximum(rfft2d_freqs(h, w), 1.0 / max(h, w)) ** self.decay_power
        return jnp.asarray(scale * np.sqrt(w * h), jnp.float32)

    def spatial(self, p: Array) -> Array:
        """The unconstrained image (n, H, W, 3) before colour mapping and squashing."""
        if not self.fft:
            return p
        h = w = self.size
        scale = self._spectrum_scale()
        spectrum = (p[0] + 1j * p[1]) * scale
        img = jnp.fft.irfft2(spectrum, s=(h, w), axes=(-2, -1))  # (n, 3, H, W)
        return jnp.transpose(img, (0, 2, 3, 1)) / FFT_OUTPUT_SCALE

    def init_from_image(self, image: Array) -> Array:
        """The parameters whose ``to_image`` is ``image``: the inverse of ``to_image``.

        ``logit(clip(x, eps, 1 - eps))`` (or ``x`` minus the mean colour without a sigmoid), then the
        inverse of the colour decorrelation, then ``rfft2`` with the 1/f scale divided out. Exact
        up to float32 rounding for pixels in [eps, 1 - eps] (eps = ``LOGIT_EPSILON`` = 1e-3); pixels
        nearer 0 or 1 come back at eps or 1 - eps. Pure and jittable, so a recipe can seed every
        cell of a vmapped render from its own natural image (feature accentuation, inversion
        started from a photo).

        Args:
            image: (H, W, 3) (repeated over the batch) or (batch, H, W, 3), RGB in [0, 1], H = W = size.

        Returns:
            The parameter pytree ``init`` would return, e.g. (2, n, 3, H, W//2+1) for ``fft=True``.

        Example:
            >>> param = image(64)
            >>> p = param.init_from_image(photo)            # photo: (64, 64, 3) in [0, 1]
            >>> np.abs(param.to_image(p)[0] - photo).max()  # < 1e-4 for pixels inside (eps, 1-eps)

        Hamblin et al. 2024 ("Feature Accentuation") seed the Fourier parameterisation this way.
        """
        x = jnp.asarray(image, jnp.float32)
        if x.ndim == 3:
            x = jnp.broadcast_to(x[None], (self.batch,) + x.shape)
        if x.shape != self.shape:
            raise ValueError(
                f"init_from_image needs an image of shape {self.shape[1:]} or {self.shape}, got {x.shape}: "
                f"resize it to {self.size} x {self.size} (e.g. outputs.load_image(path, {self.size}))")
        if self.sigmoid:
            x = jnp.clip(x, LOGIT_EPSILON, 1.0 - LOGIT_EPSILON)
            t = jnp.log(x) - jnp.log1p(-x)
        else:
            t = x - (jnp.asarray(COLOR_MEAN, jnp.float32) if self.decorrelate else 0.5)
        if self.decorrelate:  # t = s @ M^T  =>  s = t @ (M^T)^-1
            m = COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT
            t = t @ jnp.asarray(np.linalg.inv(m.T.astype(np.float64)), jnp.float32)
        if not self.fft:
            return t
        scale = self._spectrum_scale()
        spectrum = jnp.fft.rfft2(jnp.transpose(t, (0, 3, 1, 2)) * FFT_OUTPUT_SCALE, axes=(-2, -1)) / scale
        return jnp.stack([jnp.real(spectrum), jnp.imag(spectrum)]).astype(jnp.float32)

    def to_image(self, p: Array) -> Array:
        """Images (n, H, W, 3) in [0, 1]."""
        t = self.spatial(p)
        if self.decorrelate:
            t = decorrelate_colour(t)
        if self.sigmoid:
            return jax.nn.sigmoid(t)
        t = t + (jnp.asarray(COLOR_MEAN, t.dtype) if self.decorrelate else 0.5)
        return t + jax.lax.stop_gradient(jnp.clip(t, 0.0, 1.0) - t)


def image(size: int, batch: int = 1, *, fft: bool = True, decorrelate: bool = True, sigmoid: bool = True,
          sd: float = 0.01, decay_power: float = 1.0, channels: int = 3) -> ImageParam:
    """Lucid's ``param.image``: Fourier + decorrelated colour + sigmoid by default; ``channels``
    other than 3 (a grayscale model's 1) needs ``decorrelate=False``."""
    return ImageParam(size, batch, fft, decorrelate, sigmoid, sd, decay_power, channels)


def pixel(size: int, batch: int = 1, *, sd: float = 0.01, sigmoid: bool = False) -> ImageParam:
    """Plain pixels around grey 0.5 (clipped to [0, 1]); the space Yosinski's image steps act on."""
    return ImageParam(size, batch, fft=False, decorrelate=False, sigmoid=sigmoid, sd=sd)


def fourier(size: int, batch: int = 1, *, sd: float = 0.01, decay_power: float = 1.0) -> ImageParam:
    """1/f-scaled Fourier basis, RGB colour, sigmoid."""
    return ImageParam(size, batch, fft=True, decorrelate=False, sigmoid=True, sd=sd, decay_power=decay_power)


def sigmoid(size: int, batch: int = 1, *, sd: float = 0.01) -> ImageParam:
    """Pixels squashed by a sigmoid."""
    return ImageParam(size, batch, fft=False, decorrelate=False, sigmoid=True, sd=sd)


def decorrelated(size: int, batch: int = 1, *, sd: float = 0.01) -> ImageParam:
    """Pixels in the decorrelated colour basis, sigmoid."""
    return ImageParam(size, batch, fft=False, decorrelate=True, sigmoid=True, sd=sd)


__all__ = ["ImageParam", "image", "pixel", "fourier", "sigmoid", "decorrelated", "rfft2d_freqs",
           "decorrelate_colour"]
