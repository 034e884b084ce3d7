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
                             f"{self.channels} channel(s): set decorrelate=False (--config.decorrelate=False)")

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
    fixed (3, H, W // 2 + 1) magnitude in the decorrelated colour basis (``jfv.spectrum``: the mean
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
            shipped estimate (``jfv.spectrum.shipped()``) resized to ``size``. Its DC terms are set
            to 0 and its Hermitian columns symmetrised.
        source: a name for the magnitude in the param's printout.

    Example:
        >>> param = maco(64)
        >>> param.to_image(param.init(jax.random.key(0))).shape
        (1, 64, 64, 3)
    """
    from jfv import spectrum  # imports this module

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


# Lucid's ``param.cppn``: ``_composite_activation``'s scales, the RMS of atan(z) and atan(z)^2 for
# z ~ N(0, 1) (Lucid computed them from 10^6 samples; biased variant).
CPPN_ATAN_RMS = 0.67
CPPN_ATAN_SQ_RMS = 0.6
CPPN_BIAS_SD = 0.1  # Lucid: biases ~ N(0, 0.1); weights variance-scaled (fan in, truncated normal)


@dataclasses.dataclass(frozen=True)
class CPPNParam:
    """A compositional pattern-producing network whose weights are the parameters.

    Each pixel's coordinates ``(x, y)`` in ``[-sqrt 3, sqrt 3]`` (unit variance) go through ``layers``
    1x1 layers ``h <- [atan(W h + b) / 0.67, atan(W h + b)^2 / 0.6]`` (Lucid's composite activation,
    2 x ``hidden`` features) and a last layer ``sigmoid(W h + b)`` to RGB whose weights start at zero,
    so the first image is flat. Each of the ``batch`` images has its own network (Lucid's batch shares
    one); ``init(key) -> pytree``, ``to_image(pytree) -> (batch, size, size, 3)`` in [0, 1], like
    ``ImageParam``. It has no ``init_from_image`` (a network is not the inverse of an image), so it
    cannot seed accentuation. Lucid's notebook uses Adam with a lower learning rate (0.005) than for
    Fourier images.

    Stanley 2007, "Compositional pattern producing networks"; Mordvintsev et al. 2018,
    "Differentiable Image Parameterizations" (Distill); Lucid's ``optvis.param.cppn``.

    Example:
        >>> param = cppn(64)
        >>> param.to_image(param.init(jax.random.key(0))).shape
        (1, 64, 64, 3)
    """

    size: int
    batch: int = 1
    hidden: int = 24
    layers: int = 8

    def __post_init__(self):
        if self.size < 1 or self.batch < 1 or self.hidden < 1 or self.layers < 1:
            raise ValueError(f"cppn size, batch, hidden and layers must be >= 1, got {self}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.size, self.size, 3)

    def init(self, key: Array) -> dict:
        """``{"hidden": [(W (n, in, hidden), b (n, hidden)) x layers], "out": (W (n, 2 hidden, 3) = 0, b)}``."""
        fan_in = [2] + [2 * self.hidden] * (self.layers - 1)
        keys = jax.random.split(key, 2 * self.layers + 1)
        init_w = jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1,
                                                      batch_axis=0)
        hidden = []
        for i, n_in in enumerate(fan_in):
            w = init_w(keys[2 * i], (self.batch, n_in, self.hidden), jnp.float32)
            b = CPPN_BIAS_SD * jax.random.normal(keys[2 * i + 1], (self.batch, self.hidden), jnp.float32)
            hidden.append((w, b))
        out = (jnp.zeros((self.batch, 2 * self.hidden, 3), jnp.float32),
               CPPN_BIAS_SD * jax.random.normal(keys[-1], (self.batch, 3), jnp.float32))
        return {"hidden": hidden, "out": out}

    def coordinates(self) -> np.ndarray:
        """(size, size, 2) pixel coordinates (x, y), each with unit variance."""
        r = 3.0**0.5
        c = np.linspace(-r, r, self.size, dtype=np.float32)
        y, x = np.meshgrid(c, c, indexing="ij")
        return np.stack([x, y], -1)

    def to_image(self, p: dict) -> Array:
        """Images (n, H, W, 3) in [0, 1]."""
        h = jnp.broadcast_to(jnp.asarray(self.coordinates()), (self.batch, self.size, self.size, 2))
        for w, b in p["hidden"]:
            z = jnp.arctan(jnp.einsum("nyxi,nio->nyxo", h, w) + b[:, None, None, :])
            h = jnp.concatenate([z / CPPN_ATAN_RMS, z * z / CPPN_ATAN_SQ_RMS], -1)
        w, b = p["out"]
        return jax.nn.sigmoid(jnp.einsum("nyxi,nio->nyxo", h, w) + b[:, None, None, :])


def cppn(size: int, batch: int = 1, *, hidden: int = 24, layers: int = 8) -> CPPNParam:
    """Lucid's ``param.cppn``: 8 layers of 24 composite-activation units, to RGB through a sigmoid."""
    return CPPNParam(size, batch, hidden, layers)


__all__ = ["CPPNParam", "ImageParam", "MacoParam", "cppn", "image", "maco", "pixel", "fourier", "sigmoid", "decorrelated",
           "rfft2d_freqs", "decorrelate_colour"]
