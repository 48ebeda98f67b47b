"""Acquisition artifacts of legacy EM: the beam's point-spread function, detector
Poisson-Gaussian noise at a dose, scan-line and stripe noise, charging-like shading.

The PSF blurs the high-resolution grid (optics come before the pixels); the detector noise
and the scan lines belong to the acquired, low-resolution grid (after the downsampling in a
pipeline). Shading is a deterministic low-frequency field (``tone = True``): leading a
training pipeline, the target gets it too, so the network learns to pass it through.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy import ndimage, special
from scipy.interpolate import RectBivariateSpline

from pssr_volume.crappify.base import FloatImage, StepBase, fmt

__all__ = ["PoissonGaussian", "PsfBlur", "Shading", "Stripes", "airy_kernel"]

_AIRY_FWHM = 3.2327  # full width at half maximum of (2 J1(v) / v)^2, in v
_AIRY_THIRD_ZERO = 10.1735  # the kernel ends at the third dark ring


@cache
def airy_kernel(fwhm: float, oversample: int = 5) -> NDArray[np.float64]:
    """Normalised Airy-disc kernel ``(2 J1(v) / v)^2`` of ``fwhm`` pixels, averaged over
    ``oversample``^2 points per pixel and cut at the third dark ring (radius 3.15 x fwhm)."""
    half = int(np.ceil(_AIRY_THIRD_ZERO * fwhm / _AIRY_FWHM))
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    axis = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel()
    v = np.hypot(axis[:, None], axis[None, :]) * (_AIRY_FWHM / fwhm)
    with np.errstate(invalid="ignore", divide="ignore"):
        psf = np.where(v > 0, (2 * special.j1(v) / v) ** 2, 1.0)
    psf[v > _AIRY_THIRD_ZERO] = 0.0
    n = 2 * half + 1
    k = psf.reshape(n, oversample, n, oversample).mean(axis=(1, 3))
    return k / k.sum()


class PsfBlur(StepBase):
    """Blur by the probe's point-spread function, ``fwhm`` pixels wide at half maximum.

    ``"gaussian"``: a Gaussian (sigma = fwhm / 2.3548); ``"airy"``: an Airy disc of the same
    width, whose rings keep some contrast at frequencies a Gaussian removes. Edges reflect;
    the mean is kept.
    """

    fwhm: float = Field(gt=0, le=16)
    profile: Literal["gaussian", "airy"] = "gaussian"
    kind: Literal["psf_blur"] = "psf_blur"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        if self.profile == "gaussian":
            sigma = self.fwhm / (2 * np.sqrt(2 * np.log(2)))
            return ndimage.gaussian_filter(img, sigma, mode="reflect")
        k = airy_kernel(round(self.fwhm, 6)).astype(np.float32)
        return ndimage.convolve(img, k, mode="reflect")

    def describe(self) -> str:
        return f"{self.profile} PSF blur, FWHM {fmt(self.fwhm)} px"


class PoissonGaussian(StepBase):
    """Detector noise at a dose: ``poisson(img * dose) / dose`` plus Gaussian read noise of
    std ``read`` (in [0, 1] units), then clip. ``dose`` is the counts (electrons) of a
    full-scale pixel, so the variance at grey level ``I`` is ``I / dose + read**2``: the
    signal-dependent model ``a + b I`` that the noise estimator fits."""

    dose: float = Field(gt=0)
    read: float = Field(0.0, ge=0)
    kind: Literal["poisson_gaussian"] = "poisson_gaussian"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        counts = rng.poisson(np.clip(img, 0.0, None).astype(np.float64) * self.dose)
        out = counts / self.dose + self.read * rng.standard_normal(img.shape)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        return (f"detector noise, dose {fmt(self.dose)} counts at full scale, "
                f"read std {fmt(self.read)}")


class Stripes(StepBase):
    """Scan-line and stripe noise along rows: each row gets a random offset of std
    ``line_sigma`` (beam or detector drift between scan lines), plus a sinusoid across rows of
    ``amplitude`` and ``period`` rows with a random phase (mains hum, periodic stripes).
    Offsets are added, then the image is clipped to [0, 1]."""

    line_sigma: float = Field(ge=0)
    amplitude: float = Field(0.0, ge=0)
    period: float = Field(8.0, ge=2)
    kind: Literal["stripes"] = "stripes"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        rows = np.arange(img.shape[0])
        phase = rng.uniform(0.0, 2 * np.pi)
        offset = self.line_sigma * rng.standard_normal(img.shape[0])
        offset += self.amplitude * np.sin(2 * np.pi * rows / self.period + phase)
        return np.clip(img + offset[:, None].astype(np.float32), 0.0, 1.0)

    def describe(self) -> str:
        return (f"scan-line offsets std {fmt(self.line_sigma)}, stripes amplitude "
                f"{fmt(self.amplitude)} every {fmt(self.period)} rows")


class Shading(StepBase):
    """Charging-like low-frequency shading: a smooth field with at most ``cells`` bumps
    across the image (a cubic spline through a (cells+1)^2 grid of normal draws from
    ``default_rng(seed)``, zero mean, peak magnitude 1), scaled by ``amplitude``.

    ``"multiplicative"``: ``img * (1 + amplitude * field)``; ``"additive"``:
    ``img + amplitude * field``; then clip. The field depends only on ``seed`` and the image
    shape, so every section, and a training target, gets the same one.
    """

    amplitude: float = Field(ge=0, le=1)
    cells: int = Field(2, ge=1, le=8)
    mode: Literal["multiplicative", "additive"] = "multiplicative"
    seed: int = Field(0, ge=0)
    kind: Literal["shading"] = "shading"
    tone: ClassVar[bool] = True

    def field(self, shape: tuple[int, int]) -> NDArray[np.float32]:
        """The shading field for an image of ``shape``: zero mean, peak magnitude 1."""
        n, k = self.cells + 1, min(3, self.cells)
        knots = np.random.default_rng(self.seed).standard_normal((n, n))
        grid = np.linspace(0.0, 1.0, n)
        f = RectBivariateSpline(grid, grid, knots, kx=k, ky=k)(
            np.linspace(0.0, 1.0, shape[0]), np.linspace(0.0, 1.0, shape[1]))
        f -= f.mean()
        peak = np.abs(f).max()
        return (f / peak if peak > 0 else f).astype(np.float32)

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        f = np.float32(self.amplitude) * self.field((img.shape[0], img.shape[1]))
        out = img * (1 + f) if self.mode == "multiplicative" else img + f
        return np.clip(out, 0.0, 1.0)

    def describe(self) -> str:
        return (f"{self.mode} shading, amplitude {fmt(self.amplitude)}, {self.cells} cells, "
                f"seed {self.seed}")
