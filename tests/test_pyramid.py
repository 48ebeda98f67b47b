"""Pyramid planning and pooling: pure numpy, including the staged cascade."""

import itertools
from collections import Counter

import numpy as np
import pytest

from pssr_volume.blocks import box_slices
from pssr_volume.pyramid import (
    cascade_end,
    child_region,
    cumulative,
    downsample,
    parent_region,
    plan_levels,
    plan_stages,
    task_regions,
)


def test_levels_halve_yx_and_z_only_when_near_isotropic():
    lv = plan_levels((20, 4096, 4096), (50.0, 4.6, 4.6), None)
    assert [x.shape for x in lv][:3] == [(20, 4096, 4096), (20, 2048, 2048), (20, 1024, 1024)]
    assert lv[-1].shape[1] <= 256
    # 50 nm sections stay put until xy reaches 36.8 nm (50 < sqrt(2) * 36.8): then z halves too
    assert [x.factors[0] for x in lv] == [1, 1, 1, 1, 2]
    iso = plan_levels((64, 512, 512), (10.0, 2.5, 2.5), 5)
    assert [x.factors[0] for x in iso] == [1, 1, 1, 2, 2]
    assert iso[3].voxel_size == (20.0, 20.0, 20.0)
    assert plan_levels((1, 40, 30), (1.0, 1.0, 1.0), 3)[2].shape == (1, 10, 8)


def test_downsample_means_and_rounds():
    a = np.arange(2 * 4 * 6, dtype=np.uint8).reshape(2, 4, 6)
    got = downsample(a, (1, 2, 2))
    want = (a.reshape(2, 2, 2, 3, 2).astype(float).mean(axis=(2, 4)) + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.uint8
    odd = np.array([[[1, 2, 3]]], np.uint16)
    np.testing.assert_array_equal(downsample(odd, (1, 1, 2)), [[[2, 3]]])  # last cell alone
    f = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)
    assert downsample(f, (2, 2, 2)).shape == (2, 3, 4)
    assert downsample(f, (2, 2, 2))[0, 0, 0] == pytest.approx(f[:2, :2, :2].mean(), rel=1e-6)


@pytest.mark.parametrize("factors", [(1, 2, 2), (2, 2, 2), (1, 1, 2), (2, 1, 2), (2, 2, 1)])
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 6, 8), (1, 1, 1), (4, 9, 2)])
def test_mean_pooling_of_uint8_equals_the_rounded_float_mean(shape, factors):
    """uint8 takes a faster path (x pairs summed as uint16 words); every layout it may
    meet, contiguous, a cropped view, an x-strided view, must give the rounded mean."""
    rng = np.random.default_rng(sum(shape) * 10 + sum(factors))
    full = rng.integers(0, 256, (shape[0] + 1, shape[1] + 2, 2 * shape[2] + 3), dtype=np.uint8)
    full[0, :2, :4] = 255  # the largest sums: no overflow
    views = [np.ascontiguousarray(full[: shape[0], : shape[1], : shape[2]]),
             full[1:, 1 : shape[1] + 1, 1 : shape[2] + 1], full[1:, 2:, 1 : 2 * shape[2] : 2]]
    for a in views:
        pad = [(0, -n % f) for n, f in zip(a.shape, factors)]
        e = np.pad(a.astype(np.float64), pad, mode="edge")
        z, y, x = e.shape
        fz, fy, fx = factors
        mean = e.reshape(z // fz, fz, y // fy, fy, x // fx, fx).mean(axis=(1, 3, 5))
        np.testing.assert_array_equal(downsample(a, factors), np.floor(mean + 0.5))


@pytest.mark.parametrize(("shape", "voxel", "block", "chunk"), [
    ((4, 768, 640), (50.0, 4.6, 4.6), (4, 256, 256), (4, 256, 256)),
    ((4, 768, 640), (50.0, 4.6, 4.6), (4, 1024, 1024), (4, 256, 256)),
    ((9, 300, 200), (2.0, 2.0, 2.0), (4, 128, 64), (2, 32, 32)),
    ((1, 97, 61), (1.0, 1.0, 1.0), (1, 32, 32), (1, 16, 16)),
])
def test_staged_cascade_equals_pooling_the_whole_volume(shape, voxel, block, chunk):
    """Simulate the engine's tasks (chunk-aligned regions, cascades, stages)
    with numpy and compare with pooling the whole level at once: no seams."""
    rng = np.random.default_rng(1)
    level0 = rng.integers(0, 256, shape, dtype=np.uint8)
    levels = plan_levels(shape, voxel, None, min_size=16)
    stages = plan_stages(levels, block, chunk)
    out = [np.full(lv.shape, 77, np.uint8) for lv in levels]
    writes = [np.zeros(lv.shape, np.int32) for lv in levels]

    def write(level, region, data, last):
        out[level][box_slices(region)] = data
        writes[level][box_slices(region)] += 1
        for k in range(level + 1, last + 1):
            data = downsample(data, levels[k].factors)
            region = child_region(region, levels[k].factors, levels[k].shape)
            out[k][box_slices(region)] = data
            writes[k][box_slices(region)] += 1

    for region in task_regions(shape, block):
        write(0, region, level0[box_slices(region)], stages[0].last)
    for st in stages[1:]:
        f = cumulative(levels, st.source, st.first)
        for region in task_regions(levels[st.first].shape, st.task):
            data = out[st.source][box_slices(parent_region(region, f, levels[st.source].shape))]
            for k in range(st.source + 1, st.first + 1):
                data = downsample(data, levels[k].factors)
            write(st.first, region, data, st.last)

    ref = level0
    for k, lv in enumerate(levels):
        if k:
            ref = downsample(ref, lv.factors)
        np.testing.assert_array_equal(out[k], ref)
        assert (writes[k] == 1).all(), f"level {k}: every voxel written exactly once"
        # every task region of a cascade stays chunk-aligned
    for st in stages:
        assert cascade_end(levels, st.first, st.task, chunk) == st.last


def test_level_translations_put_pooled_voxels_at_the_centre_of_their_sources():
    levels = plan_levels((8, 64, 64), (10.0, 2.5, 2.5), 5, translation=(0.0, -3.75, -3.75))
    for lv in levels:
        f = cumulative(levels, 0, int(lv.path))
        for axis in range(3):
            # centre of voxel 0 of this level = mean of the level-0 voxel centres it pools
            centres = [levels[0].translation[axis] + i * levels[0].voxel_size[axis]
                       for i in range(f[axis])]
            assert lv.translation[axis] == pytest.approx(np.mean(centres))


def mode_oracle(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Label pooling counted cell by cell: each output voxel is the value that occurs most
    often among the input voxels of its cell, the lowest of those on a tie. A trailing
    partial cell counts only the voxels it has (the engine's edge replication copies each
    of them equally often, so it picks the same value)."""
    shape = tuple(-(-n // f) for n, f in zip(data.shape, factors))
    out = np.empty(shape, data.dtype)
    for idx in itertools.product(*(range(n) for n in shape)):
        cell = data[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factors))]
        counts = Counter(cell.ravel().tolist())
        top = max(counts.values())
        out[idx] = min(v for v, c in counts.items() if c == top)
    return out


@pytest.mark.parametrize("dtype", ["uint8", "int32", "uint32", "int64", "uint64"])
@pytest.mark.parametrize("factors", [(1, 2, 2), (2, 2, 2), (2, 1, 2), (2, 1, 1)])
def test_mode_pooling_equals_a_per_cell_count(dtype, factors):
    """Odd shapes (partial cells), few distinct ids (many ties, 2-2 and 1-1-1-1 ones)
    and ids beyond 32 bits where the dtype has them."""
    rng = np.random.default_rng(sum(factors) + len(dtype))
    info = np.iinfo(dtype)
    ids = np.array([info.min, 3, 7, info.max // 2 + 1, info.max], dtype=dtype)
    for shape in [(3, 7, 9), (4, 6, 8), (1, 5, 3)]:
        for k in (2, 3, 5):  # fewer ids: more ties
            data = ids[rng.integers(0, k, shape)]
            got = downsample(data, factors, "mode")
            assert got.dtype == data.dtype
            np.testing.assert_array_equal(got, mode_oracle(data, factors))


def test_mode_pooling_tie_rule_is_the_lowest_id():
    """The documented rule (pyramid.downsample): the most frequent value of a cell, the
    lowest on a tie; not the cell's first voxel, not the last one seen."""
    def cell(values: list[int]) -> int:
        data = np.array(values, np.uint64).reshape(2, 2, 2)
        return int(downsample(data, (2, 2, 2), "mode")[0, 0, 0])

    assert cell([9, 5, 5, 5, 9, 9, 1, 2]) == 5  # 9 and 5 three times each: 5
    assert cell([9, 9, 9, 5, 5, 5, 2**63, 2**63]) == 5
    assert cell([8, 7, 6, 5, 4, 3, 2, 1]) == 1  # all different: the lowest, not the first
    assert cell([2**64 - 1] * 5 + [1, 2, 3]) == 2**64 - 1  # a majority wins
    assert cell([4, 4, 6, 6, 6, 4, 0, 0]) == 4  # 4 and 6 three times: 4
    row = np.array([[[3, 3, 1]]], np.int64)  # a partial cell of one voxel keeps it
    np.testing.assert_array_equal(downsample(row, (1, 1, 2), "mode"), [[[3, 1]]])
    tie = np.array([[[6, 2]], [[2, 6]]], np.int32)  # 2-2 across z and x: the lowest
    np.testing.assert_array_equal(downsample(tie, (2, 1, 2), "mode"), [[[2]]])
