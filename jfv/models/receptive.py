"""Receptive fields: which input pixels can change a unit, computed exactly from the architecture.

Every architecture declares its spatial geometry beside its Flax module (a ``geometry()`` method
returning ``{layer: Layer(parent, steps)}``, in the vocabulary below). A layer's map is its parent's
map (or the image's, for ``parent=None``) passed through ``steps``:

- ``Window(kernel, stride, padding, dilation)``: a convolution or a max/average pool. Output
  position ``i`` reads input positions ``s*i - p + d*t`` for ``t = 0 .. k-1``, so an output interval
  ``[lo, hi]`` reads the input interval ``[s*lo - p, s*hi - p + d*(k-1)]``; the output size is
  ``floor((n + 2p - d*(k-1) - 1) / s) + 1`` (torch's and lax's floor mode).
- ``Adaptive(size)``: torch's ``AdaptiveAvgPool2d``; bin ``i`` of ``m`` reads
  ``[floor(i*n/m), ceil((i+1)*n/m) - 1]``.
- ``Residual(branches)``: the sum of branches (each a tuple of steps, ``()`` the identity); an
  interval reads the union (bounding interval) of what each branch reads.
- ``GLOBAL``: a global pool, flatten or dense layer; every later layer has no spatial extent.

Elementwise layers (ReLU, BatchNorm, normalisation) are steps ``()``. Rows and columns are handled
alike (square kernels, symmetric padding). Composing the rule backwards from a layer to the image
gives, for each position, the interval of image rows (and columns) it can depend on:

- **unclipped** (the textbook receptive field): no clipping anywhere, so every position of a layer
  has the same size ``size`` and the boxes step by ``stride``: position ``i`` covers
  ``[stride*i + offset, stride*i + offset + size - 1]``; ``offset < 0`` reaches into the padding.
- **clipped**: the interval is clipped to each intermediate map's extent on the way down, so it
  holds exactly the image pixels a path of the network connects to the unit (the smallest box for
  dilation 1 and padding smaller than the kernel, true of every model here; a superset otherwise).
  It is the unclipped box cut to the image, and sometimes tighter: a floor-mode pool that drops a
  map's last row makes the image rows only that row read unreachable (AlexNet ``conv2`` at 60 px:
  position 4 reads rows 14..64 unclipped, but rows 57..59 of the image reach no unit of ``pool1``).

Boxes are half-open, ``Box(top, left, bottom, right)``, so ``image[top:bottom, left:right]`` is the
patch. The declared geometry is checked against the module's real output sizes (``check``).

Example:
    >>> model = jfv.models.load("vgg16")
    >>> receptive_field(model, "conv5_3")            # pool5: size 212, stride 32
    ReceptiveField(size=196, stride=16, offset=-90)
    >>> box(model, "conv5_3", (3, 4), 224)           # clipped to the 224 x 224 image
    Box(top=0, left=0, bottom=154, right=170)
    >>> box(model, "conv5_3", (3, 4), 224, clip=False)
    Box(top=-42, left=-26, bottom=154, right=170)

Araujo et al. 2019, "Computing Receptive Fields of Convolutional Neural Networks" (Distill).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Union

import numpy as np


class GeometryError(ValueError):
    """A model without declared geometry, a layer without spatial extent, or a position off its map."""


class Window(NamedTuple):
    """A convolution or pool: square ``kernel``, ``stride``, symmetric ``padding``, ``dilation``."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1


class Adaptive(NamedTuple):
    """torch's ``AdaptiveAvgPool2d(size)``: ``size`` bins with floor/ceil edges."""

    size: int


class Global(NamedTuple):
    """A global pool, flatten or dense layer: the spatial extent ends here."""


class Residual(NamedTuple):
    """A sum of branches, each a tuple of steps (``()`` is the identity shortcut)."""

    branches: tuple


GLOBAL = Global()
Step = Union[Window, Adaptive, Global, Residual]


class Layer(NamedTuple):
    """A named map: its ``parent`` layer (None for the input image) passed through ``steps``."""

    parent: str | None
    steps: tuple = ()


class ReceptiveField(NamedTuple):
    """Position ``i`` of a layer covers input rows ``[stride*i + offset, stride*i + offset + size)``."""

    size: int
    stride: int
    offset: int


class Box(NamedTuple):
    """A half-open pixel box: ``image[top:bottom, left:right]``."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


class Boxes(NamedTuple):
    """Every position's box on one axis pair: (h, 2) row and (w, 2) column intervals, half-open.

    ``rows[i] = (top, bottom)``, ``cols[j] = (left, right)``; ``clipped_*`` are exact within the
    image, ``rows``/``cols`` unclipped (may be negative or past the image).
    """

    rows: np.ndarray
    cols: np.ndarray
    clipped_rows: np.ndarray
    clipped_cols: np.ndarray

    def box(self, i: int, j: int, clip: bool = True) -> Box:
        r = self.clipped_rows if clip else self.rows
        c = self.clipped_cols if clip else self.cols
        return Box(int(r[i, 0]), int(c[j, 0]), int(r[i, 1]), int(c[j, 1]))


# -- one step --------------------------------------------------------------------------------------


def step_size(step: Step, n: int) -> int | None:
    """The output length of ``step`` on an input of length ``n`` (None: no spatial extent)."""
    if isinstance(step, Window):
        return (n + 2 * step.padding - step.dilation * (step.kernel - 1) - 1) // step.stride + 1
    if isinstance(step, Adaptive):
        return step.size
    if isinstance(step, Global):
        return None
    if isinstance(step, Residual):
        sizes = {chain_size(branch, n) for branch in step.branches}
        if len(sizes) != 1:
            raise GeometryError(f"residual branches disagree on the output size ({sorted(sizes, key=str)}) at input {n}")
        return sizes.pop()
    raise GeometryError(f"unknown geometry step {step!r}")


def chain_size(steps: tuple, n: int | None) -> int | None:
    for step in steps:
        if n is None:
            return None
        n = step_size(step, n)
    return n


def step_back(step: Step, lo: int, hi: int, n_in: int, clip: bool) -> tuple[int, int]:
    """The input interval ``[lo', hi']`` (inclusive) an output interval ``[lo, hi]`` reads."""
    if isinstance(step, Window):
        lo, hi = step.stride * lo - step.padding, step.stride * hi - step.padding + step.dilation * (step.kernel - 1)
    elif isinstance(step, Adaptive):
        lo, hi = (lo * n_in) // step.size, -((-(hi + 1) * n_in) // step.size) - 1
    elif isinstance(step, Residual):
        spans = [chain_back(branch, lo, hi, n_in, clip) for branch in step.branches]
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    else:
        raise GeometryError(f"cannot map {step!r} back to its input: it has no spatial extent")
    if clip:
        lo, hi = max(lo, 0), min(hi, n_in - 1)
    return lo, hi


def chain_back(steps: tuple, lo: int, hi: int, n_in: int, clip: bool) -> tuple[int, int]:
    """``step_back`` through a chain of steps whose input has length ``n_in``."""
    sizes = [n_in]
    for step in steps[:-1]:
        sizes.append(step_size(step, sizes[-1]))
    for step, n in zip(reversed(steps), reversed(sizes)):
        lo, hi = step_back(step, lo, hi, n, clip)
    return lo, hi


# -- a model's geometry ----------------------------------------------------------------------------


def geometry(model_or_module: Any) -> Mapping[str, Layer]:
    """The declared geometry ``{layer: Layer}`` of a Model (or a Flax module with ``geometry()``)."""
    module = getattr(model_or_module, "module", model_or_module)
    declare = getattr(module, "geometry", None)
    if declare is None:
        name = getattr(model_or_module, "name", type(module).__name__)
        raise GeometryError(
            f"model {name!r} ({type(module).__name__}) declares no geometry: give its module a "
            f"geometry() method returning {{layer: jfv.models.receptive.Layer(parent, steps)}} (see jfv/models/vgg.py)"
        )
    return declare()


def _layer(geo: Mapping[str, Layer], layer: str) -> Layer:
    if layer not in geo:
        raise GeometryError(f"layer {layer!r} is not in the declared geometry; valid layers: {', '.join(geo)}")
    return geo[layer]


def _lineage(geo: Mapping[str, Layer], layer: str) -> list[str]:
    """[first layer, ..., layer]: the chain of parents down to the image."""
    out = [layer]
    while _layer(geo, out[-1]).parent is not None:
        out.append(geo[out[-1]].parent)
        if len(out) > len(geo):
            raise GeometryError(f"the declared geometry has a cycle through {layer!r}")
    return out[::-1]


def map_sizes(geo: Mapping[str, Layer], layer: str, n: int) -> list[int | None]:
    """The lengths of the image (``n``) and of every map on the way to ``layer``."""
    sizes = [n]
    for name in _lineage(geo, layer):
        sizes.append(chain_size(geo[name].steps, sizes[-1]))
    return sizes


def has_extent(geo: Mapping[str, Layer], layer: str) -> bool:
    """Whether ``layer`` is a spatial map (no ``GLOBAL`` step between it and the image)."""
    return all(not isinstance(s, Global) for name in _lineage(geo, layer) for s in _flat(geo[name].steps))


def _flat(steps):
    for s in steps:
        if isinstance(s, Residual):
            for b in s.branches:
                yield from _flat(b)
        yield s


def intervals(geo: Mapping[str, Layer], layer: str, n: int, clip: bool) -> np.ndarray:
    """(m, 2) half-open image intervals ``[start, stop)`` of each of the layer's ``m`` positions
    along one axis of an image of length ``n``."""
    if not has_extent(geo, layer):
        raise GeometryError(f"layer {layer!r} has no spatial extent (it follows a global pool or a dense layer), so its units have no box")
    lineage = _lineage(geo, layer)
    sizes = map_sizes(geo, layer, n)
    m = sizes[-1]
    if m is None or m < 1:
        raise GeometryError(f"layer {layer!r} has no positions at image size {n}: use a larger image")
    out = np.zeros((m, 2), np.int64)
    for i in range(m):
        lo, hi = i, i
        for name, n_in in zip(reversed(lineage), reversed(sizes[:-1])):
            lo, hi = chain_back(geo[name].steps, lo, hi, n_in, clip) if geo[name].steps else (lo, hi)
        out[i] = lo, hi + 1
    return out


def _hw(image_size) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    h, w = image_size
    return int(h), int(w)


def boxes(model: Any, layer: str, image_size: int | tuple[int, int]) -> Boxes:
    """Every position's box (unclipped and clipped) of ``layer`` for images of ``image_size``.

    Returns:
        Boxes with rows (h, 2), cols (w, 2) and their clipped versions, half-open intervals.
    """
    geo = geometry(model)
    h, w = _hw(image_size)
    return Boxes(intervals(geo, layer, h, False), intervals(geo, layer, w, False),
                 intervals(geo, layer, h, True), intervals(geo, layer, w, True))


def box(model: Any, layer: str, position: tuple[int, int], image_size: int | tuple[int, int], clip: bool = True) -> Box:
    """The pixel box position ``(i, j)`` of ``layer`` covers: clipped (exact) or unclipped."""
    b = boxes(model, layer, image_size)
    i, j = (int(v) for v in position)
    if not (0 <= i < len(b.rows) and 0 <= j < len(b.cols)):
        raise GeometryError(
            f"position ({i}, {j}) is off {layer!r}'s {len(b.rows)}x{len(b.cols)} map at image size "
            f"{image_size}: use 0 <= i < {len(b.rows)}, 0 <= j < {len(b.cols)}"
        )
    return b.box(i, j, clip)


def receptive_field(model: Any, layer: str) -> ReceptiveField:
    """The textbook receptive field of ``layer``: size, stride (jump) and offset of position 0.

    Defined for layers reached by windows and residuals only; an adaptive pool's bins depend on the
    input size (use ``boxes`` with that size).
    """
    geo = geometry(model)
    lineage = _lineage(geo, layer)
    if not has_extent(geo, layer):
        raise GeometryError(f"layer {layer!r} has no spatial extent (it follows a global pool or a dense layer), so no receptive field")
    for name in lineage:
        for s in _flat(geo[name].steps):
            if isinstance(s, Adaptive):
                raise GeometryError(
                    f"layer {layer!r} follows an adaptive pool, whose bins depend on the input size: "
                    f"use jfv.models.receptive.boxes(model, {layer!r}, image_size)"
                )
    big = 1 << 20  # no clipping happens, so the length only has to give the layer 3 positions
    spans = []
    for i in range(3):
        lo, hi = i, i
        for name in reversed(lineage):
            lo, hi = chain_back(geo[name].steps, lo, hi, big, False) if geo[name].steps else (lo, hi)
        spans.append((lo, hi))
    stride = spans[1][0] - spans[0][0]
    size = spans[0][1] - spans[0][0] + 1
    assert all(s[0] == spans[0][0] + i * stride and s[1] - s[0] + 1 == size for i, s in enumerate(spans))
    return ReceptiveField(size=size, stride=stride, offset=spans[0][0])


def check(model: Any, image_size: int = 224) -> None:
    """Raises GeometryError when the declared geometry disagrees with the module's output shapes
    (or misses one of its layers) at ``image_size``."""
    geo = geometry(model)
    shapes = model.output_shapes(image_size)
    missing = [k for k in shapes if k not in geo]
    if missing:
        raise GeometryError(f"{model.name}'s declared geometry lacks layers {missing}")
    for layer, shape in shapes.items():
        n = map_sizes(geo, layer, image_size)[-1]
        if len(shape) == 4:
            if not has_extent(geo, layer) or n != shape[1] or n != shape[2]:
                raise GeometryError(
                    f"{model.name}'s declared geometry gives {layer!r} size {n} at image size {image_size}, "
                    f"the module {shape[1]}x{shape[2]}: fix its geometry() method"
                )
        elif has_extent(geo, layer):
            raise GeometryError(f"{model.name}'s layer {layer!r} is not spatial but its geometry has an extent")


def padded_crop(image: np.ndarray, b: Box, fill: Any = 0.0) -> np.ndarray:
    """``image[b.top:b.bottom, b.left:b.right]`` where the box may reach past the image: the
    missing pixels are ``fill`` (a scalar or one value per channel). (H, W, C) -> (b.height, b.width, C)."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    out = np.empty((b.height, b.width) + image.shape[2:], image.dtype)
    out[...] = np.asarray(fill, image.dtype)
    t, l = max(b.top, 0), max(b.left, 0)
    bt, r = min(b.bottom, h), min(b.right, w)
    if bt > t and r > l:
        out[t - b.top : bt - b.top, l - b.left : r - b.left] = image[t:bt, l:r]
    return out


def describe(rf: ReceptiveField) -> str:
    return f"{rf.size} px (stride {rf.stride}, offset {rf.offset})"


__all__ = [
    "Adaptive", "Box", "Boxes", "GLOBAL", "GeometryError", "Global", "Layer", "ReceptiveField",
    "Residual", "Window", "box", "boxes", "chain_back", "chain_size", "check", "geometry",
    "has_extent", "intervals", "map_sizes", "padded_crop", "receptive_field", "step_back", "step_size",
]
