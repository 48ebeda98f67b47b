"""A crappifier: an ordered, seeded chain of degradation steps, saved as data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pssr_volume.crappify.base import Data, FloatImage, per_slice
from pssr_volume.crappify.steps import Downsample, Step


class Pipeline(Data):
    """An ordered, seeded chain of degradation steps.

    Parameters
    ----------
    steps : tuple of Step
        Applied in order to each (y, x) slice.
    name : str
        Label for provenance (preset name, ``"random"``, or empty).
    """

    steps: tuple[Step, ...]
    name: str = ""

    def __call__(self, img: ArrayLike, rng: np.random.Generator) -> FloatImage:
        """Degrade an image with every step, in order.

        A stack is processed slice by slice: slice 0 through all steps, then slice 1, and so
        on, all drawing from ``rng``.

        Parameters
        ----------
        img : array_like
            Floats in [0, 1], shape (y, x) or (z, y, x); y and x multiples of :attr:`scale`.
        rng : numpy.random.Generator
            Source of all randomness; the same generator state gives the same bytes.

        Returns
        -------
        numpy.ndarray
            float32, shape (y/scale, x/scale) or (z, y/scale, x/scale).
        """

        def run(s: FloatImage) -> FloatImage:
            for step in self.steps:
                s = step._apply2d(s, rng).astype(np.float32, copy=False)
            return s

        return per_slice(img, run)

    @property
    def tone_steps(self) -> tuple[Step, ...]:
        """The leading steps that only change grey values or contrast (``tone``: gamma,
        CLAHE, stretch, shading): the processing a training target shares."""
        lead: list[Step] = []
        for step in self.steps:
            if not step.tone:
                break
            lead.append(step)
        return tuple(lead)

    def target(self, img: ArrayLike) -> FloatImage:
        """The training target of a high-resolution image: :attr:`tone_steps` applied, in
        order (deterministic steps; no generator needed). With none, ``img`` as float32.

        A legacy section that was contrast-processed before it was archived is restored as
        processed: the network learns super-resolution of such images, not to undo the
        processing (which a percentile-normalised run could not tell apart from contrast).
        """
        steps, unused = self.tone_steps, np.random.default_rng(0)

        def run(s: FloatImage) -> FloatImage:
            for step in steps:
                s = step._apply2d(s, unused).astype(np.float32, copy=False)
            return s

        return per_slice(img, run)

    def degrade_integer(self, img: ArrayLike, rng: np.random.Generator) -> NDArray[Any]:
        """Degrade a stored unsigned-integer image (8- or 16-bit) into the same dtype.

        Values are taken as ``value / dtype max`` in [0, 1], degraded like :meth:`__call__`,
        and written back rounded and clipped (as ``pssr-volume crappify`` stores them).

        Raises
        ------
        ValueError
            For an input that is not of an unsigned integer type.
        """
        arr = np.asarray(img)
        if arr.dtype.kind != "u":
            raise ValueError(f"expected an unsigned-integer image, got {arr.dtype}")
        top = float(np.iinfo(arr.dtype).max)
        out = self(arr.astype(np.float64) / top, rng)
        return np.clip(np.rint(out.astype(np.float64) * top), 0, top).astype(arr.dtype)

    @property
    def scale(self) -> int:
        """Total downsampling factor in y and x (product of the Downsample factors)."""
        return math.prod(s.factor for s in self.steps if isinstance(s, Downsample))

    def describe(self) -> str:
        """Multi-line, numbered description of the steps in order."""
        head = f"{self.name or 'crappifier'} (x{self.scale}):"
        lines = [f"  {i}. {s.describe()}" for i, s in enumerate(self.steps, 1)]
        return "\n".join([head, *lines])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pipeline:
        """Rebuild a pipeline from :meth:`to_dict` output."""
        return cls.model_validate(data)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        """Rebuild a pipeline from :meth:`to_json` output."""
        return cls.model_validate_json(text)


def crop_to_multiple(img: ArrayLike, factor: int) -> NDArray[Any]:
    """Drop the trailing rows and columns so that y and x are multiples of ``factor``.

    Works on (y, x) and (z, y, x) arrays (the last two axes); returns a view, dtype kept.
    """
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    arr = np.asarray(img)
    h, w = arr.shape[-2:]
    return arr[..., : h - h % factor, : w - w % factor]
