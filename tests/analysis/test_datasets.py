"""Streamed datasets: folders with and without classes, lists of paths and the CIFAR-10 archive give the
same pixels as a direct decode, in fixed-size padded batches with a mask; corrupt files are skipped
and counted; bad input fails with the fix."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tiny_data import cifar_archive
from PIL import Image

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
    with pytest.raises(D.DatasetError, match="archive .* not found"):
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
    for archive, detail in ((cut, "EOFError: Compressed file ended before the end-of-stream marker was reached"),
                            (garbage, "ReadError: not a gzip file")):
        want = (f"CIFAR-10 archive {archive} is damaged (truncated or corrupt: {detail}): copy or download it "
                f"again to <shared>/{D.CIFAR10_ARCHIVE}")
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
