"""Training checkpoints in a workdir: ``checkpoints/ckpt_<epoch>_<step>/``, each an orbax checkpoint
of the whole ``TrainState`` (parameters, optimiser state, batch statistics, lookahead's slow
weights) with a manifest holding the epoch, the steps done in it and the running sums.

``save`` keeps the last ``keep``; ``load`` restores into a template state and refuses, naming the
checkpoint and the fix, one that is unreadable or belongs to another network. Writes are atomic
(``jfv.models.weights.save``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jfv.models.weights import WeightsError, restore, save as save_weights

FOLDER = "checkpoints"
NAME = re.compile(r"^ckpt_(\d{4})_(\d{5})$")
STATE_MODEL = "jfv-train-state"  # the manifest's model name for a training checkpoint


class CheckpointError(ValueError):
    """A training checkpoint that cannot be read or does not fit the network; the message names the fix."""


def checkpoints(workdir: Path) -> list[tuple[int, int, Path]]:
    """(epoch, steps done in it, folder) of every training checkpoint in ``workdir``, oldest first."""
    folder = Path(workdir) / FOLDER
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), int(m.group(2)), p) for p in folder.iterdir() if (m := NAME.match(p.name)))


def save(workdir: Path, state, epoch: int, step: int, sums: dict, keep: int) -> Path:
    """Writes ``state`` as ``ckpt_<epoch>_<step>`` with ``sums`` in its manifest; keeps the last ``keep``."""
    leaves = jax.tree.leaves(jax.device_get(state))
    tree = {f"leaf_{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}
    path = Path(workdir) / FOLDER / f"ckpt_{epoch:04d}_{step:05d}"
    save_weights(path, tree, {"model": STATE_MODEL, "epoch": epoch, "step": step, "sums": sums})
    for _, _, old in checkpoints(workdir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load(path: Path, template):
    """(the state in ``path``, shaped and typed as ``template``; its manifest).

    Raises:
        CheckpointError: unreadable, or leaves that do not fit ``template``; the message says which
            checkpoint to delete to resume from the one before (or to start over).
    """
    earlier = [p.name for _, _, p in checkpoints(path.parent.parent) if p.name < path.name]
    fix = (f"delete {path} to resume from {earlier[-1]}" if earlier else f"delete {path} to start over") + \
        " (or use a new --workdir)"
    try:
        tree, manifest = restore(path, fix, model=STATE_MODEL)
    except WeightsError as e:
        raise CheckpointError(f"training checkpoint {path} cannot be read ({str(e).split(';')[0]}); {fix}") from None
    leaves, treedef = jax.tree.flatten(jax.device_get(template))
    got = [tree.get(f"leaf_{i:04d}") for i in range(len(leaves))]
    if len(tree) != len(leaves) or any(g is None or g.shape != np.shape(t) for g, t in zip(got, leaves)):
        raise CheckpointError(f"training checkpoint {path} does not fit this network; {fix}")
    state = jax.tree.unflatten(treedef, [jnp.asarray(g, np.asarray(t).dtype) for g, t in zip(got, leaves)])
    return state, manifest
