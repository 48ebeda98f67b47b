"""Contrast processing that legacy EM sections went through before they were archived.

Labs often stretched, gamma-corrected or CLAHE-equalised their sections before storing them.
These steps are deterministic tone changes (``tone = True``): leading a training pipeline, they
are applied to the target as well, so the network learns to restore processed images rather
than to undo the processing (:meth:`~pssr_volume.crappify.pipeline.Pipeline.target`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from skimage.exposure import equalize_adapthist

from pssr_volume.crappify.base import FloatImage, StepBase, fmt

__all__ = ["Clahe", "Gamma", "Stretch"]


class Gamma(StepBase):
    """Power-law tone curve ``img ** gamma`` on [0, 1]: gamma < 1 lifts the dark range."""

    gamma: float = Field(gt=0)
    kind: Literal["gamma"] = "gamma"
    tone: ClassVar[bool] = True

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        return np.power(np.clip(img, 0.0, 1.0), np.float32(self.gamma))

    def describe(self) -> str:
        return f"gamma {fmt(self.gamma)}"


class Stretch(StepBase):
    """Histogram stretch: the image's ``low`` and ``high`` percentiles map to 0 and 1, the
    tails are clipped (saturated), as auto-contrast tools do. A flat image is returned as is."""

    low: float = Field(ge=0, lt=50)
    high: float = Field(gt=50, le=100)
    kind: Literal["stretch"] = "stretch"
    tone: ClassVar[bool] = True

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        lo, hi = np.percentile(img, [self.low, self.high])
        if hi - lo < 1e-6:
            return img.copy()
        return np.clip((img - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)

    def describe(self) -> str:
        return f"histogram stretch, percentiles {fmt(self.low)}-{fmt(self.high)} to 0-1 (clipped)"


class Clahe(StepBase):
    """Contrast-limited adaptive histogram equalisation (skimage ``equalize_adapthist``).

    ``kernel`` is the context-region edge in pixels (at most the image's own size), and
    ``clip_limit`` the histogram clip in [0, 1] (higher: stronger equalisation). Like the
    tools labs used, it starts with a min-max stretch; the result spans [0, 1]. A flat image
    is returned as is.
    """

    clip_limit: float = Field(gt=0, le=1)
    kernel: int = Field(ge=8)
    kind: Literal["clahe"] = "clahe"
    tone: ClassVar[bool] = True

    def _apply2d(self, img: FloatImage, rng: np.random.Generator) -> FloatImage:
        img = np.clip(img, 0.0, 1.0)
        if float(img.max() - img.min()) < 1e-6:
            return img.copy()
        kernel = (min(self.kernel, img.shape[0]), min(self.kernel, img.shape[1]))
        out = equalize_adapthist(img, kernel_size=kernel, clip_limit=self.clip_limit, nbins=256)
        return np.asarray(out, dtype=np.float32)

    def describe(self) -> str:
        return f"CLAHE, clip limit {fmt(self.clip_limit)}, kernel {self.kernel} px"
