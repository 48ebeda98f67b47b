"""Whether a model fits the data it is asked to restore, judged before anything runs.

Two rules, both from what the model file records about its training data:

- **Pixel size** (a warning): the output pixel size more than :data:`PIXEL_SIZE_SLACK`
  times outside the pixel sizes the model was trained at.
- **Section spacing** (a refusal): a multi-section model blends each section with its
  neighbours, which only helps when they show the same structures. Its file records the
  largest z step of its training data (``section_spacing_nm``); an input whose sections
  are more than :data:`SPACING_SLACK` times further apart is refused (``--force``
  overrides), naming the bundled models that fit.
"""

from __future__ import annotations

from collections.abc import Callable

from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError

PIXEL_SIZE_SLACK = 1.5  # how far outside its training pixel sizes a model is trusted
SPACING_SLACK = 2.0  # how much further apart than in training sections may be


def pixel_size_warning(model: ModelConfig, out_pixel: float) -> list[str]:
    """One warning when the output pixel size is more than 1.5x outside the pixel sizes the
    model was trained at (none when the model does not record them)."""
    if model.pixel_size_nm is None:
        return []
    lo, hi = model.pixel_size_nm
    if lo / PIXEL_SIZE_SLACK <= out_pixel <= hi * PIXEL_SIZE_SLACK:
        return []
    return [f"warning: model {model.name!r} was trained for {lo:g}-{hi:g} nm output pixels; "
            f"this run's are {out_pixel:g} nm (more than {PIXEL_SIZE_SLACK:g}x outside): "
            "check --voxel-size, or fine-tune the model (train --init) on data like this"]


def spacing_fits(model: ModelConfig, z_step: float) -> bool:
    """Whether sections ``z_step`` nm apart are close enough for ``model``: always for a
    single-section model or one that records no spacing."""
    spacing = model.section_spacing_nm
    return model.in_slices == 1 or spacing is None or z_step <= SPACING_SLACK * spacing


def check_section_spacing(model: ModelConfig, z_step: float | None, force: bool,
                          candidates: Callable[[], dict[str, ModelConfig]]) -> list[str]:
    """Refuse a multi-section model on sections more than 2x further apart than it was
    trained on (``PssrError``), or, with ``force``, return the warning. ``z_step`` is
    ``None`` when the input's voxel size is unknown (nothing can be judged then);
    ``candidates`` gives the bundled models' configurations, to name those that fit."""
    if z_step is None or spacing_fits(model, z_step):
        return []
    assert model.section_spacing_nm is not None  # spacing_fits is True without one
    what = (f"model {model.name!r} reads {model.in_slices} adjacent sections and was trained "
            f"on sections {model.section_spacing_nm:g} nm apart; this input's are {z_step:g} "
            f"nm apart (more than {SPACING_SLACK:g}x)")
    if force:
        return [f"warning: {what}; --force: restoring anyway"]
    fitting = [name for name, cfg in candidates().items() if spacing_fits(cfg, z_step)]
    hint = f"use --model {' or '.join(fitting)}" if fitting else "use a single-section model"
    raise PssrError(f"{what}: neighbouring sections show different structures, so it would "
                    f"blend them; {hint} (or --force, or check --voxel-size)")
