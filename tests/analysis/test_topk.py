"""Running top-k: equals a brute-force numpy top-k over the same activations, exactly, whatever the batch
size, order and padding (ties by lower id); the whole pass through a small random model and through
VGG16 conv5_3 over 200 CIFAR-10 images; positions are the argmax; bad input fails with the fix."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv.analysis import datasets as D
from jfv.analysis import topk as T
from tiny_model import tiny_model


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=2)


def feed(state, acts, ids, batch_size, order, reduce):
    """``update`` over ``acts[order]`` in padded batches of ``batch_size``."""
    for s in range(0, len(order), batch_size):
        sel = order[s : s + batch_size]
        a = np.zeros((batch_size,) + acts.shape[1:], np.float32)
        i = np.full(batch_size, -1, np.int32)
        a[: len(sel)], i[: len(sel)] = acts[sel], ids[sel]
        state = T.update(state, a, i, np.arange(batch_size) < len(sel), reduce=reduce)
    return T.to_numpy(state)


def brute(acts, ids, k, reduce):
    """numpy only: score = max or mean over positions, sort by (-score, id), keep k."""
    flat = acts.reshape(acts.shape[0], -1, acts.shape[-1]).astype(np.float64)
    score = flat.max(1) if reduce == "max" else flat.mean(1)
    order = [np.lexsort((ids, -score[:, c]))[:k] for c in range(acts.shape[-1])]
    where = np.stack([flat[o, :, c].argmax(1) for c, o in enumerate(order)])  # first max, row-major
    w = acts.shape[2]
    return (np.stack([score[o, c] for c, o in enumerate(order)]), np.stack([ids[o] for o in order]),
            np.stack([where // w, where % w], -1))


def assert_same(state, ref, rtol=1e-6):
    """Values to float32 rounding of the mean (numpy sums in float64); ids and positions exactly,
    except where a near-tie (within rtol) leaves the order to rounding."""
    values, ids, positions = ref
    np.testing.assert_allclose(state.values, values, rtol=rtol, atol=rtol)
    near = np.zeros(values.shape, bool)
    tie = np.abs(np.diff(values, axis=1)) <= rtol * np.maximum(1, np.abs(values[:, 1:]))
    near[:, 1:] |= tie
    near[:, :-1] |= tie
    np.testing.assert_array_equal(state.ids[~near], ids[~near])
    np.testing.assert_array_equal(state.positions[~near], positions[~near])
    return near.mean()


@pytest.mark.parametrize("reduce", T.REDUCTIONS)
def test_merge_is_exactly_the_top_k_whatever_the_batches(reduce):
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((57, 3, 4, 6)).astype(np.float32)
    acts[9] = acts[4]  # two images with identical maps: tie broken by the lower id
    acts[20, ..., 2] = 2.5  # a flat map: position is the first (0, 0)
    ids = rng.permutation(500)[:57].astype(np.int32)
    k = 5
    values, positions = (np.asarray(x) for x in T.scores(acts, reduce))
    want_v, want_i = T.brute_force(values, ids, k)
    for batch_size in (1, 4, 16, 57, 64):
        for order in (np.arange(57), rng.permutation(57), np.arange(57)[::-1]):
            got = feed(T.init(6, k), acts, ids, batch_size, order, reduce)
            np.testing.assert_array_equal(got.values, want_v)  # bit for bit
            np.testing.assert_array_equal(got.ids, want_i)
    assert_same(got, brute(acts, ids, k, reduce))
    if reduce == "max":
        i4, i9 = ids[4], ids[9]
        for c in range(6):
            row = list(got.ids[c])
            if i4 in row and i9 in row:
                assert row.index(min(i4, i9)) == row.index(max(i4, i9)) - 1
        assert tuple(got.positions[2, list(got.ids[2]).index(ids[20])]) == (0, 0)


def test_fewer_images_than_k_leave_empty_slots_and_padding_never_enters():
    acts = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
    state = T.update(T.init(3, 4), np.concatenate([acts, np.full_like(acts, 1e9)]),
                     np.array([7, 3, 100, 101], np.int32), np.array([True, True, False, False]))
    s = T.to_numpy(state)
    np.testing.assert_array_equal(s.ids, [[3, 7, -1, -1]] * 3)
    np.testing.assert_array_equal(s.values[:, :2], [[21, 9], [22, 10], [23, 11]])
    assert np.isneginf(s.values[:, 2:]).all() and (s.positions[:, 2:] == -1).all()
    np.testing.assert_array_equal(s.positions[:, :2], [[[1, 1], [1, 1]]] * 3)
    assert T.as_table(state, 0) == [{"rank": 0, "id": 3, "value": 21.0, "position": [1, 1]},
                                    {"rank": 1, "id": 7, "value": 9.0, "position": [1, 1]}]


def test_non_spatial_layers_count_as_one_position():
    acts = np.array([[1.0, -2.0], [3.0, -1.0]], np.float32)
    s = T.to_numpy(T.update(T.init(2, 1), acts, np.array([0, 1]), np.array([True, True])))
    np.testing.assert_array_equal(s.ids, [[1], [1]])
    np.testing.assert_array_equal(s.positions, [[[0, 0]], [[0, 0]]])


def test_state_is_a_pytree_of_arrays(tiny):
    state = T.init_states(tiny, ["conv1", "conv2"], 3)
    leaves = jax.tree.leaves(state)
    assert len(leaves) == 2 * 2 * 3 and all(isinstance(x, jax.Array) for x in leaves)
    assert state["conv2"]["mean"].positions.shape == (8, 3, 2)


def test_states_survive_an_orbax_round_trip_mid_pass(tmp_path):
    """What a resumable pass does: checkpoint the states after some batches, restore, continue."""
    import orbax.checkpoint as ocp

    rng = np.random.default_rng(6)
    acts = rng.standard_normal((40, 3, 3, 5)).astype(np.float32)
    ids = np.arange(40, dtype=np.int32)
    whole = feed(T.init(5, 4), acts, ids, 8, np.arange(40), "max")
    half = {"layer": {"max": T.update(T.init(5, 4), acts[:20], ids[:20], np.ones(20, bool))}}
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "states", half)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "states", half)
    assert isinstance(restored["layer"]["max"], T.TopK)
    resumed = feed(restored["layer"]["max"], acts, ids, 8, np.arange(20, 40), "max")
    for a, b in zip(resumed, whole):
        np.testing.assert_array_equal(a, b)


def test_pass_through_a_small_random_model_equals_brute_force(tiny):
    model = tiny
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(45, 16, 16, 3)).astype(np.float32)
    ids = np.arange(1000, 1045, dtype=np.int32)
    acts = {k: np.asarray(v) for k, v in model(jnp.asarray(images)).items()}
    for batch_size in (8, 45):
        order = rng.permutation(45)
        stream = []
        for s in range(0, 45, batch_size):
            sel = order[s : s + batch_size]
            x = np.zeros((batch_size, 16, 16, 3), np.float32)
            i = np.full(batch_size, -1, np.int32)
            x[: len(sel)], i[: len(sel)] = images[sel], ids[sel]
            stream.append(D.PaddedBatch(x, i, np.full(batch_size, -1, np.int32), np.arange(batch_size) < len(sel)))
        states = T.run(model, ["conv1", "conv2"], stream, k=4)
        for layer in ("conv1", "conv2"):
            for reduce in T.REDUCTIONS:
                assert assert_same(T.to_numpy(states[layer][reduce]), brute(acts[layer], ids, 4, reduce)) < 0.05


def test_vgg16_conv5_3_over_200_cifar_images(vgg16, shared):
    """~200 CIFAR-10 test images upscaled to 64 px, streamed in shuffled batches of 48: the pass
    (update after each batch's forward) and merges of the same activations in batches of 1, 7 and 200
    in other orders all equal numpy's brute force. (``run`` itself: the small model above.)"""
    source = D.cifar10("test", per_class=20, archive=shared / D.CIFAR10_ARCHIVE)
    batches = list(D.batches(source, 64, 48))
    rng = np.random.default_rng(0)
    rng.shuffle(batches)
    f = jax.jit(lambda x: vgg16(x)["conv5_3"])
    states = {r: T.init(512, 9) for r in T.REDUCTIONS}
    acts, ids = [], []
    for b in batches:
        a = f(b.images)
        states = {r: T.update(s, a, b.ids, b.mask, reduce=r) for r, s in states.items()}
        acts.append(np.asarray(a)[b.mask])
        ids.append(b.ids[b.mask])
    acts, ids = np.concatenate(acts), np.concatenate(ids)
    assert acts.shape == (200, 4, 4, 512) and sorted(ids) == list(range(200))
    for reduce in T.REDUCTIONS:
        ref = brute(acts, ids, 9, reduce)
        assert assert_same(T.to_numpy(states[reduce]), ref) < 0.02
        for batch_size in (1, 7, 200):
            merged = feed(T.init(512, 9), acts, ids, batch_size, rng.permutation(200), reduce)
            np.testing.assert_array_equal(merged.ids, T.to_numpy(states[reduce]).ids)  # same activations: bit for bit
            np.testing.assert_array_equal(merged.values, T.to_numpy(states[reduce]).values)
    assert len(set(T.to_numpy(states["max"]).ids.ravel().tolist())) > 20  # channels prefer different images


def test_bad_input_names_the_fix(tiny):
    with pytest.raises(T.TopKError, match="k must be >= 1"):
        T.init(4, 0)
    with pytest.raises(T.TopKError, match="unknown reduce 'median'"):
        T.scores(np.zeros((1, 2, 2, 3)), "median")
    with pytest.raises(T.TopKError, match="activations have 3 channels but the state 4"):
        T.update(T.init(4, 2), np.zeros((1, 2, 2, 3)), np.zeros(1, np.int32), np.ones(1, bool))
    with pytest.raises(T.TopKError, match="non-empty subset"):
        T.init_states(tiny, ["conv1"], 2, reductions=("median",))
    with pytest.raises(ValueError, match="Valid layers"):
        T.init_states(tiny, ["conv9"], 2)
