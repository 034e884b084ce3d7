"""What the channels recipe shows: the gallery (a section per layer, lazy thumbnails, a channel
search box, reloading while the job runs), the sprite sheet of each complete layer and the manifest,
rewritten from the records on disk after every group.
"""

from __future__ import annotations

import html

import numpy as np

from jfv.runtime.jobs import Job
from jfv.runtime.outputs import CHANNEL_FILTER_INPUT, CHANNEL_FILTER_SCRIPT, GALLERY_CSS, header_table, sprite, write_run
from jfv.recipes.common import run_info
from jfv.recipes.optvis.channels_job import ChannelsJob


def sprite_name(layer: str, layers: list[str]) -> str:
    return "sprite.png" if len(layers) == 1 else f"sprite_{layer}.png"


def figure(e: dict, rel: str, k: int | None) -> str:
    """One gallery thumbnail: the image and its caption (layer, channel, objective); with MACO's
    transparency map, a second thumbnail of the image with it as alpha."""
    layer, c = html.escape(e["layer"]), e["channel"]
    tag = "" if k is None else f" #{k}"
    alpha = e["alphas"][k] if k is not None and e.get("alphas") else e.get("alpha") if k in (None, 0) else None
    card = (f'<figure id="{layer}-{c}{"" if k is None else f"-{k}"}" data-channel="{c}"><a href="{html.escape(rel)}">'
            f'<img loading="lazy" src="{html.escape(rel)}" alt="{layer} channel {c}{tag}"></a>'
            f'<figcaption>{layer} ch {c}{tag}<br>objective {e["objective"]:.3f}'
            + (f' · <a href="{html.escape(alpha)}">alpha</a>' if alpha else "") + '</figcaption></figure>')
    if alpha:
        card += (f'<figure data-channel="{c}"><a href="{html.escape(alpha)}"><img loading="lazy" '
                 f'src="{html.escape(alpha)}" alt="{layer} channel {c}{tag}, transparency"></a>'
                 f'<figcaption>{layer} ch {c}{tag}<br>transparency (alpha)</figcaption></figure>')
    return card


def gallery(model_name: str, layers: list[str], entries: list[dict], header: dict, complete: bool) -> str:
    """One section per layer, lazy-loaded thumbnails, a channel search box; refreshes while running."""
    by_layer: dict[str, list[dict]] = {layer: [] for layer in layers}
    for e in entries:
        by_layer.setdefault(e["layer"], []).append(e)
    sections = []
    for layer, items in by_layer.items():
        cards = "".join(figure(e, rel, k if "images" in e else None)
                        for e in sorted(items, key=lambda e: e["channel"])
                        for k, rel in enumerate(e.get("images", [e["image"]])))
        sections.append(f'<h2 id="{html.escape(layer)}">{html.escape(layer)} ({len(items)} channels)</h2>'
                        f'<div class="grid">{cards}</div>')
    nav = " · ".join(f'<a href="#{html.escape(layer)}">{html.escape(layer)}</a>' for layer in layers)
    refresh = "" if complete else '<meta http-equiv="refresh" content="60">'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>{html.escape(model_name)}: {html.escape(', '.join(layers))}</title>
<style>{GALLERY_CSS}</style></head>
<body><h1>{html.escape(model_name)} {html.escape(', '.join(layers))}: {'complete' if complete else 'in progress (reloads every minute)'}</h1>
{header_table(header)}
<p>{nav} &nbsp; {CHANNEL_FILTER_INPUT}</p>
{''.join(sections)}
{CHANNEL_FILTER_SCRIPT}
</body></html>
"""


def write_summary(job: Job, config, work: ChannelsJob, start: float, complete: bool) -> dict:
    """The manifest and gallery from every record on disk (what any process has finished)."""
    model, layers, channels = work.model, work.layers, work.channels
    order = {layer: {c: i for i, c in enumerate(chans)} for layer, chans in channels.items()}
    entries = [e for r in job.records() for e in r["entries"] if e["channel"] in order.get(e["layer"], ())]
    entries.sort(key=lambda e: (layers.index(e["layer"]), order[e["layer"]][e["channel"]]))
    sprites = {}
    if complete:
        from PIL import Image

        for layer in layers:
            imgs = [np.asarray(Image.open(job.path / rel).convert("RGB"), np.float32) / 255.0
                    for e in entries if e["layer"] == layer for rel in e.get("images", [e["image"]])]
            sprites[layer] = sprite_name(layer, layers)
            job.save_png(sprites[layer], sprite(imgs))
    first = layers[0]
    objective = work.objectives[first](np.int32(channels[first][0])).description  # "c" stands for the channel
    manifest = {
        "recipe": config.get("recipe", "channels"),
        "model": model.name,
        "model_source": model.source,
        **({"layer": layers[0]} if len(layers) == 1 else {}),
        "layers": {layer: {"channels": len(channels[layer]),
                           "finished": sum(e["layer"] == layer for e in entries)} for layer in layers},
        "complete": complete,
        "objective": objective,
        "settings": config.to_dict(),
        "transforms": repr(work.tf),
        "param": repr(work.param),
        **({"sprite": sprites[layers[0]]} if len(layers) == 1 and sprites else {}),
        "sprites": sprites,
        "gallery": "index.html",
        "channels": entries,
    }
    manifest.update(run_info(start))
    header = {"model": model.name, "layers": ", ".join(layers), "finished": f"{len(entries)} of "
              f"{sum(len(c) for c in channels.values())} channels", "objective": objective,
              "steps": config.steps, "image size": config.image_size, "param": repr(work.param),
              "transforms": repr(work.tf), "seed": config.seed, "wall time of this run (s)": manifest["wall_time_s"]}
    # the sprites (written above, the recipe's own files); the page is the channels gallery
    return write_run(job, manifest, model.name, page=gallery(model.name, layers, entries, header, complete))
