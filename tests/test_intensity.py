"""Global intensity normalisation: pure numpy."""

import numpy as np
import pytest

from pssr_volume.config import NormalizationConfig
from pssr_volume.intensity import (
    GreyMap,
    denormalize,
    intensity_range,
    normalize,
    sample_volume,
)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
def test_round_trip_is_exact_for_integers(dtype):
    info = np.iinfo(dtype)
    a = np.linspace(info.min, info.max, 1000).astype(dtype)
    lo, hi = float(a.min()) + 3, float(a.max()) - 5
    np.testing.assert_array_equal(denormalize(normalize(a, lo, hi), lo, hi, dtype), a)


def test_denormalize_rounds_and_clips_once():
    y = np.array([-0.5, 0.0, 0.49 / 255, 0.51 / 255, 1.0, 1.7], np.float32)
    np.testing.assert_array_equal(denormalize(y, 0, 255, "uint8"), [0, 0, 0, 1, 255, 255])
    f = denormalize(np.array([0.25], np.float32), 10, 20, "float32")
    assert f.dtype == np.float32 and f[0] == pytest.approx(12.5)


def test_ranges():
    rng = np.random.default_rng(0)
    sample = rng.normal(100, 10, 100_000)
    lo, hi = intensity_range(NormalizationConfig(low=1, high=99), sample)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(sample, [1, 99])))
    assert intensity_range(NormalizationConfig(mode="fixed", low=0, high=255), None) == (0, 255)
    assert intensity_range(NormalizationConfig(), np.full(10, 7.0)) == (7.0, 8.0)
    with pytest.raises(ValueError):
        NormalizationConfig(low=5, high=5)


def test_sample_is_deterministic_and_spread():
    vol = np.arange(40 * 50 * 60).reshape(40, 50, 60)
    reads = []

    def read(region):
        reads.append(region)
        return vol[region]

    a = sample_volume(read, vol.shape, max_slices=5)
    b = sample_volume(lambda r: vol[r], vol.shape, max_slices=5)
    np.testing.assert_array_equal(a, b)
    assert [r[0].start for r in reads] == [0, 10, 20, 29, 39]
    big = sample_volume(lambda r: vol[r], (40, 50, 60), max_slices=2, patch=8, patches_per_axis=3)
    assert big.size == 2 * 9 * 64


@pytest.mark.parametrize("dtype", ["uint32", "int32", "uint64", "int64", "uint16", "uint8"])
def test_full_range_integers_round_trip_at_their_extremes(dtype):
    """The brightest voxels of a 32- or 64-bit volume used to wrap to 0 (float32 cannot hold
    the maximum). Through normalise -> identity network (float32) -> map back, the extremes
    come back exactly and nothing wraps."""
    info = np.iinfo(dtype)
    x = np.unique(np.array([info.min, info.min + 1, 0, info.max // 3, info.max - 1, info.max],
                           dtype=dtype))  # sorted
    lo, hi = float(info.min), float(info.max)
    y = normalize(x, lo, hi)
    assert y.dtype == np.float32
    back = denormalize(y, lo, hi, dtype)
    if np.dtype(dtype).itemsize < 8:
        assert back[0] == info.min and back[-1] == info.max
    else:  # 64-bit: float64 holds the extremes to 2^11 (of 2^64), and nothing wraps
        assert back[0] <= info.min + 2048 and back[-1] >= info.max - 2048
    # middle values: float32 precision of the network, never a wrap
    rel = np.abs(back.astype(np.float64) - x.astype(np.float64)) / (hi - lo)
    assert rel.max() < 1e-6
    assert np.all(np.diff(back.astype(np.float64)) >= 0)


def test_grey_map_of_an_integer_volume_is_its_dtype_range():
    a = np.array([[[0, 1, 128, 255]]], np.uint8)
    grey = GreyMap.for_volume("uint8", lambda region: a[region], a.shape)
    assert (grey.lo, grey.hi) == (0.0, 255.0)
    np.testing.assert_array_equal(grey.from_unit(grey.to_unit(a)), a)
    np.testing.assert_array_equal(grey.from_unit(np.array([-0.5, 0.5, 1.5])), [0, 128, 255])


def test_grey_map_of_a_float_volume_is_its_sampled_range():
    a = np.array([[[-2.0, 0.0, 6.0]]])
    grey = GreyMap.for_volume("float64", lambda region: a[region], a.shape)
    assert (grey.lo, grey.hi) == (-2.0, 6.0)
    np.testing.assert_allclose(grey.to_unit(a), [[[0.0, 0.25, 1.0]]])
    out = grey.from_unit(np.array([0.25], np.float32))
    assert out.dtype == np.float64 and out[0] == pytest.approx(0.0)
