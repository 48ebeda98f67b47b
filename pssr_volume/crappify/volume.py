"""``pssr-volume crappify``: degrade a whole volume, section by section, into a new file.

The input is read lazily one section at a time (any format
:func:`~pssr_volume.io.inputs.open_input` reads) and written as it goes, so volumes
larger than memory work. The output format follows the output name: ``.tif``/``.tiff``
gives an ImageJ TIFF stack (an OME-TIFF for data types ImageJ lacks, such as float64),
``.zarr`` (e.g. ``lr.ome.zarr``) a one-level OME-Zarr (NGFF 0.5, zarr v3). The voxel
size is the input's with y and x multiplied by the scale.

Intensities: integer volumes are degraded as ``value / dtype max`` (so an 8-bit image's
grey levels are PSSR2's Poisson counts at peak 255) and written back in the same dtype
(rounded, clipped); float volumes are mapped from their sampled [min, max] to [0, 1]
and back. Section ``z`` uses the generator ``default_rng([seed, z])``: the result does
not depend on the order sections are processed in. What was done (pipeline, seed,
source) is stored with the output: in the OME-Zarr attributes or, for a TIFF, in a
sidecar ``OUTPUT.crappify.json``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from pssr_volume.config import CrappifyConfig, NormalizationConfig
from pssr_volume.crappify.pipeline import Pipeline
from pssr_volume.crappify.presets import get_preset, random_pipeline
from pssr_volume.errors import PssrError
from pssr_volume.intensity import intensity_range, sample_volume
from pssr_volume.io.inputs import InputVolume, open_input

PROVENANCE_KEY = "pssr_volume_crappify"
AXES = [{"name": n, "type": "space", "unit": "nanometer"} for n in ("z", "y", "x")]


def pipeline_for(name: str, scale: int, seed: int) -> Pipeline:
    """A preset by name, or ``"mix"``: one random PSSR/PSSR2-style pipeline drawn from
    ``default_rng([seed, 2**31])`` (the same for every section, like one acquisition)."""
    if name == "mix":
        return random_pipeline(np.random.default_rng([seed, 2**31]), scale)
    try:
        return get_preset(name, scale)
    except ValueError as e:
        raise PssrError(f"{e} (or mix)") from None


@dataclass(frozen=True)
class GreyMap:
    """Affine map between stored grey values and the [0, 1] floats crappifiers use."""

    lo: float
    hi: float
    dtype: str

    @classmethod
    def for_volume(cls, vol: InputVolume) -> GreyMap:
        """``[0, dtype max]`` for integer types, the sampled [min, max] for floats."""
        dt = np.dtype(vol.dtype)
        if dt.kind in "iu":
            return cls(0.0, float(np.iinfo(dt).max), dt.name)
        lo, hi = intensity_range(NormalizationConfig(mode="percentile", low=0, high=100),
                                 sample_volume(vol.read, vol.shape))
        return cls(lo, hi, dt.name)

    def to_unit(self, a: np.ndarray) -> np.ndarray:
        """Stored values to floats in [0, 1] (clipped)."""
        return np.clip((a.astype(np.float32) - self.lo) / (self.hi - self.lo), 0, 1)

    def from_unit(self, a: np.ndarray) -> np.ndarray:
        """Floats in [0, 1] back to the stored dtype (rounded for integers)."""
        v = a.astype(np.float64) * (self.hi - self.lo) + self.lo
        dt = np.dtype(self.dtype)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            v = np.clip(np.rint(v), info.min, info.max)
        return v.astype(dt)


def degrade_sections(vol: InputVolume, pipeline: Pipeline, seed: int,
                     z_range: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Degraded sections of ``vol`` in z order (stored dtype, y/x cropped to the scale).

    Section ``z`` is degraded with ``default_rng([seed, z])``.
    """
    grey = GreyMap.for_volume(vol)
    s = pipeline.scale
    z0, z1 = z_range or (0, vol.shape[0])
    y, x = vol.shape[1] - vol.shape[1] % s, vol.shape[2] - vol.shape[2] % s
    for z in range(z0, z1):
        section = vol.read((slice(z, z + 1), slice(0, y), slice(0, x)))[0]
        lr = pipeline(grey.to_unit(section), np.random.default_rng([seed, z]))
        yield grey.from_unit(lr)


def _check_output(output: Path, source: InputVolume) -> str:
    name = output.name.lower()
    src = Path(source.path).resolve()
    where = output.resolve()
    if where == src:
        raise PssrError(f"output {output} is the input {source.path}; choose another name "
                        "(the input is never replaced)")
    if src.is_dir() and where.is_relative_to(src):
        raise PssrError(f"output {output} is inside the input folder {source.path}; "
                        "choose a place outside it (the input is never modified)")
    if output.exists() or output.is_symlink():
        raise PssrError(f"output {output} exists; remove it or choose another name")
    if name.endswith((".tif", ".tiff")):
        if not where.parent.is_dir():
            raise PssrError(f"output {output}: its folder {where.parent} does not exist")
        return "tiff"
    if name.endswith(".zarr"):
        return "zarr"
    raise PssrError(f"output {output}: name it *.tif, *.tiff or *.zarr (e.g. lr.ome.zarr)")


IMAGEJ_DTYPES = ("uint8", "uint16", "int16", "float32")  # what ImageJ TIFFs can hold


def write_tiff_stack(path: Path, sections: Iterator[np.ndarray], shape: tuple[int, int, int],
                     dtype: str, voxel: tuple[float, float, float] | None) -> None:
    """Write sections as an ImageJ TIFF stack (voxel size in nm if known).

    Data types ImageJ cannot hold (float64, int32, uint32, int8, ...) are written
    unchanged as an OME-TIFF instead, with the voxel size as ``PhysicalSize*``.
    """
    if np.dtype(dtype).kind not in "iuf":
        raise PssrError(f"cannot write {path}: data type {dtype} is not supported in a TIFF "
                        "stack here (integer or float only)")
    if np.dtype(dtype).name not in IMAGEJ_DTYPES:
        meta: dict[str, Any] = {"axes": "ZYX"}
        if voxel is not None:
            for axis, size in zip("ZYX", voxel, strict=True):
                meta |= {f"PhysicalSize{axis}": size, f"PhysicalSize{axis}Unit": "nm"}
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        with tifffile.TiffWriter(path, ome=True, bigtiff=nbytes > 2**32 - 2**25) as tif:
            tif.write(sections, shape=shape, dtype=dtype, photometric="minisblack",
                      metadata=meta)
        return
    kw: dict[str, Any] = {"metadata": {"axes": "ZYX"}}
    if voxel is not None:
        kw = {"resolution": (1 / voxel[2], 1 / voxel[1]),
              "metadata": {"spacing": voxel[0], "unit": "nm", "axes": "ZYX"}}
    with tifffile.TiffWriter(path, imagej=True) as tif:
        tif.write(sections, shape=shape, dtype=dtype, photometric="minisblack", **kw)


def write_ome_zarr(path: Path, sections: Iterator[np.ndarray], shape: tuple[int, int, int],
                   dtype: str, voxel: tuple[float, float, float], attrs: dict[str, Any]) -> None:
    """Write sections as a one-level OME-Zarr image (NGFF 0.5), one section per chunk row."""
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(path), mode="w-", zarr_format=3)
    chunks = (1, min(shape[1], 1024), min(shape[2], 1024))
    arr = group.create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                             dimension_names=["z", "y", "x"])
    for z, section in enumerate(sections):
        arr[z] = section
    datasets = [{"path": "0",
                 "coordinateTransformations": [{"type": "scale", "scale": list(voxel)}]}]
    write_multiscales_metadata(group, datasets, fmt=FormatV05(), axes=AXES, name=path.stem)
    group.attrs[PROVENANCE_KEY] = json.loads(json.dumps(attrs))


def crappify_volume(config: CrappifyConfig,
                    log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Degrade a volume with a crappifier preset and write it (TIFF or OME-Zarr).

    Parameters
    ----------
    config : CrappifyConfig
        ``input``: any readable input; ``output``: a new ``.tif``/``.tiff`` or ``.zarr``
        (never replaced); ``preset``: ``pssr-em``, ``pssr-fluo``, ``pssr2`` or ``mix``;
        ``scale``: downsampling factor in y and x; ``seed``: seed of the per-section
        generators; ``voxel_size``: input voxel size (z, y, x) in nm, overriding the file's.

    Returns
    -------
    dict
        What was written: source, output, shapes, voxel sizes, pipeline, seed.
    """
    src, out = Path(config.input), Path(config.output)
    preset, scale, seed, voxel_size = config.preset, config.scale, config.seed, config.voxel_size
    vol = open_input(src)
    kind = _check_output(out, vol)
    pipeline = pipeline_for(preset, scale, seed)
    z, y, x = vol.shape
    if y < scale or x < scale:
        raise PssrError(f"{src}: sections ({y}x{x}) are smaller than the scale ({scale})")
    if y % scale or x % scale:
        log(f"note: cropping {y % scale} row(s) and {x % scale} column(s) so that y and x "
            f"are multiples of {scale}")
    shape = (z, y // scale, x // scale)
    voxel_in = voxel_size or vol.voxel_size
    voxel = None if voxel_in is None else (voxel_in[0], voxel_in[1] * scale, voxel_in[2] * scale)
    info = {
        "source": str(src.resolve()), "output": str(out.resolve()),
        "input_shape": list(vol.shape), "output_shape": list(shape), "dtype": vol.dtype,
        "input_voxel_size_nm": None if voxel_in is None else list(voxel_in),
        "voxel_size_nm": None if voxel is None else list(voxel),
        "scale": scale, "seed": seed, "preset": preset, "pipeline": pipeline.to_dict(),
        "rng": "numpy default_rng([seed, z]) per section z",
    }
    sections = degrade_sections(vol, pipeline, seed)
    try:
        if kind == "tiff":
            write_tiff_stack(out, sections, shape, vol.dtype, voxel)
            Path(str(out) + ".crappify.json").write_text(json.dumps(info, indent=2))
        else:
            if voxel is None:
                log("note: the input has no voxel size; writing scale (1, "
                    f"{scale}, {scale}) (pass --voxel-size)")
            write_ome_zarr(out, sections, shape, vol.dtype, voxel or (1.0, scale, scale), info)
    except BaseException:
        _remove_partial(out)
        raise
    return info


def _remove_partial(out: Path) -> None:
    if out.is_file():
        out.unlink()
    elif out.is_dir():
        shutil.rmtree(out)
