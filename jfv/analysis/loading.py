"""Reading and decoding a dataset in worker processes, with grain.

``decoded(source, size, resample, workers=n)`` yields what ``jfv.analysis.datasets`` decodes in its
own thread, ``(item, image or None, reason)`` for every item in the source's order, but read and
decoded by ``n`` grain worker processes (``grain.MapDataset`` over chunks of ``chunk_size`` items,
``mp_prefetch``): each worker calls the source's own reader on its chunks (files by path, the
CIFAR-10 archives through a per-process cache of the members it asks for) and decodes them, and the
chunks come back in order, so the batches, and every result of a pass, are those of the one-thread
loader, bit for bit.

A pass resumes from the ids it has not seen (``jfv.models.stream``), not from an iterator position,
so its checkpoints need no loader state and may resume with another worker count.

A worker that dies (killed, out of memory) ends the pass with one line naming the images of the
chunk it was decoding; the pass's last checkpoint is kept, and the same command resumes from it.

Example:
    >>> for item, image, reason in decoded(datasets.image_folder("photos"), 224, "bicubic", workers=2,
    ...                                    decode=datasets.decode_raw):
    ...     ...
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

CHUNK_BYTES = 32 << 20  # decoded bytes a worker hands back at a time (one grain record; each costs ~50-80 ms)
MAX_CHUNK = 1024


def chunk_size(size: int) -> int:
    """Images per worker task at ``size`` px: about ``CHUNK_BYTES`` of decoded float32 RGB, 8..``MAX_CHUNK``."""
    return int(np.clip(CHUNK_BYTES // (int(size) ** 2 * 3 * 4), 8, MAX_CHUNK))


class WorkerError(RuntimeError):
    """A loader worker process died; the message names the images it was decoding."""


class _Chunks:
    """grain's random-access source: record ``i`` is the ``i``-th run of ``CHUNK`` items, in source order."""

    def __init__(self, items: Sequence[Any], chunk: int):
        self.items, self.chunk = tuple(items), int(chunk)

    def __len__(self) -> int:
        return -(-len(self.items) // self.chunk)

    def __getitem__(self, i: int) -> tuple:
        return self.items[i * self.chunk:(i + 1) * self.chunk]


class _Decode:
    """Reads and decodes a chunk of items in a worker: (positions in the chunk, images, reasons)."""

    def __init__(self, reader: Any, decode: Callable, enter: Callable[[], None], size: int, resample: str):
        self.reader, self.decode, self.enter, self.size, self.resample = reader, decode, enter, int(size), resample

    def __call__(self, items: tuple) -> tuple:
        self.enter()  # e.g. datasets.enter_worker: this process keeps the archive it reads
        position = {it.id: i for i, it in enumerate(items)}
        order, images, reasons = [], np.zeros((len(items), self.size, self.size, 3), np.float32), []
        for it, raw in self.reader(items):
            _, image, reason = self.decode(it, raw, self.size, self.resample)
            order.append(position[it.id])
            if image is not None:
                images[len(order) - 1] = image
            reasons.append(reason)
        # one array per chunk: grain moves each array of a record through its own shared memory
        return np.asarray(order, np.int32), images, reasons


def check_workers(workers: int) -> int:
    """``workers`` as an int >= 0; raises ValueError naming the fix otherwise."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: decode in one background thread), got {workers!r}")
    return int(workers)


def decoded(source: Any, size: int, resample: str, workers: int, decode: Callable, enter: Callable[[], None] = lambda: None,
            passthrough: tuple[type[BaseException], ...] = (), chunk: int = 0
            ) -> Iterator[tuple[Any, np.ndarray | None, str]]:
    """Every item of ``source`` read and decoded by ``workers`` grain processes, in the source's order.

    Args:
        source: a ``jfv.analysis.datasets.Source``.
        size: the side images are fitted to (``datasets.fit``).
        resample: the resampling filter's name.
        workers: worker processes (>= 1).
        decode: ``decode(item, raw, size, resample) -> (item, image or None, reason)`` (a module-level
            function: the workers import it), ``datasets.decode_raw``.
        enter: called in a worker before each chunk (``datasets.enter_worker``).
        passthrough: errors raised in a worker that come back as themselves (``datasets.DatasetError``:
            a damaged archive) rather than as a ``WorkerError``.
        chunk: items per worker task (0: ``chunk_size(size)``).

    Yields:
        ``(item, image (size, size, 3) float32 or None, reason it could not be read or "")``.

    Raises:
        WorkerError: a worker died; the message names the chunk's first and last images.
        datasets.DatasetError: the source's reader found a damaged archive (as the thread loader does).
    """
    import grain
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain reads absl flags; from a notebook or script nobody parsed them
        flags.FLAGS.mark_as_parsed()
    chunks = _Chunks(source.items, chunk or chunk_size(size))
    ds = grain.MapDataset.source(chunks).map(_Decode(source.reader, decode, enter, size, resample)).to_iter_dataset()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=check_workers(workers)))
    it = iter(ds)
    for i in range(len(chunks)):
        try:
            out = next(it)
        except StopIteration:
            out = None
        except Exception as e:
            if isinstance(e, passthrough):
                raise
            items = chunks[i]
            raise WorkerError(f"a loader worker failed while decoding {items[0].name} .. {items[-1].name} "
                              f"({type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}); "
                              f"run the same command again to resume from the last checkpoint") from None
        if out is None:
            items = chunks[i]
            raise WorkerError(f"the loader workers stopped before decoding {items[0].name} .. {items[-1].name}; "
                              f"run the same command again to resume from the last checkpoint")
        order, images, reasons = out
        items = chunks[i]
        for j, (k, reason) in enumerate(zip(order, reasons)):
            yield items[k], (None if reason else images[j]), reason


__all__ = ["CHUNK_BYTES", "MAX_CHUNK", "WorkerError", "check_workers", "chunk_size", "decoded"]
