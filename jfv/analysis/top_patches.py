"""One call from a model, a spec string and a folder of images to each channel's top patches:
``top_patches(model, "conv4_3:0:8", "photos/", k=9)``.

A thin caller of the top-patches pass, as the ``top_patches`` recipe runs it, held in memory rather
than in a resumable job: ``passes.run`` of ``topk.Step(keep_scores=True)`` streams the images once
and keeps, for every channel of the layer, the ``k`` images whose map peaks highest (``reduce="max"``;
``"mean"``: the mean over positions); then, for the channels the spec names, ``patches.gather`` the
hits, ``datasets.load`` their images, and crop each hit's receptive-field patch and (models with a
switches deconvnet: VGG16, AlexNet, wrapped plain stacks) its Zeiler & Fergus projection, laid out
as Fig. 2 sheets (``patches.sheet``: projections left, patches right).

The spec is ``jfv.visualise``'s (``visualise.parse_spec``): ``"conv4_3:48"``, ``"conv4_3:0:8"``,
``"conv4_3:48,62,73"`` or ``"conv4_3"`` (every channel).

The result (``TopPatches``) shows itself in Jupyter as a labelled grid of the channels' sheets and
``save(dir)`` writes the recipe's files: ``topk.npz``, ``scores.npz``, ``patches/<layer>/<cccc>/
<reduce>_<r>.png`` (and ``_proj.png``), ``sheets/<layer>_<cccc>_<reduce>.png``, ``layers/<layer>.json``,
``index.html`` and ``manifest.json`` (not the recipe's job files, nor its ``blocks.png`` figure). The
pieces both need (``hit_pictures``, ``layer_summary``, ``gallery``, the file names) are public here.

Example:
    >>> import jfv
    >>> t = jfv.top_patches("vgg16", "conv4_3:0:8", "../shared/data/images/openimages", k=4)
    >>> t                      # in a notebook: each channel's sheet, labelled
    >>> t.hits[0][0]["name"], t.hits[0][0]["value"]
    >>> t.save("/tmp/conv4_3_top")

Zeiler & Fergus 2014, Fig. 2; Girshick et al. 2014, Fig. 4.
"""

from __future__ import annotations

import dataclasses
import html
import io
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from jfv import models
from jfv.analysis import datasets, passes, patches, topk
from jfv.attribution import pictures
from jfv.runtime.outputs import labelled_grid
from jfv.runtime.results import OneCallResult, first_few
from jfv.models.base import Model
from jfv.optvis.visualise import parse_spec
from jfv.runtime.outputs import CHANNEL_FILTER_INPUT, CHANNEL_FILTER_SCRIPT, GALLERY_CSS, header_table

K = 9  # Zeiler & Fergus's Fig. 2 shows the top 9
SHEET_COLUMNS = 3  # ... as 3 x 3
BATCH_SIZE = 32  # images per compiled call (the recipe's)
PROJECT_BATCH = 16  # hits per compiled deconvnet call (the recipe's)
PATCH_MIN = 48  # the notebook picture upscales patches (nearest, an integer factor) to at least this side
PROJECTIONS = "deconvnet with switches (Zeiler & Fergus 2014)"  # the manifest's word for projections made


# -- the pictures and files of hits (the top_patches recipe's) ---------------------------------------------


def patch_size(model: Model, layer: str, image_size: int, patch_px: int = 0) -> int:
    """Display side of patches: ``patch_px``, else the receptive field's size capped at the image.

    Args:
        model: the model.
        layer: the hits' layer.
        image_size: the images' side.
        patch_px: a side to use instead (0: the receptive field's).

    Returns:
        The side in pixels.
    """
    if int(patch_px):
        return int(patch_px)
    rf = patches.check_layer(model, layer, int(image_size))
    return min(rf.size if rf is not None else int(image_size), int(image_size))


def padding_fill(model: Model) -> np.ndarray:
    """The [0, 1] pixel value the model's normalisation maps to 0, per channel: what its first conv's
    zero padding looks like, and so the fill of patches reaching past the image.

    A wrapped model's ``(mean - lo) / (hi - lo)``; ``patches.DEFAULT_FILL`` (the ImageNet mean every
    built-in RGB model subtracts) otherwise.

    Args:
        model: the model.

    Returns:
        (C,) shaped as ``datasets.displayable`` pictures.
    """
    module = model.module
    if isinstance(module, models.Wrapped):
        lo, hi = module.input_range
        mean = np.broadcast_to(np.asarray(module.mean, np.float64), (model.channels,))
        fill = np.clip((mean - lo) / (hi - lo), 0, 1)
    else:
        fill = np.broadcast_to(np.asarray(patches.DEFAULT_FILL if model.channels == 3 else 0.5), (model.channels,))
    return datasets.displayable(np.asarray(fill, np.float32))


def hit_pictures(model: Model, layer: str, stack: np.ndarray, hits: patches.Hits, image_size: int, *,
                 patch_px: int = 0, clip: bool = True, project: bool = False, project_batch: int = PROJECT_BATCH):
    """Each hit's patch and projection as pictures, with its box and the unit's activation.

    Args:
        model: the model.
        layer: the hits' layer.
        stack: (N, S, S, C) the model's input images, one per hit.
        hits: the hits (``patches.gather``).
        image_size: S.
        patch_px: the pictures' side (0: the receptive field's, at most S).
        clip: crop only the pixels the unit sees (True) or its whole receptive field.
        project: also the deconvnet projections (models with switches only).
        project_batch: hits per compiled deconvnet call.

    Returns:
        ``(patches (N, s, s, c), projections (N, s, s, c) or None, boxes (N, 4), unit activations (N,)
        or None)``; c is C for 1 or 3 channels, else 1 (their mean: ``datasets.displayable``).
    """
    size, px = int(image_size), patch_size(model, layer, image_size, patch_px)
    bx = patches.boxes(model, layer, hits.positions, size, clip=bool(clip))
    crops = patches.fit(patches.crop(datasets.displayable(stack), bx, fill=padding_fill(model)) if len(stack) else [], px)
    if not project or not len(stack):
        return crops, None, bx, None
    proj, unit = patches.project(model, stack, layer, hits.channels, hits.positions, int(project_batch))
    cropped = patches.fit(patches.crop(datasets.displayable(proj), bx, fill=0.0), px)
    return crops, cropped, bx, unit


def projector(model: Model, layers: Sequence[str]) -> str:
    """"" if deconvnet projections with switches exist for every layer, else why not (for the manifest).

    Args:
        model: the model.
        layers: the layers whose hits would be projected.

    Returns:
        "" or the reason, ending in "patches only".
    """
    from jfv.attribution.switches import layer_sequence

    try:
        names = {op.name for op in layer_sequence(model)}
    except NotImplementedError:  # switches.NoSwitchesError
        return (f"{model.name} is not a declared plain conv/ReLU/max-pool stack, so it has no deconvnet with "
                f"switches (VGG16, AlexNet and wrapped models declaring plain_stack have): patches only")
    missing = [layer for layer in layers if layer not in names]
    if missing:
        return f"layers {missing} are not in {model.name}'s deconvnet (its conv, ReLU and pool layers): patches only"
    return ""


def patch_file(layer: str, channel: int, reduce: str, rank: int, projection: bool = False) -> str:
    """``patches/<layer>/<cccc>/<reduce>_<rank>[_proj].png``: where a hit's picture goes.

    Args:
        layer: the layer.
        channel: the channel.
        reduce: the reduction that ranked it.
        rank: its rank, 0 the best.
        projection: the projection's file rather than the patch's.

    Returns:
        The path relative to the run's directory.
    """
    return f"patches/{layer}/{channel:04d}/{reduce}_{rank}{'_proj' if projection else ''}.png"


def sheet_file(layer: str, channel: int, reduce: str) -> str:
    """``sheets/<layer>_<cccc>_<reduce>.png``: where a channel's Fig. 2 sheet goes.

    Args:
        layer: the layer.
        channel: the channel.
        reduce: the reduction.

    Returns:
        The path relative to the run's directory.
    """
    return f"sheets/{layer}_{channel:04d}_{reduce}.png"


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` (readable by ``np.load``) with fixed member timestamps, so equal arrays give equal bytes.

    Args:
        arrays: name -> array.

    Returns:
        The file's bytes (``np.savez`` would stamp each member with the current time).
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buf.getvalue()


def layer_summary(model: Model, layer: str, channels: Sequence[int], records: Sequence[Mapping], image_size: int,
                  patch_px: int, clip: bool, projections: str) -> dict:
    """``layers/<layer>.json``: the layer's geometry and every channel's hits.

    Args:
        model: the model.
        layer: the layer.
        channels: the channels with patches, in order.
        records: ``{"layer", "channels": [{"channel", <reduce>: [hits], "sheet_<reduce>": file}]}`` per group.
        image_size: the images' side.
        patch_px: the patch pictures' side setting (0: the receptive field's).
        clip: whether patches were clipped to what the unit sees.
        projections: "" (projections made) or why not.

    Returns:
        The summary.
    """
    by_channel = {c["channel"]: c for r in records if r["layer"] == layer for c in r["channels"]}
    rf = patches.check_layer(model, layer, int(image_size))
    shape = model.output_shapes(int(image_size))[layer]
    return {"model": model.name, "layer": layer, "map": list(shape[1:3]), "channels_total": model.layers[layer],
            "receptive_field": rf._asdict() if rf is not None else None, "image_size": int(image_size),
            "patch_px": patch_size(model, layer, image_size, patch_px), "clip": bool(clip),
            "projections": projections or PROJECTIONS, "channels": [by_channel[c] for c in channels]}


def gallery(model_name: str, layers: Sequence[str], summaries: Mapping[str, dict], header: Mapping[str, Any],
            reduce: str) -> str:
    """The run's ``index.html``: each channel's sheet under its layer, with a channel search box.

    Args:
        model_name: the model's name, the title.
        layers: the layers, a section each.
        summaries: ``layer_summary`` per layer.
        header: settings shown above the sheets.
        reduce: whose sheets are shown.

    Returns:
        The page.
    """
    sections = []
    for layer in layers:
        cards = "".join(
            f'<figure data-channel="{c["channel"]}"><a href="{html.escape(c[f"sheet_{reduce}"])}">'
            f'<img loading="lazy" src="{html.escape(c[f"sheet_{reduce}"])}" alt="{html.escape(layer)} channel '
            f'{c["channel"]}"></a><figcaption>{html.escape(layer)} ch {c["channel"]}<br>top {reduce} '
            f'{c[reduce][0]["value"]:.3g}</figcaption></figure>'
            for c in summaries[layer]["channels"] if f"sheet_{reduce}" in c)
        sections.append(f'<h2 id="{html.escape(layer)}">{html.escape(layer)}</h2><div class="grid">{cards}</div>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(model_name)}: top patches</title>
<style>{GALLERY_CSS} img {{ width: 320px; height: auto; }} figure {{ width: 320px; }}</style></head>
<body><h1>{html.escape(model_name)}: top patches (projections left, patches right)</h1>
{header_table(header)}
<p>{CHANNEL_FILTER_INPUT}</p>
{''.join(sections)}
{CHANNEL_FILTER_SCRIPT}</body></html>
"""


def channel_hits(model: Model, source: datasets.Source, layer: str, channels: Sequence[int], states: Mapping[str, Any],
                 reductions: Sequence[str], image_size: int, *, patch_px: int = 0, clip: bool = True,
                 projected: Sequence[str] = (), project_batch: int = PROJECT_BATCH) -> tuple[dict, dict]:
    """The hits of ``channels`` under each reduction, as records and pictures (the recipe's piece).

    Args:
        model: the model.
        source: the pass's images (ids 0..n-1).
        layer: the layer.
        channels: the channels, in order.
        states: ``{reduce: TopK}`` of the layer after the pass.
        reductions: the reductions, in order.
        image_size: the images' side.
        patch_px: the pictures' side (0: the receptive field's).
        clip: crop only the pixels each unit sees.
        projected: the reductions whose hits get deconvnet projections.
        project_batch: hits per compiled deconvnet call.

    Returns:
        ``(records, pictures)``: records ``{channel: {"channel", <reduce>: [hit entries]}}`` (rank,
        id, name, label, value, position, box, the files, the unit's activation with projections);
        pictures ``{(channel, reduce): (patches, projections or None, sheet)}``.

    Raises:
        DatasetError: a top image can no longer be read.
    """
    hits = {r: patches.gather(states[r], channels) for r in reductions}
    wanted = sorted({int(i) for r in reductions for i in hits[r].ids})
    images = datasets.load(source, wanted, int(image_size), convert=model.from_rgb) if wanted else {}
    missing = [source.name(i) for i in wanted if i not in images]
    if missing:
        raise datasets.DatasetError(f"{len(missing)} top images can no longer be read (e.g. {missing[0]}): restore "
                                    f"them, or run again")
    records: dict[int, dict] = {int(c): {"channel": int(c)} for c in channels}
    drawn: dict[tuple[int, str], tuple] = {}
    for r in reductions:
        h = hits[r]
        stack = np.stack([images[int(i)] for i in h.ids]) if len(h.ids) else np.zeros((0,), np.float32)
        crops, projs, bx, unit = hit_pictures(model, layer, stack, h, image_size, patch_px=patch_px, clip=clip,
                                              project=r in projected, project_batch=project_batch)
        rows: dict[int, list] = {int(c): [] for c in channels}
        for n in range(len(h.ids)):
            c, rank, i = int(h.channels[n]), int(h.ranks[n]), int(h.ids[n])
            entry = {"rank": rank, "id": i, "name": source.name(i), "label": int(source.items[i].label),
                     "value": float(h.values[n]), "position": [int(v) for v in h.positions[n]],
                     "box": [int(v) for v in bx[n]], "patch": patch_file(layer, c, r, rank)}
            if projs is not None:
                entry["projection"] = patch_file(layer, c, r, rank, projection=True)
                entry["unit_activation"] = float(unit[n])
            rows[c].append(entry)
        for c in channels:
            c = int(c)
            idx = [n for n in range(len(h.ids)) if h.channels[n] == c]
            records[c][r] = rows[c]
            if idx:
                sheet = patches.sheet(crops[idx], projs[idx] if projs is not None else None, columns=SHEET_COLUMNS)
                records[c][f"sheet_{r}"] = sheet_file(layer, c, r)
                drawn[c, r] = (crops[idx], projs[idx] if projs is not None else None, sheet)
    return records, drawn


def write_hits(writer: Any, records: Mapping[int, dict], drawn: Mapping[tuple[int, str], tuple]) -> None:
    """Writes each hit's patch (and projection) PNG and each channel's sheet, named as its record says.

    Args:
        writer: a ``Staging`` or a ``Job``.
        records: ``channel_hits``' first result.
        drawn: ``channel_hits``' second result.
    """
    for (c, r), (crops, projs, sheet) in drawn.items():
        for n, entry in enumerate(records[c][r]):
            writer.save_png(entry["patch"], crops[n])
            if projs is not None:
                writer.save_png(entry["projection"], pictures.signed_image(projs[n]))
        writer.save_png(records[c][f"sheet_{r}"], sheet)


# -- the result ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class TopPatches(OneCallResult):
    """What ``top_patches`` found: each channel's top images, their patches and projections.

    Attributes:
        model: the model's name.
        layer: the layer.
        channels: the channels with patches, in the spec's order.
        reduce: how an image's map became its score: ``max`` or ``mean`` over positions.
        k: images kept per channel.
        image_size: the side images were resized and cropped to.
        dataset: the images' description.
        hits: per channel, its hits best first: ``{"rank", "id", "name", "label", "value", "position",
            "box", "patch"}`` (and ``"projection"``, ``"unit_activation"`` with projections).
        patches: per channel, (n, s, s, c) patch pictures, best first.
        projections: per channel, (n, s, s, c) cropped projections; None without.
        sheets: per channel, Zeiler & Fergus's Fig. 2 sheet (H, W, c) in [0, 1].
        state: the pass's ``topk.TopK`` of every channel of the layer (numpy).
        scores: (images, channels of the layer) every image's score (row = image id).
        images: images in the dataset.
        skipped: ``(name, reason)`` of each image that could not be read.
        projection_note: "" when projections were made, else why not.
        settings: the options, named as the top_patches recipe's config keys.
        summary: ``layers/<layer>.json`` (``layer_summary``).
        model_source, wall_time_s: as in ``OneCallResult`` (where the weights came from, seconds the call took).
    """

    model: str
    layer: str
    channels: tuple[int, ...]
    reduce: str
    k: int
    image_size: int
    dataset: str
    hits: tuple[tuple[dict, ...], ...]
    patches: tuple[np.ndarray, ...]
    projections: tuple[np.ndarray, ...] | None
    sheets: tuple[np.ndarray, ...]
    state: topk.TopK
    scores: np.ndarray
    images: int
    skipped: tuple[tuple[str, str], ...]
    projection_note: str
    # Every one-call result ends with these fields on purpose: as OneCallResult's they would come first in its constructor.
    settings: dict
    summary: dict
    model_source: str = ""
    wall_time_s: float = 0.0

    def label(self, i: int) -> str:
        """The caption of channel ``i``'s sheet: ``layer:channel``, and its top score.

        Args:
            i: the channel's position in ``channels``.

        Returns:
            The caption.
        """
        top = f" top {self.hits[i][0]['value']:.3g}" if self.hits[i] else ""
        return f"{self.layer}:{self.channels[i]}{top}"

    def __repr__(self) -> str:
        return (f"TopPatches({self.model} {self.layer}, {len(self.channels)} channel(s) [{first_few(self.channels, 8)}], "
                f"top {self.k} of {self.images - len(self.skipped)} images by {self.reduce}, {self.image_size} px)")

    def grid(self) -> np.ndarray:
        """The labelled grid a notebook shows: each channel's sheet (projections left, patches right)
        above its ``layer:channel`` label, row-major on about a square grid; patches are upscaled to at
        least ``PATCH_MIN`` px.

        Returns:
            (H, W, 3) in [0, 1].
        """
        h = max(s.shape[0] for s in self.sheets)
        w = max(s.shape[1] for s in self.sheets)
        tiles = [np.pad(s, ((0, h - s.shape[0]), (0, w - s.shape[1]), (0, 0)), constant_values=1.0) for s in self.sheets]
        side = max([p.shape[1] for p in self.patches if len(p)] or [PATCH_MIN])
        return labelled_grid(tiles, [self.label(i) for i in range(len(self.channels))], scale=-(-PATCH_MIN // side))

    def write(self, stage) -> None:
        """Writes the top_patches recipe's files into ``stage`` (``save(directory)`` writes them into a
        folder): ``topk.npz``, ``scores.npz``, ``patches/<layer>/<cccc>/<reduce>_<r>.png`` (and
        ``_proj.png``), ``sheets/<layer>_<cccc>_<reduce>.png``, ``layers/<layer>.json``, ``index.html``
        and ``manifest.json`` (last: the run is complete when it exists).
        """
        from jfv.models.weights import library_versions
        from jfv.runtime.outputs import write_run

        key = f"{self.layer}.{self.reduce}"
        records = {c: rec for c, rec in zip(self.channels, self.summary["channels"])}
        drawn = {(c, self.reduce): (self.patches[i], None if self.projections is None else self.projections[i],
                                    self.sheets[i]) for i, c in enumerate(self.channels) if self.hits[i]}
        skipped = [{"name": n, "reason": r} for n, r in self.skipped]
        read = self.images - len(self.skipped)
        stage.write_bytes("topk.npz", npz_bytes({f"{key}.{f}": np.asarray(v) for f, v in self.state._asdict().items()}))
        stage.write_bytes("scores.npz", npz_bytes({key: self.scores}))
        write_hits(stage, records, drawn)
        stage.write_json(f"layers/{self.layer}.json", self.summary)
        manifest = {
            "recipe": "top_patches",  # the top_patches recipe's files (the atlas reads them)
            "made_by": "jfv.top_patches",
            "model": self.model,
            "model_source": self.model_source,
            "dataset": self.dataset,
            "processes": 1,  # the recipe's key: the one-call runs in this process
            "images": self.images,
            "read": read,
            "skipped": len(self.skipped),
            "skipped_files": skipped[:50],
            "layers": {self.layer: {"channels": len(self.channels), "summary": f"layers/{self.layer}.json"}},
            "reductions": [self.reduce],
            "k": self.k,
            "projections": self.projection_note or PROJECTIONS,
            "topk": "topk.npz",
            "scores": "scores.npz",
            "best_feature_map_per_block": "not drawn by jfv.top_patches (the top_patches recipe draws blocks.png)",
            "settings": self.settings,
            "gallery": "index.html",
            **self.run_info(library_versions()),
        }
        header = {"model": self.model, "dataset": self.dataset, "images read / skipped": f"{read} / {len(self.skipped)}",
                  "layers": self.layer, "k": self.k, "image size": self.image_size,
                  "projections": manifest["projections"], "wall time of this run (s)": self.wall_time_s}
        write_run(stage, manifest, self.model,
                  page=gallery(self.model, [self.layer], {self.layer: self.summary}, header, self.reduce))


# -- the call ------------------------------------------------------------------------------------------------


def make_source(images: Any, limit: int = 0) -> datasets.Source:
    """A folder (flat, or of ``<class>/`` folders), a list of image paths, or a ``datasets.Source`` as a source.

    Args:
        images: the images.
        limit: keep only the first ``limit`` (0: all).

    Returns:
        A ``datasets.Source`` whose ids number its images 0..n-1.

    Raises:
        DatasetError: a folder that does not exist or holds no images, an empty list, a source whose
            ids are not 0..n-1; each names the fix.
    """
    if isinstance(images, datasets.Source):
        source = images
    elif isinstance(images, (str, os.PathLike)):
        path = Path(images).expanduser()
        source = datasets.path_list([path]) if path.is_file() else datasets.image_folder(path)
    elif isinstance(images, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in images):
        source = datasets.path_list(list(images))
    else:
        raise datasets.DatasetError(f"cannot read images from a {type(images).__name__}: pass a folder of images (or of "
                                    f"<class>/ folders), a list of image paths, or a jfv.analysis.datasets source")
    if limit:
        source = source.take(int(limit))
    if not np.array_equal(source.ids, np.arange(len(source))):
        raise datasets.DatasetError(f"{source.description}: ids must number the images 0..n-1 (a source from "
                                    f"jfv.analysis.datasets)")
    return source


def top_patches(
    model: Model | str,
    spec: str,
    images: Any,
    *,
    k: int = K,
    image_size: int | None = None,
    reduce: str = "max",
    batch_size: int = BATCH_SIZE,
    project: bool = True,
    clip: bool = True,
    patch_px: int = 0,
    project_batch: int = PROJECT_BATCH,
    limit: int = 0,
    progress: bool = True,
) -> TopPatches:
    """The ``k`` images that most activate each channel ``spec`` names, with their patches and projections.

    One pass over ``images`` ranks every channel of the layer (the recipe's ``passes.run`` of
    ``topk.Step``); the channels named get their hits' receptive-field patches and, on models with a
    switches deconvnet, Zeiler & Fergus projections. ``state`` equals the recipe's ``topk.npz`` and
    ``scores`` its ``scores.npz`` for the same images and settings.

    Args:
        model: a jfv Model (``jfv.models.load(...)``, ``jfv.models.wrap(module, params, ...)``) or a
            registered model's name.
        spec: ``"conv4_3:48"``, ``"conv4_3:0:8"`` (channels 0..7), ``"conv4_3:48,62,73"`` or
            ``"conv4_3"`` (every channel); a layer with a spatial map.
        images: a folder of images (flat, or of ``<class>/`` folders), a list of image paths, or a
            ``jfv.analysis.datasets`` source (e.g. ``datasets.cifar10("test", per_class=10)``).
        k: images kept per channel.
        image_size: the side images are resized (shorter side, bicubic) and centre-cropped to;
            default the model's ``image_size``.
        reduce: an image's score: ``"max"`` (its map's peak, Zeiler & Fergus) or ``"mean"`` over positions.
        batch_size: images per compiled call (at most the number of images).
        project: deconvnet projections of the hits, where the model has a switches deconvnet.
        clip: crop only the pixels each unit sees (True), or its whole receptive field.
        patch_px: the patch pictures' side (0: the receptive field's, at most ``image_size``).
        project_batch: hits per compiled deconvnet call.
        limit: only the first ``limit`` images (0: all).
        progress: a progress bar on stderr.

    Returns:
        A ``TopPatches``: shows itself in Jupyter, ``.hits``, ``.patches``, ``.sheets``, ``.save(dir)``.

    Raises:
        TypeError: ``model`` is neither a jfv Model nor a name (the message says how to wrap one).
        UnknownModelError, UnknownLayerError, ChannelOutOfRangeError, SpecError: each one line naming
            what exists.
        PatchError: a layer without spatial extent (the message names one that has).
        DatasetError: images that cannot be found or read (the message names the fix).
        ValueError: a bad option, naming it.
    """
    start = time.time()
    for name, value, low in (("k", k, 1), ("batch_size", batch_size, 1), ("project_batch", project_batch, 1),
                             ("patch_px", patch_px, 0), ("limit", limit, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name}={value!r}: give an integer >= {low}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
                                   or image_size < 1):
        raise ValueError(f"image_size={image_size!r}: give an integer >= 1, or None for the model's")
    if reduce not in topk.REDUCTIONS:
        raise ValueError(f"reduce={reduce!r}: give one of {', '.join(topk.REDUCTIONS)}")
    model = models.resolve(model, "top_patches", "'LAYER:A:B', 'path/to/photos'")
    layer, channels = parse_spec(model, spec)
    size = int(image_size or model.image_size)
    patches.check_layer(model, layer, size)  # PatchError: no spatial extent, or no positions at this size
    source = make_source(images, limit)
    note = projector(model, [layer]) if project else "projections off (project=False): patches only"
    bar = _Bar(f"{model.name} pass") if progress else None
    try:
        state = passes.run(model, source, topk.Step(keep_scores=True), topk.init_states(model, [layer], k, (reduce,)),
                           size=size, batch_size=min(int(batch_size), len(source)), progress=bar)
    finally:
        if bar is not None:
            bar.close()
    layer_state = topk.to_numpy(state.carry[layer][reduce])
    records, drawn = channel_hits(model, source, layer, channels, {reduce: layer_state}, (reduce,), size,
                                  patch_px=patch_px, clip=clip, projected=(reduce,) if not note else (),
                                  project_batch=project_batch)
    summary = layer_summary(model, layer, channels, [{"layer": layer, "channels": [records[c] for c in channels]}],
                            size, patch_px, clip, note)
    settings = {
        "recipe": "top_patches", "model": model.name, "spec": spec, "layers": layer, "channels": _channels_key(channels),
        "dataset": source.description, "limit": limit, "image_size": size, "k": k, "reductions": reduce,
        "batch_size": batch_size, "project": reduce if project else "", "project_batch": project_batch, "clip": clip,
        "patch_px": patch_px,
    }
    empty = np.zeros((0, 1, 1, 1), np.float32)
    picked = [drawn.get((c, reduce), (empty, None, np.ones((1, 1, 1), np.float32))) for c in channels]
    return TopPatches(
        model=model.name, layer=layer, channels=tuple(int(c) for c in channels), reduce=reduce, k=int(k), image_size=size,
        dataset=source.description, hits=tuple(tuple(records[c][reduce]) for c in channels),
        patches=tuple(p[0] for p in picked),
        projections=None if note else tuple(p[1] for p in picked),
        sheets=tuple(p[2] for p in picked), state=layer_state, scores=np.asarray(state.outputs[f"{layer}.{reduce}"]),
        images=len(source), skipped=tuple((str(n), str(r)) for n, r in state.skipped), projection_note=note,
        settings=settings, summary=summary, model_source=model.source, wall_time_s=round(time.time() - start, 3))


class _Bar:
    """The pass's progress bar (images) on stderr, fed by ``passes.run``'s ``progress(done, total)``."""

    def __init__(self, description: str):
        self.description, self.bar = description, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=self.description, unit="img", file=sys.stderr,
                            dynamic_ncols=True)
        else:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _channels_key(channels: Sequence[int]) -> str:
    """The channels as the recipe's ``channels`` key writes them: ``a:b`` for a run, else a list."""
    if len(channels) > 1 and list(channels) == list(range(channels[0], channels[-1] + 1)):
        return f"{channels[0]}:{channels[-1] + 1}"
    return ",".join(map(str, channels))


__all__ = ["TopPatches", "channel_hits", "gallery", "hit_pictures", "layer_summary", "make_source", "npz_bytes",
           "padding_fill", "patch_file", "patch_size", "projector", "sheet_file", "top_patches", "write_hits"]
