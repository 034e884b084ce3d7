"""A dataset pass over several processes (jfv.analysis.passes.run with process=(index, count)): process 0
ends with exactly the one-process pass (the same top-k ids, ties broken by id, the same values and
per-image outputs), each process checkpoints and resumes its own part, another process count is
refused, and two real processes under jax.distributed on localhost (each sharding its batches over two
fake CPU devices) equal one process on one device."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jfv.analysis import datasets, passes, topk
from jfv.runtime.jobs import Interrupted
from tiny_model import tiny_model

SIZE = 16
LAYERS = ["conv1", "conv2"]
TESTS = Path(__file__).resolve().parents[1]


def make_folder(root: Path, n: int = 17) -> Path:
    """n images, two of them unreadable and two exact copies of image 00 (ties every top-k must break by id)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(n - 2):
        pixels = (rng.uniform(size=(SIZE + i % 3, SIZE, 3)) * 255).astype(np.uint8)
        if i == 5:
            (root / f"{i:02d}.png").write_bytes(b"not an image")
        elif i == 11:
            Image.fromarray(pixels).save(root / f"{i:02d}.png")
            (root / f"{i:02d}.png").write_bytes((root / f"{i:02d}.png").read_bytes()[:50])
        else:
            Image.fromarray(pixels).save(root / f"{i:02d}.png")
    for i in (n - 2, n - 1):
        (root / f"{i:02d}.png").write_bytes((root / "00.png").read_bytes())
    return root


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def source(folder):
    return datasets.image_folder(folder)


class MemoryStore:
    """The save/load interface of jfv.runtime.jobs.Job, in memory: the shared workdir of every process."""

    def __init__(self):
        self.trees = {}

    def save_state(self, piece, tree):
        self.trees[piece] = {k: np.array(v) for k, v in tree.items()}

    def load_state(self, piece, *, discard=False):
        if discard:
            self.trees.pop(piece, None)
        return self.trees.get(piece)


def top_k_pass(model, source, batch_size=4, **kw):
    return passes.run(model, source, topk.Step(keep_scores=True), topk.init_states(model, LAYERS, 3), size=SIZE,
                      batch_size=batch_size, prefetch=0, **kw)


def split_pass(model, source, count, store, batch_size=4, **kw):
    """Every process of a pass over ``count`` in turn, the last first (process 0 must come last: it combines
    the saved parts after the barrier, which here is a no-op)."""
    out = None
    for index in reversed(range(count)):
        out = top_k_pass(model, source, batch_size, store=store, process=(index, count), sync=lambda name: None, **kw)
    return out


def assert_same_pass(a, b):
    for layer in LAYERS:
        for r in topk.REDUCTIONS:
            x, y = topk.to_numpy(a.carry[layer][r]), topk.to_numpy(b.carry[layer][r])
            np.testing.assert_array_equal(x.ids, y.ids)
            np.testing.assert_array_equal(x.positions, y.positions)
            np.testing.assert_array_equal(x.values, y.values)  # an image's scores are the same bits in any batch
    assert sorted(a.outputs) == sorted(b.outputs)
    for k in a.outputs:
        np.testing.assert_array_equal(a.outputs[k], b.outputs[k])
    np.testing.assert_array_equal(a.seen, b.seen)
    np.testing.assert_array_equal(a.read, b.read)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.skipped == b.skipped


@pytest.mark.parametrize("count", [2, 3])
def test_process_zero_combines_the_parts_into_the_one_process_pass(model, source, count):
    one = top_k_pass(model, source)
    assert len(one.skipped) == 2 and one.seen.all()
    store = MemoryStore()
    combined = split_pass(model, source, count, store)
    assert_same_pass(combined, one)
    # the tie: images 00, 15 and 16 score alike everywhere; every top-k lists them in id order
    ids = np.asarray(combined.carry["conv2"]["max"].ids)
    assert all(list(r[np.isin(r, [0, 15, 16])]) == sorted(r[np.isin(r, [0, 15, 16])]) for r in ids)
    assert int(store.trees[passes.layout_name("pass")]["processes"]) == count
    for i in range(count):  # each part holds its stride only
        part = store.trees[passes.part_name("pass", i)]
        np.testing.assert_array_equal(np.flatnonzero(part["seen"]), np.arange(i, len(source), count))


class StopAfter:
    """A StopFlag raised after ``n`` checks."""

    signum = 15

    def __init__(self, n):
        self.n = n

    @property
    def stop(self):
        self.n -= 1
        return self.n < 0

    def name(self):
        return "SIGTERM"


def test_a_process_stopped_mid_part_resumes_its_part_and_the_result_is_unchanged(model, source):
    one = top_k_pass(model, source)
    store = MemoryStore()
    with pytest.raises(Interrupted, match="checkpointed the pass after"):
        top_k_pass(model, source, store=store, process=(1, 2), sync=lambda name: None, stop=StopAfter(0))
    saved = store.trees[passes.part_name("pass", 1)]
    assert 0 < saved["seen"].sum() < len(np.arange(1, len(source), 2))  # a partial part
    assert_same_pass(split_pass(model, source, 2, store), one)


def test_another_process_count_is_refused_naming_both(model, source):
    store = MemoryStore()
    split_pass(model, source, 2, store)
    with pytest.raises(passes.CheckpointMismatch, match="checkpointed by 2 processes, this run has 3: run it with 2"):
        top_k_pass(model, source, store=store, process=(0, 3), sync=lambda name: None)
    # discarding the checkpoint starts the pass over with the new count
    top_k_pass(model, source, store=store, process=(2, 3), sync=lambda name: None, discard=True)


def test_more_processes_than_images_is_refused(model, source):
    n = len(source)
    with pytest.raises(datasets.DatasetError, match=f"{n + 1} processes for {n} images: use at most {n} processes"):
        top_k_pass(model, source, store=MemoryStore(), process=(0, n + 1), sync=lambda name: None)


def test_a_missing_part_is_named(model, source):
    store = MemoryStore()
    with pytest.raises(passes.CheckpointMismatch, match="process 1's part of the pass is missing"):
        top_k_pass(model, source, store=store, process=(0, 2), sync=lambda name: None)


PROCESS = r'''
import json, sys
import numpy as np
import jax
from jfv.runtime import distributed
index, count = distributed.initialize(True, sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
from jfv.analysis import datasets, passes, topk
from jfv.recipes.common import make_mesh
from jfv.runtime.jobs import Job
from tiny_model import tiny_model

assert len(jax.local_devices()) == 2
model = tiny_model(seed=5)
source = datasets.image_folder(sys.argv[3])
job = Job(sys.argv[4], "pass-test", {}, process_index=index, process_count=count)
state = passes.run(model, source, topk.Step(keep_scores=True), topk.init_states(model, ["conv1", "conv2"], 3),
                   size=16, batch_size=4, prefetch=0, store=job, mesh=make_mesh(2, "batch"), process=(index, count))
if index == 0:
    out = {f"{l}.{r}.{f}": np.asarray(getattr(state.carry[l][r], f)).tolist()
           for l in ("conv1", "conv2") for r in ("max", "mean") for f in ("ids", "values", "positions")}
    out.update({f"outputs.{k}": np.where(np.isnan(v), -1e9, v).tolist() for k, v in state.outputs.items()})
    out["skipped"] = [name for name, _ in state.skipped]
    print("RESULT " + json.dumps(out))
distributed.barrier("done", count)
'''


def test_two_processes_under_jax_distributed_equal_one_process_on_one_device(model, folder, tmp_path):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS, f"localhost:{port}", str(i), str(folder),
                               str(tmp_path / "work")], env=env, cwd=TESTS.parent, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    got = json.loads(next(line for line in outs[0][0].splitlines() if line.startswith("RESULT "))[len("RESULT "):])
    one = top_k_pass(model, datasets.image_folder(folder))
    for layer in LAYERS:
        for r in topk.REDUCTIONS:
            want = topk.to_numpy(one.carry[layer][r])
            np.testing.assert_array_equal(got[f"{layer}.{r}.ids"], want.ids)
            np.testing.assert_array_equal(got[f"{layer}.{r}.positions"], want.positions)
            np.testing.assert_allclose(got[f"{layer}.{r}.values"], want.values, rtol=1e-6, atol=1e-6)
    for k, v in one.outputs.items():
        np.testing.assert_allclose(got[f"outputs.{k}"], np.where(np.isnan(v), -1e9, v), rtol=1e-6, atol=1e-6)
    assert got["skipped"] == [name for name, _ in one.skipped]
