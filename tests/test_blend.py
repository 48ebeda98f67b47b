"""Blend weights are a partition of unity: pure, tiny arrays."""

import math

import numpy as np
import pytest

from pssr_volume.blend import MODES, axis_weights, block_weights, raw_window, reach

CASES = [(100, 32, 12), (37, 16, 16), (10, 64, 8), (90, 20, 30), (64, 64, 0)]  # n, block, margin


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("n", "block", "margin"), CASES)
def test_axis_weights_sum_to_one(mode, n, block, margin):
    total = np.zeros(n)
    for k in range(math.ceil(n / block)):
        m = 0 if mode == "crop" else margin
        span = (max(k * block - m, 0), min((k + 1) * block + m, n))
        w = axis_weights(mode, block, n, m, k, span)
        assert (w >= 0).all() and w.max() <= 1 + 1e-12
        total[span[0]:span[1]] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_block_weights_sum_to_one_in_2d(mode):
    shape, block, margin = (45, 70), (16, 32), (8, 12)
    total = np.zeros(shape)
    for j in range(math.ceil(shape[0] / block[0])):
        for k in range(math.ceil(shape[1] / block[1])):
            m = (0, 0) if mode == "crop" else margin
            region = tuple((max(i * b - mm, 0), min((i + 1) * b + mm, n))
                           for i, b, mm, n in zip((j, k), block, m, shape))
            w = block_weights(mode, block, shape, m, (j, k), region)
            total[region[0][0]:region[0][1], region[1][0]:region[1][1]] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_crop_is_an_indicator_and_linear_crosses_at_half():
    x = np.arange(100)
    np.testing.assert_array_equal(raw_window("crop", (32, 64), 0, 100, x), (x >= 32) & (x < 64))
    w = axis_weights("linear", 32, 100, 8, 1, (24, 72))
    # on the border between blocks 0 and 1 the two weights are equal
    assert w[32 - 24 - 1] == pytest.approx(0.5 - 1 / 32, abs=1e-9)
    assert w[32 - 24] == pytest.approx(0.5 + 1 / 32, abs=1e-9)
    assert w[40 - 24] == 1.0  # past the ramp: fully this block's


def test_windows_vanish_outside_the_prediction():
    x = np.arange(200)
    for mode in ("linear", "cosine", "gaussian"):
        w = raw_window(mode, (64, 128), 16, 200, x)
        assert (w[:48] == 0).all() and (w[144:] == 0).all() and (w[48:144] > 0).all()


def test_reach():
    assert reach("crop", (32, 32), (16, 16)) == (0, 0)
    assert reach("linear", (32, 32), (16, 40)) == (1, 2)
