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
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np

from jfv.analysis import datasets, topk
from jfv.evaluation.trust import NaturalPass, spatial_mean
from jfv.models.stream import CheckpointMismatch, PaddedBatch, State, Step, Store, apply, check_batch, map_images
from jfv.models.stream import run as run_stream
from jfv.runtime import distributed


def run(model: Any, source: datasets.Source, step: Step, carry: Any = (), *, size: int, batch_size: int,
        prefetch: int = 2, resample: str = "bicubic", store: Store | None = None, piece: str = "pass",
        every: int = 0, discard: bool = False, progress=None, stop: Any = None, mesh=None,
        process: tuple[int, int] = (0, 1), sync: Callable[[str], None] | None = None, workers: int = 0) -> State:
    """``source`` once through ``step`` (module docstring): the pass's ``State``.

    Args:
        source: a ``datasets.Source`` with ids 0..n-1 (every source ``datasets`` makes, and ``take``).
        step: a hashable ``(model, params, carry, images, ids, mask) -> (carry, outputs)``.
        carry: the step's initial carry (``()`` when it has none).
        size: the side the images are fitted to (``datasets.batches``).
        batch_size: images per batch (``datasets.batches``).
        prefetch: batches decoded ahead (``datasets.batches``).
        resample: the resize filter (``datasets.batches``).
        store: where to checkpoint (``jfv.models.stream.run``).
        piece: the checkpoint's name in the store.
        every: checkpoint every this many batches (0: only when stopped).
        discard: drop the last checkpoint instead of restoring it.
        progress: ``progress(images consumed, n)`` at the start and after every batch.
        stop: ``jfv.runtime.jobs.StopFlag`` (or alike), checked after every batch.
        mesh: a ``jax.sharding.Mesh``: each batch sharded over its first axis (``batch_size`` a
            multiple of its size), the result the one-device pass's (``jfv.models.stream.apply``).
        process: ``(index, count)``: this process's share of a pass over ``count`` processes (``split``);
            the result on process 0 is the one-process pass's, elsewhere this process's part.
        sync: ``sync(name)`` waits until every process reaches ``name``; by default
            ``jfv.runtime.distributed.barrier`` (``jax.distributed``'s coordination service).
        workers: grain worker processes that read and decode (``jfv.analysis.loading``); 0 decodes in
            one background thread. The result is the same either way.

    Returns:
        The pass's ``State``.

    Raises:
        datasets.DatasetError: ids that do not number the images, or more processes than images.
        CheckpointMismatch: a checkpoint of another pass, or of another process count.
    """
    n = len(source)
    if not np.array_equal(source.ids, np.arange(n)):
        raise datasets.DatasetError(f"{source.description}: ids must number the images 0..n-1 (a source from "
                                    f"jfv.analysis.datasets)")
    datasets.converted_channels(model.from_rgb)  # a model that cannot take RGB fails here, with the fix
    check_batch(batch_size, mesh)

    def batches(ids: np.ndarray):
        return datasets.batches(source.select(ids), size, batch_size, resample=resample, prefetch_batches=prefetch,
                                convert=model.from_rgb, workers=workers)

    names = [it.name for it in source.items]
    index, count = int(process[0]), int(process[1])
    if count == 1:
        return run_stream(model, step, batches, carry, n=n, names=names, store=store, piece=piece, every=every,
                          discard=discard, progress=progress, stop=stop, mesh=mesh)
    return split(model, step, batches, carry, n=n, names=names, store=store, piece=piece, every=every,
                 discard=discard, progress=progress, stop=stop, mesh=mesh, process=(index, count), sync=sync)


# -- a pass over several processes -----------------------------------------------------------------


def part_name(piece: str, index: int) -> str:
    """The checkpoint piece of process ``index``'s part of a pass over several processes."""
    return f"{piece}.p{index}"


def layout_name(piece: str) -> str:
    """The piece that records how many processes a pass is split over (its parts' layout)."""
    return f"{piece}.layout"


def split(model: Any, step: Step, batches: Callable[[np.ndarray], Any], carry: Any = (), *, n: int,
          names: Sequence[str], store: Store, process: tuple[int, int], piece: str = "pass", every: int = 0,
          discard: bool = False, progress=None, stop: Any = None, mesh=None,
          sync: Callable[[str], None] | None = None) -> State:
    """One process's share of a pass over ``count`` processes, combined on process 0.

    Process ``index`` reads the ids ``index, index + count, ...`` (strided, so the shares differ by at
    most one image and unreadable stretches spread out), checkpoints its part under
    ``part_name(piece, index)`` in the shared ``store`` and saves it once more when done. After a
    barrier, process 0 reads every part and combines them: outputs, labels and the seen and read
    masks by image id, skipped images in id order, and the carry through ``step.combine`` (top-k
    states merge exactly: the order is total, ``jfv.analysis.topk.combine``). So process 0 ends
    with the one-process pass: the same ids, the same values.

    A resume needs the same process count (each part holds the images of its own stride): the count
    is recorded under ``layout_name(piece)`` and another one is refused, naming both.

    Args:
        batches: ``batches(ids)``, the padded batches of those ids (``jfv.models.stream.run``).
        process: ``(index, count)``.
        sync: ``sync(name)``, a barrier across the processes (default ``jfv.runtime.distributed.barrier``).

    ``carry``, ``n``, ``names``, ``store``, ``piece``, ``every``, ``discard``, ``progress``, ``stop`` and
    ``mesh`` are as in ``jfv.models.stream.run``.

    Returns:
        On process 0 the combined ``State``; on the others their own part's.
    """
    index, count = process
    if n < count:
        raise datasets.DatasetError(f"{count} processes for {n} images: use at most {n} processes (each reads "
                                    f"its own share)")
    if carry != () and not hasattr(step, "combine"):
        raise TypeError(f"{type(step).__name__} keeps a carry but has no combine(carries): it cannot run over "
                        f"several processes")
    if sync is None:
        sync = lambda name: distributed.barrier(name, count)
    layout = store.load_state(layout_name(piece), discard=discard)
    if layout is not None and int(layout["processes"]) != count:
        raise CheckpointMismatch(f"the pass in this workdir was checkpointed by {int(layout['processes'])} processes, "
                                 f"this run has {count}: run it with {int(layout['processes'])} processes to resume, "
                                 f"or discard the checkpoint to start the pass over")
    sync(f"jfv-{piece}-layout-checked")  # every process has read the old layout before process 0 replaces it
    if index == 0:
        store.save_state(layout_name(piece), {"processes": np.int64(count)})
    own = np.arange(index, n, count)
    state = run_stream(model, step, batches, carry, n=n, names=names, store=store, piece=part_name(piece, index),
                       every=every, discard=discard, progress=progress, stop=stop, mesh=mesh, own=own)
    store.save_state(part_name(piece, index), state.to_tree())
    sync(f"jfv-{piece}-parts-saved")
    if index != 0:
        return state
    return combine(step, carry, [store.load_state(part_name(piece, i)) for i in range(count)], n, names)


def combine(step: Step, carry: Any, parts: Sequence[Any], n: int, names: Sequence[str]) -> State:
    """The one-process ``State`` of a pass from its processes' parts (``State.to_tree``s).

    Args:
        step: the pass's step (its ``combine(carries)`` merges the carries; none needed for ``()``).
        carry: the step's initial carry (the structure the parts restore into).
        parts: every process's final ``to_tree``, over disjoint ids.
        n: the pass's image count.
        names: the pass's image names.

    Returns:
        A ``State`` equal to the one a single process would end with.
    """
    states = []
    for i, tree in enumerate(parts):
        if tree is None:
            raise CheckpointMismatch(f"process {i}'s part of the pass is missing from the workdir: run the same "
                                     f"command again on every process")
        part = State(carry, n, names)
        part.restore(tree)
        states.append(part)
    out = State(carry, n, names)
    for part in states:
        rows = part.read
        for k, v in part.outputs.items():
            have = out.outputs.setdefault(k, np.array(v))
            have[rows] = v[rows]
        out.seen |= part.seen
        out.read |= rows
        out.labels[rows] = part.labels[rows]
        out.skipped += part.skipped
        out.batches += part.batches
    ids_of = {name: i for i, name in enumerate(names)}
    out.skipped.sort(key=lambda s: ids_of.get(s[0], n))  # one process meets them in id order
    out.carry = step.combine([p.carry for p in states]) if carry != () else ()
    return out


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


__all__ = ["CheckpointMismatch", "PaddedBatch", "NaturalStep", "State", "Step", "Store", "apply", "combine",
           "layout_name", "map_images", "natural_pass", "part_name", "run", "split"]
