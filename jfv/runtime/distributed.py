"""Jobs over several processes: ``jax.distributed`` started once, and the barriers between stages.

A distributed jfv job runs the same command on every process (one per host, or several on one host
for a test) with a workdir every process sees. ``initialize`` starts ``jax.distributed`` (found
automatically on a TPU pod slice, SLURM or Open MPI; elsewhere from a coordinator address, a process
count and this process's id) and returns ``(process_index, process_count)``; ``barrier`` waits until
every process reaches a named point. Processes exchange their results through files in the shared
workdir (each writes its own part, process 0 reads them after a barrier), never through a collective:
they reach the end of a pass or a layer hours apart, and ``multihost_utils.sync_global_devices``'s CPU
context gives up after 30 s, where a barrier in the coordination service's key-value store waits as long
as it is told and sees at once a process that failed (``announce_failure``).

Example:
    >>> index, count = initialize(True, "10.0.0.1:1234", num_processes=2, process_id=0)
    >>> barrier("jfv-pass-done", count)
"""

from __future__ import annotations

import time

WAIT_S = 7 * 24 * 3600  # a barrier waits a week: the slowest process may still be reading its shard
POLL_S = 0.2  # how often a waiting process looks at the others
FAILED = "jfv/failed/"  # where a process that stopped leaves its error (key-value store)


class DistributedError(ValueError):
    """A distributed job that cannot start: no coordinator, or an inconsistent process layout."""


def initialize(distributed: bool, coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1) -> tuple[int, int]:
    """Starts ``jax.distributed`` when ``distributed`` is true: ``(process_index, process_count)``.

    Args:
        distributed: False for a one-process job, which returns ``(0, 1)`` and starts nothing.
        coordinator_address: ``HOST:PORT`` of process 0's coordinator; empty to let JAX find it
            (TPU pod slices, SLURM, Open MPI).
        num_processes: the number of processes (with ``coordinator_address``).
        process_id: this process's index, 0..num_processes-1 (with ``coordinator_address``).

    Returns:
        ``(jax.process_index(), jax.process_count())``.

    Raises:
        DistributedError: a coordinator address without a process count and id, or no coordinator
            reached; the message names the keys to set.
    """
    if not distributed:
        return 0, 1
    import jax

    kwargs = {}
    if coordinator_address:
        if int(num_processes) < 1 or not 0 <= int(process_id) < int(num_processes):
            raise DistributedError(f"with coordinator_address also set num_processes (>= 1) and process_id "
                                   f"(0..num_processes-1), got num_processes={num_processes}, process_id={process_id}")
        kwargs = dict(coordinator_address=coordinator_address, num_processes=int(num_processes),
                      process_id=int(process_id))
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedError(
            f"distributed=True but no coordinator could be reached or detected ({first[:200]}); on a TPU pod "
            f"slice, SLURM or Open MPI it is found automatically, elsewhere set coordinator_address="
            f"HOST:PORT num_processes=N process_id=I on every process") from None
    return jax.process_index(), jax.process_count()


def _client():
    """The coordination service's client of this process, or None outside a distributed job."""
    import sys

    if "jax" not in sys.modules:
        return None
    from jax._src import distributed

    return distributed.global_state.client


def barrier(name: str, count: int, timeout_s: int = WAIT_S, poll_s: float = POLL_S) -> None:
    """Waits until every one of ``count`` processes reaches ``name`` (returns at once for one process).

    Each process marks its arrival in the coordination service's key-value store and waits for the
    others', watching for a process that failed (``announce_failure``): then it raises at once,
    naming that process and its error, instead of waiting for a process that will never come (or
    for XLA's shutdown barrier to abort every process minutes later).

    Args:
        name: the barrier's name; each name is used once per job run.
        count: the job's process count.
        timeout_s: how long to wait for the slowest process.
        poll_s: how often to look.

    Raises:
        DistributedError: another process failed, or ``timeout_s`` passed.
    """
    if count <= 1:
        return
    client = _client()
    if client is None:
        raise DistributedError(f"barrier {name!r} for {count} processes outside a distributed job: start "
                               f"jax.distributed first (jfv.runtime.distributed.initialize)")
    import jax

    client.key_value_set(f"jfv/barrier/{name}/{jax.process_index()}", "1")
    deadline = time.monotonic() + timeout_s
    while True:
        failed = client.key_value_dir_get(FAILED)
        if failed:
            key, message = sorted(failed)[0]
            raise DistributedError(f"process {key.rsplit('/', 1)[-1]} stopped: {message}")
        if len(client.key_value_dir_get(f"jfv/barrier/{name}/")) >= count:
            return
        if time.monotonic() > deadline:
            raise DistributedError(f"waited {timeout_s} s at {name!r} for the other processes; check that every "
                                   f"process runs the same command")
        time.sleep(poll_s)


def agree_to_stop(stop: bool, name: str, count: int, timeout_s: int = WAIT_S) -> bool:
    """Whether any of ``count`` processes wants to stop at the point ``name`` (every process calls it
    at the same points, with its own ``stop``): all get the same answer, so all stop at the same step
    (a process that stopped alone would leave the others in a collective waiting for it).

    Args:
        stop: this process's wish (its ``StopFlag``).
        name: the point, unique per job run (e.g. ``"epoch-3-step-120"``).
        count: the job's process count (1: returns ``stop``).
        timeout_s: how long to wait for the others' answers.

    Returns:
        True when at least one process wants to stop.
    """
    if count <= 1:
        return bool(stop)
    import jax

    client = _client()
    client.key_value_set(f"jfv/stop/{name}/{jax.process_index()}", "1" if stop else "0")
    return any(client.blocking_key_value_get(f"jfv/stop/{name}/{i}", int(timeout_s) * 1000) == "1"
               for i in range(count))


def announce_failure(message: str) -> None:
    """Tells the other processes of a distributed job that this one stopped with ``message`` (their
    ``barrier`` raises it); nothing outside a distributed job. The command line calls it for every
    error it reports."""
    client = _client()
    if client is None:
        return
    import jax

    if jax.process_count() > 1:
        try:
            client.key_value_set(f"{FAILED}{jax.process_index()}", message)
        except Exception:  # the service may be gone already; the error itself is reported anyway
            pass


__all__ = ["DistributedError", "POLL_S", "WAIT_S", "agree_to_stop", "announce_failure", "barrier", "initialize"]
