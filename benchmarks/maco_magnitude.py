"""MACO's magnitude against photos: power-spectrum slopes at 32 to 256 px.

    python -m benchmarks.maco_magnitude [--images=../shared/data/images] [--sizes=32,64,128,224,256] [--seeds=16]

The slope is the least-squares slope of log power against log frequency over the radially averaged
power spectrum: the mean of |F|^2 over each ring of integer radius k = 1 .. S/2 cycles per image
(``radial_power``), fitted against f = k / S cycles per pixel (``slope``). Natural photos are near
-2 (power ~ 1 / f^2) with a steeper fall near Nyquist from the resize and JPEG; a steeper slope is a
smoother image. For each size S it measures:

- ``photos``: the 30 shared photos (``spectrum.photo_paths``) resized to S (``outputs.load_image``),
  luminance (mean of RGB), each image's mean removed; and ``photo estimate``, their mean magnitude
  at S (``spectrum.estimate(paths, S)``, the magnitude a per-size estimate would ship);
- the magnitude MACO fixes, taken from the shipped 256 px estimate ``"pixel"`` (the same cycles per
  pixel: jfv's default before) and ``"photo"`` (``maco.photo_magnitude``: the same cycles per image,
  through the resize filter, with aliasing: the default now): the mean over colour planes of M^2;
- the MACO *image* (``to_image`` of ``--seeds`` random phases, luminance) with each magnitude, and
  with the per-size photo estimate: what the colour mapping and the sigmoid make of the magnitude.

Prints the machine and markdown tables to paste into ``benchmarks/maco_magnitude.md``. ~1 minute on
a 2-core CPU (reading and resizing the photos dominates).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import importlib

import jax
import numpy as np

from jfv.optvis.parameterisations import maco, spectrum
from jfv.runtime.outputs import load_image

maco_module = importlib.import_module("jfv.optvis.parameterisations.maco")  # the module (``maco`` is its function)


def radial_power(power: np.ndarray) -> np.ndarray:
    """Mean of a full-plane (S, S) power spectrum over the rings of integer radius 1 .. S // 2 (cycles per image)."""
    s = power.shape[-1]
    k = np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(s) * s, np.fft.fftfreq(s) * s, indexing="ij"))).astype(int)
    return np.asarray([power[k == r].mean() for r in range(1, s // 2 + 1)])


def slope(ring_power: np.ndarray) -> float:
    """Slope of log power against log frequency (f = k / S cycles per pixel, k = 1 .. S // 2)."""
    s = 2 * len(ring_power)
    f = np.arange(1, len(ring_power) + 1) / s
    return float(np.polyfit(np.log(f), np.log(ring_power), 1)[0])


def image_slope(images: np.ndarray) -> float:
    """Power slope of images (n, S, S, 3): luminance, each image's mean removed, power averaged over images."""
    g = np.asarray(images, np.float64).mean(axis=-1)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    return slope(radial_power((np.abs(np.fft.fft2(g)) ** 2).mean(axis=0)))


def magnitude_slope(m: np.ndarray) -> float:
    """Power slope of a (3, S, S // 2 + 1) magnitude: the mean over colour planes of M^2."""
    return slope(radial_power((maco_module._full_plane(np.asarray(m, np.float64)) ** 2).mean(axis=0)))


def maco_image_slope(magnitude: np.ndarray, seeds: int) -> float:
    """Power slope of MACO images with this magnitude and ``seeds`` random phases (``to_image``)."""
    param = maco(magnitude.shape[1], seeds, magnitude=magnitude)
    return image_slope(np.asarray(param.to_image(param.init(jax.random.key(0)))))


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU(s), numpy {np.__version__}, jax {jax.__version__} ({jax.default_backend()})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="../shared/data/images", help="the shared images folder (foolbox/, openimages/)")
    ap.add_argument("--sizes", default="32,64,128,224,256")
    ap.add_argument("--seeds", type=int, default=16, help="random phases per MACO image slope")
    args = ap.parse_args(argv)
    paths = spectrum.photo_paths(args.images)
    if not paths:
        print(f"benchmarks.maco_magnitude: error: no photos under {args.images}: pass --images=DIR "
              f"(the shared data/images folder)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    start = time.time()
    shipped = spectrum.shipped()
    rows = []
    for s in sizes:
        photos = np.stack([load_image(p, s) for p in paths])
        estimate = spectrum.estimate(paths, s)
        pixel = spectrum.resize_magnitude(shipped, s)
        photo = maco_module.photo_magnitude(shipped, s)
        rows.append({
            "size": s,
            "photos": image_slope(photos), "estimate": magnitude_slope(estimate),
            "pixel": magnitude_slope(pixel), "photo": magnitude_slope(photo),
            "img_pixel": maco_image_slope(pixel, args.seeds), "img_photo": maco_image_slope(photo, args.seeds),
            "img_estimate": maco_image_slope(estimate, args.seeds),
        })
    print(f"machine: {machine()}; {len(paths)} photos; {args.seeds} random phases per MACO image; "
          f"{time.time() - start:.0f} s\n")
    print("Magnitudes (power slope of the mean over colour planes of M^2):\n")
    print("| size | photo estimate at the size | shipped, same cycles per pixel (`pixel`, before) | "
          "shipped, `photo_magnitude` (`photo`, now) | pixel - estimate | photo - estimate |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['estimate']:.2f} | {r['pixel']:.2f} | {r['photo']:.2f} | "
              f"{r['pixel'] - r['estimate']:+.2f} | {r['photo'] - r['estimate']:+.2f} |")
    print("\nImages (power slope of the luminance):\n")
    print("| size | photos | MACO, `pixel` magnitude | MACO, `photo` magnitude | MACO, photo estimate at the size |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['photos']:.2f} | {r['img_pixel']:.2f} | {r['img_photo']:.2f} | {r['img_estimate']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
