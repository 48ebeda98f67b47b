"""How a neuroglancer precomputed output is laid out: each scale's chunk, sharding and voxel
offset, chosen so that every shard file is exactly the region one task writes. Pure: no I/O.

In the sharded precomputed format a chunk's key is the *compressed Morton code* of its
position in the scale's chunk grid (x, y, z), and with the ``identity`` hash a shard holds the
chunks whose codes agree above the lowest ``preshift_bits + minishard_bits`` (= ``k``) bits.
The code interleaves one bit of x, y and z at a time, lowest first, and drops an axis once
its grid index has no bits left, so the chunks of a shard are an aligned box of
``2^tx x 2^ty x 2^tz`` chunks, ``(tx, ty, tz)`` the axes' counts in the first ``k`` bits of
that sequence: x gets a bit before y before z, and no axis gets two more than another
unless the other has run out. One writer per shard then needs:

    the region one task writes at a scale (``pssr_volume.pyramid.shard_shapes``) splits into
    2^ez x 2^ey x 2^ex chunks along the axes it does not span whole, with (ex, ey, ez) the
    first k bits of the Morton sequence; along an axis it spans whole, the shard takes all
    of that axis's bits.

:func:`choose_chunk` picks, for each scale, the chunk that satisfies the rule and is nearest
to the OME-Zarr chunk of the same plan (in powers of two, the worst axis first): the same
blocks, pyramid stages and shards as an OME-Zarr run, only the chunk inside a shard may
differ. A chunk the user names (``--chunk-shape``) is used as given at level 0, or refused
when it breaks the rule.

Voxel offsets: precomputed puts voxel ``i`` of a scale at voxel coordinates
``[voxel_offset + i, voxel_offset + i + 1)`` times its resolution, i.e. by its corner. The
input's voxel ``i`` sits at ``input offset + i`` (its translation in voxels; 0 without one), so
a restoration's voxels subdivide the input's exactly: level 0's offset is ``scale`` times
the input's in y and x, and a pooled level's is level 0's divided by its pooling factor.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from pssr_volume.errors import PssrError
from pssr_volume.types import Shape3

# neuroglancer precomputed data types (tensorstore writes each of them)
DATA_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32")
SHARDING = "neuroglancer_uint64_sharded_v1"


def grid_bits(grid_xyz: tuple[int, ...]) -> tuple[int, ...]:
    """Bits of each axis of a chunk grid in its Morton codes: ``ceil(log2(n))``."""
    return tuple((n - 1).bit_length() for n in grid_xyz)


def morton_code(index_xyz: tuple[int, ...], bits: tuple[int, ...]) -> int:
    """The compressed Morton code of chunk ``index_xyz`` in a grid of ``bits`` per axis."""
    code, out = 0, 0
    for level in range(max(bits, default=0)):
        for i, b in zip(index_xyz, bits):
            if level < b:
                code |= ((i >> level) & 1) << out
                out += 1
    return code


def prefix_counts(bits: tuple[int, ...], k: int) -> tuple[int, ...]:
    """How many of the first ``k`` bits of a Morton code each axis (x, y, z) holds."""
    counts = [0] * len(bits)
    for level in range(max(bits, default=0)):
        for axis, b in enumerate(bits):
            if k == 0:
                return tuple(counts)
            if level < b:
                counts[axis] += 1
                k -= 1
    return tuple(counts)


def _xyz(zyx: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(reversed(zyx))


@dataclass(frozen=True)
class Scale:
    """One scale of the output (one pyramid level): sizes in (z, y, x) like the rest of
    the package; :meth:`info` writes them as precomputed's (x, y, z)."""

    key: str
    shape: Shape3
    chunk: Shape3
    shard: Shape3  # the region one shard holds: one task's region at this level
    resolution: tuple[float, float, float]  # nm
    voxel_offset: Shape3
    preshift_bits: int
    minishard_bits: int
    shard_bits: int

    @property
    def grid(self) -> Shape3:
        """Chunks per axis (z, y, x)."""
        return tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunk))  # type: ignore[return-value]

    @property
    def bits(self) -> tuple[int, ...]:
        """Morton bits per axis, (x, y, z)."""
        return grid_bits(_xyz(self.grid))

    def chunk_id(self, index: tuple[int, ...]) -> int:
        """The key of chunk ``index`` (its grid position, z, y, x)."""
        return morton_code(_xyz(index), self.bits)

    def shard_number(self, chunk_index: tuple[int, ...]) -> int:
        """The shard that holds chunk ``chunk_index`` (z, y, x)."""
        return self.chunk_id(chunk_index) >> (self.preshift_bits + self.minishard_bits)

    def shard_file(self, shard_index: tuple[int, ...]) -> str:
        """The file name (in the scale's folder) of the shard at ``shard_index`` in the grid
        of shards (z, y, x): its number in hexadecimal, ``ceil(shard_bits / 4)`` digits."""
        first = tuple(i * s // c for i, s, c in zip(shard_index, self.shard, self.chunk))
        digits = math.ceil(self.shard_bits / 4)
        return format(self.shard_number(first), "x").zfill(digits) + ".shard"

    def info(self) -> dict[str, Any]:
        """The scale's entry in the ``info`` file."""
        return {
            "key": self.key, "size": list(_xyz(self.shape)),
            "resolution": list(_xyz(self.resolution)),
            "voxel_offset": list(_xyz(self.voxel_offset)),
            "chunk_sizes": [list(_xyz(self.chunk))], "encoding": "raw",
            "sharding": self.sharding(),
        }

    def sharding(self) -> dict[str, Any]:
        """The scale's sharding specification (chunk data and indices gzip: CRC-32)."""
        return {"@type": SHARDING, "hash": "identity", "preshift_bits": self.preshift_bits,
                "minishard_bits": self.minishard_bits, "shard_bits": self.shard_bits,
                "minishard_index_encoding": "gzip", "data_encoding": "gzip"}


def _fits(shape: Shape3, shard: Shape3, chunk: Shape3) -> int | None:
    """``k`` (chunk bits per shard) when ``chunk`` makes every ``shard``-shaped region of a
    ``shape`` scale exactly one shard (the module's rule), else None."""
    want = []
    grid = tuple(math.ceil(n / c) for n, c in zip(shape, chunk))
    bits = grid_bits(_xyz(grid))
    for n, s, c, b in zip(_xyz(shape), _xyz(shard), _xyz(chunk), bits):
        if s >= n:  # the shard spans the axis: it takes all of the axis's bits
            want.append(b)
            continue
        per = s // c
        if s % c or per & (per - 1):  # whole chunks, a power of two of them
            return None
        want.append(per.bit_length() - 1)
    k = sum(want)
    return k if prefix_counts(bits, k) == tuple(want) else None


def _candidates(n: int, s: int) -> list[int]:
    """Chunk sizes along an axis of ``n`` voxels whose shards are ``s`` long: ``s / 2^e``,
    or for a shard spanning the axis, ``ceil(n / 2^e)``."""
    extent = min(n, s)
    found = []
    for e in range(extent.bit_length()):
        if s >= n:
            found.append(math.ceil(n / 2**e))
        elif s % 2**e == 0:
            found.append(s // 2**e)
    return sorted(set(found))


def _distance(chunk: Shape3, target: Shape3) -> tuple[float, float]:
    logs = [abs(math.log2(c / t)) for c, t in zip(chunk, target)]
    return (max(logs), sum(logs))


def choose_chunk(shape: Shape3, shard: Shape3, target: Shape3) -> tuple[Shape3, int]:
    """The chunk of a scale of ``shape`` whose ``shard``-shaped regions are one shard each,
    nearest to ``target`` (each axis of it at most the scale's), and its ``k``. One chunk
    per shard always qualifies, so there is always an answer."""
    target = tuple(max(1, min(t, n, s)) for t, n, s in zip(target, shape, shard))  # type: ignore[assignment]
    best: tuple[tuple[float, float], Shape3, int] | None = None
    for chunk in itertools.product(*(_candidates(n, s) for n, s in zip(shape, shard))):
        k = _fits(shape, shard, chunk)  # type: ignore[arg-type]
        if k is not None:
            score = _distance(chunk, target)  # type: ignore[arg-type]
            if best is None or score < best[0]:
                best = (score, chunk, k)  # type: ignore[assignment]
    assert best is not None  # the shard itself, as one chunk, always fits
    return best[1], best[2]


def voxel_offset(translation: tuple[float, ...], voxel: tuple[float, ...],
                 input_voxel: tuple[float, ...]) -> tuple[Shape3, bool]:
    """A level's voxel offset (z, y, x) from its NGFF translation (nm, voxel centres), its
    voxel size and the input's (see the module docstring), and whether it was rounded."""
    exact = [(t + (vi - v) / 2) / v for t, v, vi in zip(translation, voxel, input_voxel)]
    offset = tuple(round(e) for e in exact)
    return offset, any(abs(e - o) > 1e-3 for e, o in zip(exact, offset))  # type: ignore[return-value]


def plan_scales(levels: tuple[Any, ...], shards: tuple[Shape3, ...], chunk: Shape3,
                input_voxel: tuple[float, ...], given: bool, dtype: str,
                notes: list[str]) -> tuple[Scale, ...]:
    """The scales of a precomputed output of pyramid ``levels`` whose tasks write
    ``shards`` (one region per level), chunks nearest to ``chunk``; ``given``: the user
    named ``chunk`` (level 0 then uses it as it is, or it is refused).

    Raises
    ------
    PssrError
        For a data type precomputed lacks, or a given chunk that breaks the rule.
    """
    if dtype not in DATA_TYPES:
        raise PssrError(f"neuroglancer precomputed has no {dtype} data type (it has "
                        f"{', '.join(DATA_TYPES)}); use --output-format ome-zarr")
    scales, rounded = [], []
    for k, (lv, shard) in enumerate(zip(levels, shards)):
        best, bits = choose_chunk(lv.shape, shard, chunk)
        if k == 0 and given and best != chunk:
            fits = _fits(lv.shape, shard, chunk)
            if fits is None:
                raise PssrError(
                    f"--chunk-shape {_fmt(chunk)} cannot make a precomputed shard of each "
                    f"written region {_fmt(shard)}: a shard is an aligned Morton-order box of "
                    "2^ez x 2^ey x 2^ex chunks, ex >= ey >= ez >= ex - 1 on axes the region "
                    f"does not span whole (docs/FORMATS.md); use --chunk-shape {_fmt(best)} "
                    "or leave it out")
            best, bits = chunk, fits
        offset, off = voxel_offset(lv.translation, lv.voxel_size, input_voxel)
        if off:
            rounded.append(lv.path)
        preshift = bits // 2
        total = sum(grid_bits(_xyz(tuple(math.ceil(n / c) for n, c in zip(lv.shape, best)))))
        scales.append(Scale(lv.path, lv.shape, best, shard, lv.voxel_size, offset, preshift,
                            bits - preshift, total - bits))
    big = scales[0].chunk
    if math.prod(big) > 8 * math.prod(min(c, n) for c, n in zip(chunk, levels[0].shape)):
        notes.append(f"precomputed chunks of {_fmt(big)} voxels at level 0: a written region of "
                     f"{_fmt(shards[0])} splits no finer into a Morton-order shard; blocks of "
                     "2^k sections give smaller chunks (docs/FORMATS.md)")
    if rounded:
        notes.append(f"precomputed voxel offsets are whole voxels: level(s) "
                     f"{', '.join(rounded)} rounded to the nearest (the input's offset is not "
                     "a multiple of their pooling factor)")
    return tuple(scales)


def _fmt(shape: tuple[int, ...]) -> str:
    return ",".join(map(str, shape))


def output_scales(output_format: str, levels: tuple[Any, ...], shards: tuple[Shape3, ...] | None,
                  chunk: Shape3, input_voxel: tuple[float, ...], given: bool, dtype: str,
                  notes: list[str], settings: dict[str, Any]) -> tuple[Scale, ...] | None:
    """The scales of a planned output (:func:`plan_scales`) when it is precomputed, with
    ``settings`` updated (:func:`scale_settings`); ``None`` for OME-Zarr. ``run`` and
    ``convert`` plan alike."""
    if output_format != "precomputed":
        return None
    assert shards is not None  # planned for NGFF 0.5, which a precomputed config keeps
    scales = plan_scales(levels, shards, chunk, input_voxel, given, dtype, notes)
    settings.update(scale_settings(scales))
    return scales


def scale_settings(scales: tuple[Scale, ...]) -> dict[str, Any]:
    """What a precomputed output adds to (and changes in) a plan's settings, the record
    ``--resume`` compares: the format and every scale's ``info`` entry."""
    return {"output_format": "precomputed", "ngff_version": None,
            "compression": {"codec": "gzip", "level": None},
            "precomputed": [s.info() for s in scales]}
