"""Evaluation metrics: CARE normalisation, PSNR/SSIM, raw PSNR, z-consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from pssr_volume.metrics import (
    care_normalize,
    fit_affine,
    percentile_normalize,
    psnr,
    section_metrics,
    ssim,
    volume_metrics,
    z_consistency,
)


def _images(seed=0, shape=(3, 48, 40)):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, size=shape).astype(np.uint8)
    noisy = np.clip(gt + rng.normal(0, 12, size=shape), 0, 255).astype(np.uint8)
    return gt, noisy


def test_identical_images_score_perfectly():
    gt, _ = _images()
    m = volume_metrics(gt, gt)
    assert m["psnr"] == math.inf and m["psnr_raw"] == math.inf
    assert m["ssim"] == pytest.approx(1.0) and m["nrmse"] < 1e-12
    assert m["z_mad_ratio"] == pytest.approx(1.0) and m["z_grad_err"] == 0.0
    assert len(m["sections"]) == 3


def test_known_psnr_values():
    a = np.zeros((10, 10))
    b = np.full((10, 10), 0.1)
    assert psnr(a, b, 1.0) == pytest.approx(20.0)
    assert psnr(np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8), 255) == 0.0


def test_normalised_scores_ignore_gain_and_offset_of_the_prediction():
    gt, noisy = _images(1)
    base = section_metrics(noisy[0], gt[0], 255)
    for a, b in [(2.0, 5.0), (0.3, -40.0), (7.5, 100.0)]:
        moved = section_metrics(a * noisy[0].astype(float) + b, gt[0], 255)
        assert moved["psnr"] == pytest.approx(base["psnr"], abs=1e-9)
        assert moved["ssim"] == pytest.approx(base["ssim"], abs=1e-9)
        assert moved["psnr_raw"] != pytest.approx(base["psnr_raw"])  # raw PSNR does not


def test_least_squares_fit_recovers_an_affine_map():
    rng = np.random.default_rng(2)
    p = rng.normal(size=1000)
    assert fit_affine(p, 3 * p - 2) == pytest.approx((3.0, -2.0))
    assert fit_affine(np.ones(10), np.arange(10.0)) == (0.0, 4.5)
    fitted, gt_n = care_normalize(p, 3 * p - 2)
    np.testing.assert_allclose(fitted, gt_n, atol=1e-12)


def test_gt_is_percentile_normalised_without_clipping():
    gt = np.arange(1001, dtype=float)
    n = percentile_normalize(gt)
    assert n[1] == pytest.approx(0.0) and n[999] == pytest.approx(1.0)
    assert n.min() < 0 and n.max() > 1


def test_ssim_uses_skimage_defaults():
    gt, noisy = _images(3)
    a, b = noisy[0] / 255.0, gt[0] / 255.0
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0))


def test_worse_predictions_score_worse():
    gt, noisy = _images(4)
    rng = np.random.default_rng(5)
    worse = np.clip(gt + rng.normal(0, 40, size=gt.shape), 0, 255).astype(np.uint8)
    good, bad = volume_metrics(noisy, gt), volume_metrics(worse, gt)
    assert good["psnr"] > bad["psnr"] + 5 and good["ssim"] > bad["ssim"]
    assert good["psnr_raw"] > bad["psnr_raw"] and good["nrmse"] < bad["nrmse"]


def test_z_consistency():
    gt = np.zeros((4, 8, 8))
    gt[1::2] = 10.0  # HR changes by 10 between every pair of sections
    flicker = gt.copy()
    flicker[1::2] = 30.0
    z = z_consistency(flicker, gt, 100.0)
    assert z["z_mad_hr"] == pytest.approx(0.1) and z["z_mad"] == pytest.approx(0.3)
    assert z["z_mad_ratio"] == pytest.approx(3.0) and z["z_grad_err"] == pytest.approx(0.2)
    assert math.isnan(z_consistency(gt[:1], gt[:1], 1.0)["z_mad"])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        volume_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
