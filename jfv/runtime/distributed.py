"""Jobs over several processes: ``jax.distributed`` started once, and the barriers between stages.

A distributed jfv job runs the same command on every process (one per host, or several on one host
for a test) with a workdir every process sees. ``initialize`` starts ``jax.distributed`` (found
automatically on a TPU pod slice, SLURM or Open MPI; elsewhere from a coordinator address, a process
count and this process's id) and returns ``(process_index, process_count)``; ``barrier`` waits until
every process reaches a named point. Processes exchange their results through files in the shared
workdir (each writes its own part, process 0 reads them after a barrier), never through a collective:
they reach the end of a pass or a layer hours apart, and ``multihost_utils.sync_global_devices``'s CPU
context gives up after 30 s, where the coordination service's barrier waits as long as it is told.

Example:
    >>> index, count = initialize(True, "10.0.0.1:1234", num_processes=2, process_id=0)
    >>> barrier("jfv-pass-done", count)
"""

from __future__ import annotations

import jax

WAIT_S = 7 * 24 * 3600  # a barrier waits a week: the slowest process may still be reading its shard


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
            f"slice, SLURM or Open MPI it is found automatically, elsewhere set --config.coordinator_address="
            f"HOST:PORT --config.num_processes=N --config.process_id=I on every process") from None
    return jax.process_index(), jax.process_count()


def barrier(name: str, count: int, timeout_s: int = WAIT_S) -> None:
    """Waits until every one of ``count`` processes reaches ``name`` (returns at once for one process).

    Args:
        name: the barrier's name; each name is used once per job run.
        count: the job's process count.
        timeout_s: how long to wait for the slowest process.
    """
    if count > 1:
        from jax._src import distributed

        distributed.global_state.client.wait_at_barrier(name, int(timeout_s) * 1000)


__all__ = ["DistributedError", "WAIT_S", "barrier", "initialize"]
