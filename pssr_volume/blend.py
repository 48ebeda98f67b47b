"""Blend weights: a partition of unity over overlapping block predictions.

Pure numpy. Along one axis, block ``k`` owns the output range
``[a_k, b_k)`` and predicts ``[a_k - m, b_k + m)`` (``m`` = halo x scale,
clipped to the volume). Its raw window ``r_k`` lives on that predicted range;
the weight of block ``k`` at ``x`` is ``r_k(x) / sum_j r_j(x)``, so weights sum
to one at every voxel by construction, including at the volume border (where
only one block predicts) and at small edge blocks. In y-x the weight is the
product of the two axis weights, which is again a partition of unity.

Modes
-----
crop
    ``m = 0``: each block keeps only its own voxels (weight 1).
linear
    Trapezoid: ramps from ~0 at the predicted edge to 1 at ``m`` inside the
    owned range, so two neighbours cross at 1/2 on their shared border.
cosine
    The same ramps shaped as ``sin^2``, smooth at both ends.
gaussian
    A Gaussian centred on the owned range, sigma = 1/8 of the predicted length.
"""

from __future__ import annotations

import math
from typing import Literal, cast

import numpy as np

BlendMode = Literal["crop", "linear", "cosine", "gaussian"]
MODES: tuple[str, ...] = ("crop", "linear", "cosine", "gaussian")


def raw_window(mode: BlendMode, owned: tuple[int, int], margin: int, n: int,
               x: np.ndarray) -> np.ndarray:
    """Unnormalised window of one block at output positions ``x`` along one axis.

    Parameters
    ----------
    mode : {"crop", "linear", "cosine", "gaussian"}
        Window shape.
    owned : tuple of int
        ``(a, b)``, the output range the block owns.
    margin : int
        How far the block's prediction extends past ``owned`` on each side.
    n : int
        Length of the output axis (predictions are clipped to ``[0, n)``).
    x : numpy.ndarray
        Integer positions; the window is evaluated at pixel centres ``x + 0.5``.

    Returns
    -------
    numpy.ndarray
        float64 window, zero outside the block's predicted range, positive inside.
    """
    a, b = owned
    if mode == "crop" or margin == 0:
        return ((x >= a) & (x < b)).astype(np.float64)
    lo, hi = max(a - margin, 0), min(b + margin, n)
    inside = (x >= lo) & (x < hi)
    c = x + 0.5
    if mode == "gaussian":
        sigma = (b - a + 2 * margin) / 8
        w = np.exp(-0.5 * ((c - (a + b) / 2) / sigma) ** 2)
    else:
        up = np.clip((c - (a - margin)) / (2 * margin), 0.0, 1.0)
        down = np.clip(((b + margin) - c) / (2 * margin), 0.0, 1.0)
        if mode == "cosine":
            up, down = np.sin(np.pi / 2 * up) ** 2, np.sin(np.pi / 2 * down) ** 2
        elif mode != "linear":
            raise ValueError(f"unknown blend mode {mode!r}; choose from {', '.join(MODES)}")
        w = np.minimum(up, down)
    return np.where(inside, np.maximum(w, 1e-12), 0.0)


def axis_weights(mode: BlendMode, block: int, n: int, margin: int, index: int,
                 span: tuple[int, int]) -> np.ndarray:
    """Normalised weight of block ``index`` over output positions ``[span)`` on one axis.

    Blocks along the axis are ``[k*block, min((k+1)*block, n))``. The result
    sums to one over all blocks at every position (partition of unity).
    """
    x = np.arange(*span)
    count = math.ceil(n / block)
    reach = 0 if mode == "crop" else math.ceil(margin / block) + 1
    total = np.zeros(x.shape, np.float64)
    own = None
    for k in range(max(0, index - reach), min(count, index + reach + 1)):
        w = raw_window(mode, (k * block, min((k + 1) * block, n)), margin, n, x)
        total += w
        if k == index:
            own = w
    assert own is not None
    return np.divide(own, total, out=np.zeros_like(own), where=total > 0)


def block_weights(mode: BlendMode, block: tuple[int, int], shape: tuple[int, int],
                  margin: tuple[int, int], index: tuple[int, int],
                  region: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """2-D (y, x) weights of block ``index`` over the output ``region``, float32."""
    wy = axis_weights(mode, block[0], shape[0], margin[0], index[0], region[0])
    wx = axis_weights(mode, block[1], shape[1], margin[1], index[1], region[1])
    return (wy[:, None] * wx[None, :]).astype(np.float32)


def reach(mode: BlendMode, block: tuple[int, int], margin: tuple[int, int]) -> tuple[int, int]:
    """How many neighbouring blocks (y, x) contribute to a block's output."""
    if mode == "crop":
        return (0, 0)
    return cast(tuple[int, int], tuple(math.ceil(m / b) for m, b in zip(margin, block)))
