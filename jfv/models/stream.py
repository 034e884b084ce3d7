"""The one pass of images through a model: every image once, in fixed-size padded batches, one compiled step.

Every loop that streams images through a network is this one: the top-k states of the top-patches
job (``jfv.analysis.topk``), pooled features (``jfv.analysis.embeddings``), the natural pass of the
trust measures (``jfv.analysis.passes``), the channel means of reference windows
(``jfv.optvis.references``) and the frozen features a CAM head trains on (``jfv.attribution.heads``).
``jfv.analysis.passes.run`` feeds it a dataset (``jfv.analysis.datasets.Source``); ``map_images``
feeds it images held in memory. It lives here, beside ``Model``, so that optvis and attribution,
which may not import analysis, run on it too.

The pieces:

- a **step**, ``step(model, params, carry, images, ids, mask) -> (carry, outputs)``: traced code,
  ``model`` the parameter-free ``Model.static``; ``carry`` a pytree threaded from batch to batch
  (top-k states, or ``()``); ``outputs`` a dict of per-image arrays (B, ...). A step is a hashable
  value (a frozen dataclass), so equal steps share one compiled program.
- ``apply(model, step, carry, batch, mesh=None)``: one batch through ``step``: one module-level
  program per (``model.static``, step, shapes, mesh), the parameters an ordinary argument (nothing
  pinned). With a ``jax.sharding.Mesh`` the batch axis is sharded over the mesh's first axis
  (``NamedSharding``), the parameters and the carry replicated, and XLA partitions the step: each
  device runs the model on its share of the batch; a carry that combines the batch (a top-k merge)
  is computed on device from the gathered per-image scores, so the result is the one-device result.
- ``State``: the host side of a pass: the carry, every output gathered into an array indexed by
  image id (NaN, or 0 for integers, where no image was read), which ids were consumed (``seen``)
  and read (``read``), their labels, the skipped images with reasons, the batches done. ``add``
  takes one batch; ``to_tree`` / ``restore`` make and read a flat dict of numpy arrays (a checkpoint).
- ``run(model, step, stream, carry, ...)``: the loop. Optional checkpoint every ``every`` batches
  through a ``store`` with ``save_state(piece, tree)`` and ``load_state(piece, discard=...)``
  (``jfv.runtime.jobs.Job`` is one); a resumed pass calls ``stream`` with the ids not yet seen only.
  A ``stop`` flag (``jfv.runtime.jobs.StopFlag``) is checked after every batch: the pass
  checkpoints and raises ``jfv.runtime.jobs.Interrupted``. ``progress(done, total)`` hears of it.

Because a step treats images independently of their batch (the top-k order is total and an image's
scores are the same bits in any batch), a resumed pass ends exactly where an uninterrupted one does.

Example:
    >>> state = run(model, topk.Step(), batches, carry=topk.init_states(model, ["conv5_3"], k=9))
    >>> state.carry["conv5_3"]["max"].ids[48]      # the 9 images that most activate channel 48
    >>> means = map_images(model, references.ChannelMeans("conv4_3"), windows, batch=32)["means"]
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jfv.runtime import errors
from jfv.runtime.jobs import Interrupted, StateError

Array = jax.Array
Step = Callable[..., tuple[Any, Mapping[str, Array]]]  # (model, params, carry, images, ids, mask) -> (carry, outputs)
Progress = Callable[[int, "int | None"], None]


class PaddedBatch(NamedTuple):
    """A fixed-size batch of images, padded at the end (``mask``): images (B, ...) as the step takes
    them (a dataset's: (B, S, S, C) float32 in [0, 1], ``jfv.analysis.datasets.batches``), ids (B,)
    int32 (-1 for padding), labels (B,) int32 (-1 unlabelled or padding), mask (B,) bool (False for
    padding), and ``skipped``: ((name, reason), ...) of the images dropped while filling this batch.
    The one batch type: ``jfv.analysis.datasets.PaddedBatch`` is this class."""

    images: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    skipped: tuple[tuple[str, str], ...] = ()


class Store(Protocol):
    """Where a pass keeps its checkpoint: ``jfv.runtime.jobs.Job`` is one."""

    def save_state(self, piece: str, tree: Mapping[str, Any]) -> None: ...

    def load_state(self, piece: str, *, discard: bool = False) -> Mapping[str, np.ndarray] | None: ...


class CheckpointMismatch(StateError):
    """A checkpoint that does not fit this pass (another carry, other outputs, another image count)."""


# -- one batch -------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("model", "step"))
def _apply(params, carry, images, ids, mask, *, model, step):
    return step(model, params, carry, images, ids, mask)


@functools.partial(jax.jit, static_argnames=("model", "step", "mesh"))
def _apply_sharded(params, carry, images, ids, mask, *, model, step, mesh):
    rep, data = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    carry, outputs = step(model, params, carry, images, ids, mask)
    # the carry stays replicated and each image's outputs stay on the device that computed them, so
    # the next batch meets the same shardings (one program) and nothing is gathered to one device
    carry = jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, rep), carry)
    outputs = {k: jax.lax.with_sharding_constraint(v, data) for k, v in outputs.items()}
    return carry, outputs


class ShardingError(ValueError):
    """A batch that cannot be split evenly over the devices; the message names the fix."""


def check_batch(batch_size: int, mesh: Mesh | None) -> None:
    """Refuses a batch size the mesh's first axis does not divide, naming the sizes that fit."""
    if mesh is None:
        return
    d = int(mesh.devices.shape[0])
    if int(batch_size) % d:
        up = -(-int(batch_size) // d) * d
        raise ShardingError(f"batch_size={batch_size} does not split over {d} devices: use a multiple of {d} "
                            f"(e.g. {up}), or fewer devices")


def replicate(tree: Any, mesh: Mesh) -> Any:
    """``tree`` on every device of ``mesh`` (a no-op for arrays already placed so)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def apply(model: Any, step: Step, carry: Any, batch: Any, mesh: Mesh | None = None,
          params: Any = None) -> tuple[Any, dict[str, Array]]:
    """One batch through ``step``: (new carry, {name: per-image outputs (B, ...)}), one compiled program.

    The images go in with their own dtype (uint8 stays uint8); ids as int32, the mask as bool. With a
    ``mesh``, the batch is sharded over its first axis (B must divide evenly: ``check_batch``) and the
    parameters and carry are replicated (module docstring); ``params``, when given, are the model's
    already replicated (``replicate``), so a loop copies them to the devices once, not every batch."""
    images, ids, mask = batch.images, np.asarray(batch.ids, np.int32), np.asarray(batch.mask, bool)
    if mesh is None:
        return _apply(model.params, carry, jnp.asarray(images), jnp.asarray(ids), jnp.asarray(mask),
                      model=model.static, step=step)
    check_batch(len(ids), mesh)
    params = replicate(model.params, mesh) if params is None else params
    carry = replicate(carry, mesh)
    images, ids, mask = jax.device_put((np.asarray(images), ids, mask),
                                       NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])))
    return _apply_sharded(params, carry, images, ids, mask, model=model.static, step=step, mesh=mesh)


# -- the host side ---------------------------------------------------------------------------------


def _path(path) -> str:
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        else:
            parts.append(str(k))
    return ".".join(parts)


def _blank(shape: tuple, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    return np.full(shape, np.nan if np.issubdtype(dtype, np.inexact) else 0, dtype)


class State:
    """The pass so far, on the host.

    Attributes:
        carry: the step's pytree (device arrays).
        outputs: {name: (n, ...)} every output of the step, row = image id; NaN (0 for integer
            outputs) where no image was read.
        seen: (n,) bool, ids consumed (read or skipped); read: (n,) bool, ids read.
        labels: (n,) int32, each read image's label (-1 elsewhere or unlabelled).
        skipped: [(name, reason)] of the images that could not be read, in the order met.
        batches: batches done.
        n: the number of images (ids 0..n-1), or None when unknown: the arrays then grow to the
            largest id met.
    """

    def __init__(self, carry: Any = (), n: int | None = None, names: Sequence[str] | None = None):
        self.carry, self.n = carry, n
        size = 0 if n is None else int(n)
        self.outputs: dict[str, np.ndarray] = {}
        self.seen = np.zeros(size, bool)
        self.read = np.zeros(size, bool)
        self.labels = np.full(size, -1, np.int32)
        self.skipped: list[tuple[str, str]] = []
        self.batches = 0
        self._ids_of = None if names is None else {name: i for i, name in enumerate(names)}

    @property
    def done(self) -> int:
        """Images consumed: read or skipped."""
        return int(self.read.sum()) + len(self.skipped)

    @property
    def finished(self) -> bool:
        """Every one of the n images consumed (never, when n is unknown)."""
        return self.n is not None and bool(self.seen.all())

    def _room(self, top: int) -> None:
        """Grows the arrays (doubling) to hold id ``top`` when n is unknown."""
        if top < len(self.seen):
            return
        if self.n is not None:
            raise IndexError(f"image id {top} is outside 0..{self.n - 1}: a pass of n images needs ids 0..n-1")
        size = max(top + 1, 2 * len(self.seen))
        grow = lambda a, fill: np.concatenate([a, np.full((size - len(a),) + a.shape[1:], fill, a.dtype)])
        self.seen, self.read, self.labels = grow(self.seen, False), grow(self.read, False), grow(self.labels, -1)
        self.outputs = {k: grow(v, _blank((), v.dtype)) for k, v in self.outputs.items()}

    def add(self, batch: Any, carry: Any, outputs: Mapping[str, Any]) -> None:
        """One batch done: its carry, its real images' outputs written at their ids, its skips."""
        self.carry = carry
        real = np.asarray(batch.mask, bool)
        ids = np.asarray(batch.ids)[real].astype(np.int64)
        if len(ids):
            self._room(int(ids.max()))
        for k, v in outputs.items():
            v = np.asarray(v)
            have = self.outputs.get(k)
            if have is None:
                have = self.outputs[k] = _blank((len(self.seen),) + v.shape[1:], v.dtype)
            elif have.shape[1:] != v.shape[1:] or have.dtype != v.dtype:
                raise CheckpointMismatch(f"output {k!r} of the checkpoint is {have.dtype}{list(have.shape[1:])} per "
                                         f"image, this pass's {v.dtype}{list(v.shape[1:])}")
            have[ids] = v[real]
        self.seen[ids] = True
        self.read[ids] = True
        self.labels[ids] = np.asarray(batch.labels)[real]
        for name, reason in batch.skipped:
            if self._ids_of is not None and name in self._ids_of:
                self.seen[self._ids_of[name]] = True
            self.skipped.append((name, reason))
        self.batches += 1

    def to_tree(self) -> dict[str, np.ndarray]:
        """The state as a flat dict of numpy arrays (``carry.<path>``, ``outputs.<name>``, ``seen``,
        ``read``, ``labels``, ``batches``, ``skipped_names``, ``skipped_reasons``)."""
        tree = {f"carry.{_path(p)}": np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(self.carry)[0]}
        tree.update({f"outputs.{k}": v for k, v in self.outputs.items()})
        tree.update(seen=self.seen, read=self.read, labels=self.labels, batches=np.int64(self.batches),
                    skipped_names=np.asarray([n for n, _ in self.skipped], dtype=str),
                    skipped_reasons=np.asarray([r for _, r in self.skipped], dtype=str))
        return tree

    def restore(self, tree: Mapping[str, np.ndarray]) -> None:
        """Takes a ``to_tree`` of the same pass (same carry structure and shapes, same n); raises
        CheckpointMismatch otherwise."""
        leaves, treedef = jax.tree_util.tree_flatten_with_path(self.carry)
        restored = []
        for p, fresh in leaves:
            key = f"carry.{_path(p)}"
            got = tree.get(key)
            if got is None or got.shape != np.shape(fresh) or got.dtype != np.asarray(fresh).dtype:
                raise CheckpointMismatch(f"the checkpoint's {key} is missing or has another shape or type")
            restored.append(jnp.asarray(got))
        size = len(self.seen)
        for key in ("seen", "read", "labels", "batches", "skipped_names", "skipped_reasons"):
            if key not in tree:
                raise CheckpointMismatch(f"the checkpoint has no {key}")
        if any(tree[k].shape != (size,) for k in ("seen", "read", "labels")):
            raise CheckpointMismatch(f"the checkpoint holds {tree['seen'].shape[0]} images, this pass {size}")
        outputs = {k[len("outputs."):]: np.array(v) for k, v in tree.items() if k.startswith("outputs.")}
        if any(v.shape[:1] != (size,) for v in outputs.values()):
            raise CheckpointMismatch(f"the checkpoint's outputs are not of {size} images")
        self.carry = jax.tree_util.tree_unflatten(treedef, restored)
        self.outputs = outputs
        self.seen, self.read = np.array(tree["seen"], bool), np.array(tree["read"], bool)
        self.labels = np.array(tree["labels"], np.int32)
        self.batches = int(tree["batches"])
        self.skipped = list(zip(tree["skipped_names"].tolist(), tree["skipped_reasons"].tolist()))


# -- the loop --------------------------------------------------------------------------------------


def run(model: Any, step: Step, stream: Iterable[Any] | Callable[[np.ndarray], Iterable[Any]], carry: Any = (), *,
        n: int | None = None, names: Sequence[str] | None = None, store: Store | None = None, piece: str = "pass",
        every: int = 0, discard: bool = False, progress: Progress | None = None, stop: Any = None,
        mesh: Mesh | None = None, own: np.ndarray | None = None) -> State:
    """Streams batches through ``step``, once each: the pass's ``State`` at the end.

    Args:
        model: the network (its ``static`` and ``params``).
        step: a hashable step (module docstring).
        stream: batches (fields of ``PaddedBatch``), or ``stream(ids)`` giving the batches of those ids
            (sorted): needed to resume, which streams only the ids not yet seen.
        carry: the step's initial carry (ignored when a checkpoint is restored).
        n: the number of images, ids 0..n-1: checks that every one was consumed; None: unknown (the
            arrays grow to the largest id).
        names: each id's name, so that skipped images (named in ``PaddedBatch.skipped``) count as seen.
        store: where to checkpoint (``Store``: ``jfv.runtime.jobs.Job``), under ``piece``; needs n.
            The last checkpoint is restored first (``discard``: dropped instead).
        every: checkpoint every this many batches (0: only when stopped).
        progress: ``progress(images consumed, n)`` before the first batch and after every batch.
        stop: an object with ``stop`` (bool), ``signum`` and ``name()`` (``jfv.runtime.jobs.StopFlag``),
            checked after every batch: the pass checkpoints (with a store) and raises ``Interrupted``.
        mesh: shard each batch over this mesh's first axis (``apply``); the state, outputs and
            checkpoints are the one-device pass's, so a pass may resume on another device count.
        own: the ids this process reads (sorted; needs ``stream`` as a function of ids and ``n``): one
            process's share of a pass over several (``jfv.analysis.passes.run``); None: all of them.
            The state still spans ids 0..n-1; the others stay unseen.
    """
    state = State(carry, n, names)
    if store is not None:
        if n is None:
            raise ValueError("a checkpointed pass needs n, its number of images (ids 0..n-1)")
        saved = store.load_state(piece, discard=discard)
        if saved is not None:
            state.restore(saved)
    mine = np.arange(0 if n is None else n) if own is None else np.asarray(own, np.int64)
    if own is not None and (n is None or not callable(stream)):
        raise ValueError("own (a process's ids) needs n and stream as a function of ids")
    if callable(stream):
        if n is None:
            raise ValueError("stream as a function of ids needs n, the number of images (ids 0..n-1)")
        todo = mine[~state.seen[mine]]
        batches: Iterable[Any] = stream(todo) if len(todo) else iter(())
    elif state.batches:
        raise ValueError("a resumed pass needs stream as a function of the ids still to read")
    else:
        batches = stream
    total = n if own is None else len(mine)
    if progress is not None:
        progress(state.done, total)
    it: Iterator[Any] = iter(batches)
    params = None if mesh is None else replicate(model.params, mesh)  # once for the whole pass
    try:
        for batch in it:
            carry, outputs = apply(model, step, state.carry, batch, mesh, params)
            state.add(batch, carry, outputs)
            if progress is not None:
                progress(state.done, total)
            if stop is not None and stop.stop:
                if store is not None:
                    store.save_state(piece, state.to_tree())
                    raise Interrupted(f"{stop.name()}: checkpointed the pass after {state.done} of {total} images; run "
                                      f"the same command again to resume", stop.signum)
                raise Interrupted(f"{stop.name()}: stopped the pass after {state.done} images", stop.signum)
            if store is not None and every and state.batches % every == 0 and not state.seen[mine].all():
                store.save_state(piece, state.to_tree())
            errors.raise_if_interrupted()
    finally:
        if hasattr(it, "close"):
            it.close()  # stops a prefetching thread
    if n is not None and not state.seen[mine].all():  # cannot happen with a jfv.analysis.datasets source
        raise RuntimeError("the dataset stream ended before every image was read")
    return state


# -- images in memory ------------------------------------------------------------------------------


def arrays(images: np.ndarray, batch: int) -> Callable[[np.ndarray], Iterator[PaddedBatch]]:
    """Images held in memory as a stream: ``stream(ids)`` yields the rows ``ids`` in batches of
    exactly ``batch`` (the last padded with zeros of the images' dtype); id = row index."""
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    b = int(batch)

    def stream(ids: np.ndarray) -> Iterator[PaddedBatch]:
        for s in range(0, len(ids), b):
            sel = np.asarray(ids[s : s + b])
            k = len(sel)
            x = np.zeros((b,) + images.shape[1:], images.dtype)
            x[:k] = images[sel]
            i = np.full(b, -1, np.int32)
            i[:k] = sel
            yield PaddedBatch(x, i, np.full(b, -1, np.int32), np.arange(b) < k)

    return stream


def map_images(model: Any, step: Step, images: Any, batch: int, progress: Progress | None = None,
               mesh: Mesh | None = None) -> dict[str, np.ndarray]:
    """``step``'s outputs for every row of ``images`` (N, ...) held in memory: {name: (N, ...)}.

    One compiled program for any N (fixed batches of ``batch``, the last padded); the carry is ``()``;
    ``mesh`` shards each batch (``apply``)."""
    images = np.asarray(images)
    if images.ndim < 1 or len(images) < 1:
        raise ValueError("map_images needs at least one image")
    check_batch(batch, mesh)
    return run(model, step, arrays(images, batch), n=len(images), progress=progress, mesh=mesh).outputs


__all__ = ["PaddedBatch", "CheckpointMismatch", "ShardingError", "State", "Step", "Store", "apply", "arrays",
           "check_batch", "map_images", "run"]
