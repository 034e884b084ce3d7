"""The natural-image magnitude spectrum that MACO holds fixed: estimated, shipped, resized.

MACO (``parameterisations.maco``) optimises only the phase of an image's Fourier spectrum; the
magnitude is the mean magnitude spectrum of natural photos, in the decorrelated colour basis.
``estimate`` computes it from image files; the package ships the estimate from the 30 natural
photos in ``../shared/data/images`` (the 20 ImageNet JPEGs of ``foolbox/`` and the 10 photos of
``openimages/``) at 256 px as ``jfv/data/maco_magnitude.npz``; ``resize_magnitude`` takes it to
any image size. Rebuild (and check) the shipped file with

    python -m jfv.optvis.parameterisations.spectrum --images=../shared/data/images --out=jfv/data/maco_magnitude.npz

The estimate, per photo: shorter side resized to ``SIZE`` (bicubic) and centre-cropped
(``outputs.load_image``), mapped to the decorrelated colour basis (the inverse of
``parameterisations.decorrelate_colour``), each colour plane's mean subtracted, then
``|rfft2|`` per plane; the mean over photos, its DC terms 0, divided by its median (so float16
holds it with ~1e-3 relative precision), stored as float16, shape (3, 256, 129).

Why these photos and not CIFAR-10 upsampled: a 32 px CIFAR image upsampled to 256 px has no
content above 16 cycles per image, so its spectrum would tell MACO to make blurry images; the
shared photos are 340-1024 px, so 256 px crops of them hold every frequency of a 256 px image.
Thirty photos give a smooth estimate because the spectrum of natural images is close to
``1 / f`` in every photo (Field 1987; van der Schaaf and van Hateren 1996); Horama and Xplique
ship an ImageNet estimate, computed the same way, which jfv cannot download.

Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude-Constrained
Optimization" (NeurIPS), section 3.

Example:
    >>> m = resize_magnitude(shipped(), 128)
    >>> m.shape
    (3, 128, 65)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from jfv.optvis.parameterisations.images import COLOR_CORRELATION_SVD_SQRT, MAX_NORM_SVD_SQRT

SIZE = 256  # side of the shipped estimate; float16 (3, 256, 129) is 198 KB before compression
SHIPPED = Path(__file__).resolve().parents[2] / "data" / "maco_magnitude.npz"  # jfv/data
# The natural photos in ../shared/data/images; CIFAR-10's 32 px PNGs there are left out (see above).
PHOTO_PATTERNS = ("foolbox/imagenet_*.jpg", "openimages/*.jpg", "openimages/*.bmp")


def magnitude_shape(size: int) -> tuple[int, int, int]:
    """The shape of a magnitude spectrum for ``size`` x ``size`` images: (3, size, size // 2 + 1)."""
    return (3, size, size // 2 + 1)


def to_decorrelated(rgb: np.ndarray) -> np.ndarray:
    """RGB (..., 3) -> decorrelated colour coordinates: the inverse of ``decorrelate_colour``."""
    c = (COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT).astype(np.float64)
    return np.asarray(rgb, np.float64) @ np.linalg.inv(c.T)


def photo_paths(images_dir: str | Path) -> list[Path]:
    """The natural photos of ``../shared/data/images`` (``PHOTO_PATTERNS``), sorted by path."""
    root = Path(images_dir)
    return sorted(p for pattern in PHOTO_PATTERNS for p in root.glob(pattern))


def estimate(paths: Sequence[str | Path], size: int = SIZE) -> np.ndarray:
    """Mean magnitude spectrum of image files in the decorrelated colour basis.

    ``M[c] = median-normalised mean_i |rfft2(u_i[..., c] - mean(u_i[..., c]))|``, with ``u_i`` photo
    ``i`` (``size`` px, centre crop) in decorrelated colour; ``M[:, 0, 0] = 0``.

    Args:
        paths: image files (PNG, JPEG, BMP).
        size: the side the photos are resized and cropped to.

    Returns:
        (3, size, size // 2 + 1) float32.
    """
    from jfv.runtime.outputs import load_image  # the file reader; kept out of the import of this module

    if not paths:
        raise ValueError("no photos to estimate the magnitude spectrum from: give a folder with JPEG/BMP photos")
    total = np.zeros(magnitude_shape(size), np.float64)
    for path in paths:
        u = to_decorrelated(load_image(path, size))  # (size, size, 3)
        u = u - u.mean(axis=(0, 1))
        total += np.abs(np.fft.rfft2(np.moveaxis(u, -1, 0)))
    m = total / len(paths)
    m[:, 0, 0] = 0.0
    m = m / np.median(m[m > 0])
    return m.astype(np.float32)


def shipped() -> np.ndarray:
    """The shipped estimate, (3, 256, 129) float32 (stored as float16)."""
    with np.load(SHIPPED) as f:
        return f["magnitude"].astype(np.float32)


def check_magnitude(m: np.ndarray, size: int | None = None) -> np.ndarray:
    """Refuses a magnitude that is not (3, S, S // 2 + 1) (with S = ``size`` if given), naming the shape."""
    m = np.asarray(m)
    s = size if size is not None else (m.shape[1] if m.ndim == 3 else None)
    want = magnitude_shape(s) if s is not None else None
    if m.ndim != 3 or m.shape != want:
        expected = f"{want}" if size is not None else "(3, S, S // 2 + 1) for S x S images, e.g. (3, 256, 129)"
        fix = (f"; resize it with jfv.optvis.parameterisations.spectrum.resize_magnitude(m, {size})" if size is not None and m.ndim == 3
               and m.shape[0] == 3 and m.shape[2] == m.shape[1] // 2 + 1 else "")
        raise ValueError(f"magnitude spectrum has shape {tuple(m.shape)}, expected {expected}{fix}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("magnitude spectrum must be finite and >= 0")
    return m


def _interp_axis(m: np.ndarray, src: np.ndarray, dst: np.ndarray, axis: int) -> np.ndarray:
    order = np.argsort(src)
    moved = np.moveaxis(m, axis, -1)[..., order]
    flat = moved.reshape(-1, moved.shape[-1])
    out = np.stack([np.interp(dst, src[order], row) for row in flat])
    return np.moveaxis(out.reshape(moved.shape[:-1] + (len(dst),)), -1, axis)


def resize_magnitude(m: np.ndarray, size: int) -> np.ndarray:
    """A (3, S, S // 2 + 1) magnitude resampled to (3, size, size // 2 + 1), frequency by frequency.

    Each output coefficient takes the value at its own frequency in cycles per pixel
    (``fftfreq(size)`` rows, ``rfftfreq(size)`` columns), linearly interpolated on the source's
    frequency grid (clamped beyond its range): the magnitude at "f cycles per pixel" is what MACO
    keeps, whatever the size, and the overall scale does not matter (``to_image`` standardises).
    Horama and Xplique instead resize the array as an image (bilinear), which differs from this by
    less than a pixel of frequency.

    Args:
        m: (3, S, S // 2 + 1) magnitude, e.g. ``shipped()``.
        size: the target image side.

    Returns:
        (3, size, size // 2 + 1) float32.
    """
    m = check_magnitude(np.asarray(m, np.float64))
    s = m.shape[1]
    if s == size:
        return m.astype(np.float32)
    m = _interp_axis(m, np.fft.fftfreq(s), np.fft.fftfreq(size), axis=1)
    m = _interp_axis(m, np.fft.rfftfreq(s), np.fft.rfftfreq(size), axis=2)
    return m.astype(np.float32)


def save(m: np.ndarray, path: str | Path, sources: Sequence[str]) -> None:
    """Writes ``m`` as float16 with the names of the photos it came from (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, magnitude=np.asarray(m, np.float16), sources=np.asarray(list(sources)))
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jfv.optvis.parameterisations.spectrum", description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="../shared/data/images", help="folder holding foolbox/ and openimages/")
    parser.add_argument("--out", default=str(SHIPPED), help="the .npz to write")
    parser.add_argument("--size", type=int, default=SIZE)
    args = parser.parse_args(argv)
    paths = photo_paths(args.images)
    if not paths:
        print(f"jfv.optvis.parameterisations.spectrum: error: no photos matching {', '.join(PHOTO_PATTERNS)} under {args.images}: "
              f"pass --images=DIR (the shared data/images folder)", file=sys.stderr)
        return 2
    m = estimate(paths, args.size)
    save(m, args.out, [str(p.relative_to(args.images)) for p in paths])
    print(f"wrote {args.out}: magnitude {m.shape} from {len(paths)} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
