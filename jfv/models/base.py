"""The Model interface every recipe sees: a pure apply, its params, and a layer table."""

from __future__ import annotations

import dataclasses
import difflib
import weakref
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
LIST_LIMIT = 10  # channels listed in an error message
PRECISIONS = ("float32", "bfloat16")  # Model.with_precision
LUMA_601 = (0.299, 0.587, 0.114)  # ITU-R BT.601 RGB -> luma weights (PIL's "L" conversion): Model.from_rgb


class UnknownLayerError(ValueError):
    """A layer name the model does not have; the message lists the valid ones."""


class ChannelOutOfRangeError(ValueError):
    """A channel index outside a layer's channels."""


class ImageTooSmallError(ValueError):
    """An input size at which a layer has no spatial extent."""


class InputChannelsError(ValueError):
    """Images with another number of channels than the model takes (RGB into a grayscale model)."""


def _suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


# model -> its params-free copy (``Model.static``); an entry goes when its model does
_STATIC: "weakref.WeakKeyDictionary[Model, Model]" = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A Flax network with named activations, its params and its layer table.

    ``apply(params, images)`` maps images in [0, 1], NHWC float32 with ``channels`` channels (RGB
    by default), to a dict of named activations: (N, H, W, C) for spatial layers, (N, T, D) for
    token layers (a ViT's; their "channels" are the D embedding dims), (N, C) for vectors. ``layers`` maps every name in that dict to its number of
    channels. Models compare and hash by identity, so a loaded model can key a compilation cache.

    Example:
        >>> model = jfv.models.load("vgg16")
        >>> acts = model(jnp.zeros((1, 64, 64, 3)))
        >>> acts["conv4_3"].shape
        (1, 8, 8, 512)
    """

    name: str
    module: nn.Module
    params: Any
    layers: Mapping[str, int]
    image_size: int = 224  # the size the network was trained at
    labels: tuple[str, ...] | None = None
    source: str = ""
    precision: str = "float32"  # the network's compute dtype (see ``with_precision``)
    channels: int = 3  # input channels: 3 for RGB, 1 for grayscale, any n for a wrapped model
    # layer name -> what to use instead, for layers users expect but this model lacks (the
    # ImageNet feature stacks have no ``logits``); added to the unknown-layer message
    absent_layers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # RGB (..., H, W, 3) in [0, 1] -> this model's input (..., H, W, channels), for other channel
    # counts than 1 and 3 (``from_rgb``); ``jfv.models.wrap(..., rgb_to_input=f)`` sets it
    rgb_to_input: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def static(self) -> "Model":
        """This model without its parameters: what a compiled program takes as its static argument.

        jax keeps a jitted function's static arguments in its process-wide compilation cache, so a
        module-level ``jax.jit(f, static_argnames=("model",))`` given the model itself would keep its
        parameters alive as long as the process. Its ``static`` copy (the same object for the same
        model, so programs are reused; hashed by identity like every Model) holds the module, layer
        table and precision only; the parameters go in as an argument. Tested in
        ``tests/models/test_models.py``.
        """
        spec = _STATIC.get(self)
        if spec is None:
            spec = _STATIC[self] = dataclasses.replace(self, params=None)
        return spec

    def from_rgb(self, images: Any) -> np.ndarray:
        """RGB images in [0, 1] (what datasets and photos give) as this model's input.

        3 channels: the images as they are; 1 channel: their ITU-R BT.601 luma,
        ``Y = 0.299 R + 0.587 G + 0.114 B`` (``LUMA_601``); other counts: the model's declared
        ``rgb_to_input``. Done on the host, once per image.

        Args:
            images: (..., H, W, 3) float in [0, 1].

        Returns:
            (..., H, W, channels) float32.

        Raises:
            InputChannelsError: images that are not RGB, or an n-channel model (n not 1 or 3) that
                declares no ``rgb_to_input`` (the message names ``wrap(..., rgb_to_input=f)``), or a
                converter that returns another shape.

        Example:
            >>> jfv.models.load("gray_cnn").from_rgb(np.ones((2, 32, 32, 3))).shape
            (2, 32, 32, 1)
        """
        a = np.asarray(images, np.float32)
        if a.ndim < 3 or a.shape[-1] != 3:
            raise InputChannelsError(f"from_rgb takes RGB images (..., H, W, 3) in [0, 1], got shape {a.shape}")
        if self.rgb_to_input is not None:
            out = np.asarray(self.rgb_to_input(a), np.float32)
            if out.shape != a.shape[:-1] + (self.channels,):
                raise InputChannelsError(
                    f"model {self.name!r}'s rgb_to_input turned images of shape {a.shape} into {out.shape}: it "
                    f"must return (..., H, W, {self.channels}), the same leading axes")
            return out
        if self.channels == 3:
            return a
        if self.channels == 1:
            return (a @ np.asarray(LUMA_601, np.float32))[..., None]
        raise InputChannelsError(
            f"model {self.name!r} takes {self.channels}-channel images and declares no conversion from the RGB "
            f"images datasets and photos give: wrap it with jfv.models.wrap(..., rgb_to_input=f), f mapping "
            f"(..., H, W, 3) in [0, 1] to (..., H, W, {self.channels})")

    def check_input(self, images: Any) -> None:
        """Raises InputChannelsError naming the fix when ``images`` is not (n, H, W, channels)."""
        shape = tuple(np.shape(images))
        if len(shape) != 4 or shape[-1] != self.channels:
            if len(shape) == 3 and shape[-1] == self.channels:
                fix = "add the batch axis, e.g. images[None]"
            elif self.channels == 1:
                fix = "convert them to grayscale, e.g. images.mean(-1, keepdims=True)"
            else:
                fix = f"give {self.channels}-channel images"
            raise InputChannelsError(
                f"model {self.name!r} takes images of shape (n, H, W, {self.channels}) in [0, 1], "
                f"got shape {shape}: {fix}")

    def apply(self, params: Any, images: Array) -> dict[str, Array]:
        self.check_input(images)  # static shapes: checked once, at trace time
        if self.precision == "float32":
            return self.module.apply({"params": params}, images)
        dtype = jnp.dtype(self.precision)
        params = jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)
        out = self.module.apply({"params": params}, images.astype(dtype))
        return {k: v.astype(jnp.float32) for k, v in out.items()}

    def with_precision(self, precision: str) -> "Model":
        """The same model computing in ``precision`` (``float32`` or ``bfloat16``).

        With ``bfloat16`` the parameters and the input images are cast to bfloat16 inside ``apply``
        and the activations come back as float32, so everything around the network (image
        parameters and their FFT, transforms, objectives, the optimiser) stays in float32 and
        gradients reach the image in float32. The stored ``params`` are unchanged.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        return dataclasses.replace(self, precision=precision)

    def __call__(self, images: Array) -> dict[str, Array]:
        return self.apply(self.params, images)

    def __repr__(self) -> str:
        return f"Model({self.name!r}, {len(self.layers)} layers, source={self.source!r})"

    def with_module(self, **fields: Any) -> "Model":
        """The same model with module fields replaced, e.g. ``with_module(relu=guided_relu)``."""
        return dataclasses.replace(self, module=self.module.clone(**fields))

    def check_layer(self, layer: str) -> int:
        """Returns the layer's channel count; raises UnknownLayerError listing the valid names."""
        if layer not in self.layers:
            valid = list(self.layers)
            instead = f" {self.name} {self.absent_layers[layer]}." if layer in self.absent_layers else ""
            raise UnknownLayerError(
                f"model {self.name!r} has no layer {layer!r}.{instead}{_suggest(layer, valid)} "
                f"Valid layers: {', '.join(valid)}"
            )
        return self.layers[layer]

    def check_channels(self, layer: str, channels) -> None:
        """Raises ChannelOutOfRangeError naming the valid range when any channel is outside it."""
        n = self.check_layer(layer)
        bad = [int(c) for c in channels if not 0 <= int(c) < n]
        if bad:
            shown = ", ".join(map(str, bad[:LIST_LIMIT])) + (f", ... ({len(bad)} in all)" if len(bad) > LIST_LIMIT else "")
            raise ChannelOutOfRangeError(
                f"channel(s) [{shown}] out of range for {self.name} layer {layer!r}, "
                f"which has {n} channels: use 0..{n - 1} (a range a:b with b <= {n})"
            )

    def output_shapes(self, image_size: int | tuple[int, int]) -> dict[str, tuple[int, ...]]:
        """Shapes of every named activation for one image of side ``image_size`` or of (height,
        width) ``image_size`` (no FLOPs spent)."""
        h, w = (image_size, image_size) if np.ndim(image_size) == 0 else image_size
        x = jax.ShapeDtypeStruct((1, int(h), int(w), self.channels), jnp.float32)
        try:
            out = jax.eval_shape(self.apply, self.params, x)
        except Exception as e:  # a negative size inside a conv or pool
            raise ImageTooSmallError(
                f"image size {image_size} is too small for {self.name}: {e}"
            ) from None
        return {k: tuple(v.shape) for k, v in out.items()}

    def check_image_size(self, layer: str, image_size: int) -> None:
        """Raises ImageTooSmallError when ``layer`` has no spatial extent at ``image_size``."""
        self.check_layer(layer)
        shapes = self.output_shapes(image_size)
        shape = shapes[layer]
        if len(shape) == 4 and (shape[1] < 1 or shape[2] < 1):
            raise ImageTooSmallError(
                f"image size {image_size} is too small for {self.name} layer {layer!r} "
                f"(its output would be {shape[1]}x{shape[2]}): {min_size_hint(self, layer)}"
            )


def min_size_hint(model: Model, layer: str, limit: int = 1024) -> str:
    """A message naming the smallest image size at which ``layer`` has at least one position."""
    lo, hi = 1, limit
    def ok(s: int) -> bool:
        try:
            shape = model.output_shapes(s)[layer]
        except ImageTooSmallError:
            return False
        return len(shape) != 4 or (shape[1] >= 1 and shape[2] >= 1)
    if not ok(hi):
        return "use a larger image size"
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return f"use image_size >= {lo}"


ModelBuilder = Callable[..., Model]
