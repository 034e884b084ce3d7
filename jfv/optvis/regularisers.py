"""Image-space regularisers: Yosinski et al.'s steps as ``optax.GradientTransformation``s.

Yosinski et al. 2015 ("Understanding Neural Networks Through Deep Visualization", section 3)
regularise activation maximisation by applying an operator r_theta to the image after every
gradient step, ``x <- r_theta(x + eta * grad_x a_i(x))``. Each operator here is one optax
transformation, chained *after* the optimiser, that turns the optimiser's update ``u`` into
``r(x + u) - x`` so that ``optax.apply_updates`` lands on the regularised image:

- ``decay(theta)``: ``x <- (1 - theta) x`` (L2 decay);
- ``blur_step(sigma, every)``: a Gaussian blur of standard deviation ``sigma`` pixels every ``every``
  steps (at steps 0, every, 2 every, ...);
- ``clip_norm(percentile)``: zero the pixels whose colour norm ``||x[y, x, :]||`` is under the
  given percentile of the image's pixel norms;
- ``clip_contribution(percentile)``: zero the pixels whose contribution
  ``|sum_c x[y, x, c] * g[y, x, c]|`` (pixel times activation gradient, summed over colour) is under
  the percentile. ``g`` is the gradient the optimiser received, i.e. of *minus* the objective; the
  absolute value makes the sign irrelevant. Yosinski call it the linearised change in activation
  from setting the pixel to zero.

"x" is the pixel parameter: jfv's ``parameterisations.pixel`` stores the image minus grey 0.5, the
analogue of Yosinski's mean-subtracted Caffe input, so decaying or zeroing a pixel moves it to grey.
The steps only make sense on that parameterisation, so chain them with ``chain_image_steps(param,
optimiser, *steps)``, which refuses Fourier, decorrelated and sigmoid parameterisations and passes
the gradient that ``clip_contribution`` needs. Inside a plain ``optax.chain`` they also work
(``clip_contribution`` then needs ``grad=`` as an extra argument) and refuse Fourier coefficients
by shape.

Every hyperparameter may be a traced array, so one compiled render can be vmapped over strengths
(``render.render_sweep``); only ``blur``'s kernel ``radius`` is static. Validation (a negative
radius, a percentile outside [0, 100]) happens when the value is a concrete number.

Example:
    >>> param = parameterisations.pixel(64)
    >>> optimiser = chain_image_steps(param, optax.adam(0.05), *yosinski("decay_blur"))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfv.imageops import GAUSSIAN_TRUNCATE, check_sigma, gaussian_blur, gaussian_kernel, gaussian_radius  # noqa: F401  (re-exported)
from jfv.imageops import concrete as _concrete
from jfv.optvis.parameterisations import ImageParam
from jfv.runtime import moved

Array = jax.Array


class ImageStepError(ValueError):
    """An image-space step used where it has no meaning; the message names the valid combination."""


def _fmt(x: Any) -> str:
    v = _concrete(x)
    return "traced" if v is None else f"{v:g}"


def check_percentile(percentile: Any, name: str = "percentile") -> None:
    v = _concrete(percentile)
    if v is not None and not 0.0 <= v <= 100.0:
        raise ValueError(f"{name} must be in [0, 100] (a percentile of the image's pixels), got {v:g}")


# ---------------------------------------------------------------------------------------------
# The steps.


class ImageStep(optax.GradientTransformationExtraArgs):
    """An optax transformation that acts on the image; prints as its settings."""

    __slots__ = ()

    def __repr__(self) -> str:
        return getattr(self.update, "description", "ImageStep")


class BlurState(NamedTuple):
    """Steps taken so far (the blur fires when ``count % every == 0``)."""

    count: Array


def _check_pixels(params: Any, name: str) -> None:
    if not (hasattr(params, "ndim") and params.ndim == 4 and params.shape[-1] == 3):
        shape = getattr(params, "shape", type(params).__name__)
        raise ImageStepError(
            f"{name} acts on pixel parameters of shape (n, H, W, 3), got {shape} (a Fourier "
            f"parameterisation?); use parameterisations.pixel(size) with chain_image_steps"
        )


def _step(name: str, init: Callable, apply: Callable, description: str, needs_grad: bool = False) -> ImageStep:
    """An ImageStep from ``apply(x, state, grad) -> (x', state')`` on the updated image x = p + u."""

    def update(updates, state, params=None, *, grad=None, **extra):
        del extra
        if params is None:
            raise ValueError(f"{name} needs params: call update(updates, state, params)")
        _check_pixels(params, name)
        if needs_grad and grad is None:
            raise ImageStepError(
                f"{name} needs the objective's gradient: chain it with "
                f"regularisers.chain_image_steps(param, optimiser, ...), or pass grad= to update"
            )
        x = params + updates
        new_x, state = apply(x, state, grad)
        return new_x - params, state

    update.description = description
    return ImageStep(init, update)


def _empty(params):
    del params
    return optax.EmptyState()


def decay(theta: float | Array) -> ImageStep:
    """L2 decay: ``x <- (1 - theta) x`` after every step; theta in [0, 1]. Yosinski et al. 2015."""
    v = _concrete(theta)
    if v is not None and not 0.0 <= v <= 1.0:
        raise ValueError(f"decay theta must be in [0, 1] (x <- (1 - theta) x), got {v:g}")

    def apply(x, state, grad):
        return (1.0 - jnp.asarray(theta, x.dtype)) * x, state

    return _step("decay", _empty, apply, f"decay(theta={_fmt(theta)})")


def blur_step(sigma: float | Array, every: int | Array = 1, *, radius: int | None = None) -> ImageStep:
    """An image step: Gaussian blur of radius (standard deviation) ``sigma`` pixels at steps 0, every, 2 every, ...

    ``x <- G_sigma * x`` when ``count % every == 0``; ``every = 0`` never blurs. Yosinski et al. 2015
    (theta_b_width = sigma, theta_b_every = every). With a traced ``sigma`` pass the static kernel
    half-width ``radius`` (e.g. ``gaussian_radius(max_sigma)``).
    """
    check_sigma(sigma)
    e = _concrete(every)
    if e is not None and (e < 0 or e != int(e)):
        raise ValueError(f"blur every must be a whole number of steps >= 0 (0 = never), got {e:g}")
    if radius is None:
        s = _concrete(sigma)
        if s is None:
            raise ValueError("blur with a traced sigma needs a static radius= (kernel half-width in pixels)")
        radius = gaussian_radius(s)

    def init(params):
        del params
        return BlurState(jnp.zeros((), jnp.int32))

    def apply(x, state, grad):
        k = jnp.asarray(every, jnp.int32)
        fire = (k > 0) & (state.count % jnp.maximum(k, 1) == 0)
        x = jnp.where(fire, gaussian_blur(x, sigma, radius), x)
        return x, BlurState(state.count + 1)

    return _step("blur", init, apply, f"blur(sigma={_fmt(sigma)}, every={_fmt(every)})")


def _zero_under_percentile(x: Array, score: Array, percentile: Any) -> Array:
    """Zeroes pixels of (n, H, W, 3) ``x`` whose (n, H, W) ``score`` is under its per-image percentile."""
    q = jnp.asarray(percentile, jnp.float32)
    cut = jnp.percentile(score.reshape(score.shape[0], -1), q, axis=-1)  # linear, as numpy's
    keep = score >= cut[:, None, None]
    return x * keep[..., None].astype(x.dtype)


def clip_norm(percentile: float | Array) -> ImageStep:
    """Zero pixels whose colour norm ``||x[y, x, :]||_2`` is under the image's ``percentile``.

    Exactly the pixels with norm strictly below ``numpy.percentile(norms, percentile)`` become 0
    (grey); ``percentile = 0`` keeps all. Yosinski et al. 2015 (theta_n_pct).
    """
    check_percentile(percentile, "clip_norm percentile")

    def apply(x, state, grad):
        return _zero_under_percentile(x, jnp.sqrt(jnp.sum(x * x, axis=-1)), percentile), state

    return _step("clip_norm", _empty, apply, f"clip_norm(percentile={_fmt(percentile)})")


def clip_contribution(percentile: float | Array) -> ImageStep:
    """Zero pixels whose contribution ``|sum_c x[y, x, c] g[y, x, c]|`` is under ``percentile``.

    ``g`` is the gradient the optimiser received (of minus the objective; the absolute value makes
    the sign irrelevant) and ``x`` the image after the preceding steps. Yosinski et al. 2015
    (theta_c_pct): the first-order change in activation from setting the pixel to zero.
    """
    check_percentile(percentile, "clip_contribution percentile")

    def apply(x, state, grad):
        score = jnp.abs(jnp.sum(x * grad, axis=-1))
        return _zero_under_percentile(x, score, percentile), state

    return _step("clip_contribution", _empty, apply, f"clip_contribution(percentile={_fmt(percentile)})", True)


# ---------------------------------------------------------------------------------------------
# Chaining onto an optimiser.


class ImageStepsState(NamedTuple):
    optimiser: optax.OptState
    steps: tuple


def check_pixel_param(param: ImageParam) -> None:
    """Raises ImageStepError unless ``param`` is plain pixels (what the image steps act on)."""
    bad = [n for n in ("fft", "decorrelate", "sigmoid") if getattr(param, n)]
    if bad:
        raise ImageStepError(
            f"image-space steps (decay, blur, clip_norm, clip_contribution) act on raw pixels, but the "
            f"parameterisation {param!r} has {', '.join(n + '=True' for n in bad)}; use "
            f"parameterisations.pixel(size) (fft=False, decorrelate=False, sigmoid=False), or use "
            f"penalty objectives (objectives.l2, total_variation, blur_penalty) with this one"
        )


def chain_image_steps(param: ImageParam, optimiser: optax.GradientTransformation, *steps) -> optax.GradientTransformationExtraArgs:
    """``optimiser`` followed by image-space steps, for a pixel parameterisation.

    The result's ``update(grads, state, params)`` runs the optimiser on ``grads`` and then each step
    in order, passing ``grad=grads`` (the gradient of minus the objective) so that
    ``clip_contribution`` can weigh pixels. Yosinski et al.'s loop, one optimiser step then r_theta.

    Raises:
        ImageStepError: for Fourier, decorrelated or sigmoid parameterisations.
    """
    check_pixel_param(param)
    steps = tuple(steps)
    for s in steps:
        if not hasattr(s, "init") or not hasattr(s, "update"):
            raise TypeError(f"chain_image_steps takes optax transformations, got {s!r}")
    steps_x = tuple(optax.with_extra_args_support(s) for s in steps)
    opt = optax.with_extra_args_support(optimiser)

    def init(params):
        return ImageStepsState(opt.init(params), tuple(s.init(params) for s in steps_x))

    def update(grads, state, params=None, **extra):
        updates, o = opt.update(grads, state.optimiser, params, **extra)
        new = []
        for s, st in zip(steps_x, state.steps):
            updates, st = s.update(updates, st, params, grad=grads)
            new.append(st)
        return updates, ImageStepsState(o, tuple(new))

    return optax.GradientTransformationExtraArgs(init, update)


# ---------------------------------------------------------------------------------------------
# Yosinski et al. 2015, Table 1.


@dataclasses.dataclass(frozen=True)
class YosinskiSettings:
    """One row of Yosinski et al. 2015's Table 1 (theta_decay, theta_b_width, theta_b_every,
    theta_n_pct, theta_c_pct)."""

    decay: float
    blur_sigma: float
    blur_every: int
    norm_percentile: float
    contribution_percentile: float

    def as_array(self) -> np.ndarray:
        return np.asarray(dataclasses.astuple(self), np.float32)


# The four hyperparameter combinations of Table 1, top to bottom, named by what they use.
YOSINSKI_PRESETS: dict[str, YosinskiSettings] = {
    "blur_norm": YosinskiSettings(0.0, 0.5, 4, 50.0, 0.0),
    "decay_norm": YosinskiSettings(0.3, 0.0, 0, 20.0, 0.0),
    "decay_blur": YosinskiSettings(0.0001, 1.0, 4, 0.0, 0.0),
    "blur_contribution": YosinskiSettings(0.0, 0.5, 4, 0.0, 90.0),
}


def yosinski_steps(settings: YosinskiSettings | Array | Sequence[Any], *, radius: int | None = None) -> tuple[ImageStep, ...]:
    """The four steps for one setting, in Yosinski's order: decay, blur, clip_norm, clip_contribution.

    ``settings`` is a YosinskiSettings or a (5,) array of its fields (traceable, so the four presets
    can be one vmapped sweep; then pass ``radius`` for the blur kernel).
    """
    if isinstance(settings, YosinskiSettings):
        d, s, e, n, c = dataclasses.astuple(settings)
        if radius is None:
            radius = gaussian_radius(s)
    else:
        d, s, e, n, c = (settings[i] for i in range(5))
        if radius is None:
            raise ValueError("yosinski_steps with array settings needs a static radius= for the blur kernel")
    return (decay(d), blur_step(s, jnp.asarray(e).astype(jnp.int32) if not isinstance(e, int) else e, radius=radius),
            clip_norm(n), clip_contribution(c))


def yosinski(preset: str) -> tuple[ImageStep, ...]:
    """The steps of a named Table 1 preset: one of ``YOSINSKI_PRESETS``."""
    if preset not in YOSINSKI_PRESETS:
        raise ValueError(f"unknown Yosinski preset {preset!r}; valid: {', '.join(YOSINSKI_PRESETS)}")
    return yosinski_steps(YOSINSKI_PRESETS[preset])


__all__ = [
    "BlurState",
    "GAUSSIAN_TRUNCATE",
    "ImageStep",
    "ImageStepError",
    "ImageStepsState",
    "YOSINSKI_PRESETS",
    "YosinskiSettings",
    "blur_step",
    "chain_image_steps",
    "check_percentile",
    "check_pixel_param",
    "check_sigma",
    "clip_contribution",
    "clip_norm",
    "decay",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_radius",
    "yosinski",
    "yosinski_steps",
]


__getattr__ = moved.renamed(__name__)  # old names (jfv.runtime.moved.NAMES)
