"""Channel interpolation: strips of frames that morph from one channel's visualisation into another's.

A strip is one cell of the engine: a batch of ``frames`` images maximising
``objectives.channel_interpolate`` (frame i weights channel A by 1 - t_i and channel B by t_i), minus
``objectives.alignment`` so that neighbouring frames stay alike, rendered with
``InterpolationParam``: each frame's own Fourier image plus low-resolution components shared across
the strip (constant, or sliding linearly from the first frame to the last), which is what makes the
frames line up. Pairs of channels are vmapped like channels: pair (a, b) is the cell
(channel a, value b), so it starts from ``fold_in(key, a)``.

Olah et al. 2017 ("Feature Visualization", Distill: the interpolation figure); Lucid's
``channel_interpolate`` and ``alignment`` objectives and its ``aligned_interpolation`` notebook, whose
parameterisation (a unique Fourier image per frame plus ``lowres_tensor`` components) this follows.

Example:
    >>> param = interpolation.param(128, frames=6)
    >>> out = interpolation.render_interpolations(model, "conv4_3", [(48, 62)], param, transforms.standard(),
    ...                                           optax.adam(0.05), jax.random.key(0), 256)
    >>> out.images.shape
    (1, 6, 128, 128, 3)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfv import imageops
from jfv.optvis import objectives
from jfv.optvis.engine import Engine, Rendered, Setup
from jfv.models.base import Model
from jfv.optvis.parameterisations import ImageParam, decorrelate_colour
from jfv.optvis.transforms import Transform

Array = jax.Array

# Lucid's aligned_interpolation notebook: (frames of the component, size divisor). A component of 1
# frame is shared by every frame; one of 2 slides linearly from the first frame's to the last's.
LUCID_SHARED = ((1, 2), (1, 4), (1, 8), (2, 8), (1, 16), (2, 16))


def frame_weights(frames: int, k: int) -> np.ndarray:
    """(frames, k) weights that interpolate k components linearly across the frames, ends aligned:
    frame 0 is component 0, the last frame component k-1 (k = 1: every frame is component 0)."""
    if k == 1:
        return np.ones((frames, 1), np.float32)
    u = np.arange(frames) * (k - 1) / max(frames - 1, 1)
    lo = np.minimum(np.floor(u).astype(int), k - 2)
    w = np.zeros((frames, k), np.float32)
    w[np.arange(frames), lo] = 1.0 - (u - lo)
    w[np.arange(frames), lo + 1] = u - lo
    return w


@dataclasses.dataclass(frozen=True)
class InterpolationParam:
    """A strip of ``frames`` images, each its own Fourier image plus low-resolution shared components.

    ``to_image(p)_i = sigmoid(colour(U_i + sum_k sum_j W_k[i, j] up(L_kj)))``: ``U_i`` frame i's own
    image (``ImageParam(size, frames, fft=fft, decorrelate=decorrelate)``'s spatial part), ``L_k`` a
    (k_frames, size // divisor, size // divisor, 3) tensor upsampled bilinearly in space to the image
    size (``imageops.resize``) and linearly across the frames by ``frame_weights`` (ends aligned),
    ``colour`` Lucid's decorrelated colour map. The shared components move every frame at once, so
    low frequencies are common to the strip while each frame keeps its own detail.

    Attributes:
        size: height and width in pixels.
        frames: images per strip, >= 2.
        shared: (k_frames, divisor) per shared component; () for independent frames.
        fft, decorrelate, sd: as ``ImageParam``; the shared components start normal(0, sd).
    """

    size: int
    frames: int = 6
    shared: tuple[tuple[int, int], ...] = LUCID_SHARED
    fft: bool = True
    decorrelate: bool = True
    sd: float = 0.01

    def __post_init__(self):
        if self.frames < 2:
            raise ValueError(f"an interpolation strip needs frames >= 2, got {self.frames}")
        for k, div in self.shared:
            if not (1 <= k <= self.frames and div >= 1):
                raise ValueError(f"shared component ({k}, {div}) needs 1 <= frames <= {self.frames} and divisor >= 1")

    @property
    def unique(self) -> ImageParam:
        return ImageParam(self.size, self.frames, fft=self.fft, decorrelate=self.decorrelate, sd=self.sd)

    @property
    def batch(self) -> int:
        return self.frames

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.frames, self.size, self.size, 3)

    def low_shape(self, k: int, div: int) -> tuple[int, int, int, int]:
        side = max(1, self.size // div)
        return (k, side, side, 3)

    def init(self, key: Array) -> dict:
        """``{"unique": ImageParam.init, "shared": (L_1, ...)}``, the shared parts normal(0, sd)."""
        keys = jax.random.split(key, len(self.shared) + 1)
        shared = []
        for k, s in zip(keys[1:], self.shared):
            shape = self.low_shape(*s)  # drawn flat, as ImageParam.init (faster to compile on CPU)
            shared.append(self.sd * jax.random.normal(k, (int(np.prod(shape)),), jnp.float32).reshape(shape))
        return {"unique": self.unique.init(keys[0]), "shared": tuple(shared)}

    def spatial(self, p: dict) -> Array:
        """The unconstrained frames (frames, H, W, 3): the unique images plus the upsampled shared parts."""
        t = self.unique.spatial(p["unique"])
        for (k, _), low in zip(self.shared, p["shared"]):
            up = imageops.resize(low, self.size)
            t = t + jnp.einsum("fk,khwc->fhwc", jnp.asarray(frame_weights(self.frames, k)), up)
        return t

    def to_image(self, p: dict) -> Array:
        """Frames (frames, H, W, 3) in [0, 1]."""
        t = self.spatial(p)
        if self.decorrelate:
            t = decorrelate_colour(t)
        return jax.nn.sigmoid(t)


def param(size: int, frames: int = 6, *, shared: bool = True, fft: bool = True, decorrelate: bool = True,
          sd: float = 0.01) -> InterpolationParam:
    """An interpolation strip's parameterisation: Lucid's shared components, or none (``shared=False``)."""
    return InterpolationParam(size, frames, LUCID_SHARED if shared else (), fft, decorrelate, sd)


def strip_objective(layer: str, a: int | Array, b: int | Array, alignment_layers: Sequence[str] = (),
                    alignment_weight: float = 0.0, decay_ratio: float = 2.0) -> objectives.Objective:
    """``channel_interpolate(layer, a, layer, b) - w * sum_l alignment(l, decay_ratio)``."""
    objective = objectives.channel_interpolate(layer, a, layer, b)
    if alignment_weight and alignment_layers:
        penalty = objectives.alignment(alignment_layers[0], decay_ratio)
        for name in alignment_layers[1:]:
            penalty = penalty + objectives.alignment(name, decay_ratio)
        objective = objective - alignment_weight * penalty
    return objective


def render_interpolations(model: Model, layer: str, pairs: Sequence[tuple[int, int]], param: InterpolationParam,
                          transforms: Transform, optimiser: optax.GradientTransformation, key: Array, steps: int, *,
                          alignment_layers: Sequence[str] = (), alignment_weight: float = 0.0,
                          decay_ratio: float = 2.0, batch_size: int | None = None, mesh=None,
                          progress: Callable[[int, int], None] | None = None, engine: Engine | None = None) -> Rendered:
    """Renders one strip per pair (a, b) of ``layer``'s channels, vmapped over pairs.

    Args:
        pairs: (a, b) channel pairs; frame 0 shows a, the last frame b.
        param: the strip's parameterisation (``param(size, frames)``).
        transforms: applied to the whole strip with one key per step (the frames move together).
        alignment_layers: the alignment penalty's layers.
        alignment_weight: its weight (0: no penalty).
        decay_ratio: its decay ratio (``objectives.alignment``).
        engine: an engine from ``interpolation_engine`` with the same settings, to reuse its programs.

    The other arguments are as in ``render.render_channels``.

    Returns:
        Rendered(images (P, frames, H, W, 3), objective (P,) on the untransformed strips,
        history (P, steps)), numpy arrays.
    """
    pairs = [(int(a), int(b)) for a, b in pairs]
    if not pairs:
        raise ValueError("render_interpolations needs at least one pair of channels")
    model.check_channels(layer, sorted({c for p in pairs for c in p}))
    engine = engine or interpolation_engine(model, layer, param, transforms, optimiser, alignment_layers,
                                            alignment_weight, decay_ratio, mesh=mesh)
    return engine.render_cells([a for a, _ in pairs], np.asarray([b for _, b in pairs], np.float32), key, steps,
                               batch_size=batch_size, progress=progress)


def interpolation_engine(model: Model, layer: str, param: InterpolationParam, transforms: Transform,
                         optimiser: optax.GradientTransformation, alignment_layers: Sequence[str] = (),
                         alignment_weight: float = 0.0, decay_ratio: float = 2.0, **kwargs) -> Engine:
    """The engine whose cell (a, b) renders the strip from channel a to channel b (b passed as a value)."""

    def make(c, v):
        return Setup(strip_objective(layer, c, v.astype(jnp.int32), tuple(alignment_layers), alignment_weight,
                                     decay_ratio), optimiser)

    return Engine(model, make, param, transforms, **kwargs)


__all__ = ["InterpolationParam", "LUCID_SHARED", "frame_weights", "interpolation_engine", "param",
           "render_interpolations", "strip_objective"]
