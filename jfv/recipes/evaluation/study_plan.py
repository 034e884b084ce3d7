"""The study's plan and its render stage: ``plan`` turns a checked config into a ``Plan`` (the model,
layer, channels, experiments and their values, the ``Renderer``, the natural reference files), each
part refused before anything is rendered; ``renders`` renders every experiment x seed. Every later
stage (``study_scores.py``, ``study_outputs.py``) reads the ``Plan``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import ml_collections

from jfv.optvis import references, transforms
from jfv.recipes.common import ConfigError, config_model, parse_channels
from jfv.recipes.evaluation.experiments import EXPERIMENTS, Renderer, experiment_values, parse_experiments
from jfv.runtime.progress import Progress


class Plan(NamedTuple):
    """What every stage reads, built once from the checked config."""

    config: Any
    model: Any
    layer: str
    channels: list[int]
    exps: list[str]
    values: dict[str, list[Any]]
    renderer: Renderer
    files: list

    @property
    def scored(self) -> bool:
        """Whether the images are scored (any reference but ``none``)."""
        return self.config.reference != "none"

    def cells(self) -> list[tuple]:
        """(experiment, value, channel, seed index, value index) of every image, in the order of ``results.csv``."""
        return [(e, v, c, s, j) for e in self.exps for s in range(self.config.seeds)
                for c in self.channels for j, v in enumerate(self.values[e])]


def plan(config: ml_collections.ConfigDict) -> Plan:
    """The model, layer, channels and experiments, each refused before anything is rendered."""
    exps = parse_experiments(config.experiments)
    values = {e: experiment_values(e, config) for e in exps}
    model = config_model(config)
    # Only rows with the config's param render the model's own channel count, and only unscored.
    if model.channels != 3 and (config.reference != "none" or any(EXPERIMENTS[e].param != "config" for e in exps)):
        raise ConfigError(f"the study needs an RGB model: its experiments render colour images (Lucid's decorrelated "
                          f"colours, MACO) and LPIPS compares RGB, and {model.name} takes {model.channels}-channel "
                          f"images; use a 3-channel model (--config.model=NAME) or the sweep recipe "
                          f"(experiments=sweep, reference=none)")
    layer = config.layer
    model.check_layer(layer)
    channels = parse_channels(config.channels)
    model.check_channels(layer, channels)
    if config.reference != "none":  # the Lucid reference and standard rows (each row checks its own below)
        model.check_image_size(layer, transforms.output_size(transforms.standard(), config.image_size))
    renderer = Renderer(model, config, layer, channels, None)
    for e in exps:
        renderer.check(e, values[e])
    files = references.image_files(config.reference_images) if config.reference == "natural" else []
    return Plan(config, model, layer, channels, exps, values, renderer, files)


def renders(p: Plan) -> dict:
    """Every experiment x seed (``images/``): (experiment, seed) -> (images [C][V], objective (C, V))."""
    config, values = p.config, p.values
    steps = {e: p.renderer.pieces(e)[0].total_steps(config.steps) for e in p.exps}  # octaves: the schedule's
    total = sum(len(values[e]) * steps[e] for e in p.exps) * len(p.channels) * config.seeds
    progress = Progress(f"study {p.model.name} {p.layer}", enabled=config.progress)
    done = [0]

    def hook_for():
        base = done[0]
        return lambda d, t: progress(base + d, total)

    rendered: dict = {}
    try:
        for e in p.exps:
            for s in range(config.seeds):
                p.renderer.progress = hook_for()
                rendered[(e, s)] = p.renderer.render(e, values[e], jax.random.key(config.seed + s))
                done[0] += len(values[e]) * len(p.channels) * steps[e]
    finally:
        progress.close()
    return rendered
