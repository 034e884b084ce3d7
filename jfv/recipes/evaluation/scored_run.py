"""The run the ``score`` recipe scores: its ``manifest.json``, one entry per visualised channel and
the visualisations themselves, each refused (``RunDirError``, naming the fix) where it cannot be scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jfv.runtime.outputs import ImageReadError, load_image
from jfv.recipes.common import ConfigError

RECIPES_SCORED = ("channels", "layer")  # recipes whose manifest lists a layer, channels and PNGs


class RunDirError(ValueError):
    """A run DIR that cannot be scored: no manifest, another recipe's, or missing images."""


def read_run(run_dir: str) -> dict:
    """The scored run's manifest, refused (naming the fix) unless it lists a layer's channels and PNGs."""
    if not run_dir:
        raise ConfigError("run_dir is empty: pass --config.run_dir=DIR, the workdir of a finished channels or "
                          "layer run (python -m jfv --config=configs/vgg16_channels.py --workdir=DIR)")
    path = Path(run_dir).expanduser()
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise RunDirError(f"{path} has no manifest.json: pass --config.run_dir=DIR of a finished channels or layer "
                          f"run (run it to the end first, e.g. python -m jfv --config=configs/tiny.py --workdir=DIR)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise RunDirError(f"{manifest_path} cannot be read ({e}): re-run the AM run into a fresh DIR") from None
    if not isinstance(manifest, dict) or manifest.get("recipe") not in RECIPES_SCORED or \
            not isinstance(manifest.get("channels"), list) or not manifest["channels"]:
        raise RunDirError(f"{manifest_path} is not a finished channels or layer run's manifest (recipe "
                          f"{manifest.get('recipe') if isinstance(manifest, dict) else None!r}): pass the DIR of "
                          f"a {' or '.join(RECIPES_SCORED)} run")
    return manifest


def run_entries(manifest: dict, run_dir: str) -> list[dict]:
    """One entry per visualised channel: ``{"layer", "channel", "images": [paths]}``; missing PNGs refused."""
    root = Path(run_dir).expanduser()
    entries, missing = [], []
    for e in manifest["channels"]:
        layer = e.get("layer", manifest.get("layer"))
        rels = e.get("images") or [e.get("image")]
        paths = [root / r for r in rels if r]
        missing += [str(p) for p in paths if not p.is_file()] + ([f"channel {e.get('channel')}"] if not paths else [])
        entries.append({"layer": layer, "channel": int(e["channel"]), "images": paths})
    if missing:
        raise RunDirError(f"{root} lacks {len(missing)} image(s) its manifest lists (e.g. {missing[0]}): re-run the "
                          f"AM run into DIR, or pass the DIR it wrote")
    layers = sorted({e["layer"] for e in entries})
    if len(layers) != 1:
        raise RunDirError(f"{root} holds channels of several layers ({', '.join(layers)}): score one layer per run "
                          f"(re-run the channels or layer config with one layer)")
    return entries


def image_side(path: Path) -> int:
    """The shorter side of the image at ``path`` (the visualisations' size)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return min(im.size)
    except OSError as e:
        raise RunDirError(f"{path} is not an image jfv can read ({e}): re-run the AM run into DIR") from None


def load_references(entries: list[dict], size: int) -> np.ndarray:
    """The visualisations as (C, R, size, size, 3) float32 (R images per channel; ``load_image``)."""
    counts = {len(e["images"]) for e in entries}
    if len(counts) != 1:
        raise RunDirError(f"channels have different numbers of images ({sorted(counts)}): score a run that "
                          f"rendered images_per_channel images for every channel")
    try:
        return np.stack([np.stack([load_image(p, size) for p in e["images"]]) for e in entries])
    except ImageReadError as e:
        raise RunDirError(f"{e} (a visualisation of the scored run)") from None
