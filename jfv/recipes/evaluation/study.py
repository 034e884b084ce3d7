"""Recipe ``study``: the seed's LPIPS evaluation of regularisers, in one command, and more.

For each experiment (the seed's: no regularisation, L2, TV, standard transformation, jitter, scale,
rotate, octaves; and combinations: TV + octaves, TV + standard transforms, Lucid's full recipe) it
renders every (value, channel) cell for ``seeds`` seeds, scores every image against a per-channel
reference (``reference = lucid | natural``, see ``jfv.optvis.references``) and writes:

- ``results.csv``: one row per (experiment, value, channel, seed) with every metric: ``lpips`` (to
  the reference), ``activation`` (the channel's mean on the final image at the study size),
  ``objective`` (the render's final objective, penalty included), ``hf_energy``, ``tv``, and the
  cell's ``diversity`` (mean pairwise LPIPS across seeds);
- ``table.md``: the seed's table (lowest mean LPIPS over each experiment's values, per channel, with
  the spread across seeds and the best value) and the average improvement over no regularisation;
- ``refined_ranges.md``: the values whose mean LPIPS is within ``tolerance`` (relative) of the best,
  per channel and over all channels;
- ``plots/<experiment>.png`` (LPIPS against the parameter), ``contact_sheet.png`` (reference row,
  then the best image of each experiment per channel), ``images/`` + ``index.html`` (every image),
  ``manifest.json`` (settings, timings of the render / reference / scoring / writing phases).

Values follow the seed: penalties are ``channel + v * R`` with v = lambda <= 0 (docs/regularisers.md).
Traced-shape experiments are one engine each (one compilation for all values and seeds); jitter
and octaves compile once per shape.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jfv.analysis import datasets, passes
from jfv.optvis import families, objectives, parameterisations, references, transforms
from jfv import imageops, evaluation
from jfv.runtime.outputs import Staging, check_workdir, write_run
from jfv.recipes.common import config_model, ConfigError, Progress, check_int, parse_channels, run_info
from jfv.recipes import Recipe


@dataclass(frozen=True)
class Experiment:
    """One row of the seed's table: its regulariser family (``jfv.optvis.families``, built from the config),
    the parameterisation (``pixel`` or Lucid's Fourier ``image``) and base transforms (None or
    ``standard``) its cells start from. ``values_key`` names the ``grid`` key holding its values
    (None: the single value ``fixed`` gives, default 0)."""

    name: str
    label: str
    parameter: str
    values_key: str | None
    family: Callable[[Any], families.Family]
    param: str = "pixel"
    transforms: str | None = None
    fixed: Callable[[Any], float] = lambda config: 0.0


def _l2(config) -> families.Family:
    return families.L2(0.5, "norm")  # Lucid's L2 norm: lambda_L2 is the seed's


def _tv(config) -> families.Family:
    return families.TotalVariation(1.0, "sum")  # summed TV: lambda_tv is the seed's


def _octaves(config, scale=None, inner=families.NoRegulariser()) -> families.Family:
    # Each stage gets steps // octaves steps: the same total as the other experiments.
    return families.Octaves(config.octaves, max(1, config.steps // config.octaves), scale, inner)


EXPERIMENTS = {e.name: e for e in (
    Experiment("none", "No regularisation", "-", None, lambda c: families.NoRegulariser()),
    Experiment("l2", "L2", "lambda_L2 (Lucid's L2 norm)", "l2", _l2),
    Experiment("tv", "Total variation", "lambda_tv (summed TV)", "tv", _tv),
    Experiment("standard", "Standard transformation", "-", None, lambda c: families.NoRegulariser(),
               transforms="standard"),
    Experiment("jitter", "Transformation: Jitter", "pixels", "jitter", lambda c: families.Jitter()),
    Experiment("scale", "Transformation: Scale", "v (zoom in [1/v, v])", "scale", lambda c: families.Scale()),
    Experiment("rotate", "Transformation: Rotate", "v degrees (in [-v, v])", "rotate", lambda c: families.Rotate()),
    Experiment("octaves", "Octaves scale-up", "factor per octave", "octaves", _octaves),
    Experiment("tv_octaves", "TV + octaves", "lambda_tv (octave factor combo_octave_scale)", None,
               lambda c: _octaves(c, c.combo_octave_scale, _tv(c)), fixed=lambda c: float(c.combo_tv)),
    Experiment("tv_standard", "TV + standard transformation", "lambda_tv combo_tv", None, _tv,
               transforms="standard", fixed=lambda c: float(c.combo_tv)),
    Experiment("lucid", "Lucid's full recipe (Fourier + decorrelated + standard)", "-", None,
               lambda c: families.NoRegulariser(), param="lucid", transforms="standard"),
    Experiment("maco", "MACO (phase-only Fourier, maco_crops crops + noise)", "-", None,
               lambda c: families.Maco(c.maco_crops)),
)}
REFERENCES = ("lucid", "natural")


# ---------------------------------------------------------------------------------------------
# Pure table logic.


def refined_range(values: Sequence[float], scores: Sequence[float], tolerance: float) -> tuple[float, float]:
    """The min..max of the values whose score is within ``tolerance`` (relative) of the best.

    ``good = {v_i : s_i <= min(s) * (1 + tolerance)}`` (lower scores are better, LPIPS >= 0);
    returns ``(min(good), max(good))``. Values between two good ones count even when worse: a
    *range*, as the seed reports.
    """
    s = np.asarray(scores, np.float64)
    v = np.asarray(values, np.float64)
    good = v[s <= s.min() * (1.0 + tolerance)]
    return float(good.min()), float(good.max())


def best_per_cell(rows: Sequence[dict]) -> dict:
    """{(experiment, channel): (mean lpips, std lpips, value)} at the value of lowest mean LPIPS."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["experiment"], r["channel"], r["value"]), []).append(r["lpips"])
    out: dict = {}
    for (e, c, v), xs in cells.items():
        m, sd = float(np.mean(xs)), float(np.std(xs))
        if (e, c) not in out or m < out[(e, c)][0]:
            out[(e, c)] = (m, sd, v)
    return out


def improvement(best: dict, experiment: str, channels: Sequence[int], baseline: str = "none") -> float | None:
    """Mean over channels of ``(L_baseline - L_experiment) / L_baseline`` (the seed's %), or None."""
    if any((baseline, c) not in best for c in channels):
        return None
    return float(np.mean([(best[(baseline, c)][0] - best[(experiment, c)][0]) / best[(baseline, c)][0]
                          for c in channels]))


def table_markdown(rows, experiments, channels, seeds: int) -> str:
    best = best_per_cell(rows)
    head = "| Experiment | " + " | ".join(f"Channel {c}" for c in channels) + " | improvement |\n"
    head += "|---" * (len(channels) + 2) + "|\n"
    lines = []
    for e in experiments:
        cells = []
        for c in channels:
            m, sd, v = best[(e, c)]
            spread = f" ± {sd:.3f}" if seeds > 1 else ""
            at = "" if EXPERIMENTS[e].values_key is None else f" @ {v:g}"
            cells.append(f"{m:.3f}{spread}{at}")
        imp = improvement(best, e, channels) if e != "none" else None
        lines.append(f"| {EXPERIMENTS[e].label} | " + " | ".join(cells) + f" | {'' if imp is None else f'{100 * imp:.1f}%'} |")
    return head + "\n".join(lines) + "\n"


def refined_markdown(rows, experiments, channels, tolerance: float) -> str:
    means: dict = {}
    for r in rows:
        means.setdefault((r["experiment"], r["channel"]), {}).setdefault(r["value"], []).append(r["lpips"])
    head = ("| Experiment | parameter | tested | " + " | ".join(f"channel {c}" for c in channels)
            + " | all channels |\n" + "|---" * (len(channels) + 4) + "|\n")
    lines = []
    for e in experiments:
        if EXPERIMENTS[e].values_key is None:
            continue
        ranges = []
        for c in channels:
            d = means[(e, c)]
            vs = sorted(d)
            ranges.append(refined_range(vs, [np.mean(d[v]) for v in vs], tolerance))
        tested = sorted(means[(e, channels[0])])
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        lines.append(f"| {EXPERIMENTS[e].label} | {EXPERIMENTS[e].parameter} | {tested[0]:g} .. {tested[-1]:g} | "
                     + " | ".join(f"({a:g}, {b:g})" for a, b in ranges) + f" | ({lo:g}, {hi:g}) |")
    return head + "\n".join(lines) + "\n"


# The measures of measures.md: (column, what, which way is better).
MEASURES = (("lpips", "LPIPS to the reference", "lower"), ("activation", "channel activation", "higher"),
            ("two_afc", "two-alternative accuracy", "higher"), ("path_gap", "processing-path gap", "higher"))


def seed_spread(rows: Sequence[dict], experiment: str, measure: str) -> tuple[float, float]:
    """(mean, std) across seeds of the experiment's per-seed mean of ``measure`` (over its channels
    and values)."""
    per_seed: dict = {}
    for r in rows:
        if r["experiment"] == experiment:
            per_seed.setdefault(r["seed"], []).append(r[measure])
    means = [float(np.mean(xs)) for xs in per_seed.values()]
    return float(np.mean(means)), float(np.std(means))


def measures_markdown(rows: Sequence[dict], experiments: Sequence[str], measures=MEASURES) -> str:
    """One row per experiment: each measure's mean ± std across seeds, then the winner of each."""
    head = "| Experiment | " + " | ".join(f"{what} ({better} is better)" for _, what, better in measures) + " |\n"
    head += "|---" * (len(measures) + 1) + "|\n"
    stats = {(e, m): seed_spread(rows, e, m) for e in experiments for m, _, _ in measures}
    lines = [f"| {EXPERIMENTS[e].label} | " + " | ".join(f"{stats[(e, m)][0]:.3f} ± {stats[(e, m)][1]:.3f}"
                                                        for m, _, _ in measures) + " |" for e in experiments]
    wins = []
    for m, what, better in measures:
        pick = min if better == "lower" else max
        e = pick(experiments, key=lambda x: stats[(x, m)][0])
        wins.append(f"- {what}: {EXPERIMENTS[e].label} ({stats[(e, m)][0]:.3f} ± {stats[(e, m)][1]:.3f})")
    return head + "\n".join(lines) + "\n\nBest mean per measure:\n\n" + "\n".join(wins) + "\n"


# ---------------------------------------------------------------------------------------------
# Rendering.


def parse_experiments(spec: str) -> list[str]:
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad or not names:
        raise ConfigError(f"unknown experiment(s) {bad or spec!r}; valid: {', '.join(EXPERIMENTS)}")
    return names


def experiment_values(name: str, config) -> list[float]:
    e = EXPERIMENTS[name]
    if e.values_key is None:
        return [e.fixed(config)]
    try:
        return e.family(config).parse(config.grid[e.values_key], f"grid.{e.values_key}")
    except ValueError as err:
        raise ConfigError(str(err)) from None


class Renderer:
    """Renders one experiment for one seed: ``(C, V) -> images [C][V] (S, S, 3), objective (C, V)``,
    through ``families.render_family``.

    Holds the engines of each experiment (per jitter value; per octave stage size), so seeds reuse
    their compilations."""

    def __init__(self, model, config, layer, channels, progress):
        self.model, self.config, self.layer, self.channels = model, config, layer, channels
        self.size, self.steps = config.image_size, config.steps
        self.optimiser = optax.adam(config.learning_rate)
        self.progress = progress
        self.engines: dict = {}

    def pieces(self, name: str):
        """(family, param, base transforms) of experiment ``name``."""
        e = EXPERIMENTS[name]
        param = parameterisations.image(self.size) if e.param == "lucid" else parameterisations.pixel(self.size)
        base = transforms.standard() if e.transforms == "standard" else None
        return e.family(self.config), param, base

    def objective_fn(self, c):
        return objectives.channel(self.layer, c)

    def check(self, name: str, values: list[float]) -> None:
        """Refuses, before any compilation, values the experiment cannot render."""
        family, param, base = self.pieces(name)
        family.check(self.model, self.layer, self.objective_fn, param, base, self.optimiser, values, self.channels[0])

    def render(self, name: str, values: list[float], key) -> tuple[list[list[np.ndarray]], np.ndarray]:
        family, param, base = self.pieces(name)
        out = families.render_family(self.model, family, self.objective_fn, param, base, self.optimiser, self.channels,
                                     values, key, self.steps, engines=self.engines.setdefault(name, {}),
                                     batch_size=self.config.batch_size or None, progress=self.progress)
        return [[img[0] for img in row] for row in out.images], out.objective


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size:
        return img
    return np.asarray(imageops.resize(jnp.asarray(img), size))


def _score(fn, *arrays, chunk: int) -> np.ndarray:
    """``fn`` over the leading axis in fixed chunks (padded), so one compilation serves any length."""
    return np.asarray(imageops.map_chunks(fn, *arrays, batch=chunk))


def _plot(path, label, parameter, values, channels, means, stds, ref_name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    for i, c in enumerate(channels):
        ax.errorbar(values, means[i], yerr=stds[i], marker="o", capsize=3, label=f"channel {c}")
    ax.set_xlabel(parameter)
    ax.set_ylabel(f"LPIPS to {ref_name} reference")
    ax.set_title(label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path.write_bytes(buf.getvalue())


# ---------------------------------------------------------------------------------------------


def check(config: ml_collections.ConfigDict) -> None:
    for e in parse_experiments(config.experiments):
        experiment_values(e, config)
    if config.reference not in REFERENCES:
        raise ConfigError(f"unknown reference {config.reference!r}; valid: {', '.join(REFERENCES)}")
    if config.seeds < 1 or config.steps < 1 or config.image_size < 1:
        raise ConfigError("seeds, steps and image_size must be >= 1")
    if config.lpips_net not in evaluation.NETS:
        raise ConfigError(f"unknown lpips_net {config.lpips_net!r}; valid: {', '.join(evaluation.NETS)}")
    if config.measures:
        check_int(config.measure_trials, "measure_trials", 1, meaning="two-alternative trials per channel")
        check_int(config.measure_tail, "measure_tail", 1, meaning="natural images in each tail")
        check_int(config.path_top, "path_top", 1, meaning="top natural images per channel")
        check_int(config.path_random, "path_random", 1, meaning="random natural images of the baseline")
        if config.similarity not in evaluation.SIMILARITIES:
            raise ConfigError(f"unknown similarity {config.similarity!r}; valid: {', '.join(evaluation.SIMILARITIES)}")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    start = time.time()
    check_workdir(workdir)
    check(config)
    exps = parse_experiments(config.experiments)
    values = {e: experiment_values(e, config) for e in exps}
    model = config_model(config)
    if model.channels != 3:
        raise ConfigError(f"the study needs an RGB model: its experiments render colour images (Lucid's decorrelated "
                          f"colours, MACO) and LPIPS compares RGB, and {model.name} takes {model.channels}-channel "
                          f"images; use a 3-channel model (--config.model=NAME) or the sweep recipe")
    layer = config.layer
    model.check_layer(layer)
    channels = parse_channels(config.channels)
    model.check_channels(layer, channels)
    size = config.image_size
    model.check_image_size(layer, transforms.output_size(transforms.standard(), size))
    renderer = Renderer(model, config, layer, channels, None)
    for e in exps:
        renderer.check(e, values[e])
    files = references.image_files(config.reference_images) if config.reference == "natural" else []

    timings: dict[str, float] = {}
    natural, path_layers = None, []
    if config.measures:  # natural images first: a bad folder fails before any rendering
        t = time.time()
        path_layers = evaluation.layers_up_to(model, layer)
        natural = passes.natural_pass(model, datasets.image_folder(config.measure_images), layer, channels,
                                       path_layers, size, config.score_batch)
        if len(natural.images) < 2:
            raise ConfigError(f"measures need at least 2 readable natural images in measure_images="
                              f"{config.measure_images!r}, found {len(natural.images)}: point it at a folder of photos")
        timings["natural_s"] = time.time() - t
    cells = sum(len(v) for v in values.values()) * len(channels) * config.seeds
    progress = Progress(f"study {model.name} {layer}", enabled=config.progress)
    done = [0]

    def hook_for():
        base = done[0]
        return lambda d, t: progress(base + d, cells * config.steps)

    # 1. The reference per channel.
    t = time.time()
    if config.reference == "lucid":
        ref = references.lucid_reference(model, layer, channels, jax.random.key(config.seed + REFERENCE_SEED_OFFSET),
                                         size, config.reference_steps, batch_size=config.batch_size or None)
        ref_images = np.asarray(ref.images[:, 0])
        ref_sources = [f"Lucid recipe, {config.reference_steps} steps, seed {config.seed + REFERENCE_SEED_OFFSET}"] * len(channels)
    else:
        patches = references.most_activating_patch(model, layer, channels, files, size)
        ref_images, ref_sources = patches.images, patches.sources
    timings["reference_s"] = time.time() - t

    # 2. Render every experiment x seed.
    t = time.time()
    rendered: dict = {}  # (experiment, seed) -> (images [C][V], objective (C, V))
    try:
        for e in exps:
            for s in range(config.seeds):
                renderer.progress = hook_for()
                rendered[(e, s)] = renderer.render(e, values[e], jax.random.key(config.seed + s))
                done[0] += len(values[e]) * len(channels) * config.steps
    finally:
        progress.close()
    timings["render_s"] = time.time() - t

    # 3. Score every image in fixed-size batches.
    t = time.time()
    keys, imgs, refs, chan_idx, objs = [], [], [], [], []
    for e in exps:
        for s in range(config.seeds):
            images, objective = rendered[(e, s)]
            for i, c in enumerate(channels):
                for j, v in enumerate(values[e]):
                    keys.append((e, v, c, s, j))
                    imgs.append(_resize(images[i][j], size))
                    refs.append(ref_images[i])
                    chan_idx.append(c)
                    objs.append(float(objective[i, j]))
    imgs, refs = np.stack(imgs).astype(np.float32), np.stack(refs).astype(np.float32)
    chunk = config.score_batch
    net = config.lpips_net
    lp = _score(lambda a, b: evaluation.lpips(a, b, net), imgs, refs, chunk=chunk)
    hf = _score(lambda a: evaluation.high_frequency_energy(a, config.hf_cutoff), imgs, chunk=chunk)
    tv = _score(evaluation.total_variation, imgs, chunk=chunk)
    acts = references.channel_means(model, layer, imgs, chunk)[np.arange(len(imgs)), chan_idx]
    div: dict = {}
    if config.seeds > 1:
        groups: dict = {}
        for n, (e, v, c, s, j) in enumerate(keys):
            groups.setdefault((e, j, c), []).append(n)
        order = list(groups)
        stacks = np.stack([imgs[groups[g]] for g in order])  # (cells, S, H, W, 3)
        pairs_i, pairs_j = evaluation.pair_indices(config.seeds)
        a = stacks[:, pairs_i].reshape((-1,) + imgs.shape[1:])
        b = stacks[:, pairs_j].reshape((-1,) + imgs.shape[1:])
        d = _score(lambda x, y: evaluation.lpips(x, y, net), a, b, chunk=chunk).reshape(len(order), -1).mean(axis=1)
        div = dict(zip(order, d))
    trust = None
    if natural is not None:
        trust = evaluation.visualisation_measures(
            jax.random.key(config.seed + MEASURE_SEED_OFFSET), model, path_layers, imgs,
            [channels.index(c) for c in chan_idx], chan_idx, natural, trials=config.measure_trials,
            tail=config.measure_tail, path_top=config.path_top, path_random=config.path_random,
            similarity=config.similarity, net=net)
    timings["score_s"] = time.time() - t

    rows = []
    for n, (e, v, c, s, j) in enumerate(keys):
        rows.append({"experiment": e, "value": v, "channel": c, "seed": config.seed + s, "lpips": float(lp[n]),
                     "activation": float(acts[n]), "objective": objs[n], "hf_energy": float(hf[n]),
                     "tv": float(tv[n]), "diversity": float(div[(e, j, c)]) if div else float("nan"),
                     "image": f"images/{e}_{j}_{layer}_{c:04d}_s{config.seed + s}.png"})
        if trust is not None:
            rows[-1].update({"two_afc": float(trust.two_afc[n]), "path_gap": float(trust.path.gap[n])})

    # 4. Write.
    t = time.time()
    with Staging(workdir) as stage:
        for n, r in enumerate(rows):
            e, v, c, s, j = keys[n]
            stage.save_png(r["image"], rendered[(e, s)][0][channels.index(c)][j])
        for i, c in enumerate(channels):
            stage.save_png(f"references/{layer}_{c:04d}.png", ref_images[i])
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{x:.6g}" if isinstance(x, float) else x) for k, x in r.items()})
        stage.write_text("results.csv", buf.getvalue())
        ref_line = (f"Reference: {config.reference} ({REFERENCE_DOCS[config.reference]}); LPIPS {net}; "
                    f"{config.seeds} seed(s), mean ± std across seeds at the best value (@ value).\n\n")
        stage.write_text("table.md", "# Lowest LPIPS per experiment and channel\n\n" + ref_line
                         + table_markdown(rows, exps, channels, config.seeds)
                         + "\nimprovement: mean over channels of (L_none - L) / L_none.\n")
        stage.write_text("refined_ranges.md", f"# Refined ranges\n\nValues whose mean LPIPS is within "
                         f"{100 * config.tolerance:g}% of the channel's best (L <= L_best * (1 + "
                         f"{config.tolerance:g})); min..max of those values.\n\n"
                         + refined_markdown(rows, exps, channels, config.tolerance))
        if trust is not None:
            stage.write_text("measures.md", "# Trust measures per experiment\n\n" + MEASURES_DOC.format(
                n=len(natural.images), folder=config.measure_images, trials=config.measure_trials,
                tail=min(config.measure_tail, len(natural.images) // 2), net=net, top=config.path_top,
                random=config.path_random, similarity=config.similarity, layers=len(path_layers), seeds=config.seeds)
                + measures_markdown(rows, exps))
        plots = []
        for e in exps:
            if len(values[e]) < 2:
                continue
            m = np.zeros((len(channels), len(values[e])))
            sd = np.zeros_like(m)
            for i, c in enumerate(channels):
                for j, v in enumerate(values[e]):
                    xs = [r["lpips"] for r in rows if r["experiment"] == e and r["channel"] == c and r["value"] == v]
                    m[i, j], sd[i, j] = np.mean(xs), np.std(xs)
            rel = f"plots/{e}.png"
            _plot(stage.file(rel), EXPERIMENTS[e].label, EXPERIMENTS[e].parameter, values[e], channels, m, sd,
                  config.reference)
            plots.append(rel)
        best_rows = {}
        for n, r in enumerate(rows):
            k = (r["experiment"], r["channel"])
            if k not in best_rows or r["lpips"] < rows[best_rows[k]]["lpips"]:
                best_rows[k] = n
        sheet = [ref_images[i] for i in range(len(channels))]
        sheet += [imgs[best_rows[(e, c)]] for e in exps for c in channels]
        cards = [{"image": f"references/{layer}_{c:04d}.png", "caption": [f"{layer} ch {c}", "reference",
                                                                             ref_sources[i]]}
                 for i, c in enumerate(channels)]
        cards += [{"image": r["image"], "caption": [f"{layer} ch {r['channel']}", f"{r['experiment']} = {r['value']:g}",
                                                    f"seed {r['seed']}", f"LPIPS {r['lpips']:.3f}"]} for r in rows]
        timings["write_s"] = time.time() - t
        wall = time.time() - start
        manifest = {
            "recipe": "study",
            "model": model.name,
            "model_source": model.source,
            "layer": layer,
            "channels": channels,
            "experiments": {e: {"label": EXPERIMENTS[e].label, "parameter": EXPERIMENTS[e].parameter,
                                "values": values[e]} for e in exps},
            "reference": {"kind": config.reference, "description": REFERENCE_DOCS[config.reference],
                          "sources": ref_sources, "images": [f"references/{layer}_{c:04d}.png" for c in channels]},
            "lpips_net": net,
            "images_rendered": len(rows),
            "timings_s": {k: round(x, 3) for k, x in timings.items()},
            "time_shares": {k: round(x / wall, 4) for k, x in timings.items()},
            "images_per_second": round(len(rows) / wall, 4),
            "images_per_render_second": round(len(rows) / max(timings["render_s"], 1e-9), 4),
            "outputs": {"csv": "results.csv", "table": "table.md", "refined_ranges": "refined_ranges.md",
                        "plots": plots, "contact_sheet": "contact_sheet.png", "gallery": "index.html"},
            "settings": config.to_dict(),
        }
        if trust is not None:
            manifest["outputs"]["measures"] = "measures.md"
            manifest["measures"] = {"natural_images": len(natural.images), "folder": config.measure_images,
                                    "path_layers": path_layers}
        manifest.update(run_info(start))
        header = {"model": model.name, "layer": layer, "channels": ", ".join(map(str, channels)),
                  "reference": f"{config.reference}: {REFERENCE_DOCS[config.reference]}", "LPIPS": net,
                  "steps": config.steps, "image size": size, "seeds": config.seeds,
                  "wall time (s)": round(wall, 1)}
        write_run(stage, manifest, f"{model.name} {layer}: regulariser study", cards, header,
                  grid=sheet, grid_columns=len(channels), grid_name="contact_sheet.png")
    return manifest


REFERENCE_SEED_OFFSET = 1000  # the reference's key differs from every rendered seed's
MEASURE_SEED_OFFSET = 2000  # the measures' trials and random baseline: one key for every experiment
MEASURES_DOC = (
    "Every study image scored against {n} natural images of {folder} at the study size: two_afc = the "
    "fraction of {trials} trials in which the image is nearer (LPIPS {net}, offline stand-in for DreamSim) "
    "to a query from its channel's {tail} most activating natural images than to one from its {tail} least "
    "(chance 0.5; jfv.evaluation.two_afc); path_gap = mean over {layers} layers of the {similarity} similarity "
    "of its spatially averaged activations to its channel's {top} top natural images minus that to {random} "
    "random ones (jfv.evaluation.processing_path; Geirhos et al. 2024). Per experiment: the mean over channels "
    "and values per seed, then mean ± std across {seeds} seed(s).\n\n")
REFERENCE_DOCS = {
    "lucid": "Lucid's recipe: Fourier + decorrelated colour + sigmoid, standard transforms, Adam 0.05, reference_steps",
    "natural": "the most activating window among the images of reference_images",
}


RECIPE = Recipe(run=run, check=check)
