"""jfv.attribution.pictures: maps to [0, 1], colours, overlays and signed projections, by hand."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from jfv.attribution import pictures


def test_normalise_maps_min_to_0_max_to_1_and_constants_to_zeros():
    np.testing.assert_allclose(pictures.normalise([[2.0, 4.0], [3.0, 6.0]]), [[0, 0.5], [0.25, 1]])
    np.testing.assert_array_equal(pictures.normalise(np.full((2, 3), 7.0)), np.zeros((2, 3)))


def test_colourise_is_the_colourmap_of_the_normalised_map():
    m = np.array([[0.0, 1.0], [2.0, 4.0]])
    got = pictures.colourise(m)
    assert got.shape == (2, 2, 3) and got.dtype == np.float32
    jet = colormaps["jet"]
    np.testing.assert_allclose(got[0, 0], jet(0.0)[:3], atol=1e-6)  # the minimum: dark blue
    np.testing.assert_allclose(got[1, 1], jet(1.0)[:3], atol=1e-6)  # the maximum: dark red
    np.testing.assert_allclose(got[1, 0], jet(0.5)[:3], atol=1e-6)


def test_resize_map_keeps_a_map_of_the_size_and_a_constant():
    m = np.arange(4.0).reshape(2, 2)
    np.testing.assert_array_equal(pictures.resize_map(m, (2, 2)), m)
    np.testing.assert_allclose(pictures.resize_map(np.full((3, 3), 0.3), (6, 9)), np.full((6, 9), 0.3), atol=1e-6)


def test_overlay_blends_the_coloured_map_over_the_image():
    image = np.full((2, 2, 3), 0.2, np.float32)
    m = np.array([[0.0, 1.0], [1.0, 0.0]])
    got = pictures.overlay(image, m, alpha=0.25)
    want = 0.75 * image + 0.25 * pictures.colourise(m)
    np.testing.assert_allclose(got, want, atol=1e-6)
    gray = pictures.overlay(np.full((2, 2, 1), 0.2, np.float32), m, alpha=0.25)  # a grayscale input
    np.testing.assert_allclose(gray, want, atol=1e-6)
    assert pictures.overlay(np.ones((2, 2, 3)), m, alpha=1.0).max() <= 1.0


def test_signed_image_puts_zero_at_grey_and_the_largest_magnitude_at_the_ends():
    g = np.array([[[-2.0, 0.0, 1.0]]])
    np.testing.assert_allclose(pictures.signed_image(g), [[[0.0, 0.5, 0.75]]])
    np.testing.assert_allclose(pictures.signed_image(g, gain=2.0), [[[0.0, 0.5, 1.0]]])  # clipped
    np.testing.assert_allclose(pictures.signed_image(np.zeros((1, 1, 3))), 0.5)  # no signal: grey
