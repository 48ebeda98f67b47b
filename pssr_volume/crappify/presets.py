"""The crappifier presets of PSSR and PSSR2, and random pipelines for training.

Presets (docs/DESIGN.md section 4):

- ``pssr-em``: local-variance Gaussian noise on the HR grid (variance 0.05 x Gaussian-blurred
  (sigma 3 px) image), then bilinear 1/scale (PSSR ``em_AG_D_sameas_preprint``);
- ``pssr-fluo``: local-variance noise 0.5 x blurred (sigma 5 px), 0.5 % salt, 0.5 % pepper, then
  bilinear 1/scale (PSSR ``new_crap_AG_SP``, without its renormalise-by-max step);
- ``pssr2``: bilinear 1/scale first, then Poisson noise with 8-bit values as counts (PSSR2);
- ``integrate-read``: pixel integration (the mean of each scale x scale cell, an ideal
  integrating detector at the coarser pixel), then Gaussian read noise of 6 grey levels
  (std 6/255);
- ``jpeg``: pixel integration, then JPEG at quality 75, as a tile server or an old archive
  stored the low-resolution section.

:func:`random_pipeline` draws the training mix: mostly these PSSR/PSSR2-style degradations,
sometimes a legacy-data one (:func:`legacy_pipeline`: contrast processing, shading, PSF blur,
detector noise, scan lines, JPEG or posterising 8-bit storage).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pssr_volume.crappify.pipeline import Pipeline
from pssr_volume.crappify.steps import (
    Blur,
    Clahe,
    Downsample,
    Gamma,
    GaussianNoise,
    Jpeg,
    LocalVarNoise,
    PoissonGaussian,
    PoissonNoise,
    PsfBlur,
    Quantize,
    SaltPepper,
    Shading,
    Step,
    Stretch,
    Stripes,
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


def _integrate_read(scale: int) -> Pipeline:
    steps = (Downsample(factor=scale, method="area"), GaussianNoise(sigma=round(6 / 255, 6)))
    return Pipeline(steps=steps, name="integrate-read")


def _jpeg(scale: int) -> Pipeline:
    steps = (Downsample(factor=scale, method="area"), Jpeg(quality=75))
    return Pipeline(steps=steps, name="jpeg")


_PRESET_BUILDERS: dict[str, Callable[[int], Pipeline]] = {
    "pssr-em": _pssr_em,
    "pssr-fluo": _pssr_fluo,
    "pssr2": _pssr2,
    "integrate-read": _integrate_read,
    "jpeg": _jpeg,
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
    ``integrate-read`` (pixel integration and read noise)
        1. ``Downsample(scale, "area")``;
        2. ``GaussianNoise(6 / 255)``.
    ``jpeg`` (a JPEG-compressed low-resolution section; no randomness)
        1. ``Downsample(scale, "area")``;
        2. ``Jpeg(75)``.

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


NOISE_FAMILIES = ("clean", "hr-local-var", "hr-poisson", "lr-poisson", "lr-gaussian")
"""The main noise of a training degradation (:func:`random_pipeline`), and their odds."""
_FAMILY_ODDS = (0.1, 0.3, 0.1, 0.25, 0.25)


LEGACY_ODDS = 0.35
"""The fraction of training degradations that model legacy data (:func:`legacy_pipeline`)."""


ARCHIVE_ODDS = 0.5
"""``mix-archive``: the fraction of legacy-data degradations, and of those without detector
noise (:func:`archive_pipeline`)."""


def archive_pipeline(rng: np.random.Generator, scale: int = 4) -> Pipeline:
    """Draw a training degradation of the ``mix-archive`` crappifier: :func:`random_pipeline`
    with :data:`ARCHIVE_ODDS` legacy-data draws, half of them without detector noise. A
    section stored (JPEG, 8 bits) with no noise added before it, as an archive holds a clean
    acquisition, is then about 1 draw in 8 instead of 1 in 27 (``mix``)."""
    return random_pipeline(rng, scale, legacy_odds=ARCHIVE_ODDS, noise_odds=ARCHIVE_ODDS)


def random_pipeline(rng: np.random.Generator, scale: int = 4, legacy_odds: float = LEGACY_ODDS,
                    noise_odds: float = 0.75) -> Pipeline:
    """Draw a training degradation (the ``mix`` crappifier): with probability
    ``legacy_odds`` (:data:`LEGACY_ODDS`) a legacy-data one (:func:`legacy_pipeline`, with
    detector noise at odds ``noise_odds``), otherwise one of the PSSR/PSSR2-style mix
    (:func:`pssr_pipeline`).

    All draws come from ``rng``, so the same generator state gives the same pipeline.

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
    if rng.random() < legacy_odds:
        return legacy_pipeline(rng, scale, noise_odds)
    return pssr_pipeline(rng, scale)


def pssr_pipeline(rng: np.random.Generator, scale: int = 4) -> Pipeline:
    """Draw a training degradation from a broad mix: both PSSR orders, Poisson, Gaussian,
    local-variance noise, pixel integration and blur, from no noise to heavy noise (the whole
    ``mix`` of the models trained before the legacy-data steps).

    The draws, in order (all from ``rng``, so the same generator state gives the same pipeline):

    1. with probability 0.5, a mild ``Blur`` first, sigma ~ U(0.3, 1.0) HR px;
    2. the downsampling: ``"bilinear"`` (p = 0.6) or ``"area"`` (pixel integration, p = 0.4);
    3. the main noise, one of :data:`NOISE_FAMILIES` (odds 0.1, 0.3, 0.1, 0.25, 0.25):

       - ``clean``: none;
       - ``hr-local-var`` (PSSR order: noise on the HR grid, then downsample):
         ``LocalVarNoise``, factor log-uniform in [0.003, 0.15], blur sigma 3 px;
       - ``hr-poisson``: ``PoissonNoise`` on the HR grid, peak log-uniform in [5, 500] counts,
         then downsample;
       - ``lr-poisson`` (PSSR2 order): downsample, then ``PoissonNoise``, peak log-uniform in
         [20, 2000] counts;
       - ``lr-gaussian``: downsample, then ``GaussianNoise``, std log-uniform in [0.003, 0.08];
    4. with probability 0.4, read noise on the LR grid: ``GaussianNoise``, std log-uniform in
       [0.002, 0.04].

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
    down = Downsample(factor=scale, method="bilinear" if rng.random() < 0.6 else "area")
    family = NOISE_FAMILIES[int(rng.choice(len(NOISE_FAMILIES), p=_FAMILY_ODDS))]
    if family == "clean":
        steps.append(down)
    elif family == "hr-local-var":
        steps += [LocalVarNoise(factor=_log_uniform(rng, 0.003, 0.15), blur_sigma=3.0), down]
    elif family == "hr-poisson":
        steps += [PoissonNoise(peak=_log_uniform(rng, 5.0, 500.0)), down]
    elif family == "lr-poisson":
        steps += [down, PoissonNoise(peak=_log_uniform(rng, 20.0, 2000.0))]
    else:
        steps += [down, GaussianNoise(sigma=_log_uniform(rng, 0.003, 0.08))]
    if rng.random() < 0.4:
        steps.append(GaussianNoise(sigma=_log_uniform(rng, 0.002, 0.04)))
    return Pipeline(steps=tuple(steps), name="random")


def _tone(rng: np.random.Generator) -> Gamma | Stretch | Clahe:
    kind = int(rng.choice(3, p=(0.35, 0.35, 0.3)))
    if kind == 0:
        return Gamma(gamma=_log_uniform(rng, 0.6, 1.7))
    if kind == 1:
        return Stretch(low=float(f"{rng.uniform(0.0, 2.0):.3g}"),
                       high=float(f"{rng.uniform(98.0, 100.0):.4g}"))
    return Clahe(clip_limit=_log_uniform(rng, 0.005, 0.03),
                 kernel=int(rng.choice((32, 64, 128))))


def legacy_pipeline(rng: np.random.Generator, scale: int = 4, noise_odds: float = 0.75
                    ) -> Pipeline:
    """Draw a legacy-data training degradation: what an old section went through, in order.

    1. with probability 0.6, contrast processing (a tone step, which the training target
       shares): ``Gamma`` log-uniform in [0.6, 1.7] (odds 0.35), ``Stretch`` of percentiles
       U(0, 2) and U(98, 100) (0.35), or ``Clahe``, clip limit log-uniform in [0.005, 0.03],
       kernel 32, 64 or 128 px (0.3);
    2. with probability 0.3, charging-like ``Shading`` (also shared with the target):
       amplitude U(0.05, 0.3), 1-3 cells, multiplicative (p = 0.7) or additive;
    3. with probability 0.5, a ``PsfBlur``, FWHM U(0.25, 0.75) x ``scale`` HR px, Gaussian or
       Airy (even odds);
    4. the downsampling: ``"area"`` (p = 0.6) or ``"bilinear"``;
    5. with probability ``noise_odds`` (0.75), detector noise on the low-resolution grid:
       ``PoissonGaussian``, dose log-uniform in [10, 1000] counts at full scale, read std
       log-uniform in [0.002, 0.03];
    6. with probability 0.25, ``Stripes``: scan-line offsets of std log-uniform in
       [0.002, 0.03], and (p = 0.5) stripes of amplitude log-uniform in [0.003, 0.03] every
       U(3, 20) rows;
    7. the storage: ``Jpeg`` at a quality drawn from 70-95 (p = 0.5), an 8-bit ``Quantize``
       over a window of U(0.25, 1) of the range (p = 0.2), or none (lossless).

    JPEG comes last, on the low-resolution grid: real legacy data was compressed at its own
    resolution. A 16-bit input needs no step: a run's percentile normalisation makes it
    a finely graded [0, 1] image, which the float pipeline already is.

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
    steps: list[Step] = []
    if rng.random() < 0.6:
        steps.append(_tone(rng))
    if rng.random() < 0.3:
        steps.append(Shading(amplitude=float(f"{rng.uniform(0.05, 0.3):.3g}"),
                             cells=int(rng.integers(1, 4)),
                             mode="multiplicative" if rng.random() < 0.7 else "additive",
                             seed=int(rng.integers(2**31))))
    if rng.random() < 0.5:
        fwhm = float(f"{rng.uniform(0.25, 0.75) * scale:.3g}")
        steps.append(PsfBlur(fwhm=fwhm, profile="gaussian" if rng.random() < 0.5 else "airy"))
    steps.append(Downsample(factor=scale, method="area" if rng.random() < 0.6 else "bilinear"))
    if rng.random() < noise_odds:
        steps.append(PoissonGaussian(dose=_log_uniform(rng, 10.0, 1000.0),
                                     read=_log_uniform(rng, 0.002, 0.03)))
    if rng.random() < 0.25:
        stripes = rng.random() < 0.5
        steps.append(Stripes(line_sigma=_log_uniform(rng, 0.002, 0.03),
                             amplitude=_log_uniform(rng, 0.003, 0.03) if stripes else 0.0,
                             period=float(f"{rng.uniform(3.0, 20.0):.3g}")))
    store = rng.random()
    if store < 0.5:
        steps.append(Jpeg(quality=int(rng.integers(70, 96))))
    elif store < 0.7:
        width = rng.uniform(0.25, 1.0)
        low = float(f"{rng.uniform(0.0, 1.0 - width):.3g}")
        steps.append(Quantize(bits=8, low=low, high=float(f"{min(1.0, low + width):.3g}")))
    return Pipeline(steps=tuple(steps), name="random")
