"""Crappifiers: seeded, ordered degradations that turn high-resolution images into training input.

A crappifier is a :class:`Pipeline` of steps (blur, noise, downsampling) applied in order. It is
configuration as data: every step is a frozen pydantic model, so a pipeline round-trips through
``to_dict``/``from_dict`` (or JSON) and is saved next to the models and outputs it made.

This module defines the PSSR/PSSR2 steps and :data:`Step`, the union of every step kind; the
legacy-data steps live in :mod:`~pssr_volume.crappify.contrast` (CLAHE, gamma, stretch),
:mod:`~pssr_volume.crappify.storage` (JPEG, bit depth) and
:mod:`~pssr_volume.crappify.acquisition` (PSF, detector noise, stripes, shading).

Conventions
-----------
- Images are float arrays in [0, 1] (the caller normalises), shaped (y, x) or (z, y, x).
- A (z, y, x) stack is degraded slice by slice: each z slice independently, drawing from one
  ``np.random.Generator`` stream in z order. The generator is always passed in explicitly.
- Outputs are float32. Noise steps clip to [0, 1].
- ``Downsample`` needs y and x to be multiples of its factor (use :func:`crop_to_multiple`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, TypeAdapter, model_validator
from scipy import ndimage

from pssr_volume.crappify.acquisition import PoissonGaussian, PsfBlur, Shading, Stripes
from pssr_volume.crappify.base import FloatImage, StepBase, fmt
from pssr_volume.crappify.contrast import Clahe, Gamma, Stretch
from pssr_volume.crappify.storage import Jpeg, Quantize

__all__ = [
    "Blur",
    "Clahe",
    "Downsample",
    "Gamma",
    "GaussianNoise",
    "Jpeg",
    "LocalVarNoise",
    "PoissonGaussian",
    "PoissonNoise",
    "PsfBlur",
    "Quantize",
    "SaltPepper",
    "Shading",
    "Step",
    "Stretch",
    "Stripes",
    "step_from_dict",
]

DownsampleMethod = Literal["bilinear", "area", "bicubic"]


class Blur(StepBase):
    """Gaussian blur of standard deviation ``sigma`` pixels (scipy ``gaussian_filter``, reflect)."""

    sigma: float = Field(ge=0)
    kind: Literal["blur"] = "blur"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        return ndimage.gaussian_filter(img, self.sigma, mode="reflect")

    def describe(self) -> str:
        return f"Gaussian blur, sigma {fmt(self.sigma)} px"


class GaussianNoise(StepBase):
    """Additive Gaussian noise of standard deviation ``sigma`` (in [0, 1] units), then clip."""

    sigma: float = Field(ge=0)
    kind: Literal["gaussian_noise"] = "gaussian_noise"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        return np.clip(img + np.float32(self.sigma) * noise, 0.0, 1.0)

    def describe(self) -> str:
        return f"additive Gaussian noise, std {fmt(self.sigma)}"


class LocalVarNoise(StepBase):
    """Signal-dependent Gaussian noise, then clip (skimage ``random_noise(mode="localvar")``).

    The per-pixel variance is ``factor * gaussian_filter(img, blur_sigma) + 1e-10``, so brighter
    regions are noisier, like shot noise.
    """

    factor: float = Field(ge=0)
    blur_sigma: float = Field(ge=0)
    kind: Literal["local_var_noise"] = "local_var_noise"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        local = ndimage.gaussian_filter(img, self.blur_sigma, mode="reflect")
        var = np.maximum(np.float32(self.factor) * local, 0.0) + np.float32(1e-10)
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        return np.clip(img + np.sqrt(var) * noise, 0.0, 1.0)

    def describe(self) -> str:
        return (
            f"local-variance Gaussian noise, variance {fmt(self.factor)} x "
            f"blur(img, sigma {fmt(self.blur_sigma)} px)"
        )


class PoissonNoise(StepBase):
    """Shot noise treating ``img * peak`` as photon/electron counts: ``poisson(img*peak) / peak``.

    Negative inputs count as zero; the result is clipped to [0, 1].
    """

    peak: float = Field(gt=0)
    kind: Literal["poisson_noise"] = "poisson_noise"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        counts = rng.poisson(np.clip(img, 0.0, None).astype(np.float64) * self.peak)
        return np.clip(counts / self.peak, 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        return f"Poisson noise, img x {fmt(self.peak)} as counts"


class SaltPepper(StepBase):
    """Impulse noise: a fraction ``salt`` of pixels set to 1 and a disjoint ``pepper`` set to 0."""

    salt: float = Field(ge=0, le=1)
    pepper: float = Field(ge=0, le=1)
    kind: Literal["salt_pepper"] = "salt_pepper"

    @model_validator(mode="after")
    def _at_most_all(self) -> SaltPepper:
        if self.salt + self.pepper > 1:
            raise ValueError("salt + pepper must not exceed 1")
        return self

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        u = rng.random(img.shape, dtype=np.float32)
        out = img.copy()
        out[u < self.salt] = 1.0
        out[(u >= self.salt) & (u < self.salt + self.pepper)] = 0.0
        return np.clip(out, 0.0, 1.0)

    def describe(self) -> str:
        salt, pepper = fmt(100 * self.salt), fmt(100 * self.pepper)
        return f"salt {salt} % (set to 1), pepper {pepper} % (set to 0)"


class Downsample(StepBase):
    """Reduce y and x by an integer ``factor``; output shape exactly (y/factor, x/factor).

    y and x must be multiples of ``factor`` (ValueError otherwise; see :func:`crop_to_multiple`).
    LR pixel ``i`` covers HR pixels ``[f*i, f*i + f)``; its centre lies at HR coordinate
    ``f*i + (f - 1)/2``. Methods:

    ``"bilinear"``
        The bilinear interpolant of the HR image sampled at the LR pixel centres, with no
        anti-aliasing pre-filter: skimage ``rescale(1/f, order=1, anti_aliasing=False)``, or
        ``cv2.INTER_LINEAR``. For even ``f`` it is the mean of the central 2 x 2 HR pixels of each
        f x f cell (factor 4: rows and columns 1 and 2); for odd ``f`` the central HR pixel.
    ``"area"``
        The mean of each f x f cell (box filter, ``cv2.INTER_AREA``), an ideal integrating
        detector.
    ``"bicubic"``
        The cubic B-spline interpolant of the HR image (scipy ``ndimage.zoom(order=3,
        grid_mode=True, mode="mirror")``, = skimage ``rescale(order=3, anti_aliasing=False)``)
        sampled at the LR pixel centres, clipped to the input's range; no anti-aliasing.
    """

    factor: int = Field(ge=1)
    method: DownsampleMethod = "bilinear"
    kind: Literal["downsample"] = "downsample"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        f = self.factor
        h, w = img.shape
        if h % f or w % f:
            raise ValueError(
                f"image shape (y={h}, x={w}) is not a multiple of the downsampling factor {f}; "
                "crop it first (crop_to_multiple)"
            )
        if self.method == "area":
            return img.reshape(h // f, f, w // f, f).mean(axis=(1, 3))
        if self.method == "bilinear":
            lo = (f - 1) // 2
            if f % 2:
                return img[lo::f, lo::f].copy()
            hi = lo + 1
            return 0.25 * (img[lo::f, lo::f] + img[lo::f, hi::f] + img[hi::f, lo::f]
                           + img[hi::f, hi::f])
        out = ndimage.zoom(img, 1.0 / f, order=3, mode="mirror", grid_mode=True)
        return np.clip(out, img.min(), img.max())

    def describe(self) -> str:
        return f"downsample 1/{self.factor} ({self.method})"


Step = Annotated[
    Blur | GaussianNoise | LocalVarNoise | PoissonNoise | SaltPepper | Downsample
    | Gamma | Stretch | Clahe | Jpeg | Quantize | PsfBlur | PoissonGaussian | Stripes | Shading,
    Field(discriminator="kind"),
]
_STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(Step)


def step_from_dict(data: dict[str, Any]) -> Step:
    """Rebuild a step from its ``to_dict()`` output (its ``kind`` picks the class)."""
    step: Step = _STEP_ADAPTER.validate_python(data)
    return step
