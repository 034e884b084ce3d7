"""A model as a plain conv/ReLU/max-pool stack, and the forward pass of one channel of one layer.

Registry entries with a ``plain_stack`` (``VGG16Features``, ``AlexNetFeatures``) and wrapped models
that declare one (``jfv.models.wrap(..., plain_stack=...)``) can be run step by step: deconvnet's
explicit switches (``jfv.attribution.switches``) and the channel-sliced forward pass below use it.

**Channel slicing.** An objective that reads a single channel ``c`` of one layer (``objectives.channel``,
``objectives.neuron``) needs, of the last convolution at or before that layer, only its filter ``c``:
everything after that convolution up to the layer (ReLUs, max-pools) acts channel by channel.
``channel_activations`` computes that convolution for channel ``c`` alone, so activation
maximisation of a channel skips the rest of the layer's forward pass and its whole input gradient:
on VGG16 ``conv4_3`` at 128 px that is ~12% of an AM step (``benchmarks/RESULTS.md``). Lucid, and the
PyTorch loop in ``benchmarks/am_throughput.py``, compute the whole layer. The channel's values are
the same convolution's, equal to float rounding (``tests/models/test_plain.py``: within 1e-5 of the layer's
largest value; often bit for bit), and so is the gradient reaching the image.
``JFV_FULL_LAYERS=1`` in the environment turns slicing off (read when a program is traced).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jfv.models.base import Model
from jfv.models.wrap import Wrapped

Array = jax.Array
FULL_LAYERS_ENV = "JFV_FULL_LAYERS"


class Op(NamedTuple):
    """One step of a plain stack: kind conv | relu | pool, the output's name, and its geometry."""

    kind: str
    name: str
    window: int = 0
    stride: int = 1
    padding: int = 0
    param: str = ""  # the conv's params key


def built_class(entry) -> type:
    """The module class a registry entry builds."""
    return entry.module if isinstance(entry.module, type) else type(entry.module())


def declared_steps(model: Model) -> tuple[tuple, ...] | None:
    """The model's plain stack as declared (a wrapped model's ``plain_stack``, else its registry
    entry's, or that of any entry built from the same module class); None when there is none."""
    from jfv import models

    module = model.module
    if isinstance(module, Wrapped):
        return module.plain_stack
    # The plain stack is a function of the module's class and fields (VGG16Features(blocks=...)
    # of any widths), so any entry built from this very class that declares one applies.
    entry = models.entry_of(model) or next(
        (e for e in models.ENTRIES.values() if e.plain_stack is not None and built_class(e) is type(module)), None)
    if entry is None or entry.plain_stack is None:
        return None
    return tuple(entry.plain_stack(module))


def steps_of(model: Model) -> tuple[Op, ...] | None:
    """``declared_steps`` as ``Op``s, or None when the model has no plain stack or no ``normalise``."""
    steps = declared_steps(model)
    if steps is None or not callable(getattr(model.module, "normalise", None)):
        return None
    return tuple(Op(*s) for s in steps)


def param_at(params: Any, path: str) -> Any:
    """``params["a"]["b"]`` for the path ``a/b`` (a plain stack's conv names its params so)."""
    for part in path.split("/"):
        params = params[part]
    return params


def conv(x: Array, kernel: Array, stride: int, padding: int) -> Array:
    """The stack's convolution: NHWC input, HWIO kernel, square stride and symmetric padding."""
    return lax.conv_general_dilated(x, kernel, (stride, stride), [(padding, padding)] * 2,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def pool(x: Array, window: int, stride: int) -> Array:
    """The stack's max-pool (VALID, floor mode), as the built-in stacks compute it."""
    from jfv.models.vgg import max_pool

    return max_pool(x, window, stride)


def sliced_conv_index(model: Model, layer: str) -> int | None:
    """Index in ``steps_of(model)`` of the conv whose filter ``c`` alone gives channel ``c`` of
    ``layer`` (the last conv at or before it), or None when ``layer`` cannot be sliced so."""
    ops = steps_of(model)
    if ops is None:
        return None
    names = [op.name for op in ops]
    if layer not in names:
        return None
    convs = [i for i in range(names.index(layer) + 1) if ops[i].kind == "conv"]
    return convs[-1] if convs else None


def slicing_enabled() -> bool:
    """False when ``JFV_FULL_LAYERS`` is set to anything but "" or "0"."""
    return os.environ.get(FULL_LAYERS_ENV, "") in ("", "0")


def channel_activations(model: Model, params: Any, images: Array, layer: str, index: Array | int) -> dict[str, Array]:
    """The model's activations of ``images`` up to ``layer``, with only channel ``index`` computed
    from the last conv at or before ``layer`` on.

    Layers before that conv are complete. From it to ``layer`` the result has the full shape, with
    channel ``index`` exact and every other channel zero: read only ``[..., index]`` of them.
    ``index`` may be traced (and vmapped). The model's precision applies as in ``Model.apply``.
    Raises ValueError when ``sliced_conv_index(model, layer)`` is None.
    """
    ops = steps_of(model)
    at = sliced_conv_index(model, layer)
    if at is None:
        raise ValueError(f"layer {layer!r} of model {model.name!r} is not in a plain conv/ReLU/max-pool stack after a "
                         f"conv: compute it with model.apply")
    model.check_input(images)
    dtype = jnp.dtype(model.precision)
    if model.precision != "float32":
        params = jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)
        images = images.astype(dtype)
    x = model.module.normalise(images)
    acts: dict[str, Array] = {}
    end = [op.name for op in ops].index(layer)
    width = None
    for i, op in enumerate(ops[: end + 1]):
        if op.kind == "conv":
            p = param_at(params, op.param)
            kernel, bias = p["kernel"], p["bias"]
            if i == at:
                width = kernel.shape[-1]
                kernel = lax.dynamic_slice_in_dim(kernel, index, 1, axis=3)
                bias = lax.dynamic_slice_in_dim(bias, index, 1)
            x = conv(x, kernel, op.stride, op.padding) + bias
        elif op.kind == "relu":
            x = jnp.maximum(x, 0)
        else:
            x = pool(x, op.window, op.stride)
        if i < at:
            acts[op.name] = x
    full = jnp.zeros(x.shape[:-1] + (width,), x.dtype)
    acts[layer] = lax.dynamic_update_slice_in_dim(full, x, index, axis=3)
    return {k: v.astype(jnp.float32) for k, v in acts.items()}


__all__ = ["FULL_LAYERS_ENV", "Op", "channel_activations", "conv", "declared_steps", "param_at", "pool",
           "sliced_conv_index", "slicing_enabled", "steps_of"]
