"""Passes of a dataset through a model: every image once, in padded batches, keeping what a step returns.

``run(model, source, step, carry, size=, batch_size=)`` is the one dataset pass: ``source`` (a
``datasets.Source`` whose ids number its images 0..n-1) decoded at ``size`` px into padded batches of
``batch_size`` (``datasets.batches``, ``prefetch`` batches ahead in a background thread, each image
as the model takes it: ``Model.from_rgb``), each batch through ``step`` (one compiled program), the
carry threaded through and every per-image output gathered into a host array indexed by image id.
Unreadable images are skipped, counted and named. With a ``store`` (``jfv.runtime.jobs.Job``) it
checkpoints every ``every`` batches and when ``stop`` (``jfv.runtime.jobs.StopFlag``) is raised; run
again, it restores the checkpoint and streams only the images not yet seen, and ends exactly where an
uninterrupted pass would. The loop itself, ``State`` and ``apply`` are ``jfv.models.stream``'s
(re-exported here), shared with the passes over images held in memory of optvis and attribution.

The passes on it: ``topk.Step`` (the top-patches job), ``embeddings.Pooled`` (``embeddings.extract``),
``NaturalStep`` (``natural_pass``: natural images for the trust measures of ``jfv.evaluation.trust``:
each image's score for some channels and its spatially averaged activations at some layers).

Example:
    >>> state = run(model, datasets.image_folder("photos"), topk.Step(keep_scores=True),
    ...             topk.init_states(model, ["conv5_3"], k=9), size=224, batch_size=16, store=job, every=50)
    >>> state.carry["conv5_3"]["max"].ids[48], state.outputs["conv5_3.max"].shape, state.skipped
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

from jfv.analysis import datasets, topk
from jfv.evaluation.trust import NaturalPass, spatial_mean
from jfv.models.stream import CheckpointMismatch, PaddedBatch, State, Step, Store, apply, check_batch, map_images
from jfv.models.stream import run as run_stream


def run(model: Any, source: datasets.Source, step: Step, carry: Any = (), *, size: int, batch_size: int,
        prefetch: int = 2, resample: str = "bicubic", store: Store | None = None, piece: str = "pass",
        every: int = 0, discard: bool = False, progress=None, stop: Any = None, mesh=None) -> State:
    """``source`` once through ``step`` (module docstring): the pass's ``State``.

    Args:
        source: a ``datasets.Source`` with ids 0..n-1 (every source ``datasets`` makes, and ``take``).
        step: a hashable ``(model, params, carry, images, ids, mask) -> (carry, outputs)``.
        carry: the step's initial carry (``()`` when it has none).
        size, batch_size, prefetch, resample: the batches (``datasets.batches``).
        store, piece, every, discard: the checkpoint (``jfv.models.stream.run``).
        progress: ``progress(images consumed, n)`` at the start and after every batch.
        stop: ``jfv.runtime.jobs.StopFlag`` (or alike), checked after every batch.
        mesh: a ``jax.sharding.Mesh``: each batch sharded over its first axis (``batch_size`` a
            multiple of its size), the result the one-device pass's (``jfv.models.stream.apply``).
    """
    n = len(source)
    if not np.array_equal(source.ids, np.arange(n)):
        raise datasets.DatasetError(f"{source.description}: ids must number the images 0..n-1 (a source from "
                                    f"jfv.analysis.datasets)")
    datasets.converted_channels(model.from_rgb)  # a model that cannot take RGB fails here, with the fix
    check_batch(batch_size, mesh)

    def batches(ids: np.ndarray):
        return datasets.batches(source.select(ids), size, batch_size, resample=resample, prefetch_batches=prefetch,
                                convert=model.from_rgb)

    return run_stream(model, step, batches, carry, n=n, names=[it.name for it in source.items], store=store,
                      piece=piece, every=every, discard=discard, progress=progress, stop=stop, mesh=mesh)


# -- the natural pass of the trust measures --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NaturalStep:
    """Each image as the model saw it (``images``), its ``topk.scores(reduce)`` for ``channels`` of
    ``layer`` (``scores``; a token layer's tokens count as positions) and its ``spatial_mean`` at
    each of ``layers`` (``profile.<layer>``)."""

    layer: str
    channels: tuple[int, ...]
    layers: tuple[str, ...]
    reduce: str = "mean"

    def __call__(self, model, params, carry, images, ids, mask):
        acts = model.apply(params, images)
        a = acts[self.layer]
        a = a[:, :, None, :] if a.ndim == 3 else a  # a token layer (N, T, D): its tokens as positions
        values, _ = topk.scores(a, self.reduce)
        out = {"images": images, "scores": values[:, jnp.asarray(self.channels, jnp.int32)]}
        out.update({f"profile.{name}": spatial_mean(acts[name]) for name in self.layers})
        return carry, out


def natural_pass(model, source, layer: str, channels: Sequence[int], layers: Sequence[str], size: int,
                 batch_size: int, reduce: str = "mean") -> NaturalPass:
    """Streams ``source`` (a ``datasets.Source``) once through ``model`` at ``size`` px, in batches.

    Returns NaturalPass(images (N, S, S, model channels) as the model saw them (``Model.from_rgb``),
    scores (N, C) of ``channels`` of ``layer`` under
    ``topk.scores(reduce)``, {name: (N, D)} profiles of ``layers``); the unreadable images are dropped.
    """
    layers = tuple(layers)
    step = NaturalStep(layer, tuple(int(c) for c in channels), layers, reduce)
    state = run(model, source, step, size=size, batch_size=batch_size, prefetch=0)
    read = state.read
    if not read.any():
        raise datasets.DatasetError(f"no readable image in {source.description}: point dataset at readable images")
    pick = (lambda a: a) if read.all() else (lambda a: a[read])
    out = state.outputs
    return NaturalPass(pick(out["images"]), pick(out["scores"]), {name: pick(out[f"profile.{name}"]) for name in layers})


__all__ = ["CheckpointMismatch", "PaddedBatch", "NaturalStep", "State", "Step", "Store", "apply", "map_images",
           "natural_pass", "run"]
