"""MACO (Fel et al. 2023): images whose Fourier magnitude is fixed and whose phase is optimised.

The magnitude is a natural-image estimate (``spectrum``), taken to the image size as photos of that
size have it (``photo_magnitude``); the phase is the parameter. See ``docs/maco.md``.

Example:
    >>> param = maco(64)
    >>> param.to_image(param.init(jax.random.key(0))).shape
    (1, 64, 64, 3)
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

from jfv.optvis.parameterisations import spectrum
from jfv.optvis.parameterisations.images import COLOR_CORRELATION_SVD_SQRT, MAX_NORM_SVD_SQRT, decorrelate_colour


STANDARDISE_EPS = 1e-5  # Xplique's epsilon in (x - mean) / (std + eps)
RESIZE_CUBIC_A = -0.5  # Keys' cubic of PIL's BICUBIC, the filter ``outputs.load_image`` resizes photos with
RESAMPLINGS = ("photo", "pixel")  # how ``maco(size)`` takes the shipped estimate to ``size`` (see ``maco``)


def cubic_kernel(x: np.ndarray, a: float = RESIZE_CUBIC_A) -> np.ndarray:
    """Keys' cubic convolution kernel (support [-2, 2], 1 at 0, 0 at the other integers)."""
    x = np.abs(np.asarray(x, np.float64))
    inner = (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    outer = a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return np.where(x <= 1, inner, np.where(x < 2, outer, 0.0))


def cubic_response(f: np.ndarray, a: float = RESIZE_CUBIC_A) -> np.ndarray:
    """Frequency response of ``cubic_kernel`` at ``f`` cycles per pixel (real, even, 1 at f = 0).

    PIL's antialiased bicubic downsizing scales the kernel to the *output* pixel, so this is the
    filter a photo's spectrum goes through when it is resized to any smaller size, at ``f`` cycles per
    output pixel (0.94 at 0.25, 0.49 at 0.5: the drop below a photo's 1/f near the new Nyquist).
    """
    x = np.linspace(-2.0, 2.0, 8001)  # the kernel is 0 at both ends: a plain Riemann sum is exact to ~1e-7
    f = np.asarray(f, np.float64)
    k = cubic_kernel(x, a) * (x[1] - x[0])
    return (np.cos(2 * np.pi * f.reshape(-1, 1) * x) @ k).reshape(f.shape)


def _full_plane(m: np.ndarray) -> np.ndarray:
    """(3, S, S // 2 + 1) rfft2 magnitudes -> (3, S, S), by the symmetry |X[-k]| = |X[k]| of real images."""
    s = m.shape[1]
    cols = np.arange(s)
    src_col = np.where(cols <= s // 2, cols, s - cols)  # column kx > S/2 mirrors column S - kx ...
    rows = np.arange(s)[:, None]
    src_row = np.where(cols[None, :] <= s // 2, rows, (-rows) % s)  # ... at row -ky
    return m[:, src_row, src_col[None, :]]


def photo_magnitude(m: np.ndarray, size: int) -> np.ndarray:
    """The magnitude photos have at ``size`` px, from an estimate ``m`` made at S px (e.g. the shipped 256).

    Resampling at the same cycles per pixel (``spectrum.resize_magnitude``) takes the steep fall of
    ``m`` near *its* Nyquist (where the bicubic resize to S px and JPEG cut in) to the top of the small
    image's band too, so a 64 px MACO image came out smoother than 64 px photos. Photos resized to
    ``size`` instead keep their 1/f spectrum at the same cycles per *image* (natural images are
    scale-invariant) up to the resize filter at the new size. So, in power, on the integer
    cycles-per-image grid:

        P_size(k mod size) = sum over k of  M(k)^2 / H(k / S)^2 * H(k / size)^2

    for the frequencies k = (ky, kx) of an S x S image, with ``H = cubic_response`` separable
    (``H(ky / n) H(kx / n)``): undo the resize to S px, apply the resize to ``size`` px, and fold the
    frequencies above the new Nyquist back (aliasing, as in a real resize). At ``size`` >= S there is
    nothing above S's Nyquist to know, and this is ``spectrum.resize_magnitude`` (the same cycles per
    pixel; ``m`` itself at ``size`` = S).

    Measured (``benchmarks/maco_magnitude.md``): the power-spectrum slope of this magnitude is within
    0.1 of that of the 30 shared photos resized to the size, at 32 to 224 px.

    Args:
        m: (3, S, S // 2 + 1) magnitude, e.g. ``spectrum.shipped()``.
        size: the target image side.

    Returns:
        (3, size, size // 2 + 1) float32.
    """
    m = spectrum.check_magnitude(np.asarray(m, np.float64))
    s = m.shape[1]
    if size < 1:
        raise ValueError(f"image size must be >= 1, got {size}")
    if size >= s:
        return spectrum.resize_magnitude(m, size)
    k = np.rint(np.fft.fftfreq(s) * s).astype(int)  # cycles per image
    gain = cubic_response(k / size) / cubic_response(k / s)
    power = _full_plane(m) ** 2 * (gain[:, None] * gain[None, :]) ** 2
    folded = np.zeros((3, size, size))
    np.add.at(folded, (slice(None), (k % size)[:, None], (k % size)[None, :]), power)
    return np.sqrt(folded[:, :, :size // 2 + 1]).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _shipped_at(size: int, resample: str) -> np.ndarray:
    shipped = spectrum.shipped()
    m = photo_magnitude(shipped, size) if resample == "photo" else spectrum.resize_magnitude(shipped, size)
    m.setflags(write=False)
    return m


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
      from the shared photos at 256 px and takes it to smaller sizes as photos resized to that size
      have it (``photo_magnitude``: the same cycles per image, through the resize filter).
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
        the photo of median 0.78 over the 30 shared photos (0.21 to 0.87).

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


def maco(size: int, batch: int = 1, *, magnitude: np.ndarray | None = None, source: str | None = None,
         resample: str = "photo") -> MacoParam:
    """MACO's phase-only parameterisation with a fixed natural-image magnitude spectrum.

    Args:
        size: image side in pixels.
        batch: images per render.
        magnitude: (3, size, size // 2 + 1) magnitudes in the decorrelated colour basis; None: the
            shipped estimate (``jfv.optvis.parameterisations.spectrum.shipped()``, 256 px) taken to
            ``size`` as ``resample`` says. Its DC terms are set to 0 and its Hermitian columns symmetrised.
        source: a name for the magnitude in the param's printout.
        resample: for ``magnitude=None`` below 256 px: ``"photo"`` (default) the spectrum photos
            resized to ``size`` have (``photo_magnitude``: the same cycles per image, with the
            resize's filter and aliasing); ``"pixel"`` the estimate at the same cycles per pixel
            (``spectrum.resize_magnitude``), jfv's default before: smoother than photos at small sizes
            (power slope -2.89 against the photos' -2.57 at 64 px, ``benchmarks/maco_magnitude.md``).
            The two are the same at 256 px and above.

    Example:
        >>> param = maco(64)
        >>> param.to_image(param.init(jax.random.key(0))).shape
        (1, 64, 64, 3)
    """
    if resample not in RESAMPLINGS:
        raise ValueError(f"unknown resample {resample!r}; valid: {', '.join(RESAMPLINGS)}")
    if magnitude is None:
        if size < 2:
            raise ValueError(f"MACO image size must be >= 2, got size={size}")
        m = _shipped_at(size, resample)
        at = f", as photos at {size}px" if resample == "photo" and size < spectrum.SIZE else ""
        source = source or f"shipped {spectrum.SIZE}px photo estimate{at}"
    else:
        m = np.array(spectrum.check_magnitude(magnitude, size), np.float32)
        source = source or "given"
    m = np.array(m, np.float32)
    m[:, 0, 0] = 0.0
    for j in _hermitian_columns(size):
        m[:, :, j] = 0.5 * (m[:, :, j] + np.roll(m[:, ::-1, j], 1, axis=1))
    return MacoParam(size, batch, source, m)


__all__ = ["MacoParam", "maco", "photo_magnitude", "cubic_response", "cubic_kernel"]
