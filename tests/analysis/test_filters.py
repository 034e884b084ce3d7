"""First-layer filters: found for every architecture, normalised per filter (or per bank) to [0, 1]
exactly as by hand, tiled on one sheet."""

from __future__ import annotations

import os

import numpy as np
import pytest

from jfv.analysis import filters as F
from jfv import models
from tiny_model import tiny_model


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


def test_first_conv_of_every_architecture(vgg16, alexnet):
    assert F.first_conv(vgg16)[0] == "conv1_1" and F.first_conv(vgg16)[1].shape == (3, 3, 3, 64)
    assert F.first_conv(alexnet)[0] == "conv1" and F.first_conv(alexnet)[1].shape == (11, 11, 3, 64)
    np.testing.assert_array_equal(F.first_conv(alexnet)[1], alexnet.params["conv1"]["kernel"])
    for name, shape in (("resnet18", (7, 7, 3, 64)), ("cifar_resnet20", (3, 3, 3, 16))):
        got = F.first_conv(models.load(name, pretrained=False))
        assert got[0] == "conv1" and got[1].shape == shape


def test_normalisation_per_filter_and_per_layer():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((2, 2, 3, 4)).astype(np.float32)
    kernel[..., 3] = 0.7  # a constant filter
    tiles = np.asarray(F.normalise_filters(kernel))
    assert tiles.shape == (4, 2, 2, 3)
    for f in range(3):
        w = kernel[..., f]
        np.testing.assert_allclose(tiles[f], (w - w.min()) / (w.max() - w.min()), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(tiles[3], 0.5)
    bank = np.asarray(F.normalise_filters(kernel, "layer"))
    np.testing.assert_allclose(bank, (np.moveaxis(kernel, -1, 0) - kernel.min()) / (kernel.max() - kernel.min()), rtol=1e-6, atol=1e-7)


def test_grid_of_alexnet_filters(alexnet):
    tiles = np.asarray(F.normalise_filters(F.first_conv(alexnet)[1]))
    grid = F.filter_grid(tiles, columns=8, scale=4, pad=1)
    assert grid.shape == (8 * 45 - 1, 8 * 45 - 1, 3)  # 64 filters of 11 px, x4, 1 px gaps
    np.testing.assert_array_equal(grid[:44, :44], F.upscale(tiles[:1], 4)[0])
    np.testing.assert_array_equal(grid[45:89, 90:134], F.upscale(tiles[10:11], 4)[0])  # row 1, column 2


def test_bad_input_names_the_fix():
    with pytest.raises(F.FilterError, match="unknown normalise 'global'; valid: filter, layer"):
        F.normalise_filters(np.zeros((1, 1, 3, 1)), "global")
    with pytest.raises(F.FilterError, match="scale must be >= 1"):
        F.upscale(np.zeros((1, 2, 2, 3)), 0)
    model = tiny_model()
    assert F.first_conv(model)[0] == "conv1"
    model.params["conv1"]["kernel"] = np.zeros((3, 3, 4, 8), np.float32)  # a private copy: tiny_model is built per call
    with pytest.raises(F.FilterError, match="no convolution kernel with 3 input channels"):
        F.first_conv(model)
