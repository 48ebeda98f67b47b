"""How legacy sections were stored: lossy JPEG (tile servers, old archives) and integer
quantisation at a bit depth (8-bit archives that used part of their range, 16-bit detectors).

Both are deterministic and lose information, so a training target never gets them. Real
legacy data was compressed at its own, low resolution: in a pipeline they come after the
downsampling.
"""

from __future__ import annotations

from typing import Literal

import imagecodecs
import numpy as np
from pydantic import Field, model_validator

from pssr_volume.crappify.base import FloatImage, StepBase, fmt

__all__ = ["Jpeg", "Quantize"]


class Jpeg(StepBase):
    """8-bit baseline JPEG round trip at ``quality`` (1-100; tile servers use 70-95).

    The image is rounded to 8 bits (values clipped to [0, 1] times 255), encoded with
    libjpeg (imagecodecs ``jpeg8_encode``), decoded and divided by 255: 8 x 8 block
    artifacts, ringing at edges and lost fine texture.
    """

    quality: int = Field(ge=1, le=100)
    kind: Literal["jpeg"] = "jpeg"

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        grey = np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
        data = imagecodecs.jpeg8_encode(np.ascontiguousarray(grey), level=self.quality)
        out = np.asarray(imagecodecs.jpeg8_decode(data)).reshape(grey.shape)
        return out.astype(np.float32) / np.float32(255.0)

    def describe(self) -> str:
        return f"JPEG, quality {self.quality} (8-bit)"


class Quantize(StepBase):
    """Storage as ``bits``-bit integers, the image spanning ``[low, high]`` of the range.

    ``round((low + img * (high - low)) * (2**bits - 1))``, clipped to the integer range,
    mapped back so that ``low`` and ``high`` are 0 and 1 again (what a run's percentile
    normalisation does). An 8-bit archive that used a third of its range has 86 grey levels
    (posterised); ``bits=16`` is a 16-bit detector, whose steps are far below any noise.
    """

    bits: int = Field(ge=1, le=16)
    low: float = Field(0.0, ge=0, lt=1)
    high: float = Field(1.0, gt=0, le=1)
    kind: Literal["quantize"] = "quantize"

    @model_validator(mode="after")
    def _ordered(self) -> Quantize:
        if self.high <= self.low:
            raise ValueError("high must be above low")
        return self

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        top, span = float(2**self.bits - 1), self.high - self.low
        stored = np.clip(np.rint((self.low + img.astype(np.float64) * span) * top), 0.0, top)
        return np.clip((stored / top - self.low) / span, 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        return f"stored as {self.bits}-bit integers over {fmt(self.low)}-{fmt(self.high)} of range"
