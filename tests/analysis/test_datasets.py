"""Streamed datasets: folders with and without classes, lists of paths and the CIFAR-10 archive give the
same pixels as a direct decode, in fixed-size padded batches with a mask; corrupt files are skipped
and counted; bad input fails with the fix."""

from __future__ import annotations

import io

import numpy as np
import pytest
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
