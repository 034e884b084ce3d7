"""jfv.optvis.references: the natural-image reference of the study: windows by hand, the image files it
reads, and the most activating patch equal to a brute-force search on the tiny model."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jfv.runtime import outputs
from jfv.optvis import references
from tiny_model import tiny_model


def test_windows_by_hand():
    img = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)
    wins, corners = references.windows(img, 2, 2)
    assert corners == [(0, 0), (0, 2), (2, 0), (2, 2)]  # the last row (4) does not fit a 2-window
    for w, (y, x) in zip(wins, corners):
        np.testing.assert_array_equal(w, img[y:y + 2, x:x + 2])
    wins, corners = references.windows(img, 6, 1)  # larger than the image: one window at the corner
    assert corners == [(0, 0)] and wins.shape == (1, 5, 4, 3)


def test_image_files_are_sorted_recursive_and_refuse_an_empty_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    for rel in ("b.png", "sub/a.JPG", "notes.txt"):
        (tmp_path / rel).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in references.image_files(tmp_path)] == ["b.png", "sub/a.JPG"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        references.image_files(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no .*files under"):
        (tmp_path / "empty").mkdir()
        references.image_files(tmp_path / "empty")


def test_most_activating_patch_equals_brute_force(tmp_path):
    model = tiny_model()
    rng = np.random.default_rng(0)
    files = []
    for i in range(2):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray((rng.uniform(size=(20, 24, 3)) * 255).astype(np.uint8)).save(files[-1])
    channels = [0, 3]
    got = references.most_activating_patch(model, "conv2", channels, files, 8, context=16, stride=4, batch=3)
    best = {c: (-np.inf, None, None) for c in channels}
    for f in files:
        img = outputs.load_image(f, 16)
        for y in range(0, 9, 4):
            for x in range(0, 9, 4):
                win = img[y:y + 8, x:x + 8]
                acts = np.asarray(model.apply(model.params, jnp.asarray(win[None]))["conv2"][0]).mean(axis=(0, 1))
                for c in channels:
                    if acts[c] > best[c][0]:
                        best[c] = (acts[c], win, f"{f.name}@({y}, {x})")
    for i, c in enumerate(channels):
        assert got.sources[i] == best[c][2]
        np.testing.assert_allclose(got.activation[i], best[c][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got.images[i], best[c][1])


def test_channel_means_equal_each_image_alone_and_compile_once():
    """``channel_means`` (the one pass, over images in memory): each image's mean over positions, in
    padded batches; another count of images compiles nothing."""
    from compile_count import compiles

    model = tiny_model()
    x = np.random.default_rng(1).uniform(size=(5, 12, 12, 3)).astype(np.float32)
    got = references.channel_means(model, "conv2", x, batch=2)
    for i in range(5):
        np.testing.assert_allclose(got[i], np.asarray(model(x[i : i + 1])["conv2"]).mean((1, 2))[0], rtol=1e-5, atol=1e-6)
    assert compiles(lambda: references.channel_means(model, "conv2", x[:4], batch=2)) == 0
