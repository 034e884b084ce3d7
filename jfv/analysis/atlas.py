"""The atlas: a static HTML site to browse a network layer by layer, channel by channel.

Per channel, side by side (as OpenAI Microscope and the DeepVis toolbox show a unit): its activation
maximisation image(s), its top-k dataset patches with their activations and images, their Zeiler &
Fergus deconvnet projections, and a histogram of its score over the whole dataset with the top-k
threshold marked. Pages:

- ``index.html``: the run (model, dataset, settings), a link per layer, the best-feature-map-per-block
  figure when the top-patches run drew one.
- ``<layer>/index.html``: a card per channel (AM image, best patch, top score), a search box.
- ``<layer>/<cccc>.html``: one channel; previous / next channel, the same channel in the previous /
  next layer, a search box that jumps to a channel number.

Every link and image is relative, so the site works from ``file://`` with no server. Each page
records, once loaded, how many of its images failed (``<body data-broken-images>``), which the tests
read back from headless Chromium.

Inputs are the outputs of the ``top_patches`` recipe (``layers/<layer>.json``, ``scores.npz``,
``manifest.json``) and, optionally, a ``layer`` or ``channels`` run's manifest for the AM images.
The functions here build page text from those records; ``jfv.recipes.analysis.atlas`` reads and writes files.

Example:
    >>> svg = histogram_svg(np.random.default_rng(0).normal(size=1000), bins=30, marks={"top 9": 2.5})
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from jfv.runtime.jobs import JOB_FILE, RECORDS

CSS = """
body { font-family: sans-serif; margin: 1.2em 1.5em; background: #fafafa; color: #222; }
a { color: #1a5fb4; text-decoration: none; } a:hover { text-decoration: underline; }
nav { display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; align-items: center; margin-bottom: 0.8em; font-size: 0.95em; }
nav .here { font-weight: bold; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { text-align: left; padding: 2px 8px; border-bottom: 1px solid #ddd; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
.card { width: 172px; background: #fff; border: 1px solid #ddd; padding: 4px; font-size: 0.8em; font-family: monospace; }
.card.hidden { display: none; }
.card img { width: 84px; height: 84px; image-rendering: pixelated; }
figure.am { margin: 0 0 0.5em; }
.am img { width: 224px; height: 224px; image-rendering: pixelated; border: 1px solid #ccc; }
.hits { display: flex; flex-wrap: wrap; gap: 10px; }
.hit { margin: 0; background: #fff; border: 1px solid #ddd; padding: 4px; font-size: 0.75em; font-family: monospace; }
.hit img { width: 96px; height: 96px; image-rendering: pixelated; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
h2 { font-size: 1.1em; margin: 1em 0 0.4em; }
.note { color: #666; font-size: 0.85em; }
"""

# Counts the page's images that failed to load once it has loaded (tests read it back).
IMAGE_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth === 0) broken++; }
  document.body.dataset.brokenImages = broken;
  document.body.dataset.images = imgs.length;
});
</script>"""


class AtlasError(ValueError):
    """An input run that is missing, of the wrong kind, or made with another model."""


# -- inputs ----------------------------------------------------------------------------------------------


# Reading JSON with a missing file and an unreadable one told apart has the shape of
# models.weights' manifest reader; each raises its own error class naming its own fix, so they stay apart.
def read_manifest(path: Path, kinds: Sequence[str], what: str, fix: str) -> dict:
    """A run's ``manifest.json`` whose recipe is one of ``kinds``; AtlasError naming ``fix`` otherwise.

    A resumable run of one of ``kinds`` that has not finished (its ``job.json`` but no manifest yet:
    stopped, killed or still running) is told apart: the message says that the same command again,
    on the same workdir, resumes and finishes it.
    """
    file = Path(path).expanduser() / "manifest.json"
    try:
        manifest = json.loads(file.read_text())
    except FileNotFoundError:
        unfinished = unfinished_run(Path(path).expanduser(), kinds)
        if unfinished:
            raise AtlasError(f"{what} {path} is {unfinished}: run the same command again (the same config, "
                             f"on the workdir {path}) to resume and finish it, then run this again") from None
        raise AtlasError(f"{what} {path} has no manifest.json (not a finished jfv run): {fix}") from None
    except (OSError, ValueError) as e:
        raise AtlasError(f"{what} {file} is unreadable ({e}): {fix}") from None
    if manifest.get("recipe") not in kinds:
        raise AtlasError(f"{what} {path} holds a {manifest.get('recipe')!r} run, not {' or '.join(map(repr, kinds))}: {fix}")
    return manifest


def unfinished_run(path: Path, kinds: Sequence[str]) -> str:
    """``"an unfinished <recipe> run (...)"`` when ``path`` holds the ``job.json`` of a resumable run of
    one of ``kinds`` (and, by the caller, no manifest); "" otherwise."""
    try:
        job = json.loads((path / JOB_FILE).read_text())
    except (OSError, ValueError):
        return ""
    recipe = job.get("recipe") if isinstance(job, dict) else None
    if recipe not in kinds:
        return ""
    records = path / RECORDS
    done = len(list(records.glob("*.json"))) if records.is_dir() else 0
    return (f"an unfinished {recipe} run ({done} piece{'s' if done != 1 else ''} finished, no manifest.json yet: "
            f"stopped, killed or still running)")


def am_entries(manifest: Mapping[str, Any]) -> dict[tuple[str, int], dict]:
    """{(layer, channel): {"images": [relative paths], "objective": float}} from a ``layer`` run's
    manifest (entries carry their layer) or a ``channels`` run's (one layer for all)."""
    out = {}
    for e in manifest.get("channels", []):
        layer = e.get("layer", manifest.get("layer"))
        out[(layer, int(e["channel"]))] = {"images": list(e.get("images", [e["image"]])), "objective": e.get("objective")}
    return out


def check_same_model(patches_model: str, am_model: str, patches_dir: Any, am_dir: Any) -> None:
    if patches_model != am_model:
        raise AtlasError(f"the AM run {am_dir} was made with {am_model} but the top patches {patches_dir} with "
                         f"{patches_model}: point am_dir at a {patches_model} layer or channels run (or leave it empty)")


# -- pieces of pages ----------------------------------------------------------------------------------------


def histogram_svg(values: np.ndarray, bins: int = 30, marks: Mapping[str, float] | None = None,
                  width: int = 320, height: int = 120, label: str = "") -> str:
    """An inline SVG histogram of the finite ``values`` with vertical lines at ``marks`` ({text: x})."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return '<p class="note">no scores</p>'
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    left, bottom, top = 4, 18, 14
    plot_w, plot_h = width - 2 * left, height - bottom - top
    peak = max(int(counts.max()), 1)
    bw = plot_w / bins
    bars = "".join(
        f'<rect x="{left + i * bw:.1f}" y="{top + plot_h - plot_h * c / peak:.1f}" width="{max(bw - 1, 0.5):.1f}" '
        f'height="{plot_h * c / peak:.1f}" fill="#4a7ab5"><title>{edges[i]:.3g} to {edges[i + 1]:.3g}: {int(c)}</title></rect>'
        for i, c in enumerate(counts))
    lines = ""
    for text, x in (marks or {}).items():
        px = left + plot_w * (float(x) - lo) / (hi - lo)
        lines += (f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#c01c28" stroke-width="1.5"/>'
                  f'<text x="{min(px + 3, width - 60):.1f}" y="{top - 3}" font-size="10" fill="#c01c28">{html.escape(text)}</text>')
    axis = (f'<text x="{left}" y="{height - 4}" font-size="10">{lo:.3g}</text>'
            f'<text x="{width - left}" y="{height - 4}" font-size="10" text-anchor="end">{hi:.3g}</text>'
            f'<text x="{width / 2:.0f}" y="{height - 4}" font-size="10" text-anchor="middle">{html.escape(label)}</text>')
    return (f'<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="histogram of {html.escape(label)}">{bars}{lines}{axis}</svg>')


def channel_file(channel: int) -> str:
    return f"{channel:04d}.html"


def page(title: str, body: str) -> str:
    """A whole self-contained page (inline style and scripts) around ``body``."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{CSS}</style></head>
<body>
{body}
{IMAGE_CHECK}
</body></html>
"""


def search_box(channels: Sequence[int]) -> str:
    """A number box that opens that channel's page (only channels of this atlas)."""
    known = ",".join(str(int(c)) for c in channels)
    return f"""<form class="search" onsubmit="return jfvGo(this)"><label>channel <input name="c" type="number" min="0"
 placeholder="number"></label> <button>go</button> <span class="note"></span></form>
<script>
var jfvChannels = [{known}];
function jfvGo(form) {{
  var c = parseInt(form.c.value, 10);
  if (jfvChannels.indexOf(c) < 0) {{ form.querySelector('.note').textContent = 'no channel ' + form.c.value + ' in this atlas'; return false; }}
  var s = String(c); while (s.length < 4) s = '0' + s;
  window.location.href = s + '.html';
  return false;
}}
</script>"""


def _img(src: str, alt: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items())
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}"{extra}>'


def hit_figure(hit: Mapping[str, Any], prefix: str, classes: Sequence[str]) -> str:
    label = hit.get("label", -1)
    cls = classes[label] if 0 <= label < len(classes) else ""
    proj = (f'<a href="{html.escape(prefix + hit["projection"])}">{_img(prefix + hit["projection"], "deconvnet projection")}</a>'
            if "projection" in hit else "")
    name = hit["name"] if len(hit["name"]) <= 28 else "..." + hit["name"][-25:]
    return (f'<figure class="hit" title="{html.escape(hit["name"])}">'
            f'<a href="{html.escape(prefix + hit["patch"])}">{_img(prefix + hit["patch"], "patch of image " + str(hit["id"]))}</a>{proj}'
            f'<figcaption>#{hit["rank"] + 1} <b>{hit["value"]:.4g}</b><br>{html.escape(name)}'
            f'{" (" + html.escape(cls) + ")" if cls else ""}<br>at {hit["position"][0]},{hit["position"][1]}</figcaption></figure>')


def channel_body(model: str, layer: str, entry: Mapping[str, Any], reductions: Sequence[str], am: Mapping | None,
                 histograms: Mapping[str, str], nav: str, search: str, classes: Sequence[str],
                 projections_note: str) -> str:
    """The body of one channel's page (paths relative to the layer's folder)."""
    c = entry["channel"]
    if am:
        ams = "".join(f'<figure class="am">{_img("../" + p, f"activation maximisation of {layer} channel {c}")}'
                      f'<figcaption>objective {am["objective"]:.4g}</figcaption></figure>' if am.get("objective") is not None
                      else f'<figure class="am">{_img("../" + p, "activation maximisation")}</figure>' for p in am["images"])
    else:
        ams = '<p class="note">no activation maximisation image for this channel in the atlas\'s AM run</p>'
    sections = []
    for r in reductions:
        hits = entry.get(r, [])
        sheet = entry.get(f"sheet_{r}")
        sheet_link = f' · <a href="../{html.escape(sheet)}">Fig. 2 sheet</a>' if sheet else ""
        figures = "".join(hit_figure(h, "../", classes) for h in hits) or '<p class="note">no images</p>'
        sections.append(f'<h2>top {len(hits)} by {r} activation{sheet_link}</h2><div class="hits">{figures}</div>')
    hist = "".join(f'<div><h2>{r} over the dataset</h2>{svg}</div>' for r, svg in histograms.items())
    return (f"{nav}<h1>{html.escape(model)} {html.escape(layer)} channel {c}</h1>{search}"
            f'<div class="row"><div><h2>activation maximisation</h2>{ams}</div>{hist}</div>'
            f'{"".join(sections)}<p class="note">each hit: the patch the unit sees, then its projection '
            f'({html.escape(projections_note)}); the score, the image and the position on the map</p>')


def channel_nav(layer: str, channels: Sequence[int], i: int, layers: Sequence[str],
                layer_channels: Mapping[str, Sequence[int]]) -> str:
    c = channels[i]
    parts = ['<a href="../index.html">atlas</a>', f'<a href="index.html">{html.escape(layer)}</a>']
    parts.append(f'<a rel="prev" href="{channel_file(channels[i - 1])}">&larr; channel {channels[i - 1]}</a>' if i > 0
                 else '<span class="note">first channel</span>')
    parts.append(f'<span class="here">channel {c}</span>')
    parts.append(f'<a rel="next" href="{channel_file(channels[i + 1])}">channel {channels[i + 1]} &rarr;</a>'
                 if i + 1 < len(channels) else '<span class="note">last channel</span>')
    j = layers.index(layer)
    for other, arrow in ((layers[j - 1] if j > 0 else None, "&uarr;"), (layers[j + 1] if j + 1 < len(layers) else None, "&darr;")):
        if other is None:
            continue
        target = channel_file(c) if c in layer_channels[other] else "index.html"
        parts.append(f'<a href="../{html.escape(other)}/{target}">{arrow} {html.escape(other)}'
                     f'{" channel " + str(c) if c in layer_channels[other] else ""}</a>')
    return "<nav>" + " ".join(parts) + "</nav>"


def layer_body(model: str, layer: str, summary: Mapping[str, Any], reductions: Sequence[str], am: Mapping,
               layers: Sequence[str]) -> str:
    r = reductions[0]
    cards = []
    for e in summary["channels"]:
        c = e["channel"]
        a = am.get((layer, c))
        am_img = _img("../" + a["images"][0], f"AM {c}") if a else '<span class="note">no AM</span>'
        best = e.get(r, [])
        patch = _img("../" + best[0]["patch"], f"best patch {c}") if best else ""
        top = f"top {r} {best[0]['value']:.4g}" if best else "no images"
        cards.append(f'<div class="card" data-channel="{c}"><a href="{channel_file(c)}">{am_img}{patch}'
                     f'<br>channel {c}</a><br>{top}</div>')
    nav = " ".join(f'<span class="here">{html.escape(x)}</span>' if x == layer else f'<a href="../{html.escape(x)}/index.html">{html.escape(x)}</a>'
                   for x in layers)
    rf = summary.get("receptive_field")
    info = {"map": "x".join(str(v) for v in summary["map"]), "channels here / in the layer":
            f"{len(summary['channels'])} / {summary['channels_total']}",
            "receptive field": f"{rf['size']} px, stride {rf['stride']}" if rf else "varies (adaptive pool)",
            "patches": f"{summary['patch_px']} px, {'clipped to what the unit sees' if summary['clip'] else 'whole receptive field'}",
            "projections": summary["projections"]}
    table = "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in info.items()) + "</table>"
    return (f'<nav><a href="../index.html">atlas</a> {nav}</nav><h1>{html.escape(model)} {html.escape(layer)}</h1>{table}'
            f'{search_box([e["channel"] for e in summary["channels"]])}'
            f'<p class="note">each card: the activation maximisation image, the best dataset patch by {r}</p>'
            f'<div class="grid">{"".join(cards)}</div>')


def index_body(model: str, layers: Sequence[str], summaries: Mapping[str, Mapping], header: Mapping[str, Any],
               blocks: str | None) -> str:
    rows = "".join(f'<tr><td><a href="{html.escape(x)}/index.html">{html.escape(x)}</a></td>'
                   f'<td>{len(summaries[x]["channels"])} of {summaries[x]["channels_total"]} channels</td>'
                   f'<td>map {"x".join(str(v) for v in summaries[x]["map"])}</td></tr>' for x in layers)
    head = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in header.items())
    figure = (f'<h2>best feature map at each block</h2><a href="{html.escape(blocks)}">'
              f'{_img(blocks, "best feature map per block", style="max-width: 100%")}</a>') if blocks else ""
    return (f"<h1>{html.escape(model)}: atlas</h1><table>{head}</table><h2>layers</h2><table>{rows}</table>{figure}")


__all__ = ["AtlasError", "am_entries", "channel_body", "channel_file", "channel_nav", "check_same_model",
           "histogram_svg", "index_body", "layer_body", "page", "read_manifest", "search_box"]
