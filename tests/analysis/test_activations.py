"""Activation grids and the most activated channels of one image: normalisations and ranking checked
against numpy by hand, the grid's layout, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from jfv.analysis import activations as A


def _maps():
    rng = np.random.default_rng(3)
    maps = rng.standard_normal((3, 4, 5)).astype(np.float32)
    maps[..., 4] = 1.0  # constant channel
    maps[0, 0, 2] = 9.0  # channel 2 peaks highest
    maps[1, 1, 1] = 9.0  # ... tied with channel 1: the lower channel first
    return maps


def test_normalise_layer_and_channel():
    maps = _maps()
    layer = np.asarray(A.normalise_maps(maps, "layer"))
    np.testing.assert_allclose(layer, (np.moveaxis(maps, -1, 0) - maps.min()) / (maps.max() - maps.min()), rtol=1e-6, atol=1e-7)
    chan = np.asarray(A.normalise_maps(maps, "channel"))
    for c in range(4):
        m = maps[..., c]
        np.testing.assert_allclose(chan[c], (m - m.min()) / (m.max() - m.min()), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(chan[4], 0.0)


def test_top_channels_rank_by_max_or_mean_ties_to_the_lower_channel():
    maps = _maps()
    channels, values = A.top_channels(maps, 3)
    assert list(channels[:2]) == [1, 2] and list(values[:2]) == [9.0, 9.0]
    means = maps.mean((0, 1))
    channels, values = A.top_channels(maps, 5, "mean")
    np.testing.assert_array_equal(channels, np.argsort(-means, kind="stable"))
    np.testing.assert_allclose(values, np.sort(means)[::-1], rtol=1e-6)


def test_grid_layout():
    maps = _maps()
    grid = A.activation_grid(maps, "channel", columns=2, scale=2, pad=1)
    assert grid.shape == (3 * 7 - 1, 2 * 9 - 1, 3)  # 5 tiles of 6x8 in 3 rows of 2
    tile = np.asarray(A.normalise_maps(maps, "channel"))[3].repeat(2, 0).repeat(2, 1)
    np.testing.assert_allclose(grid[7:13, 9:17, 0], tile)  # channel 3: row 1, column 1
    assert (grid[..., 0] == grid[..., 2]).all()  # grey


def test_bad_input_names_the_fix():
    with pytest.raises(A.ActivationError, match=r"expected one image's maps \(H, W, C\)"):
        A.activation_grid(np.zeros((2, 8)))
    with pytest.raises(A.ActivationError, match="n must be in 1..5"):
        A.top_channels(_maps(), 6)
    with pytest.raises(A.ActivationError, match="unknown reduce"):
        A.top_channels(_maps(), 1, "sum")
    with pytest.raises(A.ActivationError, match="unknown normalise"):
        A.normalise_maps(_maps(), "image")
