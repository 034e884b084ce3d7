"""MACO (Fel et al. 2023): images whose Fourier magnitude is fixed and whose phase is optimised.

The magnitude is a natural-image estimate (``spectrum``); the phase is the parameter. See
``docs/maco.md``.

Example:
    >>> param = maco(64)
    >>> param.to_image(param.init(jax.random.key(0))).shape
    (1, 64, 64, 3)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

from jfv.optvis.parameterisations import spectrum
from jfv.optvis.parameterisations.images import COLOR_CORRELATION_SVD_SQRT, MAX_NORM_SVD_SQRT, decorrelate_colour


STANDARDISE_EPS = 1e-5  # Xplique's epsilon in (x - mean) / (std + eps)


def _standardise(x: Array, axes: tuple[int, ...]) -> Array:
    x = x - jnp.mean(x, axis=axes, keepdims=True)
    return x / (jnp.std(x, axis=axes, keepdims=True) + STANDARDISE_EPS)


def _hermitian_columns(w: int) -> list[int]:
    """The rfft2 columns whose coefficients must be Hermitian along the rows: 0 (and w/2, w even)."""
    return [0] + ([w // 2] if w % 2 == 0 and w > 1 else [])


def _antisymmetric_rows(phase: Array, w: int) -> Array:
    """Phase made odd along the rows, ``(p[k] - p[-k]) / 2``, in the Hermitian columns.

    A real image's rfft2 has ``X[k, j] = conj(X[-k mod H, j])`` in those columns, so with a symmetric
    magnitude an odd phase gives a spectrum that ``irfft2`` inverts exactly (otherwise it would
    silently drop the non-Hermitian part, and the image would not keep the magnitude).
    """
    for j in _hermitian_columns(w):
        col = phase[..., j]
        mirrored = jnp.roll(jnp.flip(col, axis=-1), 1, axis=-1)  # index k -> -k mod H
        phase = phase.at[..., j].set(0.5 * (col - mirrored))
    return phase


@dataclasses.dataclass(frozen=True)
class MacoParam:
    """MACO: images whose Fourier magnitude is fixed and whose phase is optimised.

    ``to_image(phi) = sigmoid(decorrelate_colour(standardise(irfft2(M exp(i phi')))))`` with ``M`` the
    fixed (3, H, W // 2 + 1) magnitude in the decorrelated colour basis (``jfv.optvis.parameterisations.spectrum``: the mean
    spectrum of natural photos, DC terms 0) and ``phi'`` the phase made odd along the rows in the
    rfft2 columns 0 and W/2, so that the spectrum is Hermitian there and ``irfft2`` keeps it. The
    image before colour mapping and sigmoid, ``spatial(phi)``, therefore has the magnitude spectrum
    ``M / std`` exactly (one scale factor per image, from the standardisation; the DC term is 0);
    only the colour mapping and the sigmoid bend it. The parameters are the phases,
    (n, 3, H, W // 2 + 1), initialised uniform in [-pi, pi).

    What the reference implementations do (read for this, not copied):

    - magnitude: Horama and Xplique load an ImageNet estimate in the decorrelated basis
      (``imagenet_decorrelated.npy``, downloaded) and resize it as an image to (H, W // 2 + 1)
      (Horama bilinear with antialiasing, Xplique ``tf.image.resize``); jfv ships its own estimate
      from the shared photos and resamples it on the frequency grid (``spectrum.resize_magnitude``).
    - phase: both draw normal(0, 1) and standardise the whole phase tensor (zero mean, unit std)
      before every use. A normal(0, 1) phase has ``E[cos phi] = exp(-1/2) = 0.61``, so most of the
      spectrum adds up in phase at pixel (0, 0): a bright spot in the canvas's corners, which their
      1280 px canvas mostly keeps out of the crops but a small canvas shows. jfv draws the phase
      uniform in [-pi, pi) (no spot), uses it as it is, so that ``init_from_image`` can set any
      phase exactly (a standardised phase cannot equal an image's, whose std is ~1.8), and makes it
      odd in the Hermitian columns (there ``irfft2`` would drop the imaginary part instead).
    - image: ``irfft2``, standardise (zero mean, unit std, eps 1e-4 Horama / 1e-5 Xplique),
      recorrelate colours with Lucid's matrix (the same as ``decorrelate_colour``), sigmoid, then
      scaled to the model's input range ((-2.5, 2.5) Horama, (-1, 1) Xplique); jfv's models take
      [0, 1] and normalise themselves, so the sigmoid's output is the image. No clipping.
    - crops and noise: transforms here (``transforms.maco``): Horama takes 6 crops per step with
      side 0.20-0.25 of a 1280 px canvas, Xplique 32 crops with side normal(mean, 0.05) whose mean
      falls linearly from 0.5 to 0.05; centres normal(0.5, 0.15); each crop resized to the model's
      input (224) plus normal(sd) and uniform(+-sd/2) noise, sd 0.05 (Horama) or 0.08 (Xplique).
    - optimiser and transparency: NAdam with learning rate 1.0 on the standardised phase; the
      transparency is the sum over steps of ``|d objective / d image|`` at the canvas
      (``Engine(..., transparency=True)`` here). On the raw phase (radians) jfv's configs use Adam 0.2.

    Attributes:
        size: height and width in pixels.
        batch: images per render.
        source: where the magnitude came from (printed; the array itself is not).
        magnitude: (3, size, size // 2 + 1) float32, symmetric in the Hermitian columns, DC 0.

    Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude-Constrained
    Optimization" (NeurIPS); Horama's ``maco_fv.py``, Xplique's ``features_visualizations/maco.py``.
    """

    size: int
    batch: int = 1
    source: str = "shipped"
    magnitude: np.ndarray = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.size < 2 or self.batch < 1:
            raise ValueError(f"MACO image size must be >= 2 and batch >= 1, got size={self.size}, batch={self.batch}")
        if self.magnitude is None:
            raise ValueError("MacoParam needs a magnitude; build it with parameterisations.maco(size)")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.size, self.size, 3)

    def init(self, key: Array) -> Array:
        """Initial phases, uniform in [-pi, pi), shape (n, 3, H, W // 2 + 1)."""
        shape = (self.batch,) + self.magnitude.shape
        return jax.random.uniform(key, (int(np.prod(shape)),), jnp.float32, -np.pi, np.pi).reshape(shape)

    def spatial(self, phase: Array) -> Array:
        """The standardised image (n, H, W, 3) in decorrelated colour, before the colour mapping and sigmoid."""
        s = self.size
        phase = _antisymmetric_rows(phase, s)
        m = jnp.asarray(self.magnitude, jnp.float32)
        spectrum = jax.lax.complex(m * jnp.cos(phase), m * jnp.sin(phase))
        img = jnp.fft.irfft2(spectrum, s=(s, s), axes=(-2, -1))  # (n, 3, H, W)
        return _standardise(jnp.transpose(img, (0, 2, 3, 1)), axes=(-3, -2, -1))

    def to_image(self, phase: Array) -> Array:
        """Images (n, H, W, 3) in (0, 1)."""
        return jax.nn.sigmoid(decorrelate_colour(self.spatial(phase)))

    def init_from_image(self, image: Array) -> Array:
        """The phases of an image: ``angle(rfft2(decorrelated(logit(image))))``, (n, 3, H, W // 2 + 1).

        ``to_image`` of them keeps the image's phase and swaps its magnitude for the fixed one, so it
        returns the image itself only when the image already has that magnitude (e.g. any output of
        ``to_image``: the round trip is exact up to float32 and the sigmoid's saturation); for a
        natural photo it keeps the edges and layout (phase carries them: Oppenheim and Lim 1981)
        while contrast and texture follow the mean spectrum: at 128 px, a pixel correlation with
        the photo of median 0.76 over the 30 shared photos (0.21 to 0.86).

        Args:
            image: (H, W, 3) or (n, H, W, 3) in [0, 1], H = W = size.

        Returns:
            (n, 3, H, W // 2 + 1) float32 phases (n = 1 for a single image).
        """
        x = jnp.asarray(image, jnp.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"init_from_image needs (n, {self.size}, {self.size}, 3) or ({self.size}, {self.size}, 3) "
                             f"images in [0, 1], got shape {tuple(x.shape)}: resize it to the param's size")
        eps = 1e-6
        t = jax.scipy.special.logit(jnp.clip(x, eps, 1 - eps))
        c = jnp.asarray(COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT, jnp.float32)
        u = t @ jnp.linalg.inv(c.T)
        return jnp.angle(jnp.fft.rfft2(jnp.transpose(u, (0, 3, 1, 2)), axes=(-2, -1))).astype(jnp.float32)


def maco(size: int, batch: int = 1, *, magnitude: np.ndarray | None = None, source: str | None = None) -> MacoParam:
    """MACO's phase-only parameterisation with a fixed natural-image magnitude spectrum.

    Args:
        size: image side in pixels.
        batch: images per render.
        magnitude: (3, size, size // 2 + 1) magnitudes in the decorrelated colour basis; None: the
            shipped estimate (``jfv.optvis.parameterisations.spectrum.shipped()``) resized to ``size``. Its DC terms are set
            to 0 and its Hermitian columns symmetrised.
        source: a name for the magnitude in the param's printout.

    Example:
        >>> param = maco(64)
        >>> param.to_image(param.init(jax.random.key(0))).shape
        (1, 64, 64, 3)
    """
    if magnitude is None:
        m = spectrum.resize_magnitude(spectrum.shipped(), size)
        source = source or f"shipped {spectrum.SIZE}px photo estimate"
    else:
        m = np.array(spectrum.check_magnitude(magnitude, size), np.float32)
        source = source or "given"
    m = np.array(m, np.float32)
    m[:, 0, 0] = 0.0
    for j in _hermitian_columns(size):
        m[:, :, j] = 0.5 * (m[:, :, j] + np.roll(m[:, ::-1, j], 1, axis=1))
    return MacoParam(size, batch, source, m)


__all__ = ["MacoParam", "maco"]
