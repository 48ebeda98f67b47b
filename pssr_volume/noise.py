"""Signal-dependent noise of EM sections: ``var(I) = a + b * I`` on normalised intensities.

A Poisson-Gaussian model (Foi et al. 2008, "Practical Poissonian-Gaussian noise modeling and
fitting for single-image raw-data"): ``a`` is the signal-independent (read-out) variance and
``b`` the gain of the shot noise, both in units of intensities normalised to [0, 1]
(:func:`pssr_volume.intensity.normalize`). A volume's model is estimated once, from a fixed,
evenly spread sample of it (:func:`estimate_volume_noise`), never per block; training estimates
it the same way on each low-resolution tile (:func:`estimate_noise`).

Method of :func:`estimate_noise`, per section, then pooled:

1. Detail ``r = D_y D_x x / 6``, ``D = [1, -2, 1]`` (Immerkaer 1996): its squared weights sum
   to 1, so for white noise ``var(r)`` is the noise variance; anything linear along y or x
   (flat regions, ramps, axis-parallel edges) gives 0.
2. Level ``m``: the 3x3 mean. Its weights are orthogonal to the detail's, so the two are
   uncorrelated and sorting pixels by ``m`` does not bias ``var(r)``.
3. Edges: ``e``, the largest Laplacian of the 5x5 mean within 2 px (again orthogonal to
   the detail). A pixel counts only where ``e`` is within 3 noise sigma of the current model
   (fit, select, refit twice); clipping (a min/max value covering ``clip_fraction`` of a
   section: saturation, zero padding) removes the pixels within 5 px of it.
4. Bins: pixels (every ``stride``-th along y and x beyond ``max_samples``) sorted by ``m``
   into equal-count bins of about ``samples_per_bin``, at most ``max_bins``.
5. Variance per bin: ``sigma = 1.4826 median|r|``, then (twice) the mean ``r**2`` within
   ``+-3 sigma`` over the share of a Gaussian's variance there (0.9733): robust to what edge
   and texture details remain, and far more efficient than the MAD alone.
6. Fit ``v = a + b mean(m)``: weighted least squares, weights ``n / model**2`` (a variance
   estimate's variance), iterated; ``a, b >= 0`` exactly (the better boundary fit if needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pssr_volume.intensity import Reader, normalize

__all__ = ["NoiseModel", "estimate_noise", "estimate_volume_noise", "network_input",
           "sample_sections"]

F32 = NDArray[np.float32]
_MAD_TO_SIGMA = 1.0 / 0.6744897501960817  # sigma / median|r| of a Gaussian
_CLIP = 3.0  # the per-bin variance uses details within +-_CLIP sigma
# Fraction of a unit Gaussian's variance inside +-_CLIP: 1 - 2 k phi(k) / (2 Phi(k) - 1).
_INSIDE = 1.0 - 2.0 * _CLIP * math.exp(-_CLIP**2 / 2) / math.sqrt(2 * math.pi) / math.erf(
    _CLIP / math.sqrt(2))
_EDGE = 3.0  # edges: Laplacian of the local mean beyond _EDGE noise sigma
_EDGE_GAIN2 = 48.0  # squared weights of the Laplacian of the 5x5 sum: its noise gain


@dataclass(frozen=True)
class NoiseModel:
    """Noise variance ``a + b * I`` at normalised intensity ``I`` (``a, b >= 0``)."""

    a: float
    b: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and math.isfinite(self.b) and self.a >= 0 and self.b >= 0):
            raise ValueError(f"noise model needs finite a, b >= 0, got a={self.a}, b={self.b}")

    def std(self, intensity: ArrayLike) -> F32:
        """Noise standard deviation ``sqrt(max(a + b * I, 0))`` at each intensity, float32."""
        i = np.asarray(intensity, dtype=np.float64)
        return np.sqrt(np.maximum(self.a + self.b * i, 0.0)).astype(np.float32)

    def to_channels(self, image: ArrayLike, smooth: bool = True) -> F32:
        """The network's noise input: a per-pixel noise standard deviation map.

        Parameters
        ----------
        image : array_like, shape (..., y, x)
            Normalised intensities: one section, or a stack/batch of them.
        smooth : bool
            Apply the model to the 3x3 mean of ``image`` (symmetric padding), so the map
            follows the signal rather than each pixel's own noise. Only a block's outermost
            pixel depends on the padding, which any halo absorbs.

        Returns
        -------
        ndarray of float32, shape (..., 1, y, x)
            ``std(mean3x3(image))`` with a channel axis before (y, x). A per-pixel map rather
            than two constant channels ``(a, b)``: it gives the noise level where each pixel
            is, which a convolution can use directly, and is 0 for a noise-free model.
        """
        img = np.asarray(image, dtype=np.float32)
        if img.ndim < 2:
            raise ValueError(f"expected an image shaped (..., y, x), got shape {img.shape}")
        if smooth:
            pad = [(0, 0)] * (img.ndim - 2) + [(1, 1), (1, 1)]
            img = cast(F32, _sum3(np.pad(img, pad, mode="symmetric")) / np.float32(9))
        return self.std(img)[..., None, :, :]


def _sum3(x: np.ndarray) -> np.ndarray:
    """Sums over 3x3 neighbourhoods of the last two axes: the valid part, (..., y-2, x-2)."""
    s = x[..., :-2] + x[..., 1:-1] + x[..., 2:]
    return s[..., :-2, :] + s[..., 1:-1, :] + s[..., 2:, :]


def _details(x: F32, clip_fraction: float) -> tuple[F32, F32, F32, NDArray[np.bool_]]:
    """Detail ``r``, 3x3 mean ``m``, edge measure ``e`` and a keep-mask of ``x``'s pixels
    whose 11x11 neighbourhood lies inside it, shape (y-10, x-10)."""
    d = x[:, :-2] - 2 * x[:, 1:-1] + x[:, 2:]
    r = (d[:-2] - 2 * d[1:-1] + d[2:]) / np.float32(6)
    m = cast(F32, _sum3(x) / np.float32(9))  # float32 (numpy's stubs say float64)
    s5 = x[:, :-4] + x[:, 1:-3] + x[:, 2:-2] + x[:, 3:-1] + x[:, 4:]
    s5 = s5[:-4] + s5[1:-3] + s5[2:-2] + s5[3:-1] + s5[4:]  # 25 x the 5x5 mean
    e = s5[:-2, 1:-1] + s5[2:, 1:-1]
    e += s5[1:-1, :-2]
    e += s5[1:-1, 2:]
    e -= 4 * s5[1:-1, 1:-1]
    np.abs(e, out=e)
    for _ in range(2):  # 5x5 max: the Laplacian is 0 across the middle of a blurred step
        e = np.maximum(np.maximum(e[:, :-2], e[:, 1:-1]), e[:, 2:])
        e = np.maximum(np.maximum(e[:-2], e[1:-1]), e[2:])
    clipped = np.zeros(x.shape, dtype=bool)
    for v in {x.min(), x.max()}:
        hit = x == v
        if np.count_nonzero(hit) >= max(2.0, clip_fraction * x.size):
            clipped |= hit
    if clipped.any():
        for _ in range(5):
            clipped = _sum3(clipped.view(np.uint8)).astype(bool)
    else:
        clipped = clipped[5:-5, 5:-5]
    return r[4:-4, 4:-4], m[4:-4, 4:-4], e, ~clipped


def _robust_variance(r: F32) -> float:
    """Variance of ``r`` from the details within 3 sigma (module docstring, step 5)."""
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(r)))
    if sigma == 0.0:  # mostly exact zeros (quantised, near noise-free data): plain variance
        return float(np.mean(np.square(r, dtype=np.float64)))
    var = sigma**2
    for _ in range(2):
        inside = r[np.abs(r) < _CLIP * math.sqrt(var)]
        var = float(np.mean(np.square(inside, dtype=np.float64))) / _INSIDE if inside.size else 0.0
    return var


def _fit_line(mu: NDArray[np.float64], v: NDArray[np.float64],
              w: NDArray[np.float64]) -> tuple[float, float]:
    """Weighted least squares ``v ~ a + b * mu`` subject to ``a, b >= 0``."""
    sw, sx, sy = w.sum(), (w * mu).sum(), (w * v).sum()
    sxx, sxy = (w * mu * mu).sum(), (w * mu * v).sum()
    det = sw * sxx - sx * sx
    if det > 1e-9 * sw * sxx:
        b = (sw * sxy - sx * sy) / det
        a = (sy - b * sx) / sw
        if a >= 0 and b >= 0:
            return float(a), float(b)
    options = [(max(sy / sw, 0.0), 0.0)]  # b = 0 first: the answer when mu cannot tell
    if sxx > 0:
        options.append((0.0, max(sxy / sxx, 0.0)))
    sse = [float((w * (v - a - b * mu) ** 2).sum()) for a, b in options]
    a, b = options[int(np.argmin(sse))]
    return float(a), float(b)


def estimate_noise(images: np.ndarray | Sequence[ArrayLike], *, max_samples: int = 1 << 18,
                   samples_per_bin: int = 256, max_bins: int = 32,
                   clip_fraction: float = 0.005) -> NoiseModel:
    """Fit ``var(I) = a + b * I`` to one or more sections (module docstring: the method).

    Parameters
    ----------
    images : ndarray or sequence of array_like
        One (y, x) section, a (z, y, x) stack, or a sequence of (y, x) sections of any sizes
        (e.g. sampled patches), in normalised intensities. Sections under 11x11 are skipped
        (ValueError if none is left).
    max_samples : int
        Above this many detail pixels in all, every ``stride``-th pixel in y and x is used.
    samples_per_bin, max_bins : int
        Intensity bins of about ``samples_per_bin`` pixels each, at most ``max_bins``.
    clip_fraction : float
        Share of a section at its minimum or maximum value above which that value counts as
        clipped and its neighbourhoods are left out.

    Returns
    -------
    NoiseModel
        ``a, b >= 0``; ``NoiseModel(0, 0)`` if no pixel could be used (e.g. a constant image).
        Deterministic: the same input always gives the same model.
    """
    if isinstance(images, np.ndarray):
        if images.ndim not in (2, 3):
            raise ValueError(f"expected (y, x) or (z, y, x) images, got shape {images.shape}")
        sections = [images] if images.ndim == 2 else list(images)
    else:
        sections = [np.asarray(s) for s in images]
    if not sections or any(s.ndim != 2 for s in sections):
        raise ValueError("expected one or more (y, x) sections")
    sections = [s for s in sections if s.shape[0] >= 11 and s.shape[1] >= 11]
    if not sections:
        raise ValueError("no section is at least 11x11 pixels")
    total = sum((s.shape[0] - 10) * (s.shape[1] - 10) for s in sections)
    stride = max(1, math.ceil(math.sqrt(total / max_samples)))
    parts: list[tuple[F32, F32, F32]] = []
    for s in sections:
        r, m, e, keep = _details(np.asarray(s, dtype=np.float32), clip_fraction)
        k = keep[::stride, ::stride]
        parts.append((r[::stride, ::stride][k], m[::stride, ::stride][k], e[::stride, ::stride][k]))
    if sum(p[0].size for p in parts) == 0:
        return NoiseModel(0.0, 0.0)
    r_all, m_all, e_all = (np.concatenate(x) for x in zip(*parts))
    order = np.argsort(m_all)
    r_all, m_all, e_all = r_all[order], m_all[order], e_all[order]
    e2 = np.square(e_all, dtype=np.float64) / _EDGE_GAIN2
    model = _fit(r_all, m_all, samples_per_bin, max_bins)
    for _ in range(2):  # leave out edges (step 3)
        smooth = e2 <= _EDGE**2 * np.maximum(model.a + model.b * m_all.astype(np.float64), 0)
        if np.count_nonzero(smooth) == 0:
            break
        model = _fit(r_all[smooth], m_all[smooth], samples_per_bin, max_bins)
    return model


def _fit(r: F32, m: F32, samples_per_bin: int, max_bins: int) -> NoiseModel:
    """Bin details ``r`` by their local means ``m`` (sorted) and fit the model to the bins."""
    nbins = int(np.clip(r.size // max(1, samples_per_bin), 1, max(1, max_bins)))
    edges = np.linspace(0, r.size, nbins + 1).round().astype(int)
    mu, v, n = (np.empty(nbins) for _ in range(3))
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        mu[i] = float(np.mean(m[lo:hi], dtype=np.float64))
        v[i] = _robust_variance(r[lo:hi])
        n[i] = hi - lo
    floor = 1e-2 * float(v.max()) + 1e-30  # keeps weights finite where the model nears 0
    a, b = _fit_line(mu, v, n)
    for _ in range(3):
        a, b = _fit_line(mu, v, n / np.maximum(a + b * mu, floor) ** 2)
    return NoiseModel(a, b)


def sample_sections(read: Reader, shape: tuple[int, int, int], max_slices: int = 8,
                    patch: int = 128, patches_per_axis: int = 4) -> list[np.ndarray]:
    """Deterministic 2-D sample of a volume for the noise estimate.

    Like :func:`pssr_volume.intensity.sample_volume`, but keeps the patches 2-D: up to
    ``max_slices`` evenly spaced z-sections; of each, the whole section if it is small, else a
    grid of up to ``patches_per_axis`` squared evenly spread ``patch``-sized squares.
    """
    z, y, x = shape
    zs = np.unique(np.linspace(0, z - 1, min(z, max_slices)).round().astype(int))
    out: list[np.ndarray] = []
    for k in zs:
        if y * x <= (patch * patches_per_axis) ** 2:
            out.append(np.asarray(read((slice(k, k + 1), slice(0, y), slice(0, x))))[0])
            continue
        py, px = min(patch, y), min(patch, x)
        for j in np.unique(np.linspace(0, y - py, patches_per_axis).round().astype(int)):
            for i in np.unique(np.linspace(0, x - px, patches_per_axis).round().astype(int)):
                region = (slice(k, k + 1), slice(j, j + py), slice(i, i + px))
                out.append(np.asarray(read(region))[0])
    return out


def estimate_volume_noise(read: Reader, shape: tuple[int, int, int], lo: float, hi: float, *,
                          max_slices: int = 8, patch: int = 128, patches_per_axis: int = 4,
                          max_samples: int = 1 << 18) -> NoiseModel:
    """The noise model of a whole volume, once, from :func:`sample_sections`.

    Each sampled patch is normalised with the volume's ``(lo, hi)`` range
    (:func:`pssr_volume.intensity.normalize`) before :func:`estimate_noise`.
    """
    parts = sample_sections(read, shape, max_slices, patch, patches_per_axis)
    return estimate_noise([normalize(p, lo, hi) for p in parts], max_samples=max_samples)


NOISE_GAIN = 10.0
"""The noise channel carries ``NOISE_GAIN x`` the noise standard deviation: values of order 1
for noisy EM (std 0.02-0.2 of the normalised range), like the image channels."""


def network_input(stacks: ArrayLike, models: NoiseModel | Sequence[NoiseModel]) -> F32:
    """The input of a noise-aware network: the sections, then the noise channel.

    Parameters
    ----------
    stacks : array_like, shape (n, k, y, x)
        ``n`` tiles of ``k`` adjacent normalised sections each.
    models : NoiseModel or sequence of them
        One model for all tiles (a volume's estimate, at inference), or one per tile (the
        per-tile estimate, in training).

    Returns
    -------
    ndarray of float32, shape (n, k + 1, y, x)
        The last channel is ``NOISE_GAIN * model.to_channels(centre section)``.
    """
    x = np.asarray(stacks, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected tiles shaped (n, k, y, x), got shape {x.shape}")
    per_tile = [models] * len(x) if isinstance(models, NoiseModel) else list(models)
    if len(per_tile) != len(x):
        raise ValueError(f"{len(per_tile)} noise models for {len(x)} tiles")
    out = np.empty((x.shape[0], x.shape[1] + 1, *x.shape[2:]), dtype=np.float32)
    out[:, :-1] = x
    c = x.shape[1] // 2
    for i, m in enumerate(per_tile):
        out[i, -1] = m.to_channels(x[i, c])[0] * np.float32(NOISE_GAIN)
    return out
