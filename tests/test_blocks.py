"""Block geometry: pure, tiny arrays."""

import itertools

import numpy as np
import pytest

from pssr_volume.blocks import (
    BlockGrid,
    apply_read_plan,
    box_slices,
    check_chunking,
    default_chunk,
    padded_read_plan,
    reflect_index,
)
from pssr_volume.errors import PssrError

GRIDS = [
    # in_shape, scale, block, halo, grid
    ((3, 37, 53), 4, (2, 32, 48), (0, 8, 8), 4),      # odd shapes, edge blocks
    ((1, 10, 9), 4, (1, 256, 256), (0, 12, 4), 4),    # block bigger than the volume
    ((5, 20, 20), 2, (5, 8, 8), (1, 3, 3), 1),        # z halo, grid 1
    ((4, 64, 64), 4, (4, 256, 256), (0, 16, 16), 8),  # exactly one block
]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_reflect_index_matches_numpy_pad(n):
    base = np.arange(n)
    for before, after in [(0, 0), (1, 2), (n, n), (3 * n + 1, 2 * n + 3)]:
        want = np.pad(base, (before, after), mode="reflect")
        got = reflect_index(np.arange(-before, n + after), n)
        np.testing.assert_array_equal(got, want)


def test_padded_read_equals_numpy_pad():
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 255, (4, 7, 9))
    pad = ((2, 3), (9, 5), (4, 11))
    padded = np.pad(vol, pad, mode="reflect")
    boxes = [((-2, 6), (-9, 12), (-4, 20)), ((0, 4), (2, 5), (3, 8)), ((1, 7), (-3, 1), (5, 20))]
    for box in boxes:
        read, take = padded_read_plan(box, vol.shape)
        got = apply_read_plan(vol[box_slices(read)], take)
        want = padded[tuple(slice(a + p, b + p) for (a, b), (p, _) in zip(box, pad))]
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("spec", GRIDS)
def test_write_blocks_partition_the_output(spec):
    grid = BlockGrid(*spec)
    count = np.zeros(grid.out_shape, np.int32)
    for block in grid:
        count[box_slices(block.write)] += 1
    assert (count == 1).all()
    assert len(grid) == len(list(grid.indices()))


@pytest.mark.parametrize("spec", GRIDS)
def test_tiles_sit_on_the_network_grid_and_cover_the_halo(spec):
    grid = BlockGrid(*spec)
    for block in grid:
        (wz0, wz1), *_ = block.write
        assert block.core[0] == (wz0, wz1)
        assert block.tile[0] == (wz0 - grid.halo[0], wz1 + grid.halo[0])
        for axis in (1, 2):
            (w0, w1), (c0, c1), (t0, t1) = block.write[axis], block.core[axis], block.tile[axis]
            assert (c0 * grid.scale, c1 * grid.scale) == (w0, w1)
            assert t0 % grid.grid == 0 and (t1 - t0) % grid.grid == 0
            assert t0 == c0 - grid.halo[axis] and t1 >= c1 + grid.halo[axis]
            assert t1 - grid.halo[axis] - c1 < grid.grid  # rounded up to the grid, no further


def test_block_and_halo_validation():
    with pytest.raises(PssrError, match="multiples of 16"):
        BlockGrid((1, 64, 64), 4, (1, 40, 64), (0, 8, 8), 4)
    with pytest.raises(PssrError, match="multiple of the network grid 4"):
        BlockGrid((1, 64, 64), 4, (1, 64, 64), (0, 6, 8), 4)
    with pytest.raises(IndexError):
        BlockGrid((1, 64, 64), 4, (1, 64, 64), (0, 8, 8), 4).block_at((0, 9, 0))


def test_default_chunk_divides_the_block():
    assert default_chunk((4, 256, 256)) == (4, 256, 256)
    assert default_chunk((4, 1024, 1024)) == (4, 256, 256)
    assert default_chunk((1, 256, 256)) == (1, 256, 256)
    assert default_chunk((12, 96, 512)) == (4, 32, 256)
    for b in itertools.product([1, 3, 8, 12], [16, 48, 1024], [32, 512]):
        check_chunking(b, default_chunk(b))
    with pytest.raises(PssrError, match="multiple of the output chunk"):
        check_chunking((4, 256, 256), (4, 96, 256))


def test_neighbours_stay_in_the_grid():
    grid = BlockGrid((2, 40, 40), 4, (1, 32, 32), (0, 4, 4), 4)
    assert grid.counts == (2, 5, 5)
    assert grid.neighbours((1, 0, 0), (1, 1)) == [(1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)]
    assert len(grid.neighbours((0, 2, 2), (1, 1))) == 9
    assert grid.neighbours((0, 2, 2), (0, 0)) == [(0, 2, 2)]
