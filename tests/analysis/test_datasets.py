"""Streamed datasets: folders with and without classes, lists of paths and the CIFAR-10 archive give the
same pixels as a direct decode, in fixed-size padded batches with a mask; corrupt files are skipped
and counted; bad input fails with the fix."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import tiny_data as T
from tiny_data import cifar_archive
from PIL import Image

from jfv.analysis import dataset_formats as F
from jfv.analysis import datasets as D


def _write(path, size, colour, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(colour))
    pixels = np.clip(rng.normal(colour, 30, size[::-1] + (3,)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


@pytest.fixture
def folder(tmp_path):
    """root/cat (3 images, one corrupt), root/dog (2 images, one truncated), plus a text file."""
    root = tmp_path / "pets"
    _write(root / "cat" / "a.png", (40, 30), (200, 10, 10), "PNG")
    _write(root / "cat" / "b.jpg", (20, 50), (10, 200, 10), "JPEG")
    (root / "cat" / "c.jpg").write_bytes(b"not a jpeg at all")
    _write(root / "dog" / "sub" / "d.PNG", (33, 33), (10, 10, 200), "PNG")
    good = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(good, format="JPEG")
    (root / "dog" / "e.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])  # truncated
    (root / "dog" / "notes.txt").write_text("ignored")
    return root


def test_image_folder_with_classes_streams_padded_batches_and_counts_skips(folder):
    source = D.image_folder(folder)
    assert source.classes == ("cat", "dog")
    assert [it.name.split("pets/")[1] for it in source.items] == ["cat/a.png", "cat/b.jpg", "cat/c.jpg", "dog/e.jpg", "dog/sub/d.PNG"]
    assert list(source.labels) == [0, 0, 0, 1, 1] and list(source.ids) == [0, 1, 2, 3, 4]
    batches, skipped = D.count_skipped(D.batches(source, size=16, batch_size=2))
    assert sorted(name.split("pets/")[1] for name, _ in skipped) == ["cat/c.jpg", "dog/e.jpg"]
    assert all(reason for _, reason in skipped)
    assert [b.images.shape for b in batches] == [(2, 16, 16, 3), (2, 16, 16, 3)]
    ids = np.concatenate([b.ids for b in batches])
    mask = np.concatenate([b.mask for b in batches])
    np.testing.assert_array_equal(ids, [0, 1, 4, -1])
    np.testing.assert_array_equal(mask, [True, True, True, False])
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), [0, 0, 1, -1])
    assert not batches[-1].images[1].any()  # padding is zeros
    with Image.open(folder / "cat" / "b.jpg") as im:  # the pixels are fit()'s
        np.testing.assert_array_equal(batches[0].images[1], D.fit(im, 16))


def test_fit_resizes_the_shorter_side_then_centre_crops():
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, 10:30] = 255  # a white band in the middle 20 columns
    out = D.fit(Image.fromarray(pixels), 10, "nearest")
    assert out.shape == (10, 10, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, 1.0)  # the centre crop is the band
    same = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    np.testing.assert_array_equal(D.fit(Image.fromarray(same), 8), same / np.float32(255))


def test_flat_folder_and_path_list(tmp_path, folder):
    flat = tmp_path / "flat"
    for i in range(3):
        _write(flat / f"{i}.png", (12, 12), (50 * i, 0, 0), "PNG")
    source = D.image_folder(flat)
    assert source.classes == () and list(source.labels) == [-1, -1, -1]
    batches = list(D.batches(source, 12, 5, prefetch_batches=0))
    assert len(batches) == 1 and batches[0].mask.sum() == 3
    paths = [flat / "2.png", tmp_path / "missing.png", folder / "cat" / "a.png"]
    listed = D.path_list(paths, labels=[1, 0, 0], classes=("x", "y"))
    batches, skipped = D.count_skipped(D.batches(listed, 12, 4))
    assert [s[0] for s in skipped] == [str(tmp_path / "missing.png")] and "FileNotFoundError" in skipped[0][1]
    np.testing.assert_array_equal(batches[0].ids, [0, 2, -1, -1])
    np.testing.assert_array_equal(batches[0].images[0], batches_of(flat / "2.png", 12))


def batches_of(path, size):
    with Image.open(path) as im:
        return D.fit(im, size)


def test_cifar10_stream_equals_the_subset_reader(shared):
    archive = shared / D.CIFAR10_ARCHIVE
    source = D.cifar10("test", per_class=3, archive=archive)
    assert len(source) == 30 and source.classes == D.CIFAR10_CLASSES
    ref_images, ref_labels = D.cifar10_subsets(archive, {"test": 3})["test"]
    batches = list(D.batches(source, 32, 8))
    assert [int(b.mask.sum()) for b in batches] == [8, 8, 8, 6]
    ids = np.concatenate([b.ids[b.mask] for b in batches])
    images = np.concatenate([b.images[b.mask] for b in batches])
    labels = np.concatenate([b.labels[b.mask] for b in batches])
    np.testing.assert_array_equal(ids, np.arange(30))  # class-major, as cifar10_subsets
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(images, ref_images / np.float32(255))
    loaded = D.load(source, [29, 3], 64)  # random access, upscaled
    assert sorted(loaded) == [3, 29] and loaded[3].shape == (64, 64, 3)
    np.testing.assert_array_equal(loaded[3], D.fit(Image.fromarray(ref_images[3]), 64))


def test_select_and_take_keep_ids(folder):
    source = D.image_folder(folder)
    assert list(source.select([4, 1]).ids) == [1, 4]
    assert list(source.take(2).ids) == [0, 1]
    with pytest.raises(D.DatasetError, match=r"ids \[9\] are not in"):
        source.select([9])


def test_prefetch_propagates_errors_and_stops_early():
    def broken():
        yield 1
        raise RuntimeError("boom")

    it = D.prefetch(broken(), 2)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="boom"):
        next(it)
    endless = D.prefetch(iter(range(10**9)), 3)
    assert [next(endless) for _ in range(5)] == [0, 1, 2, 3, 4]
    endless.close()  # the thread stops; nothing hangs


def test_bad_input_names_the_fix(tmp_path, folder):
    with pytest.raises(D.DatasetError, match="does not exist: pass a folder"):
        D.image_folder(tmp_path / "nowhere")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(D.DatasetError, match="holds no images"):
        D.image_folder(tmp_path / "empty")
    _write(folder / "loose.png", (8, 8), (1, 2, 3), "PNG")
    with pytest.raises(D.DatasetError, match="move the loose images into a class folder"):
        D.image_folder(folder)
    with pytest.raises(D.DatasetError, match="no paths"):
        D.path_list([])
    with pytest.raises(D.DatasetError, match="one label per path"):
        D.path_list(["a.png"], labels=[0, 1])
    with pytest.raises(D.DatasetError, match="batch_size must be >= 1"):
        D.batches(D.path_list(["a.png"]), 8, 0)
    with pytest.raises(D.DatasetError, match="1 <= per_class <= 1000"):
        D.cifar10("test", per_class=1001, archive=tmp_path / "x.tar.gz")
    with pytest.raises(D.DatasetError, match="archive .* not found: download the python version"):
        D.cifar10("test", per_class=1, archive=tmp_path / "x.tar.gz")


# -- images in the model's channel count -------------------------------------------------------------


def _four_channel_model(**kw):
    import jax
    import jax.numpy as jnp

    from jfv import models
    from jfv.models.examples import GrayCNN

    module = GrayCNN()
    params = module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 4)))["params"]
    return models.wrap(module, params, name="four", channels=4, image_size=16, **kw)


def test_batches_in_the_models_channels(folder, tmp_path):
    """A grayscale model gets BT.601 luma of the decoded RGB (by hand: 0.299 R + 0.587 G + 0.114 B),
    padding included; a grayscale file comes back as its own values; an n-channel model uses its
    declared converter; without one, one line naming rgb_to_input."""
    from jfv import models

    gray = models.load("gray_cnn")
    source = D.image_folder(folder)
    rgb, _ = D.count_skipped(D.batches(source, 16, 2, prefetch_batches=0))
    lum, skipped = D.count_skipped(D.batches(source, 16, 2, prefetch_batches=0, convert=gray.from_rgb))
    assert [len(b.skipped) for b in lum] == [len(b.skipped) for b in rgb] and len(skipped) == 2
    for a, b in zip(rgb, lum):
        assert b.images.shape == (2, 16, 16, 1)
        want = 0.299 * a.images[..., :1] + 0.587 * a.images[..., 1:2] + 0.114 * a.images[..., 2:]
        np.testing.assert_allclose(b.images, want, atol=1e-6)
        np.testing.assert_array_equal(b.ids, a.ids)
    loaded = D.load(source, [0, 1], 16, convert=gray.from_rgb)
    np.testing.assert_allclose(loaded[1], lum[0].images[1], atol=1e-7)

    plain = np.random.default_rng(0).integers(0, 256, (16, 16), np.uint8)
    Image.fromarray(plain, mode="L").save(tmp_path / "g.png")
    (img,) = D.load(D.path_list([tmp_path / "g.png"]), [0], 16, convert=gray.from_rgb).values()
    np.testing.assert_allclose(img[..., 0], plain / 255.0, atol=1e-6)

    four = _four_channel_model(rgb_to_input=lambda x: np.concatenate([x, x.mean(-1, keepdims=True)], -1))
    (b, *_), _ = D.count_skipped(D.batches(source, 16, 2, prefetch_batches=0, convert=four.from_rgb))
    assert b.images.shape == (2, 16, 16, 4)
    np.testing.assert_allclose(b.images[..., 3], rgb[0].images.mean(-1), atol=1e-6)
    assert D.displayable(b.images).shape == (2, 16, 16, 1)

    with pytest.raises(D.DatasetError, match=r"takes 4-channel images.*rgb_to_input=f") as e:
        D.batches(source, 16, 2, convert=_four_channel_model().from_rgb)
    assert "\n" not in str(e.value)
    bad = _four_channel_model(rgb_to_input=lambda x: x)
    with pytest.raises(D.DatasetError, match=r"must return \(\.\.\., H, W, 4\)"):
        D.load(source, [0], 16, convert=bad.from_rgb)
def _fake_cifar(path, per_class=3):
    """A CIFAR-10-shaped tar.gz: split/class/NNNN.jpg, pixel value = 20 * index + class."""
    import io
    import tarfile

    from PIL import Image

    with tarfile.open(path, "w:gz") as tar:
        for split in ("test", "train"):
            for c, cls in reversed(list(enumerate(D.CIFAR10_CLASSES))):  # not in label order
                for i in reversed(range(per_class)):
                    buf = io.BytesIO()
                    Image.fromarray(np.full((32, 32, 3), 20 * i + c, np.uint8)).save(buf, "PNG")
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")  # PIL reads by content
                    info.size = len(buf.getvalue())
                    buf.seek(0)
                    tar.addfile(info, buf)
    return path


def test_cifar_subsets_are_balanced_class_major_and_deterministic(tmp_path):
    archive = _fake_cifar(tmp_path / "c.tar.gz")
    data = D.cifar10_subsets(archive, {"train": 2, "test": 1})
    x, y = data["train"]
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(x[:, 0, 0, 0], [20 * i + c for c in range(10) for i in range(2)])
    assert data["test"][0].shape == (10, 32, 32, 3)
    with pytest.raises(D.DatasetError, match="use test_per_class <= 3"):
        D.cifar10_subsets(archive, {"test": 4})
    with pytest.raises(D.DatasetError, match="not found"):
        D.cifar10_subsets(tmp_path / "missing.tar.gz", {"test": 1})


def test_old_name_batch_warns_and_is_padded_batch():
    from jfv.analysis import datasets

    with pytest.warns(DeprecationWarning, match="PaddedBatch"):
        assert datasets.Batch is datasets.PaddedBatch
    with pytest.raises(AttributeError, match="no attribute 'Bach'"):
        datasets.Bach


# -- bad data: unreadable folders, skip reasons, damaged archives (issue 31) ------------------------------


def _garbage_folder(root, n=3, prefix=""):
    """``n`` files named ``<prefix>NN.jpg`` that are no image."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"{prefix}{i:02d}.jpg").write_bytes(b"this is no jpeg " * (i + 1))
    return root


def test_a_source_with_no_readable_image_is_refused_in_one_line(tmp_path):
    root = _garbage_folder(tmp_path / "broken")
    source = D.image_folder(root)
    assert len(source) == 3
    for prefetch in (0, 2):  # raised in the consumer's thread either way
        with pytest.raises(D.DatasetError) as e:
            D.count_skipped(D.batches(source, 16, 2, prefetch_batches=prefetch))
        message = str(e.value)
        assert "\n" not in message
        assert message.startswith(f"none of the 3 images of image folder {root} (flat, 3 images) can be read "
                                  f"(e.g. UnidentifiedImageError: cannot identify image file '{root / '00.jpg'}')")
        assert message.endswith("replace or remove the unreadable files, or point at a folder of images (JPEG, PNG, ...)")
    with pytest.raises(D.DatasetError, match=r"none of the 2 images of 2 listed paths can be read"):
        D.count_skipped(D.batches(D.path_list([root / "01.jpg", tmp_path / "missing.png"]), 16, 2))
    # A selection (what a resumed pass streams: the images not yet seen) is never refused: the rest may
    # have been read. Its batches name each skip.
    part = source.select([1, 2])
    assert part.part_of == 3 and part.select([2]).part_of == 3 and source.part_of == 0
    assert source.select([2, 0, 1]) is source  # every id (a pass from the start): still the whole source
    batches, skipped = D.count_skipped(D.batches(part, 16, 2, prefetch_batches=0))
    assert len(batches) == 1 and not batches[0].mask.any() and [s[0] for s in skipped] == [
        str(root / "01.jpg"), str(root / "02.jpg")]
    # One readable image among the broken ones: streamed, the 3 broken ones skipped.
    _write(root / "03.png", (20, 20), (10, 120, 200), "PNG")
    batches, skipped = D.count_skipped(D.batches(D.image_folder(root), 16, 2, prefetch_batches=0))
    assert sum(int(b.mask.sum()) for b in batches) == 1 and len(skipped) == 3


def test_skip_reasons_name_the_file_and_are_the_same_every_run(folder):
    """PIL names bytes it cannot identify by the buffer's address (``<_io.BytesIO object at 0x...>``);
    the reason names the file instead, so two runs give the same reasons."""
    source = D.image_folder(folder)
    runs = [D.count_skipped(D.batches(source, 16, 2, prefetch_batches=p))[1] for p in (0, 2)]
    assert runs[0] == runs[1]
    reasons = dict(runs[0])
    corrupt, truncated = str(folder / "cat" / "c.jpg"), str(folder / "dog" / "e.jpg")
    assert reasons[corrupt] == f"UnidentifiedImageError: cannot identify image file '{corrupt}'"
    assert reasons[truncated].startswith("OSError: ")  # PIL's "Truncated File Read": no buffer in it
    assert not [r for r in reasons.values() if "0x" in r or "object at" in r]
    error = ValueError("cannot read <_io.BytesIO object at 0x7f0012ab34c0> or <foo.Bar object at 0xdeadBEEF>")
    assert D.read_reason(error, "a/b.jpg") == "ValueError: cannot read 'a/b.jpg' or 'a/b.jpg'"


def test_a_truncated_or_corrupt_cifar_archive_is_one_line_naming_it(tmp_path):
    whole = cifar_archive(tmp_path / "whole.tar.gz")
    batches, skipped = D.count_skipped(D.batches(D.cifar10("test", 5, archive=whole), 32, 8, prefetch_batches=0))
    assert sum(int(b.mask.sum()) for b in batches) == 50 and skipped == []
    assert D.cifar10_subsets(whole, {"train": 5, "test": 5})["train"][0].shape == (50, 32, 32, 3)

    data = whole.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: int(len(data) * 0.3)])  # inside the test split
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not gzip at all " * 64)
    for archive, detail, fix in (
            (cut, "EOFError: Compressed file ended before the end-of-stream marker was reached",
             f"copy or download it again to <shared>/{D.CIFAR10_ARCHIVE}"),
            (garbage, "ReadError: not a gzip file",  # no member read: which form it was cannot be told
             f"copy or download it again (jfv's JPEG copy to <shared>/{D.CIFAR10_ARCHIVE}, or a release from "
             f"https://www.cs.toronto.edu/~kriz/cifar.html)")):
        want = f"CIFAR-10 archive {archive} is damaged (truncated or corrupt: {detail}): {fix}"
        for prefetch in (0, 2):
            with pytest.raises(D.DatasetError) as e:
                D.count_skipped(D.batches(D.cifar10("test", 5, archive=archive), 32, 8, prefetch_batches=prefetch))
            assert str(e.value) == want
        with pytest.raises(D.DatasetError) as e:
            D.cifar10_subsets(archive, {"train": 2, "test": 1})
        assert str(e.value) == want
        with pytest.raises(D.DatasetError) as e:
            D.load(D.cifar10("test", 5, archive=archive), [49], 32)
        assert str(e.value) == want
    # Cut inside the train split (the second half): a test stream stops before the cut and is whole.
    late = tmp_path / "late.tar.gz"
    late.write_bytes(data[: int(len(data) * 0.8)])
    batches, skipped = D.count_skipped(D.batches(D.cifar10("test", 5, archive=late), 32, 8, prefetch_batches=0))
    assert sum(int(b.mask.sum()) for b in batches) == 50 and skipped == []
    with pytest.raises(D.DatasetError, match=r"late\.tar\.gz is damaged \(truncated or corrupt: EOFError"):
        D.count_skipped(D.batches(D.cifar10("train", 5, archive=late), 32, 8, prefetch_batches=0))


def test_a_resumed_pass_whose_rest_is_unreadable_is_not_refused(tmp_path):
    """Stopped after the 4 readable images, a pass resumes with the 3 unreadable ones only (a selection):
    not refused, it ends with 4 read and 3 skipped, as an uninterrupted pass does."""
    import signal

    from jfv.analysis import passes, topk
    from jfv.runtime.jobs import Interrupted, StopFlag
    from tiny_model import tiny_model

    root = tmp_path / "mixed"
    for i in range(4):
        _write(root / f"{i:02d}_ok.png", (16, 16), (40 * i, 90, 200 - 40 * i), "PNG")
    _garbage_folder(root, prefix="9")  # sorted last
    source = D.image_folder(root)
    assert [it.name.rsplit("/", 1)[1] for it in source.items][4:] == ["900.jpg", "901.jpg", "902.jpg"]
    model = tiny_model(seed=5)

    class Store:
        def __init__(self):
            self.trees = {}

        def save_state(self, piece, tree):
            self.trees[piece] = {k: np.array(v) for k, v in tree.items()}

        def load_state(self, piece, *, discard=False):
            return self.trees.get(piece)

    def run(**kw):
        return passes.run(model, source, topk.Step(), topk.init_states(model, ["conv1"], 2), size=16, batch_size=2,
                          prefetch=0, **kw)

    store, flag = Store(), StopFlag()

    def progress(done, total):
        if done >= 4:
            flag.signum = signal.SIGTERM

    with pytest.raises(Interrupted):
        run(store=store, progress=progress, stop=flag)
    assert int(store.trees["pass"]["seen"].sum()) == 4 and int(store.trees["pass"]["read"].sum()) == 4
    resumed = run(store=store)
    whole = run()
    assert resumed.seen.all() and int(resumed.read.sum()) == 4 == int(whole.read.sum())
    assert resumed.skipped == whole.skipped and [n.rsplit("/", 1)[1] for n, _ in whole.skipped] == [
        "900.jpg", "901.jpg", "902.jpg"]



# -- CIFAR-10's official releases: python and binary, packed and extracted (issue 31) ---------------------

FORMS = [("python", True), ("python", False), ("binary", True), ("binary", False)]
FORM_IDS = ["python-tar", "python-folder", "binary-tar", "binary-folder"]
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def _release(tmp_path, kind, packed, **kw):
    name = {"python": "cifar-10-python.tar.gz", "binary": "cifar-10-binary.tar.gz"}[kind] if packed else kind
    return T.cifar_release_archive(tmp_path / name, kind, packed, **kw)


def _expected(data, split, k):
    """What jfv must read: the first k images of each class in release order, class-major."""
    x, y = data[split]
    rows = np.concatenate([np.flatnonzero(y == c)[:k] for c in range(10)])
    return x[rows], y[rows].astype(np.int32), rows


def _stream(source, size=32, batch_size=8, prefetch=0):
    batches, skipped = D.count_skipped(D.batches(source, size, batch_size, prefetch_batches=prefetch))
    assert skipped == []
    ids = np.concatenate([b.ids[b.mask] for b in batches])
    order = np.argsort(ids)
    return (ids[order], np.concatenate([b.labels[b.mask] for b in batches])[order],
            np.concatenate([b.images[b.mask] for b in batches])[order])


@pytest.mark.parametrize("kind,packed", FORMS, ids=FORM_IDS)
def test_a_release_reads_the_pixels_written(tmp_path, kind, packed):
    """Pixel for pixel (the CHW rows as HWC images, no re-encoding), with the JPEG archive's ids, labels
    and per_class subsets; streamed, loaded at random and as cifar10_subsets."""
    data = T.cifar_release(per_class=3)
    path = _release(tmp_path, kind, packed)
    layout = D.cifar10_layout(path)
    assert (layout.kind, layout.packed) == (kind, packed)
    for split, k in (("test", 2), ("train", 3)):  # train: rows spread over data_batch_1..5
        source = D.cifar10(split, k, archive=path)
        want, labels, rows = _expected(data, split, k)
        assert len(source) == 10 * k and source.classes == D.CIFAR10_CLASSES and f"{kind} version" in source.description
        np.testing.assert_array_equal(source.ids, np.arange(10 * k))
        np.testing.assert_array_equal(source.labels, labels)
        for prefetch in (0, 2):
            ids, got_labels, images = _stream(source, prefetch=prefetch)
            np.testing.assert_array_equal(ids, np.arange(10 * k))
            np.testing.assert_array_equal(got_labels, labels)
            np.testing.assert_array_equal(images, want / np.float32(255))  # exact: never JPEG-encoded
    test_want, _, rows = _expected(data, "test", 2)
    source = D.cifar10("test", 2, archive=path)
    suffix = ".bin" if kind == "binary" else ""
    assert source.name(0) == f"test_batch{suffix}[{rows[0]}]"  # where the image is: batch and row
    loaded = D.load(source, [19, 3], 64)  # random access, upscaled from the array
    assert sorted(loaded) == [3, 19]
    np.testing.assert_array_equal(loaded[3], D.fit(Image.fromarray(test_want[3]), 64))
    subsets = D.cifar10_subsets(path, {"train": 3, "test": 2})
    for split, k in (("train", 3), ("test", 2)):
        want, labels, _ = _expected(data, split, k)
        assert subsets[split][0].dtype == np.uint8
        np.testing.assert_array_equal(subsets[split][0], want)
        np.testing.assert_array_equal(subsets[split][1], labels)
    assert len(D.cifar10("test", archive=path)) == 30  # per_class=None: all (the smallest class's count)
    with pytest.raises(D.DatasetError, match=r"has 3 test images of class airplane, fewer than the 4 asked for: "
                                             r"use per_class <= 3"):
        D.cifar10("test", 4, archive=path)
    with pytest.raises(D.DatasetError, match="use train_per_class <= 3"):
        D.cifar10_subsets(path, {"train": 4})


def test_every_form_gives_the_same_ids_labels_and_pixels(tmp_path):
    """The JPEG archive's layout (holding the same images losslessly), the python and the binary
    release: one subset, ids, labels and pixels alike; only the item names say where each came from."""
    data = T.cifar_release(per_class=4, seed=7)
    paths = {"jpeg": T.cifar_jpeg_archive_of(tmp_path / "cifar10-jpeg.tar.gz", data),
             "python": T.cifar_release_archive(tmp_path / "py.tar.gz", "python", True, per_class=4, seed=7),
             "binary": T.cifar_release_archive(tmp_path / "bin", "binary", False, per_class=4, seed=7)}
    read = {kind: _stream(D.cifar10("train", 3, archive=p)) for kind, p in paths.items()}
    for kind in ("python", "binary"):
        for a, b in zip(read["jpeg"], read[kind]):
            np.testing.assert_array_equal(a, b)
    names = {kind: D.cifar10("train", 3, archive=p).name(4) for kind, p in paths.items()}
    assert names["jpeg"] == "train/automobile/0001.jpg"
    assert names["binary"] == names["python"].replace("[", ".bin[") and names["python"].startswith("data_batch_")
    subsets = {kind: D.cifar10_subsets(p, {"train": 4, "test": 4}) for kind, p in paths.items()}
    for split in ("train", "test"):
        for kind in ("python", "binary"):
            np.testing.assert_array_equal(subsets["jpeg"][split][0], subsets[kind][split][0])
            np.testing.assert_array_equal(subsets["jpeg"][split][1], subsets[kind][split][1])


def test_find_cifar10_takes_the_path_then_the_variable_then_the_shared_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(F.CIFAR10_ENV, raising=False)
    shared = tmp_path / "shared"
    folder = shared / "data" / "cifar10"
    release = T.cifar_release_archive(folder / "cifar-10-python.tar.gz", "python", True)
    assert D.find_cifar10("", str(shared)) == release  # no JPEG copy: the release in the shared folder
    jpeg = cifar_archive(folder / "cifar10-jpeg.tar.gz", per_class=1)
    assert D.find_cifar10("", str(shared)) == jpeg  # the JPEG copy stays the default when it is there
    extracted = T.cifar_release_archive(tmp_path / "mine", "binary", False)
    monkeypatch.setenv(F.CIFAR10_ENV, str(extracted))
    assert D.find_cifar10("", str(shared)) == extracted
    assert D.cifar10("test", 1, shared=str(shared)).description.startswith("CIFAR-10 test, 1 per class (binary version")
    assert D.find_cifar10(str(release), str(shared)) == release  # the path first
    assert D.cifar10_layout(tmp_path / "mine").path == extracted  # the folder above the batches' will do
    with pytest.raises(D.DatasetError) as e:
        D.find_cifar10(str(tmp_path / "nope.tar.gz"))
    assert str(e.value) == (f"CIFAR-10 archive not found at {tmp_path / 'nope.tar.gz'} (cifar10_path="
                            f"{tmp_path / 'nope.tar.gz'}): download the python version (cifar-10-python.tar.gz) from "
                            f"{URL} and pass cifar10_path=PATH (the .tar.gz or the folder it unpacks to) or set "
                            f"JFV_CIFAR10=PATH")
    monkeypatch.setenv(F.CIFAR10_ENV, str(tmp_path / "gone"))
    with pytest.raises(D.DatasetError, match=rf"not found at {tmp_path / 'gone'} \(\$JFV_CIFAR10={tmp_path / 'gone'}\)"):
        D.find_cifar10("", str(shared))
    monkeypatch.delenv(F.CIFAR10_ENV)
    (tmp_path / "empty").mkdir()
    with pytest.raises(D.DatasetError) as e:
        D.cifar10("test", 1, shared=str(tmp_path / "empty"))
    message = str(e.value)
    assert "\n" not in message and message.startswith(
        f"CIFAR-10 archive not found at {tmp_path / 'empty' / 'data' / 'cifar10'}: cifar10_path is not given, "
        f"$JFV_CIFAR10 is not set, and that folder holds none of cifar10-jpeg.tar.gz, cifar-10-python.tar.gz, "
        f"cifar-10-batches-py, cifar-10-binary.tar.gz, cifar-10-batches-bin: download the python version")
    assert URL in message
    with pytest.raises(D.DatasetError, match=r"cifar10_path is not given, \$JFV_CIFAR10 is not set, and shared folder "
                                             r"not found \(tried .*nowhere\).* or pass shared_dir=PATH"):
        D.find_cifar10("", str(tmp_path / "nowhere"))


def _damaged(path, detail, kind="python"):
    fix = f"download it again from {URL}" if kind != "jpeg" else ""
    return f"CIFAR-10 archive {path} is damaged (truncated or corrupt: {detail}): {fix}"


def _refused(path, split="test"):
    """The one line both readers give for ``path`` (streamed with and without prefetch, and as subsets)."""
    messages = set()
    for prefetch in (0, 2):
        with pytest.raises(D.DatasetError) as e:
            _stream(D.cifar10(split, 1, archive=path), prefetch=prefetch)
        messages.add(str(e.value))
    with pytest.raises(D.DatasetError) as e:
        D.cifar10_subsets(path, {split: 1})
    messages.add(str(e.value))
    assert len(messages) == 1, messages
    (message,) = messages
    assert "\n" not in message
    return message


def test_damaged_releases_and_unknown_layouts_are_one_line_naming_them(tmp_path):
    files = T.release_files(T.cifar_release(per_class=3), "python")
    bins = T.release_files(T.cifar_release(per_class=3), "binary")
    cut = _release(tmp_path / "cut", "python", True, cut=0.2)
    assert _refused(cut, "train").startswith(f"CIFAR-10 archive {cut} is damaged (truncated or corrupt: EOFError: ")
    assert _refused(cut, "train").endswith(f"download it again from {URL}")
    bin_cut = _release(tmp_path / "bcut", "binary", True, cut=0.2)
    assert _refused(bin_cut, "train").startswith(f"CIFAR-10 archive {bin_cut} is damaged (truncated or corrupt: ")

    broken = T.cifar_release_archive(tmp_path / "broken", "python", False, files={**files, "test_batch": files["test_batch"][:500]})
    assert _refused(broken) == _damaged(broken, "test_batch: UnpicklingError: pickle data was truncated")
    assert _refused(broken / "test_batch") == (f"CIFAR-10 path {broken / 'test_batch'} is one batch of a release: pass "
                                               f"the folder holding the batches ({broken})")
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    evil = T.cifar_release_archive(tmp_path / "evil", "python", True, files={**files, "test_batch": pickle.dumps(Evil())})
    assert _refused(evil) == _damaged(evil, "test_batch: UnpicklingError: posix.system is not part of a CIFAR-10 batch")
    assert not (tmp_path / "pwned").exists()  # the pickle ran nothing
    other = T.cifar_release_archive(tmp_path / "other", "python", False,
                                    files={**files, "test_batch": pickle.dumps({b"data": [1, 2]}, protocol=2)})
    assert _refused(other) == _damaged(other, "test_batch is not a CIFAR-10 python batch, a dict of b'data' (N, 3072) "
                                              "uint8 and b'labels' (N class indices)")
    short = T.cifar_release_archive(tmp_path / "short", "binary", False,
                                    files={**bins, "test_batch.bin": bins["test_batch.bin"][:-100]})
    assert _refused(short) == _damaged(short, f"test_batch.bin has {30 * 3073 - 100} bytes, not a whole number of "
                                              f"3073-byte records (a label byte and 3072 pixel bytes)", "binary")
    label = bytearray(bins["test_batch.bin"])
    label[3073] = 12
    bad_label = T.cifar_release_archive(tmp_path / "label", "binary", True, files={**bins, "test_batch.bin": bytes(label)})
    assert _refused(bad_label) == _damaged(bad_label, "test_batch.bin has label 12, not a CIFAR-10 class index 0..9")
    lacking = T.cifar_release_archive(tmp_path / "lack", "python", True,
                                      files={k: v for k, v in files.items() if k != "data_batch_3"})
    assert _refused(lacking, "train") == (f"CIFAR-10 archive {lacking} lacks cifar-10-batches-py/data_batch_3: the python "
                                          f"version holds data_batch_1, data_batch_2, data_batch_3, data_batch_4, "
                                          f"data_batch_5; download it again from {URL}")
    assert _stream(D.cifar10("test", 1, archive=lacking))[0].tolist() == list(range(10))  # the test split is whole

    layouts = ("expected the python version (cifar-10-python.tar.gz or its folder cifar-10-batches-py/: data_batch_1..5, "
               "test_batch), the binary version (cifar-10-binary.tar.gz or cifar-10-batches-bin/: data_batch_1.bin..5, "
               "test_batch.bin) or jfv's JPEG archive (train/<class>/NNNN.jpg, test/...)")
    (tmp_path / "nobatches" / "stuff").mkdir(parents=True)
    (tmp_path / "nobatches" / "readme.txt").write_text("hello")
    assert _refused(tmp_path / "nobatches") == f"CIFAR-10 folder {tmp_path / 'nobatches'} holds no CIFAR-10 batches: {layouts}"
    import tarfile

    strange = tmp_path / "strange.tar.gz"
    with tarfile.open(strange, "w:gz") as tar:
        for name in ("a/b.txt", "c.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    assert _refused(strange) == f"CIFAR-10 archive {strange} has an unknown layout (its members start a/b.txt, c.txt): {layouts}"


# -- ImageNet's validation layouts (issue 31) ------------------------------------------------------------

LABELS = (2, 0, 1, 0, 2)  # tiny_data.imagenet_val's classes per image: kit fox, tench, goldfish, tench, kit fox


@pytest.mark.parametrize("which", ["LOC_val_solution.csv", "devkit/data/ILSVRC2012_validation_ground_truth.txt"])
def test_imagenet_flat_folder_and_labels_file(tmp_path, shared, which):
    """Both labels files label the flat folder alike: ImageNet's class indices and names through the
    shared folder's labels (tench 0, goldfish 1, kit fox 278), pixels as written."""
    images = T.imagenet_val(tmp_path / "val", LABELS)
    source = D.image_folder(tmp_path / "val", labels_file=tmp_path / which, shared=str(shared))
    assert source.description == (f"image folder {tmp_path / 'val'} (flat, labels from {Path(which).name}: ImageNet class "
                                   f"indices, 5 images)")
    np.testing.assert_array_equal(source.labels, [278, 0, 1, 0, 278])
    assert len(source.classes) == 1000 and source.classes[278] == "kit fox, Vulpes macrotis"
    ids, labels, got = _stream(source, size=16, batch_size=4)
    np.testing.assert_array_equal(labels, [278, 0, 1, 0, 278])
    np.testing.assert_array_equal(got, np.stack(images) / np.float32(255))
    # without the shared labels: the index among the wnids present, sorted (ImageNet's order when all are)
    alone = D.image_folder(tmp_path / "val", labels_file=tmp_path / which, shared=str(tmp_path / "nowhere"))
    np.testing.assert_array_equal(alone.labels, LABELS)
    assert alone.classes == T.IMAGENET_WNIDS and "labels from" in alone.description and "sorted wnids" in alone.description


def test_imagenet_class_folders_named_by_wnid(tmp_path, shared):
    images = T.imagenet_val(tmp_path / "val", LABELS, layout="classes")
    source = D.image_folder(tmp_path / "val", shared=str(shared))
    # ids in sorted (folder, file) order: tench's 2 and 4, goldfish's 3, kit fox's 1 and 5
    np.testing.assert_array_equal(source.labels, [0, 0, 1, 278, 278])
    assert source.description.endswith("(3 wnid class folders, labels: ImageNet class indices, 5 images)")
    _, _, got = _stream(source, size=16)
    np.testing.assert_array_equal(got, np.stack([images[i] for i in (1, 3, 2, 0, 4)]) / np.float32(255))
    alone = D.image_folder(tmp_path / "val", shared=str(tmp_path / "nowhere"))
    np.testing.assert_array_equal(alone.labels, [0, 0, 1, 2, 2])
    assert alone.classes == T.IMAGENET_WNIDS


def test_imagenet_labels_files_that_do_not_fit_are_refused(tmp_path):
    T.imagenet_val(tmp_path / "val", LABELS)
    (tmp_path / "val" / "extra.png").write_bytes((tmp_path / "val" / "ILSVRC2012_val_00000001.png").read_bytes())
    with pytest.raises(D.DatasetError, match=r"1 of the 6 images in .*val have no label in .*LOC_val_solution.csv "
                                             r"\(e\.g\. extra\.png\): pass the labels file of these images"):
        D.image_folder(tmp_path / "val", labels_file=tmp_path / "LOC_val_solution.csv")
    (tmp_path / "val" / "extra.png").unlink()
    truth = tmp_path / "devkit" / "data" / "ILSVRC2012_validation_ground_truth.txt"
    (tmp_path / "devkit" / "data" / "meta.mat").unlink()
    with pytest.raises(D.DatasetError, match=r"numbers classes by the devkit's ILSVRC2012_ID, which .*meta.mat maps to "
                                             r"wnids, and it is missing: keep the devkit's data/ folder together"):
        D.image_folder(tmp_path / "val", labels_file=truth)
    (tmp_path / "notes.txt").write_text("cat\ndog\n")
    with pytest.raises(D.DatasetError, match=r"notes.txt is of neither known form: expected LOC_val_solution.csv"):
        D.image_folder(tmp_path / "val", labels_file=tmp_path / "notes.txt")
    with pytest.raises(D.DatasetError, match=r"labels_file .*missing.csv cannot be read"):
        D.image_folder(tmp_path / "val", labels_file=tmp_path / "missing.csv")
    T.imagenet_val(tmp_path / "classes", LABELS, layout="classes")
    with pytest.raises(D.DatasetError, match=r"holds class folders, whose names are the labels: labels_file is for a "
                                             r"flat folder"):
        D.image_folder(tmp_path / "classes", labels_file=tmp_path / "LOC_val_solution.csv")


# -- the recipes on the new forms, end to end (issue 31) ----------------------------------------------------


def test_top_patches_tiny_on_a_python_release(tmp_path, monkeypatch):
    """``cifar10_path`` at a packed python release: the pass reads all 30 test images, and the hits are
    named by batch and row."""
    import json

    from configs import top_patches_tiny
    from jfv.recipes.analysis import top_patches

    monkeypatch.delenv(F.CIFAR10_ENV, raising=False)
    c = top_patches_tiny.get_config()
    c.cifar10_path = str(T.cifar_release_archive(tmp_path / "cifar-10-python.tar.gz", "python", True))
    manifest = top_patches.run(c, str(tmp_path / "out"))
    assert manifest["dataset"] == f"CIFAR-10 test, 3 per class (python version, {c.cifar10_path})"
    assert (manifest["images"], manifest["read"], manifest["skipped"]) == (30, 30, 0)
    hits = json.loads((tmp_path / "out" / "layers" / "conv3_1.json").read_text())["channels"][0]["max"]
    source = D.cifar10("test", 3, archive=c.cifar10_path)
    assert [h["name"] for h in hits] == [source.name(h["id"]) for h in hits] and hits[0]["name"].startswith("test_batch[")
    assert [h["label"] for h in hits] == [int(source.labels[h["id"]]) for h in hits]


def test_embeddings_tiny_on_a_binary_folder_and_on_imagenet_val_with_labels(tmp_path, shared, monkeypatch):
    from configs import embeddings_tiny
    from jfv.recipes.analysis import embeddings

    monkeypatch.delenv(F.CIFAR10_ENV, raising=False)
    c = embeddings_tiny.get_config()
    c.cifar10_path = str(T.cifar_release_archive(tmp_path / "release", "binary", False, per_class=4))
    manifest = embeddings.run(c, str(tmp_path / "cifar"))
    assert manifest["dataset"].startswith("CIFAR-10 test, 4 per class (binary version")
    assert manifest["images"] == 40 and manifest["classes"] == list(D.CIFAR10_CLASSES)
    with np.load(tmp_path / "cifar" / "features.npz") as z:
        np.testing.assert_array_equal(z["labels"], np.repeat(np.arange(10), 4))

    T.imagenet_val(tmp_path / "val", LABELS)
    c = embeddings_tiny.get_config()
    c.dataset, c.labels_file, c.shared_dir = str(tmp_path / "val"), str(tmp_path / "LOC_val_solution.csv"), str(shared)
    c.queries, c.neighbours, c.knn_k, c.tsne_perplexity, c.map_points = 2, 2, 2, 2.0, 5
    manifest = embeddings.run(c, str(tmp_path / "imagenet"))
    assert manifest["images"] == 5 and "labels from LOC_val_solution.csv: ImageNet class indices" in manifest["dataset"]
    assert manifest["knn_accuracy"] is not None  # labelled: the k-NN accuracy is computed
    with np.load(tmp_path / "imagenet" / "features.npz") as z:
        np.testing.assert_array_equal(z["labels"], [278, 0, 1, 0, 278])
    c.dataset = "cifar10"
    with pytest.raises(ValueError, match=r"labels_file labels a flat folder of ImageNet images"):
        embeddings.run(c, str(tmp_path / "refused"))
