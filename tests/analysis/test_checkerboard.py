"""The checkerboard measure (hand-computed cases), the projections it is applied to, and the
``checkerboard`` recipe end to end on its tiny config, with bad input as one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import checkerboard as checkerboard_config
from configs import checkerboard_tiny
from jfv import attribution as A
from jfv.analysis import checkerboard as C
from jfv import models, recipes
from jfv.evaluation import checkerboard_chance, checkerboard_energies, checkerboard_energy, grid_frequencies
from jfv.recipes.attribution import checkerboard as recipe
from jfv.recipes.common import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


def board(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    return (-1.0) ** (y + x)


def energy(image, stride=2) -> float:
    return float(checkerboard_energy(image, stride))


# -- the measure -----------------------------------------------------------------------------------


def test_smooth_images_have_no_grid_energy():
    y, x = np.mgrid[:32, :32]
    blob = np.exp(-((y - 15.5) ** 2 + (x - 12.0) ** 2) / (2 * 4.0**2))
    assert energy(blob) < 1e-6
    assert energy(np.stack([blob, 0.5 * blob, blob**2], -1)) < 1e-6
    # one slow wave: its only power is at kx = +-1, no grid bin at any stride
    wave = np.cos(2 * np.pi * x / 32)
    assert energy(wave, 2) < 1e-10 and energy(wave, 4) < 1e-10


def test_a_pure_stride_2_checkerboard_is_one():
    assert energy(board(16, 16)) == pytest.approx(1.0, abs=1e-6)
    assert energy(board(16, 24)) == pytest.approx(1.0, abs=1e-6)
    y, _ = np.mgrid[:16, :16]
    assert energy((-1.0) ** y) == pytest.approx(1.0, abs=1e-6)  # stripes: the Nyquist row
    rgb = board(16, 16)[..., None] * np.array([1.0, -0.3, 2.0]) + np.array([0.5, 0.2, 0.1])
    assert energy(rgb) == pytest.approx(1.0, abs=1e-6)
    assert energy(board(16, 16), 4) == pytest.approx(1.0, abs=1e-6)  # period 2 is on the period-4 grid


def test_a_mix_is_the_share_of_variance_on_the_grid():
    # a (-1)^(y+x) + b cos(2 pi 3 x / W): variances a^2 and b^2 / 2, orthogonal, so
    # E_2 = a^2 / (a^2 + b^2 / 2); a = b = 1 gives 2/3, a = 1, b = 2 gives 1/3.
    y, x = np.mgrid[:32, :32]
    wave = np.cos(2 * np.pi * 3 * x / 32)
    assert energy(board(32, 32) + wave) == pytest.approx(2 / 3, abs=1e-6)
    assert energy(board(32, 32) + 2 * wave) == pytest.approx(1 / 3, abs=1e-6)
    # over channels the powers add: checkerboard in R (variance 1), the wave in G (1/2) -> 2/3
    rgb = np.stack([board(32, 32), wave, np.zeros((32, 32))], -1)
    assert energy(rgb) == pytest.approx(2 / 3, abs=1e-6)


def test_a_stride_4_grid():
    y, x = np.mgrid[:32, :32]
    period4 = np.cos(2 * np.pi * x / 4)  # kx = W/4: on the period-4 grid, off the period-2 one
    assert energy(period4, 4) == pytest.approx(1.0, abs=1e-6)
    assert energy(period4, 2) < 1e-10
    # half the variance at period 4, half at period 2: E_4 = 1, E_2 = 1/2
    mix = period4 + np.sqrt(0.5) * board(32, 32)
    assert energy(mix, 4) == pytest.approx(1.0, abs=1e-6)
    assert energy(mix, 2) == pytest.approx(0.5, abs=1e-6)
    assert grid_frequencies(32, 32, 4).sum() == 15 and grid_frequencies(32, 32, 2).sum() == 3
    assert not grid_frequencies(8, 8, 2)[0, 0]


def test_it_is_the_variance_of_the_mean_tile():
    # Parseval: E_s = || mean s x s tile, repeated, minus the mean ||^2 / || x - mean ||^2
    x = np.random.default_rng(0).normal(size=(24, 36, 3))
    for s in (2, 3, 4):
        tile = x.reshape(24 // s, s, 36 // s, s, 3).mean(axis=(0, 2))
        periodic = np.tile(tile, (24 // s, 36 // s, 1))
        centred = x - x.mean(axis=(0, 1))
        expected = ((periodic - x.mean(axis=(0, 1))) ** 2).sum() / (centred**2).sum()
        assert energy(x, s) == pytest.approx(expected, rel=1e-5)


def test_sizes_not_a_multiple_of_the_stride_are_cropped_top_left():
    x = np.random.default_rng(1).normal(size=(33, 35, 3))
    assert energy(x, 2) == pytest.approx(energy(x[:32, :34], 2), rel=1e-6)
    assert energy(x, 4) == pytest.approx(energy(x[:32, :32], 4), rel=1e-6)
    assert energy(board(33, 35)) == pytest.approx(1.0, abs=1e-6)  # the crop keeps the checkerboard whole
    assert checkerboard_chance(33, 35, 2) == pytest.approx(3 / (32 * 34 - 1))


def test_invariant_to_scale_and_offset():
    x = np.random.default_rng(2).random((32, 32, 3))
    e = energy(x)
    for a, b in ((10.0, 0.0), (1e-3, 0.0), (0.1, 5.0), (-2.0, 0.3)):  # float32 inputs
        assert energy(a * x + b) == pytest.approx(e, rel=1e-4)


def test_flat_images_are_zero():
    assert energy(np.zeros((8, 8))) == 0.0
    assert energy(np.full((8, 8, 3), 0.3)) == 0.0


def test_white_noise_is_at_chance():
    noise = np.random.default_rng(3).normal(size=(64, 32, 32, 3))
    e = np.asarray(checkerboard_energies(noise, 4))
    assert np.all((e >= 0) & (e <= 1))
    assert e.mean() == pytest.approx(checkerboard_chance(32, 32, 4), rel=0.2)


def test_batched_equals_single():
    x = np.random.default_rng(4).normal(size=(3, 16, 20, 3))
    batch = np.asarray(checkerboard_energies(x, 2))
    np.testing.assert_allclose(batch, [energy(im) for im in x], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(checkerboard_energies(x[..., 0], 2)), [energy(im[..., 0]) for im in x], rtol=1e-6)


def test_bad_measure_input():
    for s in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="stride must be an integer >= 2"):
            checkerboard_energy(np.zeros((8, 8)), s)
    with pytest.raises(ValueError, match="smaller than the stride-4 grid"):
        checkerboard_energy(np.zeros((3, 8)), 4)
    with pytest.raises(ValueError, match=r"must be \(H, W\) or \(H, W, C\)"):
        checkerboard_energy(np.zeros(8))


# -- projections -----------------------------------------------------------------------------------


def test_total_stride(vgg16):
    assert [C.total_stride(vgg16, l) for l in ("relu1_1", "pool1", "conv3_3", "pool5")] == [1, 2, 4, 32]
    convnet = models.load("cifar_convnet", pretrained=False)  # no declared geometry: probed
    assert [C.total_stride(convnet, l) for l in ("conv1", "pool1", "relu3", "pool3")] == [1, 2, 4, 8]
    with pytest.raises(C.CheckerboardError, match="has no spatial map"):
        C.total_stride(convnet, "features")


def test_projections_are_the_strongest_channels_map_passed_down(vgg16):
    images = np.random.default_rng(5).random((2, 32, 32, 3)).astype(np.float32)
    p = C.project(vgg16, images, ("pool2", "pool1"))
    acts = vgg16(jnp.asarray(images))
    for layer in ("pool2", "pool1"):
        peak = np.asarray(acts[layer]).max(axis=(1, 2))
        np.testing.assert_array_equal(p[layer].channels, peak.argmax(-1))
        np.testing.assert_allclose(p[layer].peaks, peak.max(-1), rtol=1e-6)
        target = A.Target(layer, tuple(int(c) for c in p[layer].channels), "square")
        np.testing.assert_allclose(p[layer].deconvnet, np.asarray(A.deconvnet(vgg16, images, target)), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(p[layer].guided_backprop, np.asarray(A.guided_backprop(vgg16, images, target)),
                                   rtol=1e-4, atol=1e-6)
        e = C.measure(p[layer], 2)
        assert set(e) == {"deconvnet", "guided_backprop"} and all(v.shape == (2,) for v in e.values())


# -- the recipe ------------------------------------------------------------------------------------


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_recipe_end_to_end(tmp_path, vgg16):
    assert recipes.get("checkerboard") is recipe
    manifest = recipe.run(checkerboard_tiny.get_config(), str(tmp_path))
    assert manifest["layers"] == ["pool2", "pool1"]  # deepest first, whatever the config's order
    assert manifest["layer_strides"] == {"pool2": 4, "pool1": 2}
    files = ["figure.png", "grid.png", "table.md", "results.csv", "index.html", "manifest.json", "inputs/grace_hopper.png"]
    files += [f"projections/{l}_grace_hopper_{m}.png" for l in ("pool2", "pool1") for m in C.METHODS]
    for rel in files:
        assert (tmp_path / rel).is_file(), rel
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jfv-staging")]
    assert json.loads((tmp_path / "manifest.json").read_text())["gallery"] == "index.html"
    # grid.png: rows layers, columns 1 image x 2 methods, 32 px tiles 2 px apart
    assert _png(tmp_path / "grid.png").shape == (2 * 32 + 2, 2 * 32 + 2, 3)

    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    # pool2: grids 2 and 4; pool1 (stride 2): grid 2 only; two methods each
    assert [(r["layer"], r["method"], r["grid_stride"]) for r in rows] == [
        ("pool2", "deconvnet", "2"), ("pool2", "guided_backprop", "2"),
        ("pool2", "deconvnet", "4"), ("pool2", "guided_backprop", "4"),
        ("pool1", "deconvnet", "2"), ("pool1", "guided_backprop", "2")]
    for r in rows:
        assert 0.0 <= float(r["mean_energy"]) <= 1.0
        assert float(r["mean_energy"]) == pytest.approx(float(r["energy_grace_hopper"]), abs=1e-6)
        assert float(r["chance"]) == pytest.approx(checkerboard_chance(32, 32, int(r["grid_stride"])), abs=1e-6)

    # the numbers are the measure applied to the projections the library computes
    image = _png(tmp_path / "inputs/grace_hopper.png")[None].astype(np.float32) / 255
    p = C.project(vgg16, image, ("pool2",))["pool2"]
    assert str(int(p.channels[0])) == rows[0]["channels"]
    assert float(rows[0]["mean_energy"]) == pytest.approx(float(C.measure(p, 2)["deconvnet"][0]), abs=1e-5)
    table = (tmp_path / "table.md").read_text()
    assert table.index("| pool2 | 4 |") < table.index("| pool1 | 2 |")


def test_recipe_on_a_model_with_a_relu_field(tmp_path):
    c = checkerboard_tiny.get_config()
    c.model, c.pretrained, c.layers = "cifar_convnet", False, "pool1,pool3"
    manifest = recipe.run(c, str(tmp_path))
    assert manifest["layer_strides"] == {"pool3": 8, "pool1": 2}
    assert all(0.0 <= v <= 1.0 for v in manifest["mean_energy"].values())


def test_cifar_images(tmp_path, shared):
    c = checkerboard_tiny.get_config()
    c.model, c.pretrained, c.layers, c.dataset, c.max_images = "cifar_convnet", False, "pool2", "cifar10", 2
    c.shared_dir = str(shared)
    manifest = recipe.run(c, str(tmp_path))
    assert [i["name"] for i in manifest["images"]] == ["00_airplane", "01_automobile"]


def test_shared_photos_resolve(shared):
    c = checkerboard_config.get_config()
    c.shared_dir, c.image_size, c.max_images = str(shared), 16, 2
    images, names, sources = recipe.load_images(c)
    assert images.shape == (2, 16, 16, 3) and names == ["owl", "parrot"]
    assert all(Path(s).is_file() for s in sources)


def test_bad_config_values(tmp_path):
    for key, value, fragment in (("stride", 1, "stride must be an integer >= 2"),
                                 ("reduce", "sum", "reduce must be one of square, max"),
                                 ("dataset", "imagenet", "dataset must be one of files, cifar10")):
        c = checkerboard_tiny.get_config()
        c[key] = value
        with pytest.raises(ConfigError, match=fragment):
            recipe.run(c, str(tmp_path))
    c = checkerboard_tiny.get_config()
    c.dataset, c.image_size = "cifar10", 64
    with pytest.raises(ConfigError, match="set image_size=32"):
        recipe.run(c, str(tmp_path))
    c = checkerboard_tiny.get_config()
    c.model, c.pretrained, c.layers = "cifar_convnet", False, "features"
    with pytest.raises(C.CheckerboardError, match="no spatial map"):
        recipe.run(c, str(tmp_path))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jfv", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("override,fragment", [
    ("--config.layers=pool9,pool1", "has no layer 'pool9'"),
    ("--config.stride=1", "stride must be an integer >= 2"),
])
def test_bad_input_is_one_line(tmp_path, override, fragment):
    res = cli("--config=configs/checkerboard_tiny.py", f"--workdir={tmp_path / 'w'}", override)
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("jfv: ")]
    assert len(lines) == 1 and fragment in lines[0], res.stderr[-3000:]
    assert not [p for p in (tmp_path / "w").rglob("*") if p.is_file()]
