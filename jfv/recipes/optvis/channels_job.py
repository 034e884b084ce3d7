"""The rendering side of the channels recipe: one engine per layer, its channels in groups, each
group's checkpoints (save, restore) and, when it finishes, its PNGs and record (``ChannelsJob``).
The file names of a run (``image_path``, ``alpha_path``, ``piece_name``) are here too.
"""

from __future__ import annotations

import jax
import numpy as np

from jfv.optvis.engine import Engine, StateMismatchError
from jfv.runtime.jobs import Interrupted, Job, StateError, StopFlag
from jfv.runtime.outputs import transparency_overlay
from jfv.recipes.optvis.settings import make_optimiser, make_param, objective_factory

CHECKPOINT_EVERY = 0  # steps between checkpoints where the config has no checkpoint_every (the quick start)


def piece_name(layer: str, group: int) -> str:
    return f"{layer}_g{group:04d}"


def image_path(layer: str, channel: int, k: int | None = None) -> str:
    """``channels/<layer>_<cccc>.png``; with ``k`` (a channel's k-th of several images) ``..._<k>.png``."""
    return f"channels/{layer}_{channel:04d}{'' if k is None else f'_{k}'}.png"


def alpha_path(layer: str, channel: int, k: int | None = None) -> str:
    return image_path(layer, channel, k)[: -len(".png")] + "_alpha.png"


def images_per_channel(config) -> int:
    return int(config.get("images_per_channel", 1))


class ChannelsJob:
    """The rendering side of the recipe: engines per layer, groups, checkpoints, outputs."""

    def __init__(self, config, model, layers, channels, job: Job, mesh, tf, progress, flag: StopFlag):
        self.config, self.model, self.layers, self.channels, self.job = config, model, layers, channels, job
        self.progress, self.flag = progress, flag
        self.per_channel = images_per_channel(config)
        self.param = make_param(config, model.channels, self.per_channel)
        self.tf = tf
        self.transparency = config.param == "maco"  # MACO's map, carried in the state (and its checkpoints)
        optimiser = make_optimiser(config)
        self.objectives = {layer: objective_factory(config.objective, layer, config.get("diversity", 0.0))
                           for layer in layers}
        self.engines = {layer: Engine.for_channels(model, self.objectives[layer], self.param, self.tf, optimiser,
                                                   mesh=mesh, transparency=self.transparency)
                        for layer in layers}
        self.key = jax.random.key(config.seed)

    def group_size(self, layer: str) -> int:
        n = len(self.channels[layer])
        return self.engines[layer].group_size(self.config.batch_size or n, n)

    def pieces(self) -> list[tuple[str, int, list[int]]]:
        """Every (layer, group index, channels) of the job, in a fixed order."""
        out = []
        for layer in self.layers:
            chans, b = self.channels[layer], self.group_size(layer)
            out += [(layer, g, chans[i : i + b]) for g, i in enumerate(range(0, len(chans), b))]
        return out

    def run_piece(self, layer: str, group: int, chans: list[int], done_before: int) -> dict:
        engine, steps, name = self.engines[layer], self.config.steps, piece_name(layer, group)
        b = self.group_size(layer)
        vs = np.zeros(len(chans), np.float32)
        cs, _ = engine.pad(chans, vs, b)  # the padded group, as its checkpoints record it
        saved = self.job.load_state(name, discard=self.config.get("discard_state", False))
        state, history = (None, None) if saved is None else self.restore(engine, name, saved, chans, b)
        every = int(self.config.get("checkpoint_every", CHECKPOINT_EVERY))

        def between(st, hist, done):
            if self.flag.stop:
                self.save(name, st, hist, cs)
                raise Interrupted(
                    f"{self.flag.name()}: checkpointed {layer} group {group} at step {done}/{steps}; run the same "
                    f"command again to resume", self.flag.signum)
            if every and done < steps and done // every > (done - engine.chunk) // every:
                self.save(name, st, hist, cs)

        out = engine.render_group(self.key, chans, vs, steps, size=b, state=state, history=history, between=between,
                                  progress=lambda cell_steps: self.progress(done_before + cell_steps, None))
        entries = [self.write_channel(layer, int(c), out, i) for i, c in enumerate(chans)]
        record = {"layer": layer, "group": group, "channels": [int(c) for c in chans], "entries": entries}
        self.job.finish(name, record)
        return record

    def write_channel(self, layer: str, c: int, out, i: int) -> dict:
        """Channel ``c``'s PNGs (row ``i`` of the group's result) and its manifest entry."""
        n = self.per_channel
        paths, alphas = [image_path(layer, c, k if n > 1 else None) for k in range(n)], []
        for k, rel in enumerate(paths):
            self.job.save_png(rel, out.images[i, k])
            if out.transparency is not None:
                alphas.append(alpha_path(layer, c, k if n > 1 else None))
                self.job.save_png(alphas[-1], transparency_overlay(out.images[i, k], out.transparency[i, k]))
        entry = {"layer": layer, "channel": c, "image": paths[0], "objective": round(float(out.objective[i]), 6)}
        if n > 1:
            entry["images"] = paths
        if alphas:
            entry["alpha"] = alphas[0]
            if n > 1:
                entry["alphas"] = alphas
        return entry

    def save(self, name, state, history, cs) -> None:
        """Checkpoints piece ``name``'s padded state (the layer engine's ``save_state``), history and channels."""
        tree = self.engines[name[: name.rindex("_g")]].save_state(state)  # name = piece_name(layer, group)
        tree.update(history=np.asarray(history), channels=np.asarray(cs, np.int32))
        self.job.save_state(name, tree)

    def restore(self, engine: Engine, name: str, saved: dict, chans: list[int], size: int):
        """(state on the engine's devices, padded history) from piece ``name``'s checkpoint of the group
        ``chans`` padded to ``size``; StateError if it is not one (other shapes or channels)."""
        vs = np.zeros(len(chans), np.float32)
        try:
            ok = (np.array_equal(saved["channels"], engine.pad(chans, vs, size)[0])
                  and saved["history"].shape == (size, self.config.steps))
            state = engine.restore_state(saved, self.key, chans, vs, size) if ok else None
        except (KeyError, StateMismatchError):
            state = None
        if state is None:
            raise StateError(f"the in-flight checkpoint {self.job.state_path(name)} does not fit this job's group "
                             f"(other shapes or channels); re-run with {self.job.fixes['discard_state']} to render that "
                             f"group again from the start (finished channels are kept)")
        return state, saved["history"]
