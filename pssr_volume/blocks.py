"""Block geometry: how a volume is cut into write blocks, and what each block reads.

Pure functions and frozen dataclasses, no I/O. Coordinates are (z, y, x); a
*box* is a tuple of ``(start, stop)`` pairs, one per axis.

The output (``scale`` times the input in y and x, same z) is cut into write
blocks of ``block`` output voxels, aligned to the origin. Block ``j`` along y::

    output  |<------ write (block_y) ------>|            clipped at the volume end
    input        |<-- core = write/scale -->|
    tile    |<halo>|<-- core rounded up to grid -->|<halo>|
            ^ tile start = core start - halo: a multiple of the network grid

The tile is what the network sees. It may extend past the volume (first and
last blocks); those voxels are read with reflection at the volume border, the
same values a whole-volume inference with reflect padding sees. Because tile
starts are multiples of the network grid and the halo covers the receptive
field, a block's output equals whole-volume inference.

A region of interest (``--roi``) is cut into blocks from its own origin, but its
tiles are snapped to the network grid of the *whole* volume (``origin``), so they
see the same pooling phases as a full run; past the ROI they read the
surrounding input (docs/ENGINE.md, "Regions of interest").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np

from pssr_volume.errors import PssrError
from pssr_volume.types import Shape3

Box = tuple[tuple[int, int], ...]


def box_shape(box: Box) -> tuple[int, ...]:
    """Extent of a box per axis."""
    return tuple(b - a for a, b in box)


def box_slices(box: Box, origin: tuple[int, ...] | None = None) -> tuple[slice, ...]:
    """Slices selecting ``box``, optionally relative to ``origin``."""
    origin = origin or (0,) * len(box)
    return tuple(slice(a - o, b - o) for (a, b), o in zip(box, origin))


def box_intersect(a: Box, b: Box) -> Box | None:
    """Intersection of two boxes, or ``None`` if it is empty."""
    out = tuple((max(a0, b0), min(a1, b1)) for (a0, a1), (b0, b1) in zip(a, b))
    return out if all(lo < hi for lo, hi in out) else None


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Map indices on an infinite axis to ``[0, n)`` by mirror reflection.

    ``numpy.pad(mode="reflect")`` semantics, repeated as often as needed:
    ``... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...``. An axis of length 1 maps
    everything to 0.
    """
    index = np.asarray(index)
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    i = np.abs(index) % period
    return np.where(i >= n, period - i, i)


def padded_read_plan(box: Box, shape: tuple[int, ...]) -> tuple[Box, tuple[np.ndarray | None, ...]]:
    """Plan a read of ``box`` from a volume of ``shape`` with reflect padding.

    Returns the in-bounds box to read and, per axis, either ``None`` (the
    read is already the requested range) or the index array that assembles
    the padded range from the read.
    """
    read: list[tuple[int, int]] = []
    take: list[np.ndarray | None] = []
    for (a, b), n in zip(box, shape):
        if a >= 0 and b <= n:
            read.append((a, b))
            take.append(None)
            continue
        idx = reflect_index(np.arange(a, b), n)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        read.append((lo, hi))
        take.append(idx - lo)
    return tuple(read), tuple(take)


def apply_read_plan(data: np.ndarray, take: tuple[np.ndarray | None, ...]) -> np.ndarray:
    """Assemble a reflect-padded array from what :func:`padded_read_plan` said to read."""
    for axis, idx in enumerate(take):
        if idx is not None:
            data = np.take(data, idx, axis=axis)
    return data


@dataclass(frozen=True)
class Block:
    """One write block.

    Attributes
    ----------
    index : tuple of int
        Position in the block grid (z, y, x).
    write : Box
        Output voxels this block owns and writes (clipped to the volume).
    core : Box
        Input voxels whose restoration is ``write`` (``write`` / scale).
    tile : Box
        Input voxels the network reads: the core rounded out to the grid in
        y and x, plus the halo on every side (may exceed the volume).
    """

    index: Shape3
    write: Box
    core: Box
    tile: Box

    def predicted(self, scale: int, out_shape: Shape3) -> Box:
        """Output voxels the network predicts for this block: the write
        region in z, the scaled tile in y and x, clipped to the volume."""
        (z0, z1), *yx = self.write
        pred = [(z0, z1)]
        for (a, b), n in zip(self.tile[1:], out_shape[1:]):
            pred.append((max(a * scale, 0), min(b * scale, n)))
        return tuple(pred)


@dataclass(frozen=True)
class BlockGrid:
    """The write blocks of one restoration.

    Parameters
    ----------
    in_shape : tuple of int
        Input volume shape (z, y, x).
    scale : int
        Upsampling factor in y and x.
    block : tuple of int
        Write block shape in output voxels (z, y, x); y and x multiples of
        ``scale * grid``.
    halo : tuple of int
        Input voxels of context per side (z, y, x); y and x multiples of ``grid``.
    grid : int
        The network's total downsampling factor (shift-equivariance step).
    origin : tuple of int
        Where this volume starts in the whole input (a region of interest). Tile
        boxes stay in this volume's coordinates, but are rounded out to the grid
        counted from the whole input's origin, as a full run's tiles are.
    """

    in_shape: Shape3
    scale: int
    block: Shape3
    halo: Shape3
    grid: int
    origin: Shape3 = (0, 0, 0)

    def __post_init__(self) -> None:
        step = self.scale * self.grid
        if self.block[1] % step or self.block[2] % step:
            raise PssrError(
                f"block shape y and x must be multiples of {step} (scale {self.scale} x network "
                f"grid {self.grid}), got {','.join(map(str, self.block))}"
            )
        if self.halo[1] % self.grid or self.halo[2] % self.grid:
            raise PssrError(
                f"halo must be a multiple of the network grid {self.grid}, "
                f"got {self.halo[1]},{self.halo[2]}"
            )

    @property
    def out_shape(self) -> Shape3:
        """Output shape (z, scale*y, scale*x)."""
        z, y, x = self.in_shape
        return (z, y * self.scale, x * self.scale)

    @property
    def counts(self) -> Shape3:
        """Number of blocks per axis."""
        return cast(Shape3, tuple(math.ceil(n / b) for n, b in zip(self.out_shape, self.block)))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def indices(self) -> Iterator[Shape3]:
        """Block indices in raster order (z slowest)."""
        cz, cy, cx = self.counts
        return itertools.product(range(cz), range(cy), range(cx))

    def __iter__(self) -> Iterator[Block]:
        return (self.block_at(i) for i in self.indices())

    def block_at(self, index: Shape3) -> Block:
        """The block at grid position ``index``."""
        if not all(0 <= i < c for i, c in zip(index, self.counts)):
            raise IndexError(f"block index {index} outside grid {self.counts}")
        write, core, tile = [], [], []
        for axis, (i, b, n) in enumerate(zip(index, self.block, self.out_shape)):
            w0, w1 = i * b, min((i + 1) * b, n)
            s = 1 if axis == 0 else self.scale
            g = 1 if axis == 0 else self.grid
            c0, c1 = w0 // s, w1 // s
            o = self.origin[axis]  # the core rounded out to the whole input's grid
            t0, t1 = (o + c0) // g * g - o, -(-(o + c1) // g) * g - o
            h = self.halo[axis]
            write.append((w0, w1))
            core.append((c0, c1))
            tile.append((t0 - h, t1 + h))
        return Block(cast(Shape3, tuple(index)), tuple(write), tuple(core), tuple(tile))

    def neighbours(self, index: Shape3, reach: tuple[int, int]) -> list[Shape3]:
        """Indices of the blocks within ``reach`` blocks in y and x (same z),
        including ``index`` itself, in raster order."""
        z, y, x = index
        _, ny, nx = self.counts
        return [
            (z, j, k)
            for j in range(max(0, y - reach[0]), min(ny, y + reach[0] + 1))
            for k in range(max(0, x - reach[1]), min(nx, x + reach[1] + 1))
        ]


def default_chunk(block: Shape3, preferred: Shape3 = (8, 256, 256)) -> Shape3:
    """Output chunk shape for a block shape: the largest divisor of the block
    that is at most ``preferred`` per axis (gcd), so every block is a whole
    number of chunks."""
    return cast(Shape3, tuple(math.gcd(b, p) for b, p in zip(block, preferred)))


def check_chunking(block: Shape3, chunk: Shape3, shard: Shape3 | None = None) -> None:
    """Refuse a block shape that is not a whole number of output chunks, or of shards
    (each shard must have one writer), and a shard that is not whole chunks."""
    def fmt(s: Shape3) -> str:
        return ",".join(map(str, s))

    if any(b % c for b, c in zip(block, chunk)):
        raise PssrError(f"block shape {fmt(block)} must be a multiple of the output chunk "
                        f"shape {fmt(chunk)}")
    if shard is not None and any(s % c for s, c in zip(shard, chunk)):
        raise PssrError(f"shard shape {fmt(shard)} must be a multiple of the output chunk "
                        f"shape {fmt(chunk)}")
    if shard is not None and any(b % s for b, s in zip(block, shard)):
        raise PssrError(f"block shape {fmt(block)} must be a multiple of the shard shape "
                        f"{fmt(shard)} (each shard is written by one block)")
