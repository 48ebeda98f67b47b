"""The cases of an evaluation, checked before anything is written or any heavy library loads.

Which volumes, presets and regions an ``evaluate`` scores (:func:`evaluation_cases`), and
:func:`check_evaluation`: every input opened, every pair, ``--z`` and ``--crop`` checked, the
models' headers read (their scale), and the ``--out`` folder: in about half a second, so
the command line fails a bad argument before torch loads. :mod:`pssr_volume.evaluate` runs
the protocol on them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, cast

from pssr_volume.bundled import DEFAULT_MODEL, bundled_models, resolve_model
from pssr_volume.config import EvaluateConfig
from pssr_volume.crappify.presets import get_preset
from pssr_volume.errors import PssrError
from pssr_volume.io.inputs import InputVolume, open_input
from pssr_volume.model_header import read_config


def check_evaluation(cfg: EvaluateConfig) -> tuple[Path, ...]:
    """Check everything about an evaluation that can fail, writing nothing; returns the
    model files (the default bundled model when none is given and it is installed)."""
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise PssrError(f"--out {out} is a file, not a folder; give a folder for the results")
    if (out / "results.json").exists() and not cfg.overwrite:
        raise PssrError(f"{out} already holds results.json; pass --overwrite or another --out")
    models = tuple(resolve_model(m) for m in cfg.models)
    if not models:
        default = bundled_models().get(DEFAULT_MODEL)
        models = (default,) if default is not None else ()
    if not cfg.lr:
        for p in cfg.presets:
            try:
                get_preset(p, cfg.scale)
            except ValueError as e:
                raise PssrError(str(e)) from None
    for m in models:
        scale = read_config(m).scale
        if scale != cfg.scale:
            raise PssrError(f"model {m} is x{scale}, the evaluation x{cfg.scale} (--scale)")
    evaluation_cases(cfg)
    _check_out_folder(out)
    return models


def hr_region(shape: tuple[int, int, int], scale: int, z: tuple[int, int] | None,
              crop: tuple[int, int] | None, source: str = "the HR volume"
              ) -> tuple[slice, slice, slice]:
    """The HR region to evaluate: the z range, and a centred y/x crop whose size and origin
    are multiples of ``scale`` (the whole section, cut down to multiples, by default).

    A z range past the volume is clipped here; :func:`evaluate` refuses one first.
    """
    nz, ny, nx = shape
    z0, z1 = (0, nz) if z is None else (min(z[0], nz - 1), min(z[1], nz))
    out = [slice(z0, z1)]
    for n, c in zip((ny, nx), crop or (ny, nx)):
        lr_n, lr_c = n // scale, min(c, n) // scale
        if lr_c < 1 and (crop is None or c >= n):
            raise PssrError(f"{source} has sections of {ny}x{nx} pixels, smaller than the "
                            f"scale {scale}: nothing is left to evaluate (it needs at least "
                            f"{scale}x{scale} pixels)")
        if lr_c < 1 and crop is not None:
            raise PssrError(f"--crop {crop[0]},{crop[1]} is smaller than the scale {scale}: "
                            f"nothing is left to evaluate (crop at least {scale},{scale})")
        a = (lr_n - lr_c) // 2
        out.append(slice(a * scale, (a + lr_c) * scale))
    return cast(tuple[slice, slice, slice], tuple(out))  # z plus the two of (y, x)


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "case"


def evaluation_cases(cfg: EvaluateConfig) -> list[dict[str, Any]]:
    """Every case, after opening and checking its inputs: nothing is written before."""
    cases = []
    for i, hr in enumerate(cfg.hr):
        hr_vol = open_input(hr)
        lr_vol = open_input(cfg.lr[i]) if cfg.lr else None
        _check_case(cfg, hr, hr_vol, cfg.lr[i] if cfg.lr else None, lr_vol)
        stem = safe_name(hr.parent.name if hr.name == "raw" else hr.name.split(".")[0])
        common = {"hr": hr, "hr_vol": hr_vol, "lr_vol": lr_vol}
        if cfg.lr:
            cases.append({"name": f"{stem}-real", "lr": cfg.lr[i], "preset": None, **common})
        else:
            cases += [{"name": f"{stem}-{p}", "lr": None, "preset": p, **common}
                      for p in cfg.presets]
    return cases


def _check_case(cfg: EvaluateConfig, hr: Path, hr_vol: InputVolume, lr: Path | None,
                lr_vol: InputVolume | None) -> None:
    """Refuse a pair that does not match, a --z past the volume, a crop or volume smaller
    than the scale: one line naming the volume and its sizes."""
    scale = cfg.scale
    if lr is not None and lr_vol is not None:
        if lr_vol.shape[0] != hr_vol.shape[0] or any(
                h // scale != lr_n for h, lr_n in zip(hr_vol.shape[1:], lr_vol.shape[1:])):
            raise PssrError(f"{lr} {lr_vol.shape} and {hr} {hr_vol.shape} are "
                            f"not an LR/HR pair at scale {scale}")
        if lr_vol.dtype != hr_vol.dtype:
            raise PssrError(f"{lr} ({lr_vol.dtype}) and {hr} ({hr_vol.dtype}) differ in dtype")
    nz = hr_vol.shape[0]
    if cfg.z is not None and cfg.z[1] > nz:
        raise PssrError(f"--z {cfg.z[0]}:{cfg.z[1]} is outside {hr}, which has {nz} "
                        f"section(s): use START:STOP within 0:{nz}")
    hr_region(hr_vol.shape, scale, cfg.z, cfg.crop, source=str(hr))


def _check_out_folder(out: Path) -> None:
    """Refuse an --out that cannot become a folder: a file on its way, or no permission."""
    existing = out
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise PssrError(f"--out {out} cannot be created: {existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise PssrError(f"--out {out} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PssrError(f"--out {out} cannot be written: permission denied in {existing}")
