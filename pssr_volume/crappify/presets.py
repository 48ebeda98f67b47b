"""The crappifier presets of PSSR and PSSR2, and random pipelines for training.

Presets (docs/DESIGN.md section 4):

- ``pssr-em``: local-variance Gaussian noise on the HR grid (variance 0.05 x Gaussian-blurred
  (sigma 3 px) image), then bilinear 1/scale (PSSR ``em_AG_D_sameas_preprint``);
- ``pssr-fluo``: local-variance noise 0.5 x blurred (sigma 5 px), 0.5 % salt, 0.5 % pepper, then
  bilinear 1/scale (PSSR ``new_crap_AG_SP``, without its renormalise-by-max step);
- ``pssr2``: bilinear 1/scale first, then Poisson noise with 8-bit values as counts (PSSR2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pssr_volume.crappify.pipeline import Pipeline
from pssr_volume.crappify.steps import (
    Blur,
    Downsample,
    GaussianNoise,
    LocalVarNoise,
    PoissonNoise,
    SaltPepper,
)


def _pssr_em(scale: int) -> Pipeline:
    steps = (
        LocalVarNoise(factor=0.05, blur_sigma=3.0),
        Downsample(factor=scale, method="bilinear"),
    )
    return Pipeline(steps=steps, name="pssr-em")


def _pssr_fluo(scale: int) -> Pipeline:
    steps = (
        LocalVarNoise(factor=0.5, blur_sigma=5.0),
        SaltPepper(salt=0.005, pepper=0.005),
        Downsample(factor=scale, method="bilinear"),
    )
    return Pipeline(steps=steps, name="pssr-fluo")


def _pssr2(scale: int) -> Pipeline:
    steps = (Downsample(factor=scale, method="bilinear"), PoissonNoise(peak=255.0))
    return Pipeline(steps=steps, name="pssr2")


_PRESET_BUILDERS: dict[str, Callable[[int], Pipeline]] = {
    "pssr-em": _pssr_em,
    "pssr-fluo": _pssr_fluo,
    "pssr2": _pssr2,
}

PRESETS: dict[str, Pipeline] = {name: build(4) for name, build in _PRESET_BUILDERS.items()}
"""The presets at the PSSR scale (x4), by name."""


def get_preset(name: str, scale: int = 4) -> Pipeline:
    """Return a named preset pipeline at ``scale``. Their steps, in order:

    ``pssr-em`` (PSSR's EM crappifier)
        1. ``LocalVarNoise(0.05, 3.0)``: variance 0.05 x Gaussian-blurred (sigma 3 px) image;
        2. ``Downsample(scale, "bilinear")``.
    ``pssr-fluo`` (PSSR's fluorescence crappifier)
        1. ``LocalVarNoise(0.5, 5.0)``;
        2. ``SaltPepper(0.005, 0.005)``;
        3. ``Downsample(scale, "bilinear")``.
    ``pssr2`` (PSSR2's default)
        1. ``Downsample(scale, "bilinear")``;
        2. ``PoissonNoise(255.0)``: the LR image in 8-bit units taken as counts.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    if name not in _PRESET_BUILDERS:
        known = ", ".join(sorted(_PRESET_BUILDERS))
        raise ValueError(f"unknown crappifier preset {name!r}; known presets: {known}")
    return _PRESET_BUILDERS[name](scale)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.4g}")


def random_pipeline(rng: np.random.Generator, scale: int = 4) -> Pipeline:
    """Draw a training degradation from a mix of PSSR- and PSSR2-like crappifiers.

    The draws, in order (all from ``rng``, so the same generator state gives the same pipeline):

    1. with probability 0.5, a mild ``Blur`` first, sigma ~ U(0.3, 1.0) HR px;
    2. the downsampling method: ``"bilinear"`` (p = 0.75) or ``"area"`` (p = 0.25);
    3. the order, each with probability 0.5:

       - PSSR (noise on the HR grid, then downsample): ``LocalVarNoise`` with factor
         log-uniform in [0.005, 0.1] and blur sigma 3 px, then ``Downsample(scale)``;
       - PSSR2 (downsample, then noise on the LR grid): ``Downsample(scale)``, then
         ``PoissonNoise`` with peak log-uniform in [30, 1000] counts;
    4. with probability 0.3, a final small ``GaussianNoise`` (read noise on the LR grid), std
       ~ U(0.002, 0.02).

    Drawn values are rounded to 4 significant digits so that saved pipelines read well.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws.
    scale : int
        Downsampling factor of the pipeline.

    Returns
    -------
    Pipeline
        Named ``"random"``; its ``scale`` equals ``scale``.
    """
    steps: list[Blur | GaussianNoise | LocalVarNoise | PoissonNoise | Downsample] = []
    if rng.random() < 0.5:
        steps.append(Blur(sigma=float(f"{rng.uniform(0.3, 1.0):.4g}")))
    down = Downsample(factor=scale, method="bilinear" if rng.random() < 0.75 else "area")
    if rng.random() < 0.5:
        steps += [LocalVarNoise(factor=_log_uniform(rng, 0.005, 0.1), blur_sigma=3.0), down]
    else:
        steps += [down, PoissonNoise(peak=_log_uniform(rng, 30.0, 1000.0))]
    if rng.random() < 0.3:
        steps.append(GaussianNoise(sigma=float(f"{rng.uniform(0.002, 0.02):.4g}")))
    return Pipeline(steps=tuple(steps), name="random")
