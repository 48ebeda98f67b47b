"""A scale check: is the input at the pixel size the model restores from?

The data-consistency figure (:mod:`pssr_volume.consistency`) cannot tell a wrong voxel size: a
model given data finer or coarser than it expects still restores something that, degraded
back, gives the input again. This check asks the model itself. The input is reduced once more
by the model's scale (the mean over each ``scale x scale`` cell) and restored from that copy,
and the restoration is compared with the input, next to a cubic-spline interpolation of the
same copy. For an input at the pixel size the model expects, the reduced copy is ``scale``
times coarser than anything it learned from: the network gains little or nothing over the
spline. For an input that is really ``scale`` times finer than its voxel size says (the
high-resolution data itself, say), the reduced copy is exactly what the model learned to
restore, and it gains as much as it does on its own validation data (docs/RESULTS.md,
section 6 gives both).

The figure is the mean, over the sampled sections, of the CARE-normalised PSNR gain of the
restoration over the spline (dB). A run warns when it exceeds what the model showed on its
validation data (recorded in its file) by more than :data:`SLACK_DB`, and never below
:data:`MIN_LIMIT_DB`. Pure numpy: the network is a function passed in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from pssr_volume.consistency import area_mean
from pssr_volume.metrics import care_normalize, psnr

SLACK_DB = 0.1  # above the model's validation figure ...
MIN_LIMIT_DB = 0.25  # ... and never below this: a gain a fitting input does not show
MIN_REDUCED_PX = 32  # the reduced copy needs this many pixels per side to restore


def sample_box(shape: tuple[int, int, int], scale: int, z_halo: int, grid: int = 1,
               sections: int = 3, size: int = 512) -> tuple[tuple[int, int], ...] | None:
    """The central input box the check reads: ``sections`` sections with their z context
    (``z_halo`` either side), and a square of at most ``size`` pixels whose side is a
    multiple of ``scale x grid`` (the reduced copy then fits the network's grid); ``None``
    when the input is too small to reduce and restore."""
    nz, ny, nx = shape
    step = scale * grid
    side = min(size, ny, nx) // step * step
    if side // scale < MIN_REDUCED_PX:
        return None
    depth = min(nz, sections + 2 * z_halo)
    if depth < 2 * z_halo + 1:
        return None
    z0, y0, x0 = (nz - depth) // 2, (ny - side) // 2, (nx - side) // 2
    return ((z0, z0 + depth), (y0, y0 + side), (x0, x0 + side))


def spline_upsample(reduced: np.ndarray, scale: int) -> np.ndarray:
    """Cubic-spline interpolation of ``(z, y, x)`` by ``scale`` in y and x (pixel centres
    aligned as the area mean places them)."""
    return np.stack([ndimage.zoom(s, scale, order=3, grid_mode=True, mode="reflect")
                     for s in np.asarray(reduced, np.float64)])


def cross_scale_gain(sample: np.ndarray, restore: Callable[[np.ndarray], np.ndarray],
                     scale: int, z_halo: int) -> float:
    """The check's figure (dB) on a normalised input ``sample`` (``(z, y, x)``, y and x
    multiples of ``scale``).

    ``restore`` maps a reduced stack ``(z, y / scale, x / scale)`` to the restoration of
    its sections that have full z context, ``(z - 2 z_halo, y, x)``.
    """
    reduced = area_mean(sample, scale).astype(np.float32)
    restored = np.asarray(restore(reduced), np.float64)
    inner = slice(z_halo, sample.shape[0] - z_halo)
    target = np.asarray(sample[inner], np.float64)
    spline = spline_upsample(reduced[inner], scale)
    if restored.shape != target.shape:
        raise ValueError(f"restoration {restored.shape} does not match {target.shape}")
    gains = []
    for net, base, truth in zip(restored, spline, target, strict=True):
        if float(truth.max() - truth.min()) == 0.0:  # a blank section says nothing
            continue
        net_n, truth_n = care_normalize(net, truth)
        base_n, _ = care_normalize(base, truth)
        gains.append(psnr(net_n, truth_n, 1.0) - psnr(base_n, truth_n, 1.0))
    return float(np.mean(gains)) if gains else 0.0


def gain_limit(reference: float | None) -> float:
    """The figure above which a run warns (``reference``: the model's validation figure)."""
    if reference is None:
        return MIN_LIMIT_DB
    return max(MIN_LIMIT_DB, reference + SLACK_DB)


def describe(gain: float, reference: float | None, scale: int, pixel_nm: float | None,
             model: str) -> list[str]:
    """The run summary's scale-check line, and the one-line warning of an input that looks
    ``scale`` times finer than its voxel size says."""
    seen = f"; at most {reference:+.2f} on its validation data" if reference is not None else ""
    lines = [f"scale check: restoring the input from its own {scale}x reduced copy gains "
             f"{gain:+.2f} dB over a spline{seen}"]
    limit = gain_limit(reference)
    if gain > limit:
        size = f" ({pixel_nm:g} nm in y, x)" if pixel_nm else ""
        lines.append(f"warning: the model may not fit this data: restored from its own {scale}x "
                     f"reduced copy, the input comes back {gain:+.2f} dB better than by a "
                     f"spline (above {limit:+.2f}), as data {scale}x finer than {model!r} "
                     f"expects does; is the voxel size{size} right?")
    return lines
