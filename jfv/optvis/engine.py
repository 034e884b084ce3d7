"""The render engine: one object that owns the compiled programs and advances *cells*.

A cell is (channel, regulariser value, optional starting state). ``Engine(model, make, param,
transforms)`` compiles three programs once, when first used, and keeps them for its lifetime (no
global cache: hold the engine to reuse its compilations, as one holds an optax transformation):

- ``init(key, channels, values) -> state``: each cell's initial parameters and optimiser state;
- ``advance(model_params, state, channels, values, active) -> (state, history)``: ``chunk`` steps
  of every cell, vmapped; steps at index >= ``active`` inside the chunk leave the state unchanged,
  so a step count that does not divide the chunk pads the last chunk instead of shrinking all;
- ``final(model_params, state, channels, values) -> (images, objective)``: the untransformed
  images and the objective on them.

``make(channel, value) -> Setup(objective, optimiser, transforms=None)`` is called with traced
arguments, so every cell of a group shares one program. Between chunks sit the progress callback,
the non-finite check and whatever a caller hooks in (checkpoints, stop requests).

The engine also owns the loop over one *group* of cells, ``render_group``: pad the cells to the
group size (with the last cell: one program for every group), init them (or take a given starting
state: an octave stage's carried state, a checkpoint's), advance ``steps`` chunk by chunk, final.
``save_state`` / ``restore_state`` turn a group's in-flight state into host arrays and back onto the
engine's devices (with its sharding). ``render_cells`` (and through it ``render_channels``,
``render_sweep``, the study), ``render_octave_cells`` and the whole-layer job are thin callers.

Keys: cell (c, v) starts from ``fold_in(key, c)``: its initial parameters use the first half of
``split`` of that key, step ``t``'s transforms ``fold_in(second half, t)``. A cell's image depends
only on (key, channel, value, settings): not on the batch, the chunk, the device count or on
whether the run was interrupted and resumed.

Erhan et al. 2009 (activation maximisation); Olah et al. 2017 and Lucid's ``optvis.render``.

Example:
    >>> engine = Engine.for_channels(model, lambda c: objectives.channel("conv4_3", c),
    ...                              parameterisations.image(128), transforms.standard(), optax.adam(0.05))
    >>> out = engine.render([48, 62], jax.random.key(0), steps=256, batch_size=8)
    >>> out.images.shape
    (2, 1, 128, 128, 3)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jfv.runtime import errors
from jfv.optvis import objectives as objectives_lib
from jfv.models import plain
from jfv.models.base import Model
from jfv.optvis.parameterisations import ImageParam
from jfv.optvis.transforms import Transform

Array = jax.Array
ProgressFn = Callable[[int, int], None]


class RenderState(NamedTuple):
    """What one cell carries between steps (a leading cell axis inside the engine)."""

    params: Any  # the image parameterisation's pytree
    opt_state: optax.OptState
    step: Array  # int32 steps taken so far
    key: Array  # the key that step t folds t into
    # (n, H, W, 3) sum over steps of |d objective / d image| (MACO's transparency), or None when not
    # asked: None is an empty pytree, so ordinary states, programs and checkpoints are unchanged.
    transparency: Any = None


class Rendered(NamedTuple):
    """Result of a render.

    Attributes:
        images: (n, H, W, 3) in [0, 1] for ``render``; (C, n, H, W, 3) for ``render_channels``.
        objective: the objective on the final, untransformed images; scalar or (C,).
        history: the objective (under that step's transforms) before every step; (steps,) or (C, steps).
        transparency: with ``transparency=True``, the sum over steps of ``|d objective / d image|`` at
            the untransformed image, shaped as ``images``; otherwise None.
    """

    images: Any
    objective: Any
    history: Any
    transparency: Any = None


class RenderedGroup(NamedTuple):
    """Result of ``Engine.render_group`` for its k real cells.

    Attributes:
        images: as ``Rendered``'s for the k cells, a numpy array (k, n, H, W, 3); None with
            ``final=False``.
        objective: (k,); None with ``final=False``.
        history: (k, steps).
        transparency: (k, n, H, W, 3) or None; None with ``final=False``.
        state: the whole padded group's state after the last step, on the engine's devices (what an
            octave stage carries on, or ``save_state`` checkpoints).
    """

    images: Any
    objective: Any
    history: Any
    transparency: Any
    state: RenderState


class StateMismatchError(ValueError):
    """Saved arrays that do not fit a group's state (other leaves, shapes or dtypes)."""


class Setup(NamedTuple):
    """What ``make(channel, value)`` returns for one cell. transforms None: the engine's default."""

    objective: objectives_lib.Objective
    optimiser: optax.GradientTransformation
    transforms: Transform | None = None


SetupFn = Callable[[Array, Array], "Setup | tuple"]


class NonFiniteError(ValueError):
    """The objective became NaN or infinite: the message names the step, the cells and the fix."""


def default_chunk() -> int:
    """Steps per compiled call: 1 on CPU (straight-line code; see ``_advance_cell``), 64 elsewhere."""
    return 1 if jax.default_backend() == "cpu" else 64


UNROLL_LIMIT = 2  # chunks of at most this many steps are traced as straight-line code


def activations(model: Model, model_params: Any, images: Array, x: Array,
                objective: objectives_lib.Objective | None = None) -> dict[str, Array]:
    """The model's activations of ``x`` plus the untransformed ``images`` under ``"input"``.

    With an ``objective`` that reads one channel of one layer (``objective.channel``) of a plain
    conv/ReLU/max-pool stack, only that channel is computed from the layer's last conv on
    (``jfv.models.plain.channel_activations``: the same values, ~12% less work on VGG16 ``conv4_3``);
    ``JFV_FULL_LAYERS=1`` turns that off.
    """
    read = None if objective is None else objective.channel
    if read is not None and plain.slicing_enabled() and plain.sliced_conv_index(model, read[0]) is not None:
        acts = plain.channel_activations(model, model_params, x, read[0], read[1])
    else:
        acts = dict(model.apply(model_params, x))
    acts[objectives_lib.INPUT] = images
    return acts


def init_cell(param: ImageParam, optimiser: optax.GradientTransformation, key: Array,
              transparency: bool = False) -> RenderState:
    """A cell's initial state from its key (``fold_in(key, channel)``); zero transparency if asked."""
    k_init, k_steps = jax.random.split(key)
    p = param.init(k_init)
    acc = jnp.zeros(jax.eval_shape(param.to_image, p).shape, jnp.float32) if transparency else None
    return RenderState(p, optimiser.init(p), jnp.zeros((), jnp.int32), k_steps, acc)


def step_cell(model, objective, param, transforms, optimiser, model_params, s: RenderState):
    """One optimisation step of one cell: (new state, objective before the step). Pure.

    With a transparency accumulator in the state, the gradient is split at the image with
    ``jax.vjp`` (``d loss / d params = vjp_to_image(d loss / d image)``) and ``|d objective / d image|``
    is added to it; without one, the step is the plain ``value_and_grad`` through ``to_image``.
    """

    def image_loss(images, key):
        return -objective(activations(model, model_params, images, transforms(key, images), objective))

    def loss(p, key):
        return image_loss(param.to_image(p), key)

    key = jax.random.fold_in(s.key, s.step)
    if s.transparency is None:
        value, grads = jax.value_and_grad(loss)(s.params, key)
        transparency = None
    else:
        images, pullback = jax.vjp(param.to_image, s.params)
        value, image_grads = jax.value_and_grad(image_loss)(images, key)
        (grads,) = pullback(image_grads)
        transparency = s.transparency + jnp.abs(image_grads)
    updates, opt_state = optimiser.update(grads, s.opt_state, s.params)
    return RenderState(optax.apply_updates(s.params, updates), opt_state, s.step + 1, s.key, transparency), -value


def _advance_cell(model, objective, param, transforms, optimiser, n_steps, model_params, state, active):
    """``n_steps`` steps of one cell; steps with index >= ``active`` keep the state unchanged."""

    def step(s, i):
        new, value = step_cell(model, objective, param, transforms, optimiser, model_params, s)
        keep = i < active
        pick = lambda x, y: jax.tree.map(lambda a, b: jnp.where(keep, a, b), x, y)
        s = RenderState(*(pick(x, y) for x, y in zip(new[:3], s[:3])), s.key, pick(new.transparency, s.transparency))
        return s, value

    if n_steps > UNROLL_LIMIT:
        return jax.lax.scan(step, state, jnp.arange(n_steps))
    # XLA:CPU runs convolutions inside a while loop (even a one-trip loop, which is what
    # scan(unroll=True) emits) at less than half their speed (jax#12868), so short chunks are
    # traced as straight-line code.
    values = []
    for i in range(n_steps):
        state, v = step(state, i)
        values.append(v)
    return state, jnp.stack(values)


def final_cell(model, objective, param, model_params, state):
    """The untransformed images of a cell and the objective on them."""
    images = param.to_image(state.params)
    return images, objective(activations(model, model_params, images, images, objective))


def to_host(state: RenderState) -> RenderState:
    """The state as numpy arrays (the key as its raw ``key_data``), e.g. for a checkpoint."""
    arrays = jax.tree.map(np.asarray, state._replace(key=jax.random.key_data(state.key)))
    return arrays


def from_host(state: RenderState) -> RenderState:
    """Inverse of ``to_host``: device arrays, the key wrapped back into a typed PRNG key."""
    state = jax.tree.map(jnp.asarray, state)
    return state._replace(key=jax.random.wrap_key_data(state.key))


def channel_key(key: Array, channel: int) -> Array:
    """The key a channel's cells start from: ``fold_in(key, channel)``."""
    return jax.random.fold_in(key, channel)


class Engine:
    """Compiled programs for one (model, make, param, transforms, chunk, mesh), and the group loop.

    Args:
        model: the network; its params are an argument of the programs, never baked in.
        make: ``(channel int32, value) -> Setup(objective, optimiser[, transforms])`` with traced
            arguments; every value must give arrays of the same shapes (one program).
        param: the image parameterisation, shared by all cells.
        transforms: transforms for cells whose Setup has none.
        chunk: steps per compiled call (default ``default_chunk()``); results do not depend on it.
        mesh: a ``jax.sharding.Mesh`` whose first axis shards the cell axis (params replicated);
            None runs on the default device.
        check_finite: stop with ``NonFiniteError`` when a cell's objective becomes NaN or infinite.
        transparency: also accumulate ``|d objective / d image|`` over the steps (MACO's
            transparency map), returned as ``Rendered.transparency``; off, nothing extra is computed.
    """

    def __init__(self, model: Model, make: SetupFn, param: ImageParam, transforms: Transform, *,
                 chunk: int | None = None, mesh: Mesh | None = None, check_finite: bool = True,
                 transparency: bool = False):
        chunk = default_chunk() if chunk is None else int(chunk)
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.model, self.make, self.param, self.transforms = model, make, param, transforms
        self.chunk, self.mesh, self.check_finite = chunk, mesh, check_finite
        self.transparency = bool(transparency)
        self.devices = 1 if mesh is None else int(mesh.devices.size)

        def setup(c, v) -> Setup:
            s = Setup(*make(c, v))
            return s if s.transforms is not None else s._replace(transforms=transforms)

        def init(key, channels, values):
            return jax.vmap(lambda c, v: init_cell(param, setup(c, v).optimiser, channel_key(key, c), transparency))(
                channels, values)

        def advance(model_params, state, channels, values, active):
            def one(st, c, v):
                s = setup(c, v)
                return _advance_cell(model, s.objective, param, s.transforms, s.optimiser, chunk, model_params, st, active)

            return jax.vmap(one)(state, channels, values)

        def final(model_params, state, channels, values):
            return jax.vmap(lambda st, c, v: final_cell(model, setup(c, v).objective, param, model_params, st))(
                state, channels, values)

        self.setup_traced = setup
        self._init_fn = init
        if mesh is not None:
            self._cells = NamedSharding(mesh, P(mesh.axis_names[0]))
            self._rep = NamedSharding(mesh, P())
        self._init = self.jit(init, replicated=1)
        self._advance = self.jit(advance, replicated=1, last_replicated=True)
        self._final = self.jit(final, replicated=1)
        self._programs: dict = {}
        self._model_params = None

    def jit(self, fn: Callable, *, replicated: int = 1, last_replicated: bool = False) -> Callable:
        """``jax.jit(fn)``; with a mesh the first ``replicated`` arguments (and the last, if
        ``last_replicated``) are replicated and the others and the outputs sharded on the cell axis."""
        if self.mesh is None:
            return jax.jit(fn)
        n = fn.__code__.co_argcount
        shardings = [self._rep if i < replicated or (last_replicated and i == n - 1) else self._cells
                     for i in range(n)]
        return jax.jit(fn, in_shardings=tuple(shardings), out_shardings=self._cells)

    def program(self, name: Any, build: Callable[[], Callable]) -> Callable:
        """An extra compiled program this engine keeps (built once by ``build()``), e.g. octave carries."""
        if name not in self._programs:
            self._programs[name] = build()
        return self._programs[name]

    @classmethod
    def for_channels(cls, model: Model, objective_fn: Callable[[Array], objectives_lib.Objective],
                     param: ImageParam, transforms: Transform, optimiser: optax.GradientTransformation,
                     **kwargs) -> "Engine":
        """An engine whose cell (c, _) maximises ``objective_fn(c)`` with ``optimiser``."""
        return cls(model, lambda c, v: Setup(objective_fn(c), optimiser), param, transforms, **kwargs)

    def __repr__(self) -> str:
        return (f"Engine({self.model.name!r}, {self.param!r}, {self.transforms!r}, chunk={self.chunk}, "
                f"devices={self.devices}{', transparency=True' if self.transparency else ''})")

    # -- pieces --------------------------------------------------------------------------------

    def setup(self, channel: int, value: Any = 0.0) -> Setup:
        """The cell's Setup, built concretely (bad strengths fail here, before any compilation)."""
        return self.setup_traced(np.int32(channel), np.asarray(value, np.float32))

    def check(self, channel: int, value: Any = 0.0) -> None:
        """Refuses unknown layers before compiling."""
        for name in self.setup(channel, value).objective.layers:
            self.model.check_layer(name)

    def group_size(self, batch_size: int | None, n: int) -> int:
        """Cells per compiled call: ``batch_size`` (all if None), rounded up to the device count."""
        b = n if not batch_size else max(1, min(int(batch_size), n))
        return int(math.ceil(b / self.devices) * self.devices)

    def params(self):
        """The model params, replicated over the mesh once."""
        if self._model_params is None:
            p = self.model.params
            self._model_params = p if self.mesh is None else jax.device_put(p, self._rep)
        return self._model_params

    def use_params(self, params) -> None:
        """Renders with ``params`` from now on, reusing the compiled programs (the layout must be the
        model's): e.g. a network's weights after each epoch of training."""
        self._model_params = params if self.mesh is None else jax.device_put(params, self._rep)

    def put(self, x):
        x = jnp.asarray(x)
        return x if self.mesh is None else jax.device_put(x, self._cells)

    def init(self, key: Array, channels, values) -> RenderState:
        """The batched initial state of the cells (channels (B,), values (B, ...))."""
        return self._init(key, self.put(np.asarray(channels, np.int32)), self.put(np.asarray(values, np.float32)))

    def final(self, state: RenderState, channels, values) -> tuple[np.ndarray, np.ndarray]:
        imgs, objective = self._final(self.params(), state, self.put(np.asarray(channels, np.int32)),
                                      self.put(np.asarray(values, np.float32)))
        return np.asarray(imgs), np.asarray(objective)

    def pad(self, channels, values, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A group's k cells padded to ``size`` cells with copies of the last one, so that every group
        shares one program: (size,) int32 channels and (size, ...) float32 values. Default size: k
        rounded up to the device count; it must be >= k and a multiple of the device count."""
        cs = np.asarray(channels, np.int32).reshape(-1)
        vs = np.asarray(values, np.float32)
        k = len(cs)
        if k == 0:
            raise ValueError("nothing to render: give at least one channel")
        if vs.ndim < 1 or len(vs) != k:
            raise ValueError(f"a group needs one value per channel: {k} channels, values of shape {vs.shape}")
        size = self.group_size(None, k) if size is None else int(size)
        if size < k or size % self.devices:
            raise ValueError(f"a group of {k} cells cannot be padded to {size} on {self.devices} device(s): "
                             f"give a size >= {k} that is a multiple of {self.devices}")
        idx = np.minimum(np.arange(size), k - 1)
        return cs[idx], vs[idx]

    def save_state(self, state: RenderState) -> dict[str, np.ndarray]:
        """A group's state as host arrays, one per leaf, named ``leaf_0000``, ``leaf_0001``, ... in
        ``jax.tree.leaves`` order (the key as its raw ``key_data``): what an in-flight checkpoint holds.
        ``restore_state`` puts it back."""
        return {f"leaf_{i:04d}": x for i, x in enumerate(jax.tree.leaves(to_host(state)))}

    def restore_state(self, arrays: Mapping[str, np.ndarray], key: Array, channels, values,
                      size: int | None = None) -> RenderState:
        """Inverse of ``save_state`` for the group (channels, values) padded to ``size`` (as ``pad``):
        every ``leaf_*`` array is checked against the shape and dtype of the group's initial state
        (traced, not computed; ``key`` gives the key's type), and the state is put on the engine's
        devices with its sharding, so ``render_group(state=...)`` continues it exactly.

        Raises:
            StateMismatchError: the arrays are not such a state (other leaves, shapes or dtypes).
        """
        cs, vs = self.pad(channels, values, size)

        def host_layout(key, cs, vs):
            s = self._init_fn(key, cs, vs)
            return s._replace(key=jax.random.key_data(s.key))

        leaves, treedef = jax.tree.flatten(jax.eval_shape(host_layout, key, cs, vs))
        names = [f"leaf_{i:04d}" for i in range(len(leaves))]
        given = sorted(name for name in arrays if name.startswith("leaf_"))
        if given != names:
            raise StateMismatchError(f"a group state has {len(names)} leaves ({names[0]} ...), these arrays "
                                     f"{len(given)}")
        got = [np.asarray(arrays[name]) for name in names]
        for name, g, t in zip(names, got, leaves):
            if g.shape != t.shape or g.dtype != t.dtype:
                raise StateMismatchError(f"{name} is {g.dtype}{list(g.shape)}, the group's state holds "
                                         f"{t.dtype}{list(t.shape)} there")
        state = from_host(jax.tree.unflatten(treedef, got))
        return state if self.mesh is None else jax.device_put(state, self._cells)

    # -- the loop ------------------------------------------------------------------------------

    def advance_group(self, state: RenderState, channels, values, steps: int, *, history: np.ndarray | None = None,
                      real: int | None = None, between: Callable[[RenderState, np.ndarray, int], None] | None = None,
                      ) -> tuple[RenderState, np.ndarray]:
        """Advances a padded group from ``state.step`` to ``steps``, chunk by chunk.

        Args:
            state: the group's state (from ``init``, ``carry`` or a checkpoint).
            channels: the group's cells' channels, (B,), B a multiple of the devices.
            values: the group's cells' values, (B, ...).
            steps: the step count to reach.
            history: (B, steps) objective values so far (from a checkpoint), or None.
            real: how many leading cells are real (the rest pad the group); default all.
            between: called as ``between(state, history, steps_done)`` after every chunk, once the
                chunk has finished; it may checkpoint, report progress or raise to stop.

        Returns:
            (state, history (B, steps)).
        """
        b = len(channels)
        real = b if real is None else real
        cs = self.put(np.asarray(channels, np.int32))
        vs = self.put(np.asarray(values, np.float32))
        hist = np.full((b, steps), np.nan, np.float32) if history is None else np.array(history, np.float32)
        done = int(np.asarray(state.step).reshape(-1)[0])
        model_params = self.params()
        while done < steps:
            active = min(self.chunk, steps - done)
            state, h = self._advance(model_params, state, cs, vs, jnp.asarray(active, jnp.int32))
            h = np.asarray(h)  # waits for the chunk: progress and checks see finished work only
            hist[:, done : done + active] = h[:, :active]
            if self.check_finite and not np.isfinite(h[:real, :active]).all():
                bad = sorted({int(c) for c, ok in zip(np.asarray(channels)[:real], np.isfinite(h[:real, :active]).all(1))
                              if not ok})
                t = done + int(np.argmin(np.isfinite(h[:real, :active]).all(0)))
                raise NonFiniteError(
                    f"the objective became non-finite at step {t} for channel(s) {bad[:8]}"
                    f"{' ...' if len(bad) > 8 else ''}: lower learning_rate or the regulariser strength "
                    f"(and check they are finite numbers)")
            done += active
            if between is not None:
                between(state, hist, done)
            errors.raise_if_interrupted()
        return state, hist

    def render_group(self, key: Array, channels, values, steps: int, *, size: int | None = None,
                     state: RenderState | Callable[[np.ndarray, np.ndarray], RenderState] | None = None,
                     history: np.ndarray | None = None,
                     between: Callable[[RenderState, np.ndarray, int], None] | None = None,
                     progress: Callable[[int], None] | None = None, final: bool = True) -> RenderedGroup:
        """Renders one group of cells: pad, init (or start from ``state``), advance to ``steps``, final.

        Args:
            key: the render's key (cell c starts from ``fold_in(key, c)``).
            channels: the channels of the group's k real cells, (k,).
            values: their values, (k,) or (k, m).
            steps: the step count to reach.
            size: the group size the cells are padded to (``pad``); default k rounded up to the
                device count. Every group of one size shares the compiled programs.
            state: the padded group's starting state (e.g. ``restore_state``'s), or
                ``state(channels, values) -> state`` of the padded cells (an octave stage's carry, a
                seeded start); None: ``init``. A state past step 0 replays only the steps it has left.
            history: the padded group's (size, steps) objective history so far (from a checkpoint).
            between: ``between(state, history, steps_done)`` after every chunk (see ``advance_group``):
                checkpoint, stop; it sees the padded state and history.
            progress: ``progress(cell_steps)`` after every chunk (before ``between``): the real cells'
                steps advanced by this call so far, k x (steps done - starting step).
            final: also compute the untransformed images and objective (False: an octave stage that
                only carries its state on).

        Returns:
            RenderedGroup(images, objective, history, transparency of the k real cells; the padded
            state).
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        cs, vs = self.pad(channels, values, size)
        k = len(np.asarray(channels).reshape(-1))
        if state is None:
            state = self.init(key, cs, vs)
        elif callable(state):
            state = state(cs, vs)
        hook = between
        if progress is not None:
            start = int(np.asarray(state.step).reshape(-1)[0])

            def hook(st, hist, done):
                progress(k * (done - start))
                if between is not None:
                    between(st, hist, done)

        state, hist = self.advance_group(state, cs, vs, steps, history=history, real=k, between=hook)
        if not final:
            return RenderedGroup(None, None, hist[:k], None, state)
        images, objective = self.final(state, cs, vs)
        acc = None if state.transparency is None else np.asarray(state.transparency)[:k]
        return RenderedGroup(images[:k], objective[:k], hist[:k], acc, state)

    def render_cells(self, channels: Sequence[int], values: Any, key: Array, steps: int, *,
                     batch_size: int | None = None, progress: ProgressFn | None = None,
                     start: Callable[[np.ndarray, np.ndarray], RenderState] | None = None) -> Rendered:
        """Renders cells (channels[i], values[i]) in groups of ``batch_size`` (``render_group`` each).

        Args:
            channels: (N,) channel indices; values: (N,) or (N, k) strengths (zeros if unused).
            start: ``start(channels, values) -> state`` for a padded group instead of ``init``
                (e.g. ``inversion.seeded_start``: cells that start from given images).

        Returns:
            Rendered(images (N, n, H, W, 3), objective (N,), history (N, steps)), numpy arrays.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        cells_c = np.asarray(channels, np.int32).reshape(-1)
        cells_v = np.asarray(values, np.float32)
        n = len(cells_c)
        if n == 0:
            raise ValueError("nothing to render: give at least one channel")
        self.check(cells_c[0], cells_v[0])
        batch = self.group_size(batch_size, n)
        total, finished = n * steps, 0  # real cell-steps of all groups, and of those done
        groups = []
        for first in range(0, n, batch):
            report, before = None, finished
            if progress is not None:
                def report(cell_steps, before=before):
                    nonlocal finished
                    finished = before + cell_steps
                    progress(finished, total)
            group = slice(first, first + batch)
            groups.append(self.render_group(key, cells_c[group], cells_v[group], steps, size=batch, state=start,
                                            progress=report))
        return Rendered(*(None if parts[0] is None else np.concatenate(parts)
                          for parts in zip(*(g[:4] for g in groups))))

    def render(self, channels: Sequence[int], key: Array, steps: int, *, batch_size: int | None = None,
               progress: ProgressFn | None = None) -> Rendered:
        """One image per channel (``values`` unused: zeros)."""
        channels = [int(c) for c in channels]
        return self.render_cells(channels, np.zeros(len(channels), np.float32), key, steps,
                                 batch_size=batch_size, progress=progress)


__all__ = [
    "Engine",
    "NonFiniteError",
    "RenderState",
    "Rendered",
    "RenderedGroup",
    "Setup",
    "StateMismatchError",
    "channel_key",
    "default_chunk",
    "final_cell",
    "from_host",
    "to_host",
    "init_cell",
    "step_cell",
]
