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
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError


class WorkdirError(OSError):
    """A workdir that cannot be created or written; the message names the path and the fix."""


def to_uint8(image: Any) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] -> uint8, rounding to nearest; (H, W, 1) grayscale -> (H, W)."""
    a = np.asarray(image, np.float32)
    if a.ndim == 3 and a.shape[-1] == 1:  # PIL writes (H, W) uint8 as an 8-bit grayscale PNG
        a = a[..., 0]
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def save_png(image: Any, path: str | os.PathLike) -> None:
    Image.fromarray(to_uint8(image)).save(path, format="PNG")


def sprite(images: Sequence[Any], columns: int | None = None, pad: int = 2, background: float = 1.0) -> np.ndarray:
    """Tiles (N, H, W, C) images into one (rows*(H+pad)-pad, cols*(W+pad)-pad, C) sheet, row-major."""
    images = [np.asarray(x, np.float32) for x in images]
    n = len(images)
    h, w = images[0].shape[:2]
    cols = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    channels = max(x.shape[-1] for x in images)  # grayscale tiles beside colour ones become grey
    sheet = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, channels), background, np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        sheet[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
    return sheet


TRANSPARENCY_PERCENTILE = 99.0  # the accumulated gradient at this percentile and above is fully opaque


# The labelled grid a notebook result shows (``jfv.visualise``, ``jfv.attribute``, ``jfv.top_patches``):
# tiles upscaled to at least LABEL_TILE_MIN px wide, a LABEL_HEIGHT px label strip under each.
LABEL_TILE_MIN = 64
LABEL_HEIGHT = 14
LABEL_PAD = 2


def labelled_grid(tiles: Sequence[Any], labels: Sequence[str], columns: int | None = None, scale: int = 1) -> np.ndarray:
    """Tiles with a label strip under each, row-major: the picture a notebook result shows.

    Every tile is upscaled by one integer factor (nearest), at least ``scale``, until at least
    ``LABEL_TILE_MIN`` px wide and wide enough for the longest label; grayscale tiles are shown grey.

    Args:
        tiles: (h, w, C) images in [0, 1], C 1 or 3, all the same size.
        labels: one per tile.
        columns: tiles per row (default: about the square root of the count).
        scale: the smallest upscaling factor.

    Returns:
        (H, W, 3) in [0, 1].
    """
    from PIL import ImageDraw

    h, w = np.shape(tiles[0])[:2]
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wide = max([LABEL_TILE_MIN] + [math.ceil(draw.textlength(s)) + 4 for s in labels])
    factor = max(1, int(scale), -(-wide // w))
    out = []
    for tile, text in zip(tiles, labels):
        img = np.asarray(tile, np.float32)
        img = img if img.shape[-1] == 3 else np.repeat(img.mean(-1, keepdims=True), 3, -1)
        img = np.repeat(np.repeat(img, factor, 0), factor, 1)
        strip = Image.new("RGB", (w * factor, LABEL_HEIGHT), "white")
        ImageDraw.Draw(strip).text((2, 1), text, fill="black")
        out.append(np.concatenate([img, np.asarray(strip, np.float32) / 255.0], axis=0))
    return sprite(out, columns=columns, pad=LABEL_PAD)


def output_names(paths: Sequence[str | None], unnamed: str = "image") -> list[str]:
    """A distinct name per image for its output files: the file's stem, with its folder's name in
    front where stems repeat (``a/cat.jpg``, ``b/cat.jpg`` -> ``a_cat``, ``b_cat``), and its position
    in front where that is still not enough.

    Args:
        paths: each image's path, or None for an image without one (an array), named ``unnamed``
            (``<unnamed>_<i>`` among several).
        unnamed: the name of an image without a path.

    Returns:
        One name per image, all distinct.
    """
    stems = [Path(p).stem if p else (unnamed if len(paths) == 1 else f"{unnamed}_{i}") for i, p in enumerate(paths)]
    names = [f"{Path(p).parent.name}_{s}" if p and stems.count(s) > 1 else s for p, s in zip(paths, stems)]
    return [f"{i:02d}_{n}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def transparency_overlay(image: Any, transparency: Any, percentile: float = TRANSPARENCY_PERCENTILE) -> np.ndarray:
    """An (H, W, 4) RGBA picture: ``image`` with its transparency map as alpha.

    ``alpha = min(1, mean_c T / percentile_p(mean_c T))``: ``T`` (H, W, 3) the accumulated
    ``|d objective / d image|`` of MACO (Fel et al. 2023), averaged over colour and scaled so that
    its ``percentile``-th percentile is opaque (Horama plots it clipped at a percentile the same way).
    An all-zero map gives an all-transparent picture.
    """
    img = np.asarray(image, np.float32)
    a = np.asarray(transparency, np.float32).mean(axis=-1)
    top = float(np.percentile(a, percentile))
    alpha = np.clip(a / top, 0.0, 1.0) if top > 0 else np.zeros_like(a)
    return np.concatenate([img, alpha[..., None]], axis=-1)


GALLERY_CSS = """
body { font-family: sans-serif; margin: 1.5em; background: #fafafa; }
table { border-collapse: collapse; margin-bottom: 1em; font-size: 0.9em; }
th, td { text-align: left; padding: 2px 8px; border-bottom: 1px solid #ddd; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; width: 160px; }
figure.hidden { display: none; }
img { width: 160px; height: 160px; image-rendering: pixelated; border: 1px solid #ccc; }
figcaption { font-size: 0.8em; font-family: monospace; }
"""


# A box that shows only the cards (``<figure data-channel=N>``) of the channel typed into it; the
# pages of the layer and top_patches recipes put the input above their cards and the script below.
CHANNEL_FILTER_INPUT = '<label>channel <input id="q" type="number" min="0" placeholder="all"></label>'
CHANNEL_FILTER_SCRIPT = """<script>
document.getElementById('q').addEventListener('input', function () {
  var v = this.value;
  document.querySelectorAll('figure').forEach(function (f) {
    f.classList.toggle('hidden', v !== '' && f.dataset.channel !== v);
  });
});
</script>"""


def header_table(header: Mapping[str, Any]) -> str:
    """A two-column HTML table of settings."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in header.items())
    return f"<table>{rows}</table>"


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
    meta = header_table(header) if header else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{GALLERY_CSS}</style></head>
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
    workdir. Files are moved in by atomic renames, ``manifest.json`` last: it is the commit point, so
    a workdir with a manifest holds every file it lists.
    """

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = check_workdir(workdir)
        self.path = Path(tempfile.mkdtemp(prefix=".jfv-staging-", dir=self.workdir))  # jobs.STAGING_PREFIX

    def file(self, relative: str) -> Path:
        p = self.path / relative
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_json(self, relative: str, obj: Any) -> None:
        self.file(relative).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def write_text(self, relative: str, text: str) -> None:
        self.file(relative).write_text(text)

    def write_bytes(self, relative: str, data: bytes) -> None:
        self.file(relative).write_bytes(data)

    def save_png(self, relative: str, image: Any) -> None:
        save_png(image, self.file(relative))

    def commit(self) -> None:
        files = [p for p in self.path.rglob("*") if p.is_file()]
        for src in sorted(files, key=lambda p: (p.name == "manifest.json", str(p))):
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


class Writer(Protocol):
    """Where a run's files go: ``Staging`` (one-shot recipes) or ``jfv.runtime.jobs.Job`` (resumable ones);
    both write each file atomically and make it visible in the workdir at their commit point."""

    def save_png(self, relative: str, image: Any) -> None: ...
    def write_text(self, relative: str, text: str) -> None: ...
    def write_json(self, relative: str, obj: Any) -> None: ...


GALLERY = "index.html"  # every run's page
MANIFEST = "manifest.json"  # every run's record, written last: its presence means the run finished
GRID = "grid.png"  # the usual name of a run's sprite sheet


def write_run(
    writer: Writer,
    manifest: dict[str, Any],
    title: str,
    cards: Iterable[Mapping[str, Any]] = (),
    header: Mapping[str, Any] | None = None,
    *,
    grid: Sequence[Any] | None = None,
    grid_columns: int | None = None,
    grid_name: str = GRID,
    grid_pad: int = 2,
    page: str | None = None,
) -> dict[str, Any]:
    """The end of every recipe: its sprite sheet, its gallery page and its manifest, in one place.

    Every recipe's outputs go through this function so that every run directory looks and behaves
    alike: ``index.html`` (a gallery of ``cards`` under a table of ``header`` settings, or a page the
    recipe renders itself), an optional sprite sheet (``grid.png``), and ``manifest.json`` written
    last, the commit point (``Staging`` moves it in after every other file), naming the page under
    ``"gallery"``. The recipe's own files (PNGs of each result, CSV, Markdown tables) are written to
    the same ``writer`` before this call.

    Args:
        writer: a ``Staging`` (inside its ``with`` block) or a ``jfv.runtime.jobs.Job``.
        manifest: the run's record: ``recipe``, ``settings``, results, ``run_info(start)``. Its
            ``"gallery"`` entry is set to ``index.html`` when absent (existing keys keep their order).
        title: the page's title and heading.
        cards: the gallery's entries, each ``{"image": relative path, "caption": [lines]}``.
        header: settings shown above the gallery, ``{label: value}``.
        grid: tiles (H, W, C) in [0, 1] for the sprite sheet, row-major; None writes no sheet.
        grid_columns: tiles per row of the sheet (default: about the square root of the count).
        grid_name: the sheet's file name.
        grid_pad: white pixels between tiles of the sheet.
        page: a complete HTML page to write instead of the gallery (recipes whose page shows
            figures and tables rather than cards); ``title``, ``cards`` and ``header`` are then unused.

    Returns:
        ``manifest`` (the same dict, with ``"gallery"``).

    Example:
        >>> with Staging(workdir) as stage:
        ...     stage.save_png("images/c0003.png", image)
        ...     manifest = {"recipe": "filters", "settings": config.to_dict(), **run_info(start)}
        ...     write_run(stage, manifest, "alexnet first-layer filters",
        ...               [{"image": "images/c0003.png", "caption": ["channel 3"]}], {"layer": "conv1"})
    """
    if grid is not None and len(grid):
        writer.save_png(grid_name, sprite(list(grid), columns=grid_columns, pad=grid_pad))
    manifest.setdefault("gallery", GALLERY)
    writer.write_text(GALLERY, page if page is not None else gallery_html(title, cards, header))
    writer.write_json(MANIFEST, manifest)
    return manifest


class ImageReadError(ValueError):
    """An input image that cannot be read: not an image, truncated, or too large; names the file."""


# Pillow refuses images over twice its MAX_IMAGE_PIXELS (~179 megapixels) as decompression bombs and
# only warns between; jfv refuses at the warning level, before decoding anything.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
SIXTEEN_BIT_MAX = 65535.0  # full scale of 16-bit greyscale PNGs (Pillow modes I;16 and I)


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """An image file as (size, size, 3) float32 RGB in [0, 1]: shorter side resized to ``size``
    (bicubic), then centre-cropped. 16-bit greyscale is scaled by 1/65535 (not clipped at 255).

    Raises:
        ImageReadError: naming the file, when it is not an image, is truncated or corrupt, or has
            more than ``MAX_IMAGE_PIXELS`` pixels.
    """
    try:
        with warnings.catch_warnings():  # the size check below reports large images as one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageReadError(
                    f"{path} is {w}x{h} pixels, more than jfv reads ({MAX_IMAGE_PIXELS / 1e6:.0f} megapixels): "
                    f"shrink it first"
                )
            im.load()
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale
                grey = Image.fromarray(np.asarray(im, np.float32) / SIXTEEN_BIT_MAX, mode="F")
                return np.repeat(np.clip(_resize_crop(grey, size), 0.0, 1.0)[..., None], 3, axis=-1)
            return _resize_crop(im.convert("RGB"), size) / 255.0
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path} is too large to read ({e}): shrink it first") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path} is not an image jfv can read: pass PNG, JPEG or BMP files") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated data, broken chunks
        if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ImageReadError(f"{path} is truncated or corrupt ({e}): replace the file") from None


def _resize_crop(im: Image.Image, size: int) -> np.ndarray:
    w, h = im.size
    scale = size / min(w, h)
    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), np.float32)
