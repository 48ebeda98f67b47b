"""Data consistency of a restoration: does it, degraded back, give the input again?

The model's own forward operator takes a restoration back to the input grid: the mean over
each ``scale x scale`` cell of output voxels (an input pixel integrates the area it covers).
A restoration that fits its input differs from the input, on that grid, by little more than
the input's noise; one that invents or moves structure (a model on data unlike its
training data: another pixel size, sections blended that have nothing in common) differs by
more. The figure of a block, and of a volume, is

    ratio = RMS(area mean of the restoration - input) / RMS(noise std of the input)

on the normalised intensities the network sees (:mod:`pssr_volume.intensity`), where the
noise is the volume's noise model ``var = a + b * I`` (:mod:`pssr_volume.noise`) and
:data:`NOISE_FLOOR` keeps a noise-free input from turning rounding into a misfit. A model
without a noise model (a blind model) has only the RMS.

Everything here is pure numpy: tasks compute a block's :class:`Residual`, the journal keeps
it, and the run adds them up (docs/ENGINE.md, "Data consistency").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NOISE_FLOOR = 0.01  # of the normalised range: residuals below this are not a misfit
MISFIT_RATIO = 1.0  # a restoration that disagrees with its input by more than the noise
VALIDATION_SLACK = 1.25  # ... or by 1.25 x the most the model showed on its validation data


@dataclass(frozen=True)
class Residual:
    """Sums over the input pixels of one block (or many): squared residual, noise variance
    (``NOISE_FLOOR**2`` included per pixel; 0 for a blind model) and the pixel count."""

    sum_sq: float = 0.0
    sum_var: float = 0.0
    count: int = 0

    def __add__(self, other: Residual) -> Residual:
        return Residual(self.sum_sq + other.sum_sq, self.sum_var + other.sum_var,
                        self.count + other.count)

    @property
    def rms(self) -> float:
        """RMS residual, in units of the normalised intensity range."""
        return math.sqrt(self.sum_sq / self.count) if self.count else 0.0

    @property
    def ratio(self) -> float | None:
        """RMS residual over RMS noise (``None`` for a blind model: no noise model)."""
        if not self.count or self.sum_var <= 0:
            return None
        return math.sqrt(self.sum_sq / self.sum_var)

    def note(self) -> str:
        """The residual as a single-line note (a journal record)."""
        return f"{self.sum_sq!r} {self.sum_var!r} {self.count}"

    @classmethod
    def from_note(cls, note: str) -> Residual | None:
        """The residual of :meth:`note`'s text (``None`` when it is not one)."""
        parts = note.split()
        try:
            return cls(float(parts[0]), float(parts[1]), int(parts[2]))
        except (IndexError, ValueError):
            return None


def area_mean(a: np.ndarray, scale: int) -> np.ndarray:
    """``(z, y, x)`` -> ``(z, y / scale, x / scale)``: the mean over each ``scale`` square
    (y and x must be multiples of ``scale``), in float64. Integers are summed exactly by
    strided adds in a wide enough integer type (the same values as a float64 mean, about 6x
    faster: a block's stored voxels are degraded back this way in every run)."""
    z, y, x = a.shape
    if y % scale or x % scale:
        raise ValueError(f"shape {a.shape} is not a multiple of the scale {scale} in y and x")
    if cell_sum_type(a.dtype, scale) is not None:
        return integer_cell_sums(a, scale) / float(scale * scale)
    return a.reshape(z, y // scale, scale, x // scale, scale).mean(axis=(2, 4), dtype=np.float64)


def cell_sum_type(dtype: np.dtype, s: int) -> np.dtype | None:
    """The integer type that holds the sum over an ``s x s`` cell of ``dtype`` values
    exactly; ``None`` for non-integer data or a sum that needs more than 64 bits."""
    bits = dtype.itemsize * 8 + (s * s - 1).bit_length()
    if dtype.kind not in "iu" or bits > 64:
        return None
    size = next(b for b in (16, 32, 64) if bits <= b)
    return np.dtype(f"{'i' if dtype.kind == 'i' else 'u'}{size // 8}")


def integer_cell_sums(a: np.ndarray, s: int) -> np.ndarray:
    """The exact sum over each ``s x s`` square (in y and x) of integer data ``(z, y, x)``,
    y and x multiples of ``s``, in :func:`cell_sum_type`: rows first (whole rows added,
    contiguous), then each row sum's runs of ``s``, on ``s`` times fewer values."""
    acc = cell_sum_type(a.dtype, s)
    if acc is None:
        raise ValueError(f"no exact integer sum of {s} x {s} cells of {a.dtype}")
    z, y, x = a.shape
    bands = a.reshape(z, y // s, s, x)
    rows = bands[:, :, 0].astype(acc)
    for k in range(1, s):
        rows += bands[:, :, k]
    runs = rows.reshape(z, y // s, x // s, s)
    cells = runs[..., 0].copy()
    for k in range(1, s):
        cells += runs[..., k]
    return cells


def block_residual(restored: np.ndarray, observed: np.ndarray, scale: int,
                   noise: tuple[float, float] | None) -> Residual:
    """The residual of one block: ``restored`` (normalised, ``(z, s*y, s*x)``) taken back to
    the grid of ``observed`` (normalised input, ``(z, y, x)``) and compared with it."""
    back = area_mean(restored, scale)
    if back.shape != observed.shape:
        raise ValueError(f"restoration {restored.shape} does not cover input {observed.shape} "
                         f"at scale {scale}")
    return residual(back, observed, noise)


def sums_residual(sums: np.ndarray, scale: int, lo: float, hi: float, observed: np.ndarray,
                  noise: tuple[float, float] | None) -> Residual:
    """The residual of stored integer voxels given as their sums over each ``scale`` square
    (:func:`integer_cell_sums`; the grey levels ``lo``, ``hi`` normalise them) against
    ``observed``: the stored voxels' means, normalised (an affine map, so the same figure as
    the mean of the normalised voxels, to float32 rounding)."""
    back = np.multiply(sums, np.float32(1.0 / (scale * scale * (hi - lo))), dtype=np.float32)
    back -= np.float32(lo / (hi - lo))
    if back.shape != observed.shape:
        raise ValueError(f"restoration sums {sums.shape} do not cover input {observed.shape}")
    return residual(back, observed, noise)


def residual(back: np.ndarray, observed: np.ndarray,
             noise: tuple[float, float] | None) -> Residual:
    """The residual of a restoration already taken back to the input grid (``back``,
    normalised) against ``observed``: differences in the wider of their float types (float32
    for two float32 arrays), sums in float64."""
    diff = np.subtract(back, observed, dtype=np.result_type(back, observed, np.float32))
    var = 0.0
    if noise is not None:
        a, b = noise
        if a >= 0 and a + b >= 0:  # a + b * level >= 0 on [0, 1]: the sum is affine
            level = np.clip(observed, 0.0, 1.0).sum(dtype=np.float64)
            var = a * observed.size + b * float(level)
        else:
            level = np.clip(observed, 0.0, 1.0, dtype=np.float64)  # a + b * level, >= 0
            level *= b
            level += a
            var = float(np.sum(np.maximum(level, 0.0, out=level)))
        var += NOISE_FLOOR**2 * observed.size
    sum_sq = np.square(diff, out=diff).sum(dtype=np.float64)
    return Residual(float(sum_sq), var, int(observed.size))


def misfit_limit(reference: float | None) -> float:
    """The ratio above which a run warns: :data:`MISFIT_RATIO`, or
    :data:`VALIDATION_SLACK` times the model's validation figure where that is higher."""
    return max(MISFIT_RATIO, VALIDATION_SLACK * reference) if reference else MISFIT_RATIO


def describe(total: Residual, blocks: int, reference: float | None, model: str) -> list[str]:
    """The run summary's consistency line, and the one-line warning of a misfit."""
    ratio = total.ratio
    if ratio is None:
        return [f"consistency: restoration degraded back differs from the input by RMS "
                f"{total.rms:.4f} of the intensity range ({blocks} block(s); a blind model: "
                "no noise model to compare with)"]
    seen = f"; {reference:.2f} on its validation data" if reference else ""
    lines = [f"consistency: restoration degraded back differs from the input by "
             f"{ratio:.2f}x the input's noise (RMS {total.rms:.4f} of the intensity range, "
             f"{blocks} block(s){seen})"]
    limit = misfit_limit(reference)
    if ratio > limit:
        lines.append(f"warning: the model may not fit this data: its restoration, degraded "
                     f"back, differs from the input by {ratio:.2f}x the noise (more than "
                     f"{limit:.2f}); check --voxel-size and --model ({model!r}), or fine-tune "
                     "it on data like this (train --init)")
    return lines
