"""Image parameterisations: ``init(key) -> pytree`` and ``to_image(pytree) -> images``.

A parameterisation is the space the optimiser moves in: Lucid's Fourier and decorrelated-colour
image (``images``), MACO's phase-only image over a fixed natural magnitude (``maco``, with the
magnitude estimated and shipped by ``spectrum``), and the CPPN (``cppn``). Every one is a frozen
dataclass with ``init(key)`` and ``to_image(params) -> (n, H, W, 3)`` in [0, 1].

Example:
    >>> param = image(128, fft=True, decorrelate=True)
    >>> param.to_image(param.init(jax.random.key(0))).shape
    (1, 128, 128, 3)
"""

from jfv.optvis.parameterisations.images import (COLOR_CORRELATION_SVD_SQRT, COLOR_MEAN, FFT_OUTPUT_SCALE,
                                                 LOGIT_EPSILON, MAX_NORM_SVD_SQRT, ImageParam,
                                                 decorrelate_colour, decorrelated, fourier, image, pixel,
                                                 rfft2d_freqs, sigmoid)
from jfv.optvis.parameterisations.maco import STANDARDISE_EPS, MacoParam, maco
from jfv.optvis.parameterisations.cppn import CPPN_ATAN_RMS, CPPN_ATAN_SQ_RMS, CPPN_BIAS_SD, CPPNParam, cppn
from jfv.optvis.parameterisations import spectrum

__all__ = ["CPPNParam", "ImageParam", "MacoParam", "cppn", "image", "maco", "pixel", "fourier", "sigmoid",
           "decorrelated", "rfft2d_freqs", "decorrelate_colour", "spectrum",
           "COLOR_CORRELATION_SVD_SQRT", "COLOR_MEAN", "FFT_OUTPUT_SCALE", "LOGIT_EPSILON", "MAX_NORM_SVD_SQRT",
           "STANDARDISE_EPS", "CPPN_ATAN_RMS", "CPPN_ATAN_SQ_RMS", "CPPN_BIAS_SD"]
