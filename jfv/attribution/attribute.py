"""One call from a model, a photo and a target to attribution maps: ``attribute(model, photo, "cat")``.

A thin caller of the attribution methods, as the ``attribute`` recipe calls them: the photo read
as the recipe reads it (shorter side resized to ``image_size``, bicubic, centre-cropped; a grayscale
model gets its BT.601 luma), the target scored as the recipe scores it (a class is its softmax
probability, a channel the sum of its map), every method with the recipe's settings, and each map
resized to the photo and laid over it. Several methods at once compare them side by side, as
pytorch-grad-cam and Captum users do.

The target is one of:

- ``"cat"`` / ``3`` / ``"logits:cat"``: a class, by label name (models with labels) or index; its
  probability is explained;
- ``"relu5_3:12"``: channel 12 of a layer (the sum of its map);
- ``"relu5_3"``: each photo's strongest channel of that layer (its largest activation anywhere);
- ``None``: each photo's top class (models with a ``logits`` layer).

The result (``Attribution``) shows itself in Jupyter as a labelled grid (``_repr_png_``: a row per
photo, the photo then a picture per method) and ``save(dir)`` writes what the command line's
``attribute`` recipe writes: ``overlays/<photo>_<method>.png`` (and ``<photo>_input.png``),
``grid.png``, ``index.html`` and ``manifest.json``. The functions the recipe's steps consist of,
``method_maps``, ``faithfulness`` and ``write_attribution``, are public here so that both run them.

Example:
    >>> import jfv
    >>> a = jfv.attribute("cifar_resnet20", "cat.png", "cat", method=("saliency", "grad_cam"))
    >>> a                      # in a notebook: the photo and the two maps over it
    >>> a.maps["grad_cam"].shape
    (1, 32, 32)
    >>> a.save("/tmp/cat_attribution")

Simonyan et al. 2014 (saliency); Springenberg et al. 2015 (guided backprop); Zeiler & Fergus 2014
(deconvnet, occlusion); Zhou et al. 2016 (CAM); Selvaraju et al. 2017 (Grad-CAM); Smilkov et al.
2017 (SmoothGrad); Petsiuk et al. 2018 (deletion / insertion).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfv import models
from jfv.attribution import pictures
from jfv.attribution.cam import HeadError, NoSpatialExtentError, cam, grad_cam, head_kernel
from jfv.attribution.faithfulness import deletion_insertion
from jfv.attribution.gradients import check_relu, deconvnet, gradient_x_input, guided_backprop, saliency, smoothgrad
from jfv.attribution.occlusion import GREY, occlusion
from jfv.attribution.targets import Target, TargetError, channel, label
from jfv.models import labels as labels_lib
from jfv.models.base import Model
from jfv.runtime.outputs import labelled_grid, output_names
from jfv.runtime.results import OneCallResult, first_few

# The attribute recipe's methods, in its order (the columns of its grid), and those shown as images.
METHODS = ("saliency", "gradient_x_input", "smoothgrad", "guided_backprop", "deconvnet", "grad_cam", "cam", "occlusion")
IMAGE_METHODS = ("guided_backprop", "deconvnet")  # signed projections: shown as images, ranked by magnitude
ALL = "all"  # every method the model supports
# Other spellings users bring (pytorch-grad-cam's GradCAM, Captum's InputXGradient), compared with
# case, spaces, '-' and '_' removed.
ALIASES = {"gradcam": "grad_cam", "inputxgradient": "gradient_x_input", "guidedbackpropagation": "guided_backprop",
           "vanillagradient": "saliency", "gradient": "saliency", "smoothgradient": "smoothgrad"}
CLASS_LAYER = "logits"

# The attribute recipe's defaults (configs/attribute_vgg16_channel.py), under the same names.
SMOOTHGRAD_SAMPLES = 8
SMOOTHGRAD_NOISE = 0.15  # std as a fraction of the image's range (Smilkov et al.: 0.1-0.2)
OCCLUSION_FILL = GREY  # Zeiler & Fergus's grey square
OCCLUSION_PARTS = 7  # the default window is image_size // 7 (32 px at 224, the recipe's), the stride half of it
BATCH_SIZE = 16  # occluded / masked images per model call
FAITHFULNESS_BASELINE = "blur"
OVERLAY_ALPHA = 0.5
PROJECTION_GAIN = 2.0  # contrast of deconvnet / guided backprop pictures

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")  # the attribute recipe's image files (recipes.photos.SUFFIXES)

TARGET_FORMS = ("a class name or index (e.g. 'cat', 3), LAYER:CHANNEL (a channel, e.g. 'relu5_3:12'), LAYER (each "
                "photo's strongest channel of it) or None (each photo's top class)")


class MethodError(ValueError):
    """An attribution method that does not exist, or that the model cannot run; the message lists the valid ones."""


class PhotoError(ValueError):
    """A photo that is not a path, a PIL image or an image array; the message names it and the forms taken."""


# -- the model, the methods, the target -----------------------------------------------------------------


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.lower())


def parse_methods(method: str | Sequence[str], model: Model) -> list[str]:
    """Method names -> the recipe's names, in the order given (``"all"``: every method ``model`` supports).

    Names may be spelt ``"gradcam"``, ``"Grad-CAM"``, ``"guided backprop"``; several are a sequence
    or a comma-separated string.

    Args:
        method: a name, a comma-separated string of names, a sequence of names, or ``"all"``.
        model: the model they will run on (CAM needs a global-pooling + dense head; guided backprop
            and deconvnet a ``relu`` field).

    Returns:
        The methods, each once, as in ``METHODS``.

    Raises:
        MethodError: an unknown name (the message lists the methods), a name given twice, none given,
            or CAM on a model without a ``logits`` layer.
        MissingFieldError: guided backprop or deconvnet on a module without a ``relu`` field.
    """
    names = [m.strip() for m in method.split(",")] if isinstance(method, str) else list(method)
    if not names or not all(isinstance(m, str) and m.strip() for m in names):
        raise MethodError(f"cannot read method {method!r}: give one of {', '.join(METHODS)}, several of them "
                          f"(a tuple or 'saliency,grad_cam') or '{ALL}'")
    if [_key(m) for m in names] == [ALL]:
        return [m for m in METHODS if supports(model, m)]
    by_key = {_key(m): m for m in METHODS} | ALIASES
    bad = [m for m in names if _key(m) not in by_key]
    if bad:
        raise MethodError(f"unknown method(s) {', '.join(map(repr, bad))}; valid: {', '.join(METHODS)} (or '{ALL}': "
                          f"every method {model.name} supports)")
    out = [by_key[_key(m)] for m in names]
    repeated = sorted({m for m in out if out.count(m) > 1}, key=METHODS.index)
    if repeated:
        raise MethodError(f"method(s) {', '.join(repeated)} given more than once: name each once")
    if "cam" in out and CLASS_LAYER not in model.layers:
        raise MethodError(f"method 'cam' needs a classifier head (global pooling + one dense layer giving "
                          f"'{CLASS_LAYER}'), which {model.name} has not: use 'grad_cam', which needs none")
    for m in out:
        if m in IMAGE_METHODS:
            check_relu(model, m.replace("_", " "))
    return out


def supports(model: Model, method: str) -> bool:
    """Whether ``model`` can run ``method``: CAM needs a ``logits`` layer, guided backprop and deconvnet
    a ``relu`` field to swap; the rest need only ``apply``."""
    if method == "cam":
        return CLASS_LAYER in model.layers
    if method in IMAGE_METHODS:
        return callable(getattr(model.module, "relu", None))
    return method in METHODS


def make_target(model: Model, target: Any, images: Any) -> tuple[Target, dict]:
    """The target as the attribute recipe makes it, and its settings under the recipe's config keys.

    A class is ``label(c, softmax=True)`` (its probability); a channel ``channel(layer, c)`` (the sum
    of its map); channel -1 stands for each image's strongest channel of the layer (or top class).

    Args:
        model: the model.
        target: the forms in the module docstring.
        images: (n, H, W, C) the model's input, to find each image's strongest channel or top class.

    Returns:
        ``(Target, {"target": "class" | "channel", "layer": ..., "channel": ...})``.

    Raises:
        TargetError: an unreadable target, a class on a model without ``logits`` or labels, or no
            target on a model without ``logits``; each names the forms taken.
        UnknownLayerError: ``LAYER:CHANNEL`` with a layer the model lacks (the message lists its layers).
        ChannelOutOfRangeError: a channel or class outside the layer (the message names the range).
        UnknownClassError: no class has that name (the message lists close matches).
    """
    layer, index = _read_target(model, target)
    if index < 0:  # each image's strongest channel (its largest activation anywhere) or top class
        a = model(images)[layer]
        found: Any = tuple(int(c) for c in jnp.argmax(a.reshape(a.shape[0], -1, a.shape[-1]).max(1), -1))
    else:
        found = index
    t = label(found, softmax=True) if layer == CLASS_LAYER else channel(layer, found)
    t.check(model, images.shape[1:3])
    return t, {"target": "class" if layer == CLASS_LAYER else "channel", "layer": layer, "channel": index}


def _read_target(model: Model, target: Any) -> tuple[str, int]:
    """``target`` -> (layer, channel or class index; -1: each image's strongest / top one)."""
    if target is None:
        if CLASS_LAYER not in model.layers:
            raise TargetError(f"{model.name} has no '{CLASS_LAYER}' layer (no classifier head), so it has no top class "
                              f"to explain: give a target, {TARGET_FORMS}")
        return CLASS_LAYER, -1
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        return CLASS_LAYER, _class(model, str(int(target)))
    if not isinstance(target, str) or not target.strip():
        raise TargetError(f"cannot read target {target!r}: give {TARGET_FORMS}")
    text = target.strip()
    layer, colon, rest = (s.strip() for s in text.partition(":"))
    if colon:
        model.check_layer(layer)  # UnknownLayerError listing the valid layers
        if layer == CLASS_LAYER and rest and ":" not in rest:
            return layer, _class(model, rest)
        if not rest.isdigit():
            raise TargetError(f"cannot read {rest!r} in target {text!r}: give {TARGET_FORMS}")
        model.check_channels(layer, [int(rest)])  # ChannelOutOfRangeError naming the range
        return layer, int(rest)
    if text in model.layers:
        return text, -1
    if text.isdigit() or (model.labels and CLASS_LAYER in model.layers):
        return CLASS_LAYER, _class(model, text)
    why = f"{model.name} has no class labels" if CLASS_LAYER in model.layers else f"{model.name} has no '{CLASS_LAYER}' layer"
    raise TargetError(f"target {text!r} is neither a layer of {model.name} nor a class name ({why}): give "
                      f"{TARGET_FORMS}. Valid layers: {', '.join(model.layers)}")


def _class(model: Model, name: str) -> int:
    if CLASS_LAYER not in model.layers:
        raise TargetError(f"{model.name} has no '{CLASS_LAYER}' layer (no classifier head), so class {name!r} cannot be "
                          f"explained: give a channel, LAYER:CHANNEL, or LAYER for each photo's strongest channel")
    if name.isdigit() and not model.labels:
        model.check_channels(CLASS_LAYER, [int(name)])  # ChannelOutOfRangeError naming the range
        return int(name)
    if not model.labels:
        raise TargetError(f"model {model.name!r} has no class labels, so the class {name!r} cannot be looked up: give "
                          f"the class by index, e.g. 0 (0..{model.layers[CLASS_LAYER] - 1})")
    return labels_lib.class_index(name, model.labels)  # UnknownClassError: close matches


def spatial_layers(model: Model, image_hw: tuple[int, int]) -> list[str]:
    """The layers with a spatial map larger than 1x1 at this image size, in the layer table's order."""
    shapes = model.output_shapes(tuple(image_hw))
    return [name for name in model.layers if len(shapes[name]) == 4 and shapes[name][1] * shapes[name][2] > 1]


def default_grad_cam_layer(model: Model, target_layer: str, image_hw: tuple[int, int]) -> str:
    """Grad-CAM's layer when none is given: for a class (or any layer without a map), the last spatial
    layer before it; for a channel of a spatial layer, the last layer before it with a larger map (the
    previous block's output: VGG16 ``relu4_3`` for ``relu5_3``, the recipe's choice), else the layer itself.

    Args:
        model: the model.
        target_layer: the target's layer.
        image_hw: the images' (height, width).

    Returns:
        A layer name.

    Raises:
        NoSpatialExtentError: the model has no spatial layer at this size.
    """
    spatial = spatial_layers(model, image_hw)
    if not spatial:
        raise NoSpatialExtentError(f"{model.name} has no layer with a spatial map at image size {image_hw[0]}x"
                                   f"{image_hw[1]}, so Grad-CAM has nowhere to work: use larger images")
    order = list(model.layers)
    before = [name for name in spatial if order.index(name) < order.index(target_layer)]
    if target_layer not in spatial:
        return (before or spatial)[-1]
    shapes = model.output_shapes(tuple(image_hw))
    area = lambda name: shapes[name][1] * shapes[name][2]  # noqa: E731
    larger = [name for name in before if area(name) > area(target_layer)]
    return larger[-1] if larger else target_layer


def default_cam_layer(model: Model, image_hw: tuple[int, int]) -> str:
    """CAM's layer when none is given: the last spatial layer whose pooled channels the head's one dense
    kernel reads (``head_kernel``).

    Args:
        model: a model with a global-pooling + dense head giving ``logits``.
        image_hw: the images' (height, width).

    Returns:
        A layer name.

    Raises:
        HeadError: no spatial layer feeds such a head; pass ``cam_layer=`` and the kernel to ``cam`` then.
    """
    for name in reversed(spatial_layers(model, image_hw)):
        try:
            head_kernel(model, name)
            return name
        except HeadError:
            continue
    raise HeadError(f"found no layer of {model.name} that global pooling + one dense layer turn into "
                    f"'{CLASS_LAYER}', so CAM has no maps: use 'grad_cam', or jfv.attribution.cam with kernel=")


# -- the photos --------------------------------------------------------------------------------------------


def load_photos(photo: Any, size: int) -> tuple[np.ndarray, list[str], list[str | None]]:
    """Photos as RGB (n, size, size, 3) float32 in [0, 1], with a name and a path (None for arrays) each.

    A path is read as the attribute recipe reads it (``jfv.runtime.outputs.load_image``: shorter side
    resized to ``size``, bicubic, centre-cropped); a PIL image the same way; an array (H, W, 3) or
    (H, W) in [0, 1] (float) or 0..255 (uint8), or a batch (n, H, W, 3), is used as it is at
    ``size`` x ``size`` and fitted the same way otherwise.

    Args:
        photo: a path, a PIL image, an array, or a list of them.
        size: the side of the images.

    Returns:
        ``(images, names, paths)``; names as the recipe's output files use them (file stems).

    Raises:
        FileNotFoundError: a path that does not exist (named).
        ImageReadError: a file that is not an image or is corrupt (named).
        PhotoError: anything else, naming the photo and the forms taken.
    """
    items = _photo_list(photo)
    images, names, paths = [], [], []
    for i, item in enumerate(items):
        image, name, path = _one_photo(item, size, i)
        images.append(image)
        names.append(name)
        paths.append(path)
    # a PIL image's file name names it like a path's stem; an array is "photo" ("photo_<i>" among several)
    naming = [p if p else (f"{n}.png" if n else None) for p, n in zip(paths, names)]
    return np.stack(images), output_names(naming, unnamed="photo"), paths


def _photo_list(photo: Any) -> list:
    if isinstance(photo, (list, tuple)):
        if not photo:
            raise PhotoError("no photo given (an empty list): pass a path, a PIL image or an (H, W, 3) array")
        return list(photo)
    a = photo if hasattr(photo, "shape") and hasattr(photo, "dtype") else None
    if a is not None and np.ndim(a) == 4:  # a batch of images
        return list(np.asarray(a))
    return [photo]


def _one_photo(item: Any, size: int, i: int) -> tuple[np.ndarray, str, str | None]:
    from PIL import Image

    from jfv.runtime.outputs import load_image

    if isinstance(item, (str, os.PathLike)):
        path = Path(item).expanduser()
        if path.is_dir():
            raise PhotoError(f"photo {str(path)!r} is a folder: pass its image files as a list (jfv.top_patches takes "
                             f"folders)")
        if not path.exists():
            raise FileNotFoundError(f"photo {str(path)!r} does not exist: pass the path of an image file "
                                    f"({', '.join(PHOTO_SUFFIXES)}), a PIL image or an (H, W, 3) array")
        return load_image(path, size), path.stem, str(path)  # ImageReadError naming the file
    if isinstance(item, Image.Image):
        name = Path(item.filename).stem if getattr(item, "filename", "") else ""
        buf = io.BytesIO()
        item.convert("RGB").save(buf, format="PNG")  # lossless: read back exactly as the file would be
        return load_image(buf, size), name, None
    if hasattr(item, "shape") and hasattr(item, "dtype"):
        return _array_photo(np.asarray(item), size, i), "", None
    raise PhotoError(f"photo {i} is a {type(item).__name__}: pass a path, a PIL image or an (H, W, 3) RGB array in "
                     f"[0, 1] (a list of them for several)")


def _array_photo(a: np.ndarray, size: int, i: int) -> np.ndarray:
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] != 3 or min(a.shape[:2]) < 1:
        raise PhotoError(f"photo {i} has shape {a.shape}: pass an (H, W, 3) RGB array (or (H, W) grayscale) in [0, 1]")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    a = np.asarray(a, np.float32)
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise PhotoError(f"photo {i} has values in [{float(np.nanmin(a)):.3g}, {float(np.nanmax(a)):.3g}]: pass "
                         f"floats in [0, 1] (divide 0..255 values by 255) or uint8")
    if a.shape[:2] == (size, size):
        return a
    return np.clip(_fit(a, size), 0.0, 1.0)


def _fit(a: np.ndarray, size: int) -> np.ndarray:
    """``load_image``'s geometry (shorter side to ``size``, bicubic, centre crop) on float channels."""
    from PIL import Image

    h, w = a.shape[:2]
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    chans = [np.asarray(Image.fromarray(a[..., c], mode="F").resize(new, Image.BICUBIC)) for c in range(a.shape[-1])]
    out = np.stack(chans, axis=-1)
    top, left = (new[1] - size) // 2, (new[0] - size) // 2
    return out[top : top + size, left : left + size]


# -- the recipe's steps ------------------------------------------------------------------------------------


def method_maps(
    model: Model,
    images: Any,
    target: Target,
    methods: Sequence[str],
    key: jax.Array,
    *,
    smoothgrad_samples: int = SMOOTHGRAD_SAMPLES,
    smoothgrad_noise: float = SMOOTHGRAD_NOISE,
    grad_cam_layer: str,
    cam_layer: str = "",
    occlusion_window: int,
    occlusion_stride: int,
    occlusion_fill: float | Sequence[float] = OCCLUSION_FILL,
    batch_size: int = BATCH_SIZE,
    overlay_alpha: float = OVERLAY_ALPHA,
    projection_gain: float = PROJECTION_GAIN,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every method's map of ``target`` on ``images``, as the attribute recipe computes and draws them.

    Heatmap methods: the method's map resized (bilinear) to the images and laid over each (jet
    colours, ``overlay_alpha``). Guided backprop and deconvnet: the gradient image, its map the
    largest magnitude over colour, its picture ``pictures.signed_image`` (0 as grey).

    Args:
        model: the model.
        images: (n, H, W, C) the model's input in [0, 1].
        target: what the maps explain.
        methods: names from ``METHODS``.
        key: SmoothGrad's noise key.
        smoothgrad_samples: SmoothGrad's noisy copies.
        smoothgrad_noise: SmoothGrad's noise std as a fraction of each image's range.
        grad_cam_layer: Grad-CAM's layer (any spatial layer).
        cam_layer: CAM's layer, the head's input feature maps.
        occlusion_window: the occluding square's side in pixels.
        occlusion_stride: its step in pixels.
        occlusion_fill: its value in [0, 1], a scalar or RGB.
        batch_size: occluded images per model call.
        overlay_alpha: the heatmap's weight over the image.
        projection_gain: contrast of the guided backprop and deconvnet pictures.

    Returns:
        ``(maps, pictures, raw)``, each ``{method: array}``: maps (n, H, W) (what faithfulness ranks);
        pictures (n, H, W, 3), or (n, H, W, 1) for a grayscale model's projections; raw, each method's
        own output (Grad-CAM's and CAM's at their layer's size, the projections (n, H, W, C), occlusion's
        pixel heatmap).
    """
    images = jnp.asarray(images)
    size = images.shape[1:3]
    maps: dict[str, np.ndarray] = {}
    shown: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    for method in methods:
        if method in IMAGE_METHODS:
            g = np.asarray((guided_backprop if method == "guided_backprop" else deconvnet)(model, images, target))
            raw[method] = g
            maps[method] = np.abs(g).max(-1)
            shown[method] = np.stack([pictures.signed_image(x, projection_gain) for x in g])
            continue
        if method == "saliency":
            m = saliency(model, images, target)
        elif method == "gradient_x_input":
            m = gradient_x_input(model, images, target)
        elif method == "smoothgrad":
            m = smoothgrad(model, images, target, key, smoothgrad_samples, smoothgrad_noise)
        elif method == "grad_cam":
            m = grad_cam(model, images, target, grad_cam_layer)
        elif method == "cam":
            m = cam(model, images, target.channels(images.shape[0])[:, None], cam_layer)[:, 0]
        elif method == "occlusion":
            m = occlusion(model, images, target, occlusion_window, occlusion_stride, occlusion_fill, batch_size).heatmap
        else:
            raise MethodError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
        raw[method] = np.asarray(m)
        m = np.stack([pictures.resize_map(x, size) for x in np.asarray(m)])
        maps[method] = m
        shown[method] = np.stack([pictures.overlay(img, x, overlay_alpha) for img, x in zip(np.asarray(images), m)])
    return maps, shown, raw


def faithfulness(model: Model, images: Any, target: Target, maps: Mapping[str, np.ndarray], steps: int,
                 baseline: float | str = FAITHFULNESS_BASELINE, batch_size: int = BATCH_SIZE) -> dict[str, dict]:
    """Deletion and insertion areas of each method's map, as the recipe's manifest holds them.

    Args:
        model: the model.
        images: (n, H, W, C) the model's input.
        target: the maps' target.
        maps: ``{method: (n, H, W)}`` (``method_maps``' first result).
        steps: curve points - 1.
        baseline: ``"blur"`` or a value in [0, 1] for removed pixels.
        batch_size: masked images per model call.

    Returns:
        ``{method: {"deletion_auc": [n floats], "insertion_auc": [n floats]}}``, rounded to 6 digits.
    """
    scores: dict[str, dict] = {}
    for method, m in maps.items():
        c = deletion_insertion(model, jnp.asarray(images), target, jnp.asarray(m), steps, baseline, batch_size)
        scores[method] = {"deletion_auc": [round(float(v), 6) for v in c.deletion_auc],
                          "insertion_auc": [round(float(v), 6) for v in c.insertion_auc]}
    return scores


def write_attribution(writer: Any, manifest: dict, *, photos: Sequence[str | None], names: Sequence[str], images: Any,
                      shown: Mapping[str, np.ndarray], scores: Mapping[str, dict], info: Mapping[str, Any],
                      image_size: int, faithfulness_steps: int, faithfulness_baseline: float | str) -> dict:
    """Writes the attribute recipe's files through ``writer``, ending with ``write_run``.

    ``overlays/<name>_input.png`` and ``overlays/<name>_<method>.png`` per image, ``grid.png`` (rows:
    images; columns: input, methods), ``index.html`` and ``manifest.json``.

    Args:
        writer: a ``jfv.runtime.outputs.Staging`` (inside its ``with`` block) or a ``Job``.
        manifest: the run's record so far: ``recipe``, ``model``, ``model_source``, ``target`` (the
            target's description), ``methods`` (the grid's columns after the input), ``settings``;
            ``grid``, ``grid_layout``, ``gallery``, ``images`` and ``info`` are added, in that order.
        photos: each image's path (None for one given as an array), for the manifest.
        names: each image's name for its files.
        images: (n, H, W, C) the model's input.
        shown: ``{method: (n, H, W, 3 or 1)}`` pictures (``method_maps``' second result).
        scores: ``faithfulness``' result ({} when off).
        info: the run information (``versions``, ``backend``, ``devices``, ``wall_time_s``).
        image_size: shown in the page's header.
        faithfulness_steps: shown in the page's header (0: off).
        faithfulness_baseline: shown in the page's header.

    Returns:
        The manifest written.
    """
    from jfv.runtime.outputs import write_run

    images = np.asarray(images)
    model, target, methods = manifest["model"], manifest["target"], list(manifest["methods"])
    cards, rows, entries = [], [], []
    for i, name in enumerate(names):
        row = [images[i]]
        writer.save_png(f"overlays/{name}_input.png", images[i])
        cards.append({"image": f"overlays/{name}_input.png", "caption": [name, target]})
        entry: dict[str, Any] = {"image": photos[i], "methods": {}}
        for method in methods:
            rel = f"overlays/{name}_{method}.png"
            writer.save_png(rel, shown[method][i])
            row.append(shown[method][i])
            caption = [f"{name}: {method}"]
            details: dict[str, Any] = {"picture": rel}
            if method in scores:
                d, ins = scores[method]["deletion_auc"][i], scores[method]["insertion_auc"][i]
                caption.append(f"deletion {d:.3g} insertion {ins:.3g}")
                details.update(deletion_auc=d, insertion_auc=ins)
            cards.append({"image": rel, "caption": caption})
            entry["methods"][method] = details
        entries.append(entry)
        rows += row
    manifest.update({"grid": "grid.png", "grid_layout": {"rows": list(names), "columns": ["input"] + methods},
                     "gallery": "index.html", "images": entries})
    manifest.update(info)
    header = {"model": model, "target": target, "image size": image_size,
              "grid": "grid.png (rows: images; columns: input, " + ", ".join(methods) + ")",
              "faithfulness": f"{faithfulness_steps} steps, baseline {faithfulness_baseline}"
              if faithfulness_steps else "off",
              "wall time (s)": manifest.get("wall_time_s")}
    write_run(writer, manifest, f"{model} attribution", cards, header, grid=rows, grid_columns=len(methods) + 1)
    return manifest


# -- the result --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Attribution(OneCallResult):
    """What ``attribute`` computed: a map per method and photo, with what made them.

    Attributes:
        model: the model's name.
        target: the target's description (``Target.description``, e.g. ``logits[3], sum, softmax``).
        classes: per photo, what the map explains: ``layer:channel``, or the class name (index on a
            model without labels).
        methods: the methods, in the grid's order.
        names: the photos' names (file stems; ``photo`` for arrays).
        photos: the photos' paths (None for images and arrays).
        images: (n, H, W, C) the model's input, in [0, 1].
        maps: ``{method: (n, H, W)}`` at the photos' size (projections: their magnitude).
        pictures: ``{method: (n, H, W, 3)}`` the maps over the photos, the projections as images.
        raw: ``{method: array}`` each method's own output (``method_maps``).
        scores: ``{method: {"deletion_auc": [...], "insertion_auc": [...]}}``; {} without faithfulness.
        settings: the options, named as the attribute recipe's config keys.
        model_source, wall_time_s: as in ``OneCallResult`` (where the weights came from, seconds the call took).
    """

    model: str
    target: str
    classes: tuple[str, ...]
    methods: tuple[str, ...]
    names: tuple[str, ...]
    photos: tuple[str | None, ...]
    images: np.ndarray
    maps: dict
    pictures: dict
    raw: dict
    scores: dict
    # Every one-call result ends with these fields on purpose: as OneCallResult's they would come first in its constructor.
    settings: dict
    model_source: str = ""
    wall_time_s: float = 0.0

    def __repr__(self) -> str:
        return (f"Attribution({self.model}, target {self.target}, {len(self.names)} photo(s) [{first_few(self.names, 4)}], "
                f"{', '.join(self.methods)}, {self.images.shape[1]} px)")

    def grid(self) -> np.ndarray:
        """The labelled grid a notebook shows: a row per photo, the photo (labelled with its name and
        what the maps explain) then each method's picture (labelled with the method).

        Returns:
            (H, W, 3) in [0, 1].
        """
        tiles, labels = [], []
        for i, name in enumerate(self.names):
            tiles.append(self.images[i])
            labels.append(f"{name}: {self.classes[i]}")
            for method in self.methods:
                tiles.append(self.pictures[method][i])
                labels.append(method)
        return labelled_grid(tiles, labels, columns=len(self.methods) + 1)

    def write(self, stage) -> None:
        """Writes the attribute recipe's files into ``stage`` (``save(directory)`` writes them into a
        folder): ``overlays/<photo>_input.png`` and ``overlays/<photo>_<method>.png``, ``grid.png``,
        ``index.html`` and ``manifest.json`` (last: the run is complete when it exists).
        """
        from jfv.models.weights import library_versions

        manifest = {"recipe": "attribute",  # the attribute recipe's files
                    "made_by": "jfv.attribute", "model": self.model, "model_source": self.model_source,
                    "target": self.target, "methods": list(self.methods), "settings": self.settings}
        write_attribution(stage, manifest, photos=self.photos, names=self.names, images=self.images,
                          shown=self.pictures, scores=self.scores, info=self.run_info(library_versions()),
                          image_size=int(self.images.shape[1]), faithfulness_steps=self.settings["faithfulness_steps"],
                          faithfulness_baseline=self.settings["faithfulness_baseline"])


# -- pictures shared by the one-calls ----------------------------------------------------------------------


# -- the call ----------------------------------------------------------------------------------------------


def attribute(
    model: Model | str,
    photo: Any,
    target: str | int | None = None,
    *,
    method: str | Sequence[str] = "grad_cam",
    image_size: int | None = None,
    grad_cam_layer: str | None = None,
    cam_layer: str | None = None,
    smoothgrad_samples: int = SMOOTHGRAD_SAMPLES,
    smoothgrad_noise: float = SMOOTHGRAD_NOISE,
    occlusion_window: int | None = None,
    occlusion_stride: int | None = None,
    occlusion_fill: float = OCCLUSION_FILL,
    batch_size: int = BATCH_SIZE,
    faithfulness_steps: int = 0,
    faithfulness_baseline: float | str = FAITHFULNESS_BASELINE,
    overlay_alpha: float = OVERLAY_ALPHA,
    projection_gain: float = PROJECTION_GAIN,
    seed: int = 0,
) -> Attribution:
    """Attribution maps of ``target`` on ``photo`` by each ``method``, as the attribute recipe makes them.

    Each map is exactly the method's own (``jfv.attribution.grad_cam(model, images, target, layer)``,
    ...) on the photo as the recipe reads it, for the target the recipe builds, resized to the photo.

    Args:
        model: a jfv Model (``jfv.models.load(...)``, ``jfv.models.wrap(module, params, ...)``) or a
            registered model's name (``"vgg16"``; ``jfv.models.names()``).
        photo: a path, a PIL image, an (H, W, 3) array in [0, 1] (or uint8), or a list of them (a row each).
        target: ``"cat"`` / ``3`` (a class: its probability), ``"relu5_3:12"`` (a channel: the sum of
            its map), ``"relu5_3"`` (each photo's strongest channel of the layer) or None (each photo's
            top class).
        method: a name from ``METHODS`` (``"gradcam"``, ``"Grad-CAM"`` and ``"guided backprop"`` read
            too), several (a tuple, or ``"saliency,grad_cam"``), or ``"all"`` (every method the model supports).
        image_size: the side photos are resized and cropped to; default the model's ``image_size``.
        grad_cam_layer: Grad-CAM's layer; default ``default_grad_cam_layer`` (the last spatial layer
            for a class, the previous block's output for a channel).
        cam_layer: CAM's layer; default the head's input (``default_cam_layer``).
        smoothgrad_samples: SmoothGrad's noisy copies.
        smoothgrad_noise: SmoothGrad's noise std as a fraction of the image's range.
        occlusion_window: the occluding square's side in px; default ``image_size // 7`` (32 at 224).
        occlusion_stride: its step in px; default half the window.
        occlusion_fill: its value in [0, 1] (grey).
        batch_size: occluded or masked images per model call (memory).
        faithfulness_steps: deletion / insertion curve points - 1 per method (0: none, the default).
        faithfulness_baseline: ``"blur"`` or a value in [0, 1] for removed pixels.
        overlay_alpha: the heatmap's weight over the photo.
        projection_gain: contrast of the guided backprop and deconvnet pictures.
        seed: SmoothGrad's noise seed.

    Returns:
        An ``Attribution``: shows itself in Jupyter, ``.maps[method]`` (n, H, W), ``.save(dir)``.

    Raises:
        TypeError: ``model`` is neither a jfv Model nor a name (the message says how to wrap one).
        MethodError: an unknown method (the message lists them) or one the model cannot run.
        TargetError, UnknownLayerError, ChannelOutOfRangeError, UnknownClassError: a target that
            cannot be read or is not the model's, each one line naming what exists.
        FileNotFoundError, ImageReadError, PhotoError: a photo that cannot be read, naming it.
        ValueError: a bad option, naming it.

    Example:
        >>> a = attribute("vgg16", "photo.jpg", "relu5_3", method=("saliency", "grad_cam"), image_size=224)
        >>> a.maps["grad_cam"].shape
        (1, 224, 224)
    """
    start = time.time()
    _check_options(image_size=image_size, smoothgrad_samples=smoothgrad_samples, batch_size=batch_size,
                   faithfulness_steps=faithfulness_steps, seed=seed, occlusion_window=occlusion_window,
                   occlusion_stride=occlusion_stride)
    model = models.resolve(model, "attribute", "photo, 'LAYER:CHANNEL', method='grad_cam'")
    methods = parse_methods(method, model)
    size = int(image_size or model.image_size)
    rgb, names, paths = load_photos(photo, size)
    images = jnp.asarray(model.from_rgb(rgb))  # the model's input: the photos, or their luma for a grayscale model
    t, target_settings = make_target(model, target, images)
    hw = tuple(images.shape[1:3])
    if "grad_cam" in methods and grad_cam_layer is None:
        grad_cam_layer = default_grad_cam_layer(model, t.layer, hw)
    if "cam" in methods and cam_layer is None:
        cam_layer = default_cam_layer(model, hw)
    window = occlusion_window or max(1, min(hw) // OCCLUSION_PARTS)
    stride = occlusion_stride or max(1, window // 2)
    maps, shown, raw = method_maps(
        model, images, t, methods, jax.random.key(seed), smoothgrad_samples=smoothgrad_samples,
        smoothgrad_noise=smoothgrad_noise, grad_cam_layer=grad_cam_layer or "", cam_layer=cam_layer or "",
        occlusion_window=window, occlusion_stride=stride, occlusion_fill=occlusion_fill, batch_size=batch_size,
        overlay_alpha=overlay_alpha, projection_gain=projection_gain)
    scores = faithfulness(model, images, t, maps, faithfulness_steps, faithfulness_baseline, batch_size) \
        if faithfulness_steps > 0 else {}
    channels = t.channels(images.shape[0])
    if t.layer == CLASS_LAYER:
        classes = tuple(model.labels[int(c)] if model.labels else f"class {int(c)}" for c in channels)
    else:
        classes = tuple(f"{t.layer}:{int(c)}" for c in channels)
    settings = {
        "recipe": "attribute", "model": model.name, "images": ",".join(p or n for p, n in zip(paths, names)),
        "image_size": size, **target_settings, "spec": target if target is None or isinstance(target, str) else int(target),
        "methods": ",".join(methods), "smoothgrad_samples": smoothgrad_samples, "smoothgrad_noise": smoothgrad_noise,
        "grad_cam_layer": grad_cam_layer or "", "cam_layer": cam_layer or "", "occlusion_window": window,
        "occlusion_stride": stride, "occlusion_fill": occlusion_fill, "batch_size": batch_size,
        "faithfulness_steps": faithfulness_steps, "faithfulness_baseline": faithfulness_baseline,
        "overlay_alpha": overlay_alpha, "projection_gain": projection_gain, "seed": seed,
    }
    return Attribution(
        model=model.name, target=t.description, classes=classes, methods=tuple(methods), names=tuple(names),
        photos=tuple(paths), images=np.asarray(images), maps=maps, pictures=shown, raw=raw, scores=scores,
        settings=settings, model_source=model.source, wall_time_s=round(time.time() - start, 3))


def _check_options(**options: Any) -> None:
    """Refuses, naming the argument, integer options that would otherwise fail deep inside."""
    lows = {"image_size": 16, "smoothgrad_samples": 1, "batch_size": 1, "faithfulness_steps": 0, "seed": 0,
            "occlusion_window": 1, "occlusion_stride": 1}
    for name, value in options.items():
        if value is None and name in ("image_size", "occlusion_window", "occlusion_stride"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lows[name]:
            raise ValueError(f"{name}={value!r}: give an integer >= {lows[name]}"
                             + (" (or None for the default)" if name in ("image_size", "occlusion_window",
                                                                         "occlusion_stride") else ""))


__all__ = ["ALL", "Attribution", "IMAGE_METHODS", "METHODS", "MethodError", "PhotoError", "attribute", "default_cam_layer",
           "default_grad_cam_layer", "faithfulness", "load_photos", "make_target", "method_maps", "parse_methods",
           "supports", "write_attribution"]
