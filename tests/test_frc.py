"""Fourier ring correlation: the numbers evaluate reports per method."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pssr_volume.frc import frc_curve, frc_cutoff, frc_resolution


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=(3, 128, 96)), (0, 1.5, 1.5))


def test_identical_images_correlate_up_to_nyquist():
    gt = _scene()
    freqs, frc = frc_curve(gt, gt)
    assert freqs[0] > 0 and freqs[-1] < 0.5 and len(freqs) == len(frc)
    np.testing.assert_allclose(frc, 1.0, atol=1e-9)
    r = frc_resolution(gt, gt, pixel_nm=4.6)
    assert r == {"frc_cycles_per_px": 0.5, "frc_period_px": 2.0, "frc_period_nm": 9.2}


def test_more_noise_means_a_lower_cutoff():
    gt = _scene()
    rng = np.random.default_rng(1)
    cut = [frc_resolution(gt + rng.normal(0, s * gt.std(), gt.shape), gt)["frc_cycles_per_px"]
           for s in (0.1, 0.5, 2.0)]
    assert 0.5 >= cut[0] > cut[1] > cut[2] > 0


def test_cutoff_interpolates_between_rings():
    assert frc_cutoff([0.1, 0.2, 0.3], [1.0, 0.75, 0.25]) == pytest.approx(0.25)
    assert frc_cutoff([0.1, 0.2], [1.0, 0.9]) == 0.5
    assert frc_cutoff([0.1, 0.2, 0.3], [1.0, 0.4, 0.3]) == pytest.approx(0.1 + 0.1 * 5 / 6)


def test_bad_shapes():
    with pytest.raises(ValueError, match="differ"):
        frc_curve(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="too small"):
        frc_curve(np.zeros((4, 4)), np.zeros((4, 4)))
