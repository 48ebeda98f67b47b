"""Global intensity normalisation: one affine map per volume, never per block.

Per-block statistics make seams (every block would be stretched differently).
The range is either fixed by the model or estimated once from a fixed, evenly
spread sample of the whole volume, and saved with the output so a resumed run
uses the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pssr_volume.config import NormalizationConfig

Reader = Callable[[tuple[slice, slice, slice]], np.ndarray]


def sample_volume(read: Reader, shape: tuple[int, int, int], max_slices: int = 16,
                  patch: int = 256, patches_per_axis: int = 8) -> np.ndarray:
    """Deterministic sample of a volume for percentile estimates.

    Up to ``max_slices`` evenly spaced z-sections; from each, the whole
    section if it is small, else a ``patches_per_axis``-squared grid of evenly
    spread ``patch``-sized squares. Returns the sampled voxels, flattened.
    """
    z, y, x = shape
    zs = np.unique(np.linspace(0, z - 1, min(z, max_slices)).round().astype(int))
    boxes: list[tuple[slice, slice, slice]] = []
    for k in zs:
        if y * x <= (patch * patches_per_axis) ** 2:
            boxes.append((slice(k, k + 1), slice(0, y), slice(0, x)))
            continue
        py, px = min(patch, y), min(patch, x)
        for j in np.linspace(0, y - py, patches_per_axis).round().astype(int):
            for i in np.linspace(0, x - px, patches_per_axis).round().astype(int):
                boxes.append((slice(k, k + 1), slice(j, j + py), slice(i, i + px)))
    out: np.ndarray | None = None  # filled in place: no list of parts and a copy of them
    at = 0
    for box in boxes:
        part = read(box).ravel()
        if out is None:
            size = sum((b[1].stop - b[1].start) * (b[2].stop - b[2].start) for b in boxes)
            out = np.empty(size, part.dtype)
        out[at:at + part.size] = part
        at += part.size
    assert out is not None  # a volume has at least one section
    return out[:at]


def intensity_range(config: NormalizationConfig, sample: np.ndarray | None) -> tuple[float, float]:
    """The ``(lo, hi)`` intensities that map to 0 and 1.

    ``fixed`` returns the configured values; ``percentile`` needs ``sample``.
    A constant volume gets ``hi = lo + 1`` rather than a division by zero.
    """
    if config.mode == "fixed":
        return float(config.low), float(config.high)
    if sample is None or sample.size == 0:
        raise ValueError("percentile normalisation needs a sample of the volume")
    lo, hi = np.percentile(sample, [config.low, config.high])
    lo, hi = float(lo), float(hi)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


@dataclass(frozen=True)
class GreyMap:
    """Affine map between stored grey values and the [0, 1] floats crappifiers use."""

    lo: float
    hi: float
    dtype: str

    @classmethod
    def for_volume(cls, dtype: str, read: Reader, shape: tuple[int, int, int]) -> GreyMap:
        """``[0, dtype max]`` for integer types, the sampled [min, max] for floats
        (:func:`sample_volume` of the volume that ``read`` reads)."""
        dt = np.dtype(dtype)
        if dt.kind in "iu":
            return cls(0.0, float(np.iinfo(dt).max), dt.name)
        lo, hi = intensity_range(NormalizationConfig(mode="percentile", low=0, high=100),
                                 sample_volume(read, shape))
        return cls(lo, hi, dt.name)

    def to_unit(self, a: np.ndarray) -> np.ndarray:
        """Stored values to floats in [0, 1] (clipped)."""
        return np.clip((a.astype(np.float32) - self.lo) / (self.hi - self.lo), 0, 1)

    def from_unit(self, a: np.ndarray) -> np.ndarray:
        """Floats in [0, 1] back to the stored dtype (rounded for integers)."""
        v = a.astype(np.float64) * (self.hi - self.lo) + self.lo
        dt = np.dtype(self.dtype)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            v = np.clip(np.rint(v), info.min, info.max)
        return v.astype(dt)


def work_dtype(dtype: str | np.dtype) -> np.dtype:
    """The float type intensities of ``dtype`` are mapped in: float32, or float64 for 32- and
    64-bit integers and float64 volumes, whose values float32 cannot hold (a uint32 at its
    maximum would round up past it and wrap to 0)."""
    dt = np.dtype(dtype)
    wide = (dt.kind in "iu" and dt.itemsize >= 4) or (dt.kind == "f" and dt.itemsize > 4)
    return np.dtype(np.float64 if wide else np.float32)


def normalize(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map intensities so that ``lo -> 0`` and ``hi -> 1`` (float32, not clipped; computed
    in float64 for wide types, so their extremes map to exactly 0 and 1)."""
    w = work_dtype(x.dtype)
    return ((x.astype(w) - w.type(lo)) / w.type(hi - lo)).astype(np.float32)


def _bounds(dtype: np.dtype, work: np.dtype) -> tuple[float, float] | None:
    """The dtype's range as values of the work type that convert back without overflow."""
    if dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    lo, hi = work.type(info.min), work.type(info.max)
    if int(hi) > info.max:  # e.g. uint64 max is not a float64: take the next float down
        hi = np.nextafter(hi, work.type(0))
    return float(lo), float(hi)


def denormalize(y: np.ndarray, lo: float, hi: float, dtype: str | np.dtype,
                out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`normalize`, then rounded and clipped once to ``dtype``.

    Works through ``y`` in slabs of about a megabyte, so the affine map, the
    rounding and the clipping of a slab happen while it is in cache: one pass
    over memory instead of four. The arithmetic is float32 (float64 for wide types,
    see :func:`work_dtype`).
    """
    dtype = np.dtype(dtype)
    if out is None:
        out = np.empty(y.shape, dtype)
    work = work_dtype(dtype)
    scale, offset = work.type(hi - lo), work.type(lo)
    bounds = _bounds(dtype, work)
    if y.ndim < 2 or (y.flags.c_contiguous and out.flags.c_contiguous):
        width = y.shape[-1] if y.ndim else 1
        _denormalize_2d(y.reshape(-1, width), out.reshape(-1, width), scale, offset, bounds)
        return out
    for index in np.ndindex(*y.shape[:-2]):  # a cropped view: walk its leading axes
        _denormalize_2d(y[index], out[index], scale, offset, bounds)
    return out


def _denormalize_2d(y: np.ndarray, out: np.ndarray, scale: np.floating, offset: np.floating,
                    bounds: tuple[float, float] | None) -> None:
    width = max(1, y.shape[-1])
    step = max(1, (1 << 18) // width)  # rows per slab: ~1 MB of float32
    buf = np.empty((min(step, y.shape[0]), width), scale.dtype)
    for r in range(0, y.shape[0], step):
        v = buf[: min(step, y.shape[0] - r)]
        np.multiply(y[r : r + step], scale, out=v, dtype=scale.dtype)
        v += offset
        if bounds is not None:
            np.rint(v, out=v)
            np.clip(v, bounds[0], bounds[1], out=v)
        out[r : r + step] = v
