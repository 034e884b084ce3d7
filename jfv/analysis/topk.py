"""Running top-k on device: the images that most activate every channel of a layer, in one pass.

For each channel ``c`` and image ``n`` of a batch, a score ``v[n, c]``, the maximum (``reduce="max"``)
or the mean (``"mean"``) of the channel's map over positions, and where the map peaks,
``argmax_{(i, j)} a[n, i, j, c]`` (the first in row-major order on ties). The state keeps, per
channel, the ``k`` best (value, image id, position) seen so far, ordered by

    value descending, then image id ascending

which is a total order on distinct ids, so the state after any sequence of batches is the top-k of
their union under that order: independent of batch size, batch order and padding. ``update`` is one
jitted merge: concatenate the state's k candidates with the batch's, sort by the two keys, keep k.

Padding entries (``mask`` False) never enter. Empty slots (fewer than k images seen) hold value
``-inf``, id ``EMPTY`` (-1) and position (-1, -1). NaN scores sort after every number. Ids must be
unique across the pass. A layer without spatial extent, (n, C), counts as a 1x1 map (position (0, 0)).

Example:
    >>> state = init(512, k=9)
    >>> for b in datasets.batches(source, size=64, batch_size=32):
    ...     state = update(state, model(b.images)["conv5_3"], b.ids, b.mask, reduce="max")
    >>> state.ids[48]          # the 9 images that most activate channel 48, best first

Zeiler & Fergus 2014 (top-9 activations per feature map); Girshick et al. 2014 (top regions of
pool5 units).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jfv.models import stream as model_stream

Array = jax.Array

REDUCTIONS = ("max", "mean")
EMPTY = -1  # the id of an empty slot
_LAST = np.iinfo(np.int32).max  # empty slots and padding sort after every real id


class TopKError(ValueError):
    """k <= 0, an unknown reduction, or activations that do not fit the state."""


class TopK(NamedTuple):
    """Per channel, the k best images so far, best first.

    values: (C, k) float32, the score (max or mean over positions); -inf where empty.
    ids: (C, k) int32 image ids; ``EMPTY`` (-1) where empty.
    positions: (C, k, 2) int32 (row, column) of the channel's maximum on that image's map.
    """

    values: Array
    ids: Array
    positions: Array


def init(channels: int, k: int) -> TopK:
    """An empty state for ``channels`` channels keeping the top ``k``."""
    if int(k) < 1:
        raise TopKError(f"k must be >= 1 (the number of top images kept per channel), got {k}")
    if int(channels) < 1:
        raise TopKError(f"channels must be >= 1, got {channels}")
    c, k = int(channels), int(k)
    return TopK(jnp.full((c, k), -jnp.inf, jnp.float32), jnp.full((c, k), EMPTY, jnp.int32),
                jnp.full((c, k, 2), EMPTY, jnp.int32))


def scores(activations: Array, reduce: str = "max") -> tuple[Array, Array]:
    """Each image's score per channel and where its map peaks.

    Args:
        activations: (n, H, W, C), or (n, C) for a layer without spatial extent.
        reduce: "max" or "mean" over positions.

    Returns:
        values (n, C) float32, positions (n, C, 2) int32 (row, column) of the maximum.
    """
    if reduce not in REDUCTIONS:
        raise TopKError(f"unknown reduce {reduce!r}; valid: {', '.join(REDUCTIONS)}")
    a = jnp.asarray(activations, jnp.float32)
    if a.ndim == 2:
        a = a[:, None, None, :]
    if a.ndim != 4:
        raise TopKError(f"activations must be (n, H, W, C) or (n, C), got shape {tuple(a.shape)}")
    n, h, w, c = a.shape
    flat = a.reshape(n, h * w, c)
    where = jnp.argmax(flat, axis=1).astype(jnp.int32)  # first maximum in row-major order
    positions = jnp.stack([where // w, where % w], axis=-1)
    values = flat.max(axis=1) if reduce == "max" else pairwise_sum(flat) / (h * w)
    return values, positions


def pairwise_sum(x: Array) -> Array:
    """Sum over axis 1 by halving: (n, P, C) -> (n, C).

    The additions are elementwise and in a fixed order, so an image's sum is the same bits whatever
    the batch around it (XLA's own reductions may vectorise differently per batch shape, ~1 ulp).
    """
    while x.shape[1] > 1:
        if x.shape[1] % 2:
            x = jnp.concatenate([x, jnp.zeros_like(x[:, :1])], axis=1)
        half = x.shape[1] // 2
        x = x[:, :half] + x[:, half:]
    return x[:, 0]


def merge(state: TopK, values: Array, ids: Array, positions: Array, mask: Array) -> TopK:
    """The top-k of the state and a batch of candidates, by (value descending, id ascending).

    Args:
        values: (n, C) scores; ids: (n,) int image ids; positions: (n, C, 2); mask: (n,) bool.
    """
    c, k = state.values.shape
    valid = jnp.asarray(mask, bool)
    v = jnp.where(valid[None, :], jnp.asarray(values, jnp.float32).T, -jnp.inf)  # (C, n)
    key = jnp.broadcast_to(jnp.where(valid, jnp.asarray(ids, jnp.int32), _LAST)[None, :], v.shape)
    pos = jnp.swapaxes(jnp.asarray(positions, jnp.int32), 0, 1)  # (C, n, 2)
    all_v = jnp.concatenate([state.values, v], axis=1)
    all_key = jnp.concatenate([jnp.where(state.ids == EMPTY, _LAST, state.ids), key], axis=1)
    all_y = jnp.concatenate([state.positions[..., 0], pos[..., 0]], axis=1)
    all_x = jnp.concatenate([state.positions[..., 1], pos[..., 1]], axis=1)
    return _best(all_v, all_key, all_y, all_x, k)


def _best(all_v: Array, all_key: Array, all_y: Array, all_x: Array, k: int) -> TopK:
    """The k best candidates per channel of (C, m) values, sort keys (``_LAST`` for none) and positions."""
    neg, key, y, x = lax.sort((-all_v, all_key, all_y, all_x), dimension=1, num_keys=2)
    key = key[:, :k]
    empty = key == _LAST
    return TopK(
        values=jnp.where(empty, -jnp.inf, -neg[:, :k]),
        ids=jnp.where(empty, EMPTY, key),
        positions=jnp.where(empty[..., None], EMPTY, jnp.stack([y[:, :k], x[:, :k]], axis=-1)),
    )


@jax.jit
def combine(states: Sequence[TopK]) -> TopK:
    """The top-k of several states' union, by (value descending, id ascending): the states of a pass
    split over processes (each over its own images) combine into the one-process state exactly.

    Args:
        states: TopK states of the same shape (C, k), over disjoint sets of image ids.
    """
    k = states[0].values.shape[1]
    cat = lambda f: jnp.concatenate([f(s) for s in states], axis=1)
    return _best(cat(lambda s: s.values), cat(lambda s: jnp.where(s.ids == EMPTY, _LAST, s.ids)),
                 cat(lambda s: s.positions[..., 0]), cat(lambda s: s.positions[..., 1]), k)


@functools.partial(jax.jit, static_argnames=("reduce",))
def update(state: TopK, activations: Array, image_ids: Array, mask: Array, reduce: str = "max") -> TopK:
    """One batch merged into the state: ``merge(state, *scores(activations, reduce), ...)``.

    Args:
        state: TopK with C channels.
        activations: (n, H, W, C) or (n, C).
        image_ids: (n,) int, unique over the pass; mask: (n,) bool, False for padding.
    """
    if activations.shape[-1] != state.values.shape[0]:
        raise TopKError(f"activations have {activations.shape[-1]} channels but the state {state.values.shape[0]}")
    values, positions = scores(activations, reduce)
    return merge(state, values, image_ids, positions, mask)


# -- several layers in one pass --------------------------------------------------------------------

States = dict  # {layer: {reduce: TopK}}


def init_states(model: Any, layers: Sequence[str], k: int, reductions: Sequence[str] = REDUCTIONS) -> States:
    """Empty states ``{layer: {reduce: TopK}}`` for every layer and reduction (a pytree: orbax can save it)."""
    if not layers:
        raise TopKError("no layers given: pass at least one layer name")
    bad = [r for r in reductions if r not in REDUCTIONS]
    if bad or not reductions:
        raise TopKError(f"reductions must be a non-empty subset of {REDUCTIONS}, got {tuple(reductions)}")
    return {layer: {r: init(model.check_layer(layer), k) for r in reductions} for layer in layers}


@dataclasses.dataclass(frozen=True)
class Step:
    """The pass step of top-k states (``jfv.models.stream``): the model, then every state of the carry
    ``{layer: {reduce: TopK}}`` merged with its batch's ``scores``. With ``keep_scores`` each image's
    scores are outputs too, named ``"<layer>.<reduce>"`` ((B, C) per batch: the atlas's histograms)."""

    keep_scores: bool = False

    def __call__(self, model: Any, params: Any, states: States, images: Array, ids: Array, mask: Array):
        acts = model.apply(params, images)
        new, per_image = {}, {}
        for layer, per in states.items():
            new[layer] = {}
            for r, s in per.items():
                if acts[layer].shape[-1] != s.values.shape[0]:
                    raise TopKError(f"activations have {acts[layer].shape[-1]} channels but the state {s.values.shape[0]}")
                values, positions = scores(acts[layer], r)
                new[layer][r] = merge(s, values, ids, positions, mask)
                if self.keep_scores:
                    per_image[f"{layer}.{r}"] = values
        return new, per_image

    def combine(self, carries: Sequence[States]) -> States:
        """The carries of one pass split over processes, as one process's (``combine`` per state)."""
        return {layer: {r: combine([c[layer][r] for c in carries]) for r in per} for layer, per in carries[0].items()}


def step(model: Any, states: States, images: Array, ids: Array, mask: Array) -> States:
    """One batch through the model and into every state (one compiled program per model, layer set
    and batch shape): ``jfv.models.stream.apply`` of ``Step()``. The unit a resumable pass checkpoints between."""
    batch = model_stream.PaddedBatch(jnp.asarray(images, jnp.float32), ids, np.full(np.shape(ids), -1, np.int32), mask)
    return model_stream.apply(model, Step(), states, batch)[0]


def run(model: Any, layers: Sequence[str], stream: Iterable[Any], k: int,
        reductions: Sequence[str] = REDUCTIONS, states: States | None = None,
        progress: Callable[[int], None] = lambda n: None) -> States:
    """The whole pass: ``jfv.models.stream.run`` of ``Step()`` over a stream of
    ``jfv.analysis.datasets.PaddedBatch`` (images, ids, mask).

    Pass ``states`` to continue an earlier pass. ``progress`` gets the count of images consumed
    (read or skipped), before the first batch and after each.
    """
    states = init_states(model, layers, k, reductions) if states is None else states
    return model_stream.run(model, Step(), stream, states, progress=lambda done, total: progress(done)).carry


def brute_force(values: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: per channel, sort all (value, id) pairs by value descending, id ascending.

    Args: values (n, C), ids (n,). Returns: values (C, k'), ids (C, k') with k' = min(k, n).
    """
    values, ids = np.asarray(values), np.asarray(ids)
    out_v, out_i = [], []
    for c in range(values.shape[1]):
        order = np.lexsort((ids, -values[:, c]))[:k]
        out_v.append(values[order, c])
        out_i.append(ids[order])
    return np.stack(out_v), np.stack(out_i)


def to_numpy(state: TopK) -> TopK:
    """The state on the host as numpy arrays (for files and figures)."""
    return TopK(*(np.asarray(x) for x in state))


def as_table(state: TopK, channel: int) -> list[dict]:
    """One channel's kept entries as rows ``{"rank", "id", "value", "position"}`` (empty slots left out)."""
    s = to_numpy(state)
    return [{"rank": r, "id": int(s.ids[channel, r]), "value": float(s.values[channel, r]),
             "position": [int(v) for v in s.positions[channel, r]]}
            for r in range(s.ids.shape[1]) if s.ids[channel, r] != EMPTY]


__all__ = ["EMPTY", "REDUCTIONS", "Step", "TopK", "TopKError", "as_table", "brute_force", "combine", "init", "init_states",
           "merge", "run", "scores", "step", "to_numpy", "update"]
