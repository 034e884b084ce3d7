"""grain worker processes as the dataset loader (jfv.analysis.loading): a pass read and decoded by two
workers equals the one-thread pass exactly (the JPEG archive, a python release, a folder with unreadable
files); a worker that dies is one line naming the images it was decoding; bad worker counts are refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from jfv.analysis import datasets, loading, passes, topk
from tiny_model import tiny_model

SIZE = 16


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=5)


def same_pass(a, b):
    for layer, per in a.carry.items():
        for r, s in per.items():
            x, y = topk.to_numpy(s), topk.to_numpy(b.carry[layer][r])
            np.testing.assert_array_equal(x.ids, y.ids)
            np.testing.assert_array_equal(x.values, y.values)
    for k in a.outputs:
        np.testing.assert_array_equal(a.outputs[k], b.outputs[k])
    np.testing.assert_array_equal(a.read, b.read)
    assert sorted(a.skipped) == sorted(b.skipped)


def top_k_pass(model, source, workers):
    return passes.run(model, source, topk.Step(keep_scores=True), topk.init_states(model, ["conv1", "conv2"], 3),
                      size=SIZE, batch_size=4, prefetch=0, workers=workers)


def test_two_grain_workers_give_the_one_thread_pass(model, tmp_path, shared):
    from tiny_data import cifar_release_archive  # a tiny official python release

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(11):
        Image.fromarray((rng.uniform(size=(20, 24, 3)) * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "05_bad.png").write_bytes(b"garbage")
    sources = [datasets.image_folder(folder), datasets.cifar10("test", per_class=3, shared=str(shared)),
               datasets.cifar10("test", per_class=2, archive=cifar_release_archive(tmp_path / "release.tar.gz"))]
    for source in sources:
        same_pass(top_k_pass(model, source, 2), top_k_pass(model, source, 0))


def _dies_on_item_3(items):
    for it in items:
        if it.id == 3 and datasets.WORKER_CACHE is not None:  # only inside a worker process
            os._exit(9)
        yield it, Path(it.name).read_bytes()


from pathlib import Path  # noqa: E402


def test_a_worker_that_dies_is_one_line_naming_its_images(tmp_path):
    import dataclasses

    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(tmp_path / f"{i}.png")
    source = dataclasses.replace(datasets.image_folder(tmp_path), reader=_dies_on_item_3)
    with pytest.raises(loading.WorkerError, match=r"while decoding .*0\.png \.\. .*5\.png .*run the same command again "
                                                  r"to resume from the last checkpoint"):
        list(loading.decoded(source, SIZE, "bicubic", 1, datasets.decode_raw, datasets.enter_worker, chunk=8))


def test_bad_worker_counts_are_refused():
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be an integer >= 0"):
            loading.check_workers(bad)
    assert loading.chunk_size(64) == 682 and loading.chunk_size(224) == 55 and loading.chunk_size(4) == 1024
