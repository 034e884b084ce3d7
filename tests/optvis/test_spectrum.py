"""jfv.optvis.parameterisations.spectrum: MACO's natural-image magnitude spectrum: the shipped file is what the script
computes, it falls like 1/f^alpha, and resizing samples the same frequencies."""

from __future__ import annotations

import numpy as np

from jfv.optvis.parameterisations import spectrum


def test_resize_samples_the_same_frequencies():
    m = spectrum.shipped()
    assert spectrum.resize_magnitude(m, 256) is not m and np.array_equal(spectrum.resize_magnitude(m, 256), m)
    half = spectrum.resize_magnitude(m, 128)
    # 128 px frequency (k / 128) is 256 px frequency (2k / 256): rows 0..63 and columns 0..64
    np.testing.assert_allclose(half[:, :64, :], m[:, 0:128:2, 0:129:2], rtol=1e-6)
    np.testing.assert_allclose(half[:, 64:, :], m[:, 128::2, 0:129:2], rtol=1e-6)  # negative rows


def test_the_shipped_spectrum_is_what_the_script_computes(shared, tmp_path):
    out = tmp_path / "m.npz"
    assert spectrum.main([f"--images={shared / 'data' / 'images'}", f"--out={out}"]) == 0
    with np.load(out) as new, np.load(spectrum.SHIPPED) as old:
        assert list(new["sources"]) == list(old["sources"]) and len(old["sources"]) == 30
        assert old["magnitude"].dtype == np.float16 and old["magnitude"].shape == (3, 256, 129)
        np.testing.assert_allclose(new["magnitude"].astype(np.float32), old["magnitude"].astype(np.float32),
                                   rtol=1e-3)
    assert spectrum.SHIPPED.stat().st_size < 300_000


def test_the_shipped_spectrum_falls_like_one_over_f():
    m = spectrum.shipped().mean(axis=0)
    f = np.sqrt(np.fft.fftfreq(256)[:, None] ** 2 + np.fft.rfftfreq(256)[None, :] ** 2)
    low = (f > 0.01) & (f < 0.1)  # up to a tenth of the sampling rate, before resizing and JPEG cut in
    slope = np.polyfit(np.log(f[low]), np.log(m[low]), 1)[0]
    assert -1.4 < slope < -1.0  # natural images: amplitude ~ 1 / f^alpha, alpha ~ 1-1.4 (here 1.22)
    high = (f > 0.3) & (f < 0.5)
    assert np.polyfit(np.log(f[high]), np.log(m[high]), 1)[0] < slope  # steeper: the resize's low-pass
