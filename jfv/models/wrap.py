"""Bring your own model: ``wrap(module, params)`` turns any ``flax.linen`` module into a jfv Model.

The named activations come from Flax's own mechanisms, no hooks:

- every submodule's ``__call__`` output, captured with ``capture_intermediates`` and named by its
  path (``block1``, ``block1/attn``, ``conv2``); ``layers=[...]`` keeps only the paths listed;
- every value the module stores with ``self.sow("intermediates", name, x)``, named
  ``<path>/<name>`` (``name`` at the top level);
- the module's return value: a dict of arrays keeps its names; an array is named ``output``
  (``output="logits"`` renames it, so class objectives and CAM find it).

jfv feeds images in [0, 1], NHWC with ``channels`` channels; the wrapper maps them into the range
and normalisation the module was trained with, ``x = ((lo + (hi - lo) * images) - mean) / std``,
before calling it. The layer table (name -> channels, the last axis) is traced with
``jax.eval_shape``, no FLOPs. Activations may be spatial (N, H, W, C), tokens (N, T, D), whose
"channels" are the embedding dims (a channel objective averages over tokens, ``objectives.token``
picks one token), or vectors (N, C).

Deconvnet and guided backprop swap the module's ``relu`` field (``Model.with_module(relu=...)``):
a wrapped module supports them when it declares ``relu: Callable = nn.relu`` and applies
``self.relu`` at every ReLU; otherwise they raise ``MissingFieldError`` naming that fix. Receptive
fields need the module's ``geometry()`` method (``jfv.models.receptive``).

Example:
    >>> model = jfv.models.wrap(MyNet(), params, mean=(0.5,), std=(0.25,), channels=1, output="logits")
    >>> model.layers            # {'conv1': 16, 'conv2': 32, ..., 'logits': 10}
    >>> images = jfv.optvis.render.render(model, objectives.channel("conv2", 3), ...)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jfv.models.base import Model

Array = jax.Array
CALL = "__call__"  # the key flax's capture_intermediates stores a method's output under
LIST_LIMIT = 30  # layer paths listed in an error message
DELEGATED = ("geometry",)  # methods of the user's module that a wrapped model exposes (jfv.models.receptive)


class WrapError(ValueError):
    """A module or setting ``wrap`` cannot use; the message names the fix."""


class MissingFieldError(ValueError):
    """A module field an operation swaps (``relu`` for deconvnet and guided backprop) is missing."""


def _path(mdl: nn.Module) -> str:
    return "/".join(str(p) for p in mdl.scope.path) if mdl.scope is not None else ""


def _is_activation(x: Any, n: int) -> bool:
    return (isinstance(x, (jax.Array, jax.ShapeDtypeStruct, np.ndarray)) and x.ndim >= 2 and x.shape[0] == n
            and jnp.issubdtype(x.dtype, jnp.floating))


def _collect(tree: Mapping, prefix: str, n: int, out: dict[str, Array]) -> None:
    """Flax's ``intermediates`` collection -> {path: array}, in the order the module ran."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            _collect(value, f"{prefix}{key}/", n, out)
        elif isinstance(value, tuple) and value:
            name = prefix[:-1] if key == CALL else f"{prefix}{key}"
            if name and _is_activation(value[-1], n):  # the root's own __call__ is the return value
                out[name] = value[-1]


def _returned(y: Any, output: str, n: int) -> dict[str, Array]:
    if isinstance(y, Mapping):
        return {str(k): v for k, v in y.items() if _is_activation(v, n)}
    if isinstance(y, (tuple, list)):
        return {f"{output}{i}": v for i, v in enumerate(y) if _is_activation(v, n)}
    return {output: y} if _is_activation(y, n) else {}


@dataclasses.dataclass(frozen=True, eq=False)
class Wrapped:
    """A user's linen module behind the interface ``Model`` expects of ``Model.module``.

    ``apply({"params": p}, images)`` maps [0, 1] images into the module's input range and
    normalisation, runs it and returns the named activations; ``clone(**fields)`` replaces fields
    of the user's module (``relu`` for deconvnet and guided backprop), and reading a field
    (``wrapped.relu``) reads the user's module's.

    Attributes:
        module: the user's ``flax.linen.Module``.
        mean, std: per-channel (or scalar) normalisation, in the module's input range.
        input_range: (lo, hi), the range the module's inputs are in before normalisation.
        paths: the submodule paths and sown names to keep; None keeps all.
        output: the name of the module's return value when it is an array.
        state: the module's other variable collections (``{"batch_stats": ...}``), read-only.
        plain_stack: for a plain conv/ReLU/max-pool stack, the steps deconvnet's explicit switches
            walk (``jfv.attribution.switches``); None when the module did not declare them.
    """

    module: nn.Module
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    input_range: tuple[float, float] = (0.0, 1.0)
    paths: tuple[str, ...] | None = None
    output: str = "output"
    state: Mapping[str, Any] | None = None
    plain_stack: tuple[tuple, ...] | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in {f.name for f in dataclasses.fields(Wrapped)}:
            raise AttributeError(name)
        fields = {f.name for f in dataclasses.fields(self.module)} - {"parent", "name"}
        if name in fields or name in DELEGATED and hasattr(type(self.module), name):
            return getattr(self.module, name)
        raise AttributeError(f"{type(self.module).__name__} has no field {name!r}")

    def __repr__(self) -> str:
        return (f"Wrapped({type(self.module).__name__}, mean={self.mean}, std={self.std}, "
                f"input_range={self.input_range})")

    def normalise(self, images: Array) -> Array:
        """[0, 1] images -> the module's input: ``((lo + (hi - lo) * images) - mean) / std``."""
        lo, hi = self.input_range
        x = lo + (hi - lo) * images if (lo, hi) != (0.0, 1.0) else images
        return (x - jnp.asarray(self.mean, images.dtype)) / jnp.asarray(self.std, images.dtype)

    def _run(self, variables: Mapping, images: Array, keep) -> dict[str, Array]:
        def capture(mdl: nn.Module, method: str) -> bool:
            return method == CALL and keep(_path(mdl))

        variables = {**(self.state or {}), **variables}
        y, state = self.module.apply(variables, self.normalise(images), capture_intermediates=capture,
                                     mutable=["intermediates"])
        n = images.shape[0]
        out: dict[str, Array] = {}
        _collect(state.get("intermediates", {}), "", n, out)
        out = {k: v for k, v in out.items() if keep(k)}
        returned = {k: v for k, v in _returned(y, self.output, n).items() if keep(k)}
        if isinstance(y, Mapping):  # the module's own names first, in its order
            return {**returned, **{k: v for k, v in out.items() if k not in returned}}
        return {**out, **returned}

    def apply(self, variables: Mapping, images: Array) -> dict[str, Array]:
        """Named activations of ``images`` (n, H, W, C) in [0, 1]."""
        if self.paths is None:
            return self._run(variables, images, lambda p: True)
        keep = frozenset(self.paths)
        return self._run(variables, images, keep.__contains__)

    def available(self, variables: Mapping, images: Any) -> dict[str, Any]:
        """Every capturable activation (all submodules, sown values, the return value): shapes, in
        the order the module computes them."""
        order: list[str] = []

        def trace(v, x):
            out = self._run(v, x, lambda p: True)
            order.extend(out)  # eval_shape's dict comes back sorted
            return out

        shapes = jax.eval_shape(trace, variables, images)
        return {k: shapes[k] for k in order}

    def clone(self, **fields: Any) -> "Wrapped":
        """The same wrapper around the user's module with ``fields`` replaced (``relu=guided_relu``)."""
        have = {f.name for f in dataclasses.fields(self.module)}
        missing = [f for f in fields if f not in have]
        if missing:
            raise MissingFieldError(
                f"{type(self.module).__name__} has no field {', '.join(map(repr, missing))} to swap: add "
                f"'relu: Callable = nn.relu' to the module and call self.relu(x) at every ReLU "
                f"(deconvnet and guided backprop swap it), or use saliency, grad_cam or occlusion")
        return dataclasses.replace(self, module=self.module.clone(**fields))


def _is_nnx(module: Any) -> bool:
    try:
        from flax import nnx
    except ImportError:  # an older flax without NNX
        return False
    return isinstance(module, nnx.Module)


def _per_channel(value: float | Sequence[float], channels: int, key: str) -> tuple[float, ...]:
    v = tuple(float(x) for x in np.atleast_1d(np.asarray(value, np.float64)))
    if len(v) not in (1, channels):
        raise WrapError(f"{key} has {len(v)} values but the model takes {channels} channel(s): give one "
                        f"value or {channels}")
    if key == "std" and any(x <= 0 for x in v):
        raise WrapError(f"std must be > 0, got {v}")
    return v


PLAIN_KINDS = ("conv", "relu", "pool")  # the steps of a plain stack (jfv.attribution.switches.Op)


def _leaf(params: Any, path: str) -> Any:
    """``params["a"]["b"]`` for ``path`` "a/b"; None when absent."""
    node = params
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _plain_stack(steps: Sequence[Sequence], params: Any) -> tuple[tuple, ...]:
    """Checks a declared plain stack against the params: known kinds, convs whose params exist with a
    4-D HWIO ``kernel`` and a ``bias``, positive windows and strides, names used once."""
    out: list[tuple] = []
    example = "('conv', 'conv1', 3, 1, 1, 'conv1'), ('relu', 'relu1'), ('pool', 'pool1', 2, 2)"
    for step in steps:
        step = tuple(step)
        if not step or step[0] not in PLAIN_KINDS or len(step) < 2:
            raise WrapError(f"plain_stack step {step!r} is not (kind, name, window, stride, padding, param) with kind "
                            f"in {', '.join(PLAIN_KINDS)}: e.g. {example}")
        kind, name = str(step[0]), str(step[1])
        window, stride, padding = (int(v) for v in (tuple(step[2:5]) + (0, 1, 0)[len(step[2:5]):]))
        param = str(step[5]) if len(step) > 5 else (name if kind == "conv" else "")
        if kind == "conv":
            p = _leaf(params, param)
            kernel = p.get("kernel") if isinstance(p, Mapping) else None
            if kernel is None or np.ndim(kernel) != 4 or "bias" not in p:
                raise WrapError(f"plain_stack conv {name!r} reads params {param!r}, which has no 4-D kernel and bias "
                                f"(an nn.Conv's): give the conv's params path as the step's sixth item")
            if np.shape(kernel)[0] != np.shape(kernel)[1] or np.shape(kernel)[0] != window:
                raise WrapError(f"plain_stack conv {name!r} says window {window} but its kernel is "
                                f"{np.shape(kernel)[0]}x{np.shape(kernel)[1]}: square kernels of the stated size only")
        if kind in ("conv", "pool") and (window < 1 or stride < 1 or padding < 0):
            raise WrapError(f"plain_stack step {step!r}: window and stride must be >= 1, padding >= 0")
        if kind == "pool" and padding:
            raise WrapError(f"plain_stack pool {name!r} is padded: the switches handle unpadded (VALID) max-pools only")
        out.append((kind, name, window, stride, padding, param))
    names = [s[1] for s in out]
    if not out or len(set(names)) != len(names):
        raise WrapError(f"plain_stack must list each step once, with distinct names, e.g. {example}")
    return tuple(out)


def wrap(
    module: nn.Module,
    params: Any,
    *,
    name: str = "wrapped",
    channels: int = 3,
    mean: float | Sequence[float] = 0.0,
    std: float | Sequence[float] = 1.0,
    input_range: tuple[float, float] = (0.0, 1.0),
    layers: Sequence[str] | None = None,
    output: str = "output",
    image_size: int = 224,
    labels: Sequence[str] | None = None,
    source: str = "",
    state: Mapping[str, Any] | None = None,
    plain_stack: Sequence[Sequence] | None = None,
    rgb_to_input: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Model:
    """A jfv Model from any ``flax.linen`` module and its params.

    The module takes (N, H, W, ``channels``) inputs in ``input_range``, normalised by
    ``(x - mean) / std``; jfv's images are in [0, 1] and the wrapper maps them:
    ``module(((lo + (hi - lo) * images) - mean) / std)``.

    An NNX module goes through Flax's bridge: ``wrap(nnx.bridge.to_linen(MyNNXNet, *args),
    nnx.to_pure_dict(nnx.state(model, nnx.Param)), ...)``; its ``self.sow(nnx.Intermediate, name,
    x)`` values become named activations.

    Args:
        module: a ``flax.linen.Module`` whose ``__call__`` takes a batch of NHWC images.
        params: its ``params`` collection (what ``module.init(...)["params"]`` returns).
        name: the model's name in messages and manifests.
        channels: input channels (1 grayscale, 3 RGB, any n).
        mean: the normalisation's mean, one value or one per channel, in ``input_range``'s units.
        std: its standard deviation, likewise.
        input_range: (lo, hi), e.g. (0, 255) for a module trained on raw pixel values.
        layers: the activations to keep, by submodule path (``block1/attn``) or sown name; default
            all. An unknown path raises ``WrapError`` listing the valid ones.
        output: the name of the module's return value when it is an array (``logits`` for a
            classifier: class objectives, CAM and class targets read ``logits``).
        image_size: the size the network was trained at (the layer table is traced at it).
        labels: class names for ``logits``.
        source: where the weights come from, for manifests.
        state: the module's other variable collections, e.g. ``{"batch_stats": ...}`` for
            BatchNorm in inference mode (``use_running_average=True``); constants, not optimised.
        plain_stack: for a plain conv/ReLU/max-pool network, the steps Zeiler & Fergus's deconvnet
            with explicit switches walks (``deconvnet_switches``, ``project_units``,
            ``best_per_block``, the top_patches projections), in order, from the normalised input:
            ``("conv", name, kernel, stride, padding, params_path)``, ``("relu", name)``,
            ``("pool", name, window, stride)`` (max-pools, unpadded). Names that are also layers of
            the module must be the same arrays (a test should check it, as ``tests/models/test_wrap.py``
            does for ``gray_cnn``).
        rgb_to_input: how RGB images (..., H, W, 3) in [0, 1] (what datasets and photos give) become
            this model's (..., H, W, ``channels``) input; default: as they are for 3 channels, ITU-R
            BT.601 luma for 1 (``Model.from_rgb``). Needed for other channel counts.

    Returns:
        A Model whose ``layers`` maps every kept activation to its last axis's size.

    Example:
        >>> model = wrap(ViT(), params, mean=0.5, std=0.5, output="logits", image_size=32)
        >>> model.layers["block1"]   # (N, T, D) tokens: D "channels"
        64
    """
    if _is_nnx(module):
        raise WrapError(
            f"wrap takes a flax.linen.Module, got the NNX module {type(module).__name__}: pass "
            f"flax.nnx.bridge.to_linen({type(module).__name__}, *constructor_args) and its params "
            f"nnx.to_pure_dict(nnx.state(model, nnx.Param))")
    if not isinstance(module, nn.Module):
        raise WrapError(
            f"wrap takes a flax.linen.Module, got {type(module).__name__}: make the function a linen "
            f"module's __call__ (built from submodules, or returning a dict of named arrays) and pass that")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise WrapError(f"channels must be an integer >= 1 (1 grayscale, 3 RGB), got {channels!r}")
    lo, hi = (float(v) for v in input_range)
    if not hi > lo:
        raise WrapError(f"input_range must be (lo, hi) with hi > lo, e.g. (0, 255), got {input_range}")
    wrapped = Wrapped(module, _per_channel(mean, channels, "mean"), _per_channel(std, channels, "std"),
                      (lo, hi), None, output, dict(state) if state else None)
    variables = {"params": params}
    x = jax.ShapeDtypeStruct((1, image_size, image_size, channels), jnp.float32)
    try:
        shapes = wrapped.available(variables, x)
    except Exception as e:  # the module cannot run on such images: name what it was given
        raise WrapError(
            f"{type(module).__name__} cannot run on images of shape (1, {image_size}, {image_size}, "
            f"{channels}) with these params ({type(e).__name__}: {str(e).splitlines()[0][:200]}): check "
            f"channels, image_size, that params is module.init(...)['params'] and that its other "
            f"collections (batch_stats) are given as state=") from None
    if not shapes:
        raise WrapError(
            f"{type(module).__name__} exposes no activations to capture (no submodules with array "
            f"outputs, no sown values, no array returned): build it from submodules (nn.Conv, nn.Dense, "
            f"...), call self.sow('intermediates', 'name', x), or return a dict of named arrays")
    if layers is not None:
        layers = tuple(str(p) for p in layers)
        unknown = [p for p in layers if p not in shapes]
        if unknown or not layers:
            valid = list(shapes)
            shown = ", ".join(valid[:LIST_LIMIT]) + (f", ... ({len(valid)} in all)" if len(valid) > LIST_LIMIT else "")
            raise WrapError(f"{type(module).__name__} has no layer path(s) {', '.join(map(repr, unknown)) or '(none given)'}: "
                            f"valid paths: {shown}")
        wrapped = dataclasses.replace(wrapped, paths=layers)
        shapes = {k: v for k, v in shapes.items() if k in layers}
    if plain_stack is not None:
        wrapped = dataclasses.replace(wrapped, plain_stack=_plain_stack(plain_stack, params))
    if rgb_to_input is not None and not callable(rgb_to_input):
        raise WrapError(f"rgb_to_input must be a function from (..., H, W, 3) RGB in [0, 1] to (..., H, W, "
                        f"{channels}), got {type(rgb_to_input).__name__}")
    return Model(
        name=name,
        module=wrapped,
        params=params,
        layers={k: int(v.shape[-1]) for k, v in shapes.items()},
        image_size=int(image_size),
        labels=tuple(labels) if labels is not None else None,
        source=source or f"wrapped {type(module).__name__}",
        channels=channels,
        rgb_to_input=rgb_to_input,
    )


__all__ = ["MissingFieldError", "WrapError", "Wrapped", "wrap"]
