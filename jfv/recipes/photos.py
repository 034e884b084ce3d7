"""Photos as input, for the recipes that start from photos (attribute, invert, accentuate,
checkerboard): the config's ``images`` as paths and arrays, the photo transforms, and the checks
their keys share.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections
import numpy as np

from jfv.analysis import datasets
from jfv.models.base import Model
from jfv.optvis import transforms
from jfv.recipes.common import ConfigError, check_int, check_positive, check_seed
from jfv.runtime.outputs import load_image, output_names


def check_photo_channels(model: Model, decorrelate: bool, param: str = "image") -> None:
    """Refuses, naming the fix, renders a model's input channels cannot take: colour decorrelation
    and the CPPN draw RGB images, so a model with another count (a grayscale one) needs
    ``decorrelate=False`` and ``param=image``. Its photos are ``model.from_rgb(photos)``."""
    if model.channels == 3:
        return
    if param == "cppn":
        raise ConfigError(f"param=cppn draws RGB images but {model.name} takes {model.channels}-channel images: "
                          f"set --config.param=image --config.decorrelate=False")
    if decorrelate:
        raise ConfigError(f"decorrelate maps 3 decorrelated coordinates to RGB but {model.name} takes "
                          f"{model.channels}-channel images: set --config.decorrelate=False")


SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")  # image files a folder of photos is read for


def default_image() -> str:
    """matplotlib's sample photo of Grace Hopper, shipped with every matplotlib install."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.exists():
        raise ConfigError(f"no default image ({path} is missing): pass --config.images=PATH[,PATH...]")
    return str(path)


def image_paths(spec: str, limit: int) -> list[str]:
    """``""`` -> the default photo; else comma-separated files or directories (sorted images in them)."""
    if not spec:
        return [default_image()]
    paths: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        p = Path(part).expanduser()
        if p.is_dir():
            paths += sorted(str(f) for f in p.iterdir() if f.suffix.lower() in SUFFIXES)
        elif p.is_file():
            paths.append(str(p))
        else:
            raise ConfigError(f"images: {part!r} is neither a file nor a directory")
    if not paths:
        raise ConfigError(f"images: no {'/'.join(SUFFIXES)} files in {spec!r}")
    return paths[:limit] if limit > 0 else paths

SHARED_PREFIX = "shared:"  # an images entry relative to the shared folder

PHOTO_TRANSFORMS = ("none", "standard")  # standard: Lucid's, applied to the rendering and its photo together


def load_photos(images: str, max_images: int, size: int, shared: str) -> tuple[np.ndarray, list[str], list[str]]:
    """(n, size, size, 3) photos in [0, 1], their output names and their paths.

    ``images``: comma-separated files or folders; ``shared:REL`` is REL inside the shared folder
    (``datasets.shared_dir``); a missing one is refused naming the path and the fix.
    """
    parts = []
    for part in (p.strip() for p in str(images).split(",") if p.strip()):
        if part.startswith(SHARED_PREFIX):
            path = datasets.shared_dir(shared) / part[len(SHARED_PREFIX):]
            if not path.exists():
                raise ConfigError(f"images: {path} is missing from the shared folder: pass --config.images=PATH[,PATH...] "
                                  f"(files or folders of photos) or --config.shared_dir=PATH")
            part = str(path)
        parts.append(part)
    if not parts:
        raise ConfigError("images is empty: pass --config.images=PATH[,PATH...] (files or folders of photos)")
    paths = image_paths(",".join(parts), max_images)
    return np.stack([load_image(p, size) for p in paths]), output_names(paths), paths


def photo_transforms(name: str) -> transforms.Transform | None:
    """None (no transforms: the photo's activations are computed once) or Lucid's standard ones."""
    return transforms.standard() if name == "standard" else None


def check_photo_settings(config: ml_collections.ConfigDict, cells: str) -> None:
    """The keys the photo recipes (invert, accentuate) share: image_size, steps, max_images,
    batch_size (``cells`` per compiled call), learning_rate, seed and transforms."""
    check_int(config.image_size, "image_size", 8)
    check_int(config.steps, "steps", 1)
    check_int(config.max_images, "max_images", 0, meaning="0 = all")
    check_int(config.batch_size, "batch_size", 0, meaning=f"{cells} per compiled call; 0 = all at once")
    check_positive(config.learning_rate, "learning_rate", 0.05)
    check_seed(config.seed)
    if config.transforms not in PHOTO_TRANSFORMS:
        raise ConfigError(f"unknown transforms {config.transforms!r}; valid: {', '.join(PHOTO_TRANSFORMS)}")
