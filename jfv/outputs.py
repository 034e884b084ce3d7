"""Run outputs: PNGs, sprite sheets, the HTML gallery and manifest.json, written atomically.

One of the few modules that touch files. Everything a recipe writes goes first into a staging
directory inside the workdir and is moved into place only when the whole run has succeeded, so a
failed run leaves no half-written files behind.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image


class WorkdirError(OSError):
    """A workdir that cannot be created or written; the message names the path and the fix."""


def to_uint8(image: Any) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] -> uint8, rounding to nearest."""
    a = np.asarray(image, np.float32)
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def save_png(image: Any, path: str | os.PathLike) -> None:
    Image.fromarray(to_uint8(image)).save(path, format="PNG")


def sprite(images: Sequence[Any], columns: int | None = None, pad: int = 2, background: float = 1.0) -> np.ndarray:
    """Tiles (N, H, W, 3) images into one (rows*(H+pad)-pad, cols*(W+pad)-pad, 3) sheet, row-major."""
    images = [np.asarray(x, np.float32) for x in images]
    n = len(images)
    h, w = images[0].shape[:2]
    cols = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    sheet = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), background, np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        sheet[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
    return sheet


def gallery_html(title: str, entries: Iterable[Mapping[str, Any]], header: Mapping[str, Any] | None = None) -> str:
    """A self-contained HTML page of thumbnails; each entry has ``image`` (a relative path) and
    ``caption`` (lines of text)."""
    cards = []
    for e in entries:
        caption = "<br>".join(html.escape(str(line)) for line in e["caption"])
        src = html.escape(e["image"])
        cards.append(
            f'<figure><a href="{src}"><img src="{src}" alt="{html.escape(str(e["caption"][0]))}"></a>'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    meta = ""
    if header:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in header.items()
        )
        meta = f"<table>{rows}</table>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; background: #fafafa; }}
table {{ border-collapse: collapse; margin-bottom: 1em; font-size: 0.9em; }}
th, td {{ text-align: left; padding: 2px 8px; border-bottom: 1px solid #ddd; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; width: 160px; }}
img {{ width: 160px; height: 160px; image-rendering: pixelated; border: 1px solid #ccc; }}
figcaption {{ font-size: 0.8em; font-family: monospace; }}
</style></head>
<body><h1>{html.escape(title)}</h1>{meta}<div class="grid">{''.join(cards)}</div></body></html>
"""


def check_workdir(workdir: str | os.PathLike) -> Path:
    """Creates ``workdir`` if needed and proves it writable, before any expensive work."""
    path = Path(workdir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".jfv-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise WorkdirError(
            f"cannot write to workdir {path} ({e.strerror or e}); pass --workdir=DIR with a writable directory"
        ) from None
    return path


class Staging:
    """Write files under ``staging.path``; on success ``commit()`` moves them into the workdir.

    Use as a context manager: an exception removes the staging directory and nothing reaches the
    workdir. Existing files of the same names are replaced (each by an atomic rename).
    """

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = check_workdir(workdir)
        self.path = Path(tempfile.mkdtemp(prefix=".jfv-staging-", dir=self.workdir))

    def file(self, relative: str) -> Path:
        p = self.path / relative
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_json(self, relative: str, obj: Any) -> None:
        self.file(relative).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def write_text(self, relative: str, text: str) -> None:
        self.file(relative).write_text(text)

    def save_png(self, relative: str, image: Any) -> None:
        save_png(image, self.file(relative))

    def commit(self) -> None:
        for src in sorted(self.path.rglob("*")):
            if src.is_file():
                dst = self.workdir / src.relative_to(self.path)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        shutil.rmtree(self.path, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """An image file as (size, size, 3) float32 RGB in [0, 1]: shorter side resized to ``size``
    (bicubic), then centre-cropped."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, np.float32) / 255.0
