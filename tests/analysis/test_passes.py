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
