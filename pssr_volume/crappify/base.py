"""What every crappifier step shares: the image conventions and the frozen step base class.

Conventions
-----------
- Images are float arrays in [0, 1] (the caller normalises), shaped (y, x) or (z, y, x).
- A (z, y, x) stack is degraded slice by slice: each z slice independently, drawing from one
  ``np.random.Generator`` stream in z order. The generator is always passed in explicitly.
- Outputs are float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict

__all__ = ["Data", "FloatImage", "StepBase", "as_image", "fmt", "per_slice"]

FloatImage = NDArray[np.float32]


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


def fmt(x: float) -> str:
    """A number as short text (``%g``), for step descriptions."""
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


class StepBase(Data):
    """Base class of the degradation steps.

    ``tone`` marks a deterministic change of the image's grey values or contrast (gamma,
    CLAHE, a percentile stretch, a fixed shading field) rather than a loss of information:
    when such steps lead a pipeline, a training target gets them too
    (:meth:`~pssr_volume.crappify.pipeline.Pipeline.target`), so the network learns to
    restore processed images, not to undo the processing.
    """

    tone: ClassVar[bool] = False

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
