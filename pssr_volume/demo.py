"""A synthetic, EM-like demo volume, so that a new user can try the tool without any data.

The scene imitates serial-section TEM of neuropil at 4.6 nm pixels (HR): tightly packed
neurite profiles (a warped power diagram of drifting seeds) with dark membranes, a few dark
mitochondria with lighter cristae, and clusters of synaptic vesicles. It is degraded with the
``pssr-em`` crappifier to 18.4 nm pixels (LR, x4), the kind of input ``pssr-volume run``
restores. Everything is drawn from one seed: the same seed gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import NDArray

from pssr_volume.config import DemoConfig
from pssr_volume.crappify.presets import get_preset
from pssr_volume.errors import PssrError
from pssr_volume.neuropil import make_scene, render_slice

__all__ = [
    "HR_PIXEL_NM",
    "LR_PIXEL_NM",
    "SCALE",
    "Z_STEP_NM",
    "make_demo_volume",
    "write_demo",
    "write_demo_tiff",
]

SCALE = 4
HR_PIXEL_NM = 4.6
LR_PIXEL_NM = HR_PIXEL_NM * SCALE
Z_STEP_NM = 50.0


def make_demo_volume(
    shape_lr: tuple[int, int, int] = (4, 192, 160), seed: int = 0
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Make a synthetic neuropil ssTEM stack and its x4-undersampled acquisition.

    Steps, in order:

    1. lay out a 3-D scene from ``seed``: cell seeds that drift and grow across z, mitochondria
       and vesicle clusters attached to some cells, smooth warp fields;
    2. render each HR slice (4.6 nm pixels) in 8-bit grey levels: cytoplasm per cell ~120-150
       (darker profiles) or ~160-200 (lighter ones) with slow mottling; membranes ~40-70 and
       about 3 px wide at cell borders with patchy dark fuzz and darker junctions;
       mitochondria (dark, lighter cristae); vesicle clusters (8-10 px, dark rims); then
       granular texture, a slight blur (sigma 0.9 px) and pixel noise;
    3. round and clip to uint8: the HR volume;
    4. degrade HR / 255 slice by slice with the ``pssr-em`` crappifier (x4, its own stream
       from ``seed``), then round and clip ``255 x`` the result to uint8: the LR volume
       (18.4 nm pixels).

    Parameters
    ----------
    shape_lr : tuple of int
        (z, y, x) of the LR volume; the HR volume is (z, 4y, 4x).
    seed : int
        Seed of everything; the same seed gives identical volumes.

    Returns
    -------
    lr, hr : numpy.ndarray
        uint8 arrays of shapes ``shape_lr`` and ``(z, 4y, 4x)``.
    """
    nz, ny, nx = (int(s) for s in shape_lr)
    if min(nz, ny, nx) < 1:
        raise ValueError(f"shape_lr must be positive, got {shape_lr}")
    scene_rng, texture_rng, noise_rng = np.random.default_rng(seed).spawn(3)
    scene = make_scene(scene_rng, (ny * SCALE, nx * SCALE), nz)
    crappify = get_preset("pssr-em", SCALE)
    hr = np.empty((nz, ny * SCALE, nx * SCALE), np.uint8)
    lr = np.empty((nz, ny, nx), np.uint8)
    for z in range(nz):  # one slice at a time bounds the memory
        hr[z] = np.clip(np.rint(render_slice(scene, z, texture_rng)), 0, 255)
        lr_z = crappify(hr[z].astype(np.float32) / np.float32(255.0), noise_rng)
        lr[z] = np.clip(np.rint(lr_z * np.float32(255.0)), 0, 255)
    return lr, hr


def _imagej_write(path: Path, data: NDArray[np.uint8], pixel_nm: float) -> None:
    """Write a ZYX uint8 stack as an ImageJ TIFF with its voxel size; never overwrites."""
    try:
        with open(path, "xb") as fh:  # exclusive creation: an existing file is never replaced
            tifffile.imwrite(
                fh,
                data,
                imagej=True,
                resolution=(1.0 / pixel_nm, 1.0 / pixel_nm),
                metadata={"spacing": Z_STEP_NM, "unit": "nm", "axes": "ZYX"},
            )
    except FileExistsError:
        raise PssrError(f"{path} already exists; choose another path or delete it first.") from None


def write_demo_tiff(
    path: str | Path,
    shape_lr: tuple[int, int, int] = (4, 192, 160),
    seed: int = 0,
    hr_path: str | Path | None = None,
) -> None:
    """Write the demo LR volume (and optionally its HR truth) as ImageJ multi-page TIFFs.

    The LR file has voxel size 50 nm (z) x 18.4 nm (y, x); the HR file 50 x 4.6 x 4.6 nm. Both
    are uint8, axes ZYX, with the pixel size in the TIFF resolution tags (pixels per nm) and the
    z step in the ImageJ ``spacing`` field, unit ``nm``.

    Raises
    ------
    PssrError
        If an output file already exists (it is never overwritten).
    """
    targets = [Path(path)] + ([Path(hr_path)] if hr_path is not None else [])
    if len(targets) == 2 and targets[0].resolve() == targets[1].resolve():
        raise PssrError(f"the LR and HR outputs are the same file: {targets[0]}")
    for target in targets:
        if target.exists():
            raise PssrError(f"{target} already exists; choose another path or delete it first.")
        if not target.parent.is_dir():
            raise PssrError(f"cannot write {target}: folder {target.parent} does not exist.")
    lr, hr = make_demo_volume(shape_lr, seed)
    for target, data, pixel_nm in zip(targets, (lr, hr), (LR_PIXEL_NM, HR_PIXEL_NM), strict=False):
        _imagej_write(target, data, pixel_nm)


def write_demo(config: DemoConfig) -> None:
    """``pssr-volume demo``: write the demo stack a :class:`DemoConfig` describes."""
    write_demo_tiff(config.output, shape_lr=config.shape, seed=config.seed,
                    hr_path=config.hr_path)
