"""Feature inversion, caricature and feature accentuation: renders anchored to natural images.

- ``invert``: find an image whose activations at one layer match a photo's (Mahendran & Vedaldi
  2015), or, with ``mode="caricature"``, go further along them (Lucid's caricature recipe). One
  cell per photo, vmapped; each cell's target activations are indexed by its cell number, so every
  photo shares one compiled program per layer.
- ``accentuate``: start from a photo (``param.init_from_image``) and maximise a channel while a
  penalty keeps the image near the photo in a chosen layer's feature space, optionally projected to
  an L-inf or L2 ball around it in pixel space (Hamblin et al. 2024, "Feature Accentuation:
  Revealing 'What' Features Respond to in Natural Images"). One cell per (photo, channel, penalty).

Feature-space terms compare maps position by position. Without transforms (the default) the target
is the photo's activations, computed once. With transforms, each step passes the photo through the
same random transforms as the rendering, in one batch ``[renders, photo]`` (``WithReference``; Lucid's
caricature recipe stacks the two the same way), and the target is the transformed photo's
activations, so a jitter or a rotation never misaligns the maps.

Keys: a cell's key is ``fold_in(key, cell)`` with ``cell = image * CELL_STRIDE + channel`` for
accentuation and ``cell = image`` for inversion, so a cell's image does not depend on which other
photos or channels were rendered with it.

Example:
    >>> out = invert(model, "conv3_1", photos, parameterisations.image(64), optax.adam(0.05),
    ...              jax.random.key(0), steps=256, tv=0.05)
    >>> out.images.shape       # (photos, 1, 64, 64, 3)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jfv.optvis import objectives as objectives_lib
from jfv.optvis import transforms as transforms_lib
from jfv.optvis.engine import Engine, Rendered, RenderState, Setup, channel_key
from jfv.models.base import Model

Array = jax.Array
ProgressFn = Callable[[int, int], None]

MODES = ("inversion", "caricature")
NORMS = ("none", "linf", "l2")
CELL_STRIDE = 1 << 16  # accentuation cell = image * CELL_STRIDE + channel (no layer has more channels)
RMS_FLOOR = 1e-8


class InversionError(ValueError):
    """Inputs an inversion or accentuation cannot use; the message names the fix."""


def check_images(images: Any, name: str = "images", channels: int = 3) -> np.ndarray:
    """``images`` as float32 (N, H, W, channels) in [0, 1], or InversionError naming what is wrong.

    ``channels`` is the model's input channels (``Model.channels``): photos are RGB, so a model with
    another count takes ``model.from_rgb(photos)`` (BT.601 luma for a grayscale model).
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != channels or x.shape[0] < 1 or x.shape[1] != x.shape[2]:
        fix = ("load them with outputs.load_image(path, size)" if channels == 3 else
               "load them with outputs.load_image(path, size) and convert them with model.from_rgb(images)")
        raise InversionError(f"{name} must be square images of shape (N, H, H, {channels}) (the model's input "
                             f"channels), got shape {x.shape}: {fix}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
        raise InversionError(f"{name} must be values in [0, 1] (divide 8-bit pixels by 255)")
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Transforming the photo with the rendering.


@dataclasses.dataclass(frozen=True)
class WithReference:
    """``transforms`` applied to ``[images, reference]`` in one batch: one random draw for both.

    jfv's transforms draw one offset, scale and angle per call and apply it to the whole batch, so
    the reference photo (last in the batch) is jittered, scaled and rotated exactly as the renders.
    Pair it with ``referenced``, which reads the reference's activations as the target.
    """

    transforms: transforms_lib.Transform
    reference: Any = dataclasses.field(repr=False)  # (H, W, 3) in [0, 1]; may be traced

    def __call__(self, key: Array, x: Array) -> Array:
        ref = jnp.asarray(self.reference, x.dtype)[None]
        return self.transforms(key, jnp.concatenate([x, ref], 0))

    def __repr__(self) -> str:
        return f"with_reference({self.transforms!r})"


def referenced(make: Callable[[Array], objectives_lib.Objective], layer: str, target: Array,
               n: int) -> objectives_lib.Objective:
    """``make(T)`` with ``T`` the reference's ``layer`` activations when the model saw ``[n renders,
    reference]`` (under ``WithReference``), else the fixed ``target`` (untransformed, e.g. the final
    evaluation). The renders' activations alone (the first n) are what ``make(T)`` reads; the
    reference gets no gradient."""
    probe = make(target)

    def fn(a):
        if a[layer].shape[0] == n + 1:
            ref = jax.lax.stop_gradient(a[layer][n])
            return make(ref)({k: (v[:n] if k != objectives_lib.INPUT else v) for k, v in a.items()})
        return make(target)(a)

    return objectives_lib.Objective(fn, probe.description, probe.layers)


# ---------------------------------------------------------------------------------------------
# Projection to a ball around the seed, an image-space step.


def project(param, seed: Array, eps: float | Array, norm: str = "linf") -> optax.GradientTransformationExtraArgs:
    """An optax step that projects the image onto a ball of radius ``eps`` around ``seed``.

    Chained after the optimiser, it turns the update ``u`` into ``g(P(to_image(p + u))) - p``, where
    ``P`` is ``seed + clip(x - seed, -eps, eps)`` (``"linf"``) or ``seed + d * min(1, eps / ||d||)``
    with ``d = x - seed`` over each image (``"l2"``), and ``g = param.init_from_image``: so any
    parameterisation with ``init_from_image`` (pixels, Fourier, MACO) works. After the step,
    ``to_image(p)`` is in the ball up to the round trip's float32 error (and the sigmoid's clamp at
    ``LOGIT_EPSILON`` for seed pixels within eps of 0 or 1). Projected gradient ascent, as in
    adversarial attacks (Madry et al. 2018); Hamblin et al. 2024 bound accentuations this way.

    Args:
        param: the parameterisation (``to_image`` and ``init_from_image``).
        seed: (H, W, 3) or (n, H, W, 3) image in [0, 1]; may be traced (one per vmapped cell).
        eps: the radius in pixel units ([0, 1] scale); may be traced.
        norm: ``"linf"`` or ``"l2"``.

    Example:
        >>> optimiser = optax.chain(optax.adam(0.05), project(param, photo, 8 / 255))
    """
    if norm not in ("linf", "l2"):
        raise InversionError(f"projection norm must be 'linf' or 'l2', got {norm!r}")
    if not hasattr(param, "init_from_image"):
        raise InversionError(f"{type(param).__name__} has no init_from_image, so images cannot be projected back "
                             f"into its parameters: use a parameterisation that has one (e.g. parameterisations.image)")
    seed = jnp.asarray(seed, jnp.float32)

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None, **extra):
        del extra
        if params is None:
            raise ValueError("project needs params: call update(updates, state, params)")
        x = param.to_image(optax.apply_updates(params, updates))
        d = x - seed
        if norm == "linf":
            d = jnp.clip(d, -eps, eps)
        else:
            length = jnp.sqrt(jnp.sum(d**2, axis=(-3, -2, -1), keepdims=True))
            d = d * jnp.minimum(1.0, eps / jnp.maximum(length, 1e-12))
        new = param.init_from_image(seed + d)
        return jax.tree.map(lambda a, b: a - b, new, params), state

    return optax.GradientTransformationExtraArgs(init, update)


# ---------------------------------------------------------------------------------------------
# Starting cells from images.


def seeded_cell(param, optimiser: optax.GradientTransformation, key: Array, seed: Array) -> RenderState:
    """A cell's initial state from an image: ``init_cell`` with ``param.init_from_image(seed)``."""
    _, k_steps = jax.random.split(key)
    p = param.init_from_image(seed)
    return RenderState(p, optimiser.init(p), jnp.zeros((), jnp.int32), k_steps)


def seeded_start(engine: Engine, seeds: Array, image_of: Callable[[Array], Array], key: Array):
    """``start(channels, values) -> state`` for ``Engine.render_cells``: cell c starts from
    ``seeds[image_of(c)]``, with the key ``fold_in(key, c)`` the engine's own init would use."""
    seeds = jnp.asarray(seeds, jnp.float32)

    def build():
        def start(key, seeds, cs, vs):
            return jax.vmap(lambda c, v: seeded_cell(engine.param, engine.setup_traced(c, v).optimiser,
                                                     channel_key(key, c), seeds[image_of(c)]))(cs, vs)

        return engine.jit(start, replicated=2)

    def start(cs, vs):
        fn = engine.program("seeded_start", build)
        return fn(key, seeds, engine.put(np.asarray(cs, np.int32)), engine.put(np.asarray(vs, np.float32)))

    return start


# ---------------------------------------------------------------------------------------------
# Inversion and caricature.


def inversion_objective(mode: str, layer: str, target: Array, cossim_pow: float | Array = 0.0,
                        tv: float | Array = 0.0) -> objectives_lib.Objective:
    """``feature_match`` (inversion) or ``caricature`` of ``target``, minus ``tv`` x total variation."""
    if mode not in MODES:
        raise InversionError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "inversion":
        o = objectives_lib.feature_match(layer, target)
    else:
        o = objectives_lib.caricature(layer, target, cossim_pow)
    return o - tv * objectives_lib.total_variation()


def invert(model: Model, layer: str, images: Any, param, optimiser: optax.GradientTransformation, key: Array,
           steps: int, *, mode: str = "inversion", cossim_pow: float = 0.0, tv: float = 0.0,
           transforms: transforms_lib.Transform | None = None, batch_size: int | None = None,
           progress: ProgressFn | None = None, engine: Engine | None = None) -> Rendered:
    """Renders, for each image, an image whose ``layer`` activations match (or caricature) its own.

    Cell i maximises ``inversion_objective(mode, layer, A_i, cossim_pow, tv)`` with ``A_i`` the
    model's ``layer`` activations of ``images[i]``, from ``param.init(fold_in(key, i))``.

    Args:
        model: the network.
        layer: a layer of the model.
        images: (N, H, W, C) in [0, 1], C the model's input channels (``model.from_rgb(photos)``);
            H must be ``param.size``.
        param: the image parameterisation (batch 1 is usual).
        optimiser: optax transformation (minimises minus the objective).
        mode: ``"inversion"`` or ``"caricature"``.
        cossim_pow: caricature's cosine exponent.
        tv: weight of the total-variation penalty.
        transforms: random transforms applied to the rendering and its photo together (default: none).
        engine: an engine from ``inversion_engine`` to reuse its compilations.

    Returns:
        Rendered(images (N, n, H, W, C), objective (N,), history (N, steps)), numpy arrays.
    """
    x = check_images(images, channels=model.channels)
    if x.shape[1] != param.size:
        raise InversionError(f"images are {x.shape[1]} px but the parameterisation is {param.size} px: "
                             f"load them at {param.size} px")
    model.check_layer(layer)
    if engine is None:
        engine = inversion_engine(model, layer, x, param, optimiser, mode=mode, cossim_pow=cossim_pow,
                                  tv=tv, transforms=transforms)
    return engine.render_cells(np.arange(len(x)), np.zeros(len(x), np.float32), key, steps,
                               batch_size=batch_size, progress=progress)


def inversion_engine(model: Model, layer: str, images: Any, param, optimiser: optax.GradientTransformation, *,
                     mode: str = "inversion", cossim_pow: float = 0.0, tv: float = 0.0,
                     transforms: transforms_lib.Transform | None = None) -> Engine:
    """The engine whose cell i inverts (or caricatures) ``images[i]`` ((N, H, W, 3) in [0, 1]).

    Without transforms the targets are the images' activations, computed once; with transforms each
    cell passes its image through them with the rendering (``WithReference``, ``referenced``).
    """
    x = jnp.asarray(images, jnp.float32)
    targets = jnp.asarray(model.apply(model.params, x)[layer], jnp.float32)
    inversion_objective(mode, layer, targets[0])  # refuses an unknown mode before compiling
    n = param.shape[0]

    def objective(c):
        return referenced(lambda t: inversion_objective(mode, layer, t, cossim_pow, tv), layer, targets[c], n)

    def make(c, v):
        del v
        if transforms is None:
            return Setup(objective(c), optimiser)
        return Setup(objective(c), optimiser, WithReference(transforms, x[c]))

    return Engine(model, make, param, transforms_lib.identity())


# ---------------------------------------------------------------------------------------------
# Feature accentuation.


def accentuation_objective(layer: str, channel: int | Array, reg_layer: str, seed_acts: Array,
                           penalty: float | Array, scale: float | Array = 1.0) -> objectives_lib.Objective:
    """``channel(layer, c) / scale - penalty * feature_distance(reg_layer, seed_acts)``.

    ``scale`` is the root mean square of the seed's ``layer`` activations, so the channel term is in
    units of the layer's typical activation on the seed and ``penalty`` weighs it against the
    relative squared feature distance (1 = as far as an all-zero map) independent of the layer's
    scale. See ``accentuate`` for the balance and its source.
    """
    term = objectives_lib.channel(layer, channel)
    if not (isinstance(scale, (int, float)) and scale == 1):
        term = term / scale
    return term - penalty * objectives_lib.feature_distance(reg_layer, seed_acts)


def accentuate(model: Model, layer: str, channels: Sequence[int], seeds: Any, param,
               optimiser: optax.GradientTransformation, key: Array, steps: int, *, reg_layer: str | None = None,
               penalties: Sequence[float] = (1.0,), norm: str = "none", eps: float = 0.0,
               transforms: transforms_lib.Transform | None = None, batch_size: int | None = None,
               progress: ProgressFn | None = None) -> Rendered:
    """Feature accentuation: each seed image pushed towards each channel, held near itself.

    Cell (i, c, lambda) starts from ``param.init_from_image(seeds[i])`` and maximises

        ``mean A_layer[..., c](x) / s_i - lambda * ||A_reg(x) - A_reg(x_i)||^2 / ||A_reg(x_i)||^2``

    where ``s_i`` is the RMS of the seed's ``layer`` activations; with ``norm`` "linf" / "l2" each
    step is followed by ``project(param, seeds[i], eps, norm)``. lambda = 0 is ordinary activation
    maximisation started from the seed; a huge lambda keeps the seed. Hamblin et al. 2024 penalise
    the distance to the seed in a chosen layer's feature space and recommend that layer be the
    target's own or an earlier one; the normalisations (RMS for the channel, the seed's squared norm
    for the distance) are jfv's choice, to make one lambda mean the same at every layer.

    Args:
        model: the network.
        layer: the layer of the channels to accentuate.
        channels: channel indices.
        seeds: (N, H, W, C) in [0, 1], C the model's input channels (``model.from_rgb(photos)``),
            H = ``param.size``.
        param: a parameterisation with ``init_from_image`` (``ImageParam``, MACO).
        optimiser: optax transformation.
        reg_layer: the layer of the feature-space penalty (default: ``layer``).
        penalties: lambda values (a sweep: every value shares one compiled program).
        norm: "none", "linf" or "l2": the pixel-space ball around the seed.
        eps: its radius (pixel units in [0, 1]).
        transforms: random transforms applied to the rendering and its seed together (default: none).

    Returns:
        Rendered(images (N, C, P, n, H, W, channels), objective (N, C, P), history (N, C, P, steps)).
    """
    x = check_images(seeds, "seeds", model.channels)
    if x.shape[1] != param.size:
        raise InversionError(f"seeds are {x.shape[1]} px but the parameterisation is {param.size} px: "
                             f"load them at {param.size} px")
    if not hasattr(param, "init_from_image"):
        raise InversionError(f"{type(param).__name__} has no init_from_image, so it cannot start from a seed image")
    if norm not in NORMS:
        raise InversionError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    if norm != "none" and not eps > 0:
        raise InversionError(f"norm={norm} needs a radius eps > 0 (e.g. 0.03), got {eps}")
    reg_layer = reg_layer or layer
    n_ch = model.check_layer(layer)
    model.check_layer(reg_layer)
    channels = [int(c) for c in channels]
    bad = [c for c in channels if not 0 <= c < n_ch]
    if bad:
        raise InversionError(f"channel(s) {bad} out of range for {model.name} layer {layer!r}, which has {n_ch}")
    if len(x) * CELL_STRIDE >= 2**31:
        raise InversionError(f"at most {2**31 // CELL_STRIDE} seed images per run, got {len(x)}")
    acts = model.apply(model.params, jnp.asarray(x))
    seed_acts = jnp.asarray(acts[reg_layer], jnp.float32)
    a = jnp.asarray(acts[layer], jnp.float32)  # (N, H, W, C), a token layer's (N, T, D) or a vector's (N, C)
    scales = jnp.sqrt(jnp.mean(a**2, axis=tuple(range(1, a.ndim)))) + RMS_FLOOR
    seeds_j = jnp.asarray(x)

    def image_of(c):
        return c // CELL_STRIDE

    n = param.shape[0]

    def make(c, lam):
        i = image_of(c)
        objective = referenced(lambda t: accentuation_objective(layer, c % CELL_STRIDE, reg_layer, t, lam, scales[i]),
                               reg_layer, seed_acts[i], n)
        opt = optimiser if norm == "none" else optax.chain(optimiser, project(param, seeds_j[i], eps, norm))
        return Setup(objective, opt, None if transforms is None else WithReference(transforms, seeds_j[i]))

    engine = Engine(model, make, param, transforms_lib.identity())
    lams = np.asarray(penalties, np.float32).reshape(-1)
    cells = np.asarray([i * CELL_STRIDE + c for i in range(len(x)) for c in channels], np.int32)
    cells_c = np.repeat(cells, len(lams))
    cells_v = np.tile(lams, len(cells))
    out = engine.render_cells(cells_c, cells_v, key, steps, batch_size=batch_size, progress=progress,
                              start=seeded_start(engine, seeds_j, image_of, key))
    shape = (len(x), len(channels), len(lams))
    return Rendered(*(None if a is None else a.reshape(shape + a.shape[1:]) for a in out))


__all__ = [
    "CELL_STRIDE",
    "InversionError",
    "WithReference",
    "MODES",
    "NORMS",
    "accentuate",
    "accentuation_objective",
    "check_images",
    "invert",
    "inversion_engine",
    "inversion_objective",
    "project",
    "referenced",
    "seeded_cell",
    "seeded_start",
]
