"""Crappifiers: seeded, ordered degradations that turn high-resolution images into training input.

A crappifier is a :class:`Pipeline` of steps (blur, noise, downsampling) applied in order. It is
configuration as data: every step is a frozen pydantic model, so a pipeline round-trips through
``to_dict``/``from_dict`` (or JSON) and is saved next to the models and outputs it made.

Conventions
-----------
- Images are float arrays in [0, 1] (the caller normalises), shaped (y, x) or (z, y, x).
- A (z, y, x) stack is degraded slice by slice: each z slice independently, drawing from one
  ``np.random.Generator`` stream in z order. The generator is always passed in explicitly.
- Outputs are float32. Noise steps clip to [0, 1].
- ``Downsample`` needs y and x to be multiples of its factor (use :func:`crop_to_multiple`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from scipy import ndimage

__all__ = [
    "Blur",
    "Downsample",
    "GaussianNoise",
    "LocalVarNoise",
    "PoissonNoise",
    "SaltPepper",
    "Step",
    "step_from_dict",
]

FloatImage = NDArray[np.float32]
DownsampleMethod = Literal["bilinear", "area", "bicubic"]


def as_image(img: ArrayLike) -> FloatImage:
    """Return ``img`` as float32 (y, x) or (z, y, x), or raise ValueError."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected a (y, x) or (z, y, x) image, got shape {arr.shape}")
    return arr


def per_slice(img: ArrayLike, fn: Callable[[FloatImage], FloatImage]) -> FloatImage:
    """Apply a 2-D function to an image, or to each z slice of a stack in order."""
    arr = as_image(img)
    if arr.ndim == 2:
        return np.asarray(fn(arr), dtype=np.float32)
    return np.stack([np.asarray(fn(s), dtype=np.float32) for s in arr])


def _fmt(x: float) -> str:
    return f"{x:g}"


class Data(BaseModel):
    """Frozen, strict model whose fields may also be given positionally, in declaration order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = [n for n in type(self).model_fields if n != "kind"]
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional values")
        for name, value in zip(names, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got two values for {name!r}")
            kwargs[name] = value
        super().__init__(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-compatible dict of the settings (``kind`` names the step type)."""
        return self.model_dump(mode="json")


class _Step(Data):
    """Base class of the degradation steps."""

    def apply(self, img: ArrayLike, rng: np.random.Generator) -> FloatImage:
        """Degrade a (y, x) image, or each slice of a (z, y, x) stack in z order.

        Parameters
        ----------
        img : array_like
            Float image in [0, 1], shape (y, x) or (z, y, x).
        rng : numpy.random.Generator
            Source of all randomness (unused by deterministic steps).

        Returns
        -------
        numpy.ndarray
            float32 image; noise steps clip it to [0, 1].
        """
        return per_slice(img, lambda s: self._apply2d(s, rng))

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        raise NotImplementedError

    def describe(self) -> str:
        """One-line human-readable description of the step."""
        raise NotImplementedError


class Blur(_Step):
    """Gaussian blur of standard deviation ``sigma`` pixels (scipy ``gaussian_filter``, reflect)."""

    sigma: float = Field(ge=0)
    kind: Literal["blur"] = "blur"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        return ndimage.gaussian_filter(img, self.sigma, mode="reflect")

    def describe(self) -> str:
        return f"Gaussian blur, sigma {_fmt(self.sigma)} px"


class GaussianNoise(_Step):
    """Additive Gaussian noise of standard deviation ``sigma`` (in [0, 1] units), then clip."""

    sigma: float = Field(ge=0)
    kind: Literal["gaussian_noise"] = "gaussian_noise"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        return np.clip(img + np.float32(self.sigma) * noise, 0.0, 1.0)

    def describe(self) -> str:
        return f"additive Gaussian noise, std {_fmt(self.sigma)}"


class LocalVarNoise(_Step):
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
            f"local-variance Gaussian noise, variance {_fmt(self.factor)} x "
            f"blur(img, sigma {_fmt(self.blur_sigma)} px)"
        )


class PoissonNoise(_Step):
    """Shot noise treating ``img * peak`` as photon/electron counts: ``poisson(img*peak) / peak``.

    Negative inputs count as zero; the result is clipped to [0, 1].
    """

    peak: float = Field(gt=0)
    kind: Literal["poisson_noise"] = "poisson_noise"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        counts = rng.poisson(np.clip(img, 0.0, None).astype(np.float64) * self.peak)
        return np.clip(counts / self.peak, 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        return f"Poisson noise, img x {_fmt(self.peak)} as counts"


class SaltPepper(_Step):
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
        salt, pepper = _fmt(100 * self.salt), _fmt(100 * self.pepper)
        return f"salt {salt} % (set to 1), pepper {pepper} % (set to 0)"


class Downsample(_Step):
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
    Blur | GaussianNoise | LocalVarNoise | PoissonNoise | SaltPepper | Downsample,
    Field(discriminator="kind"),
]
_STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(Step)


def step_from_dict(data: dict[str, Any]) -> Step:
    """Rebuild a step from its ``to_dict()`` output (its ``kind`` picks the class)."""
    step: Step = _STEP_ADAPTER.validate_python(data)
    return step
