"""The one dataset pass (jfv.analysis.passes over jfv.models.stream): equals a brute-force numpy loop over
the images; a pass stopped or killed after a checkpoint and resumed equals an uninterrupted one exactly;
unreadable images are counted, named and excluded; a second pass compiles nothing."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from PIL import Image

from compile_count import compiles
from jfv.analysis import datasets, passes, topk
from jfv.models import stream
from jfv.optvis import references
from jfv.runtime.jobs import Interrupted, StateError, StopFlag
from tiny_model import tiny_model

SIZE = 16
LAYERS = ["conv1", "conv2"]
BAD = {"03_truncated.png", "07_garbage.jpg"}


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A flat folder of 12 images (10 random PNGs of several shapes, a truncated PNG and a file of garbage)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(12):
        shape = (SIZE + 4 * (i % 3), SIZE + 2 * (i % 2), 3)
        pixels = (rng.uniform(size=shape) * 255).astype(np.uint8)
        if i == 3:
            path = root / "03_truncated.png"
            Image.fromarray(pixels).save(path)
            path.write_bytes(path.read_bytes()[:60])
        elif i == 7:
            (root / "07_garbage.jpg").write_bytes(b"not an image at all")
        else:
            Image.fromarray(pixels).save(root / f"{i:02d}_ok.png")
    return root


@pytest.fixture(scope="module")
def source(folder):
    return datasets.image_folder(folder)


def top_k_pass(model, source, batch_size=3, k=4, **kw):
    return passes.run(model, source, topk.Step(keep_scores=True), topk.init_states(model, LAYERS, k),
                      size=SIZE, batch_size=batch_size, prefetch=0, **kw)


class MemoryStore:
    """The save/load interface jfv.runtime.jobs.Job offers, in memory; counts the saves."""

    def __init__(self):
        self.trees, self.saves = {}, 0

    def save_state(self, piece, tree):
        self.trees[piece] = {k: np.array(v) for k, v in tree.items()}
        self.saves += 1

    def load_state(self, piece, *, discard=False):
        if discard:
            self.trees.pop(piece, None)
        return self.trees.get(piece)


def assert_same_state(a: stream.State, b: stream.State):
    ta, tb = a.to_tree(), b.to_tree()
    assert sorted(ta) == sorted(tb)
    for key in ta:
        # the resumed pass batched the rest afresh; PIL's reasons may name an object's address
        if key not in ("batches", "skipped_reasons"):
            np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)


def test_the_pass_equals_a_brute_force_loop_over_the_images(model, source):
    state = top_k_pass(model, source)
    n = len(source)
    good = np.array([it.name.rsplit("/", 1)[-1] not in BAD for it in source.items])
    images = datasets.load(source, source.ids, SIZE, convert=model.from_rgb)  # decoded as the pass decodes
    assert sorted(images) == list(np.flatnonzero(good))
    np.testing.assert_array_equal(state.read, good)
    assert state.seen.all() and state.done == n and state.batches == 4  # 10 read images in batches of 3
    for i in np.flatnonzero(good):
        acts = {k: np.asarray(v)[0] for k, v in model(images[i][None]).items()}  # one image at a time
        for layer in LAYERS:
            flat = acts[layer].reshape(-1, acts[layer].shape[-1]).astype(np.float64)
            np.testing.assert_allclose(state.outputs[f"{layer}.max"][i], flat.max(0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(state.outputs[f"{layer}.mean"][i], flat.mean(0), rtol=1e-5, atol=1e-6)
    for layer in LAYERS:
        for r in topk.REDUCTIONS:
            scores = state.outputs[f"{layer}.{r}"]
            assert np.isnan(scores[~good]).all()  # no row for an unread image
            kept = topk.to_numpy(state.carry[layer][r])
            want_v, want_i = topk.brute_force(scores[good], np.flatnonzero(good), 4)
            np.testing.assert_array_equal(kept.ids, want_i)
            np.testing.assert_array_equal(kept.values, want_v)


def test_natural_pass_equals_the_images_scores_and_profiles_by_hand(model, source):
    natural = passes.natural_pass(model, source, "conv2", [1, 6], LAYERS, SIZE, batch_size=4)
    images = datasets.load(source, source.ids, SIZE, convert=model.from_rgb)
    x = np.stack([images[i] for i in sorted(images)])
    np.testing.assert_array_equal(natural.images, x)
    acts = {k: np.asarray(v, np.float64) for k, v in model(x).items()}
    np.testing.assert_allclose(natural.scores, acts["conv2"].mean((1, 2))[:, [1, 6]], rtol=1e-5, atol=1e-6)
    for layer in LAYERS:
        np.testing.assert_allclose(natural.profiles[layer], acts[layer].mean((1, 2)), rtol=1e-5, atol=1e-6)


def test_unreadable_images_are_counted_named_and_excluded(model, source):
    state = top_k_pass(model, source)
    names = sorted(n.rsplit("/", 1)[-1] for n, _ in state.skipped)
    assert names == sorted(BAD)
    assert all(reason for _, reason in state.skipped)
    bad_ids = [it.id for it in source.items if it.name.rsplit("/", 1)[-1] in BAD]
    assert state.seen[bad_ids].all() and not state.read[bad_ids].any()  # consumed, never read
    assert int(state.read.sum()) == len(source) - 2
    for layer in LAYERS:
        for r in topk.REDUCTIONS:
            assert not np.isin(topk.to_numpy(state.carry[layer][r]).ids, bad_ids).any()


@pytest.mark.parametrize("batch_size", [3, 5])
def test_stopped_then_resumed_equals_an_uninterrupted_pass_exactly(model, source, batch_size):
    whole = top_k_pass(model, source, batch_size=batch_size)
    store, flag = MemoryStore(), StopFlag()

    def progress(done, total):
        if done >= 4:  # as if SIGTERM arrived during the batch that passes 4 images
            flag.signum = signal.SIGTERM

    with pytest.raises(Interrupted, match=r"^SIGTERM: checkpointed the pass after \d+ of 12 images; run the same "
                                          r"command again to resume$") as stopped:
        top_k_pass(model, source, batch_size=batch_size, store=store, progress=progress, stop=flag)
    assert stopped.value.signum == signal.SIGTERM and store.saves == 1
    saved = store.trees["pass"]
    assert 0 < int(saved["seen"].sum()) < 12
    resumed = top_k_pass(model, source, batch_size=batch_size, store=store)
    assert_same_state(resumed, whole)
    assert [n for n, _ in resumed.skipped] == [n for n, _ in whole.skipped]  # each unreadable image counted once


def test_killed_after_a_periodic_checkpoint_then_resumed_equals_an_uninterrupted_pass(model, source):
    whole = top_k_pass(model, source, batch_size=2)
    store = MemoryStore()

    def die(done, total):
        if store.saves == 3:
            raise KeyboardInterrupt  # a kill: no checkpoint at this point, the last periodic one stays

    with pytest.raises(KeyboardInterrupt):
        top_k_pass(model, source, batch_size=2, store=store, every=1, progress=die)
    assert int(store.trees["pass"]["batches"]) == 3
    seen_before = int(store.trees["pass"]["seen"].sum())
    done = []
    resumed = top_k_pass(model, source, batch_size=2, store=store, every=1, progress=lambda d, t: done.append(d))
    assert done[0] == seen_before and done[-1] == 12  # the resume starts from the checkpoint
    assert_same_state(resumed, whole)


def test_a_checkpoint_of_another_pass_is_refused_and_discard_starts_again(model, source):
    store = MemoryStore()
    flag = StopFlag()
    with pytest.raises(Interrupted):
        top_k_pass(model, source, k=4, store=store, stop=flag,
                   progress=lambda d, t: setattr(flag, "signum", signal.SIGINT) if d else None)
    with pytest.raises(stream.CheckpointMismatch) as refused:
        top_k_pass(model, source, k=3, store=store)  # other k: other carry shapes
    assert isinstance(refused.value, StateError)
    fresh = top_k_pass(model, source, k=3, store=store, discard=True)
    assert_same_state(fresh, top_k_pass(model, source, k=3))


def test_a_source_must_number_its_images_from_zero(model, source):
    with pytest.raises(datasets.DatasetError, match="ids must number the images 0..n-1"):
        top_k_pass(model, source.select([1, 2, 4]))


def test_a_second_pass_compiles_nothing(model, source):
    first = compiles(lambda: top_k_pass(model, source, batch_size=4))
    assert first >= 1
    assert compiles(lambda: top_k_pass(model, source, batch_size=4)) == 0
    assert compiles(lambda: passes.natural_pass(model, source, "conv2", [0], ["conv1"], SIZE, 4)) >= 1
    assert compiles(lambda: passes.natural_pass(model, source, "conv2", [0], ["conv1"], SIZE, 4)) == 0


def test_images_in_memory_equal_one_at_a_time_and_compile_once(model):
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(7, SIZE, SIZE, 3)).astype(np.float32)
    got = stream.map_images(model, references.ChannelMeans("conv2"), x, batch=3)["means"]
    for i in range(7):
        np.testing.assert_allclose(got[i], np.asarray(model(x[i : i + 1])["conv2"]).mean((1, 2))[0], rtol=1e-5, atol=1e-6)
    assert compiles(lambda: stream.map_images(model, references.ChannelMeans("conv2"), x[:5], batch=3)) == 0


def test_a_stream_with_any_ids_grows_its_arrays(model):
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    batches = [stream.PaddedBatch(x, np.array([40, 9], np.int32), np.array([1, 2], np.int32), np.array([True, True])),
               stream.PaddedBatch(x, np.array([3, -1], np.int32), np.array([0, -1], np.int32), np.array([True, False]),
                            (("gone.png", "OSError: no such file"),))]
    state = stream.run(model, references.ChannelMeans("conv1"), batches)
    assert np.flatnonzero(state.read).tolist() == [3, 9, 40] and state.labels[[3, 9, 40]].tolist() == [0, 2, 1]
    assert state.done == 4 and state.skipped == [("gone.png", "OSError: no such file")]
    np.testing.assert_array_equal(state.outputs["means"][3], state.outputs["means"][40])  # the same image


SHARDED = r'''
import json, sys
import numpy as np
import jax
from PIL import Image
from jfv.analysis import datasets, passes, topk, embeddings
from jfv.models import stream
from jfv.recipes.common import make_mesh
from tiny_model import tiny_model

root = sys.argv[1]
rng = np.random.default_rng(1)
for i in range(22):
    Image.fromarray((rng.uniform(size=(16 + i % 3, 16, 3)) * 255).astype(np.uint8)).save(f"{root}/{i:02d}.png")
# ties: two copies of image 00 under other names, so the top-k must break ties by id as one device does
for name in ("22.png", "23.png"):
    Image.open(f"{root}/00.png").save(f"{root}/{name}")
source = datasets.image_folder(root)
model = tiny_model(seed=5)
mesh = make_mesh(4, "batch")
assert len(jax.devices()) == 4 and mesh.devices.size == 4

def top(mesh, batch):
    return passes.run(model, source, topk.Step(keep_scores=True), topk.init_states(model, ["conv1", "conv2"], 5),
                      size=16, batch_size=batch, prefetch=0, mesh=mesh)

one, four = top(None, 8), top(mesh, 8)
sharding = None
out = {"ids_equal": True, "positions_equal": True, "values": 0.0, "scores": 0.0}
for layer in ("conv1", "conv2"):
    for r in ("max", "mean"):
        a, b = one.carry[layer][r], four.carry[layer][r]
        out["ids_equal"] &= bool(np.array_equal(np.asarray(a.ids), np.asarray(b.ids)))
        out["positions_equal"] &= bool(np.array_equal(np.asarray(a.positions), np.asarray(b.positions)))
        out["values"] = max(out["values"], float(np.max(np.abs(np.asarray(a.values) - np.asarray(b.values)))))
for k in one.outputs:
    out["scores"] = max(out["scores"], float(np.nanmax(np.abs(one.outputs[k] - four.outputs[k]))))
# the tie: images 00, 22 and 23 have equal scores everywhere; their order in any top-k is by id
ids = np.asarray(four.carry["conv2"]["max"].ids)
out["tie_order"] = all(list(row[np.isin(row, [0, 22, 23])]) == sorted(row[np.isin(row, [0, 22, 23])]) for row in ids)
# per-image outputs in memory, sharded: equal to one device
x = rng.uniform(size=(10, 16, 16, 3)).astype(np.float32)
e1 = stream.map_images(model, embeddings.Pooled("conv2"), x, batch=4)
e4 = stream.map_images(model, embeddings.Pooled("conv2"), x, batch=4, mesh=mesh)
out["embeddings"] = max(float(np.max(np.abs(e1[k] - e4[k]))) for k in e1)
# the carry stays replicated and the outputs sharded on the batch axis
c, o = stream.apply(model, topk.Step(keep_scores=True), topk.init_states(model, ["conv1"], 5),
                    stream.PaddedBatch(x[:8], np.arange(8, dtype=np.int32), np.full(8, -1, np.int32), np.ones(8, bool)), mesh)
out["carry_replicated"] = all(a.sharding.is_fully_replicated for a in jax.tree.leaves(c))
out["outputs_sharded"] = all(len(v.sharding.device_set) == 4 and not v.sharding.is_fully_replicated for v in o.values())
try:
    top(mesh, 6)
    out["refused"] = ""
except stream.ShardingError as e:
    out["refused"] = str(e)
print(json.dumps(out))
'''


def test_a_pass_sharded_over_four_fake_devices_equals_one_device(tmp_path):
    """The batch axis over a 4-device mesh (NamedSharding): the same top-k ids and positions exactly
    (ties broken by id, as on one device), scores to float tolerance, the carry replicated and the
    per-image outputs left sharded; a batch the devices do not divide is refused naming the fix."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", SHARDED, str(tmp_path)], env=env, cwd=tests.parent,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["ids_equal"] and got["positions_equal"] and got["tie_order"], got
    assert got["values"] < 1e-5 and got["scores"] < 1e-5 and got["embeddings"] < 1e-5, got
    assert got["carry_replicated"] and got["outputs_sharded"], got
    assert got["refused"] == "batch_size=6 does not split over 4 devices: use a multiple of 4 (e.g. 8), or fewer devices"
