"""``pssr-volume crappify``: degrade a whole volume, section by section, into a new file.

The input is read lazily one section at a time (any format
:func:`~pssr_volume.io.inputs.open_input` reads) and written as it goes, so volumes
larger than memory work. The output format follows the output name: ``.tif``/``.tiff``
gives an ImageJ TIFF stack (an OME-TIFF for data types ImageJ lacks, such as float64),
``.zarr`` (e.g. ``lr.ome.zarr``) a one-level OME-Zarr (NGFF 0.5, zarr v3). The voxel
size is the input's with y and x multiplied by the scale. Both are written by
:mod:`pssr_volume.io` (:func:`~pssr_volume.io.ome_zarr.write_image`,
:func:`~pssr_volume.io.tiff.write_tiff_stack`), which also checks the output and removes
a partial one after a failure.

Intensities: integer volumes are degraded as ``value / dtype max`` (so an 8-bit image's
grey levels are PSSR2's Poisson counts at peak 255) and written back in the same dtype
(rounded, clipped); float volumes are mapped from their sampled [min, max] to [0, 1]
and back. Section ``z`` uses the generator ``default_rng([seed, z])``: the result does
not depend on the order sections are processed in. What was done (pipeline, seed,
source) is stored with the output: in the OME-Zarr provenance (``operation``
``crappify``) or, for a TIFF, in a sidecar ``OUTPUT.crappify.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pssr_volume.config import CrappifyConfig
from pssr_volume.crappify.pipeline import Pipeline
from pssr_volume.crappify.presets import get_preset, random_pipeline
from pssr_volume.errors import PssrError
from pssr_volume.intensity import GreyMap
from pssr_volume.io.inputs import InputVolume, open_input
from pssr_volume.io.ome_zarr import check_output, check_placement, write_image
from pssr_volume.io.tiff import write_tiff_stack
from pssr_volume.pyramid import Level


def pipeline_for(name: str, scale: int, seed: int) -> Pipeline:
    """A preset by name, or ``"mix"``: one random PSSR/PSSR2-style pipeline drawn from
    ``default_rng([seed, 2**31])`` (the same for every section, like one acquisition)."""
    if name == "mix":
        return random_pipeline(np.random.default_rng([seed, 2**31]), scale)
    try:
        return get_preset(name, scale)
    except ValueError as e:
        raise PssrError(f"{e} (or mix)") from None


def degrade_sections(vol: InputVolume, pipeline: Pipeline, seed: int,
                     z_range: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Degraded sections of ``vol`` in z order (stored dtype, y/x cropped to the scale).

    Section ``z`` is degraded with ``default_rng([seed, z])``.
    """
    grey = GreyMap.for_volume(vol.dtype, vol.read, vol.shape)
    s = pipeline.scale
    z0, z1 = z_range or (0, vol.shape[0])
    y, x = vol.shape[1] - vol.shape[1] % s, vol.shape[2] - vol.shape[2] % s
    for z in range(z0, z1):
        section = vol.read((slice(z, z + 1), slice(0, y), slice(0, x)))[0]
        lr = pipeline(grey.to_unit(section), np.random.default_rng([seed, z]))
        yield grey.from_unit(lr)


def _output_kind(output: Path, source: Path) -> str:
    """``"tiff"`` or ``"zarr"``, from the output's name, once the output passed the
    checks of every output (never the input, never inside it, never replaced)."""
    check_placement(source, output)
    check_output(output, resume=False, overwrite=False, fingerprint="", settings={},
                 hint="another name, or remove it first")
    name, where = output.name.lower(), output.resolve()
    if name.endswith((".tif", ".tiff")):
        if not where.parent.is_dir():
            raise PssrError(f"output {output}: its folder {where.parent} does not exist")
        return "tiff"
    if name.endswith(".zarr"):
        return "zarr"
    raise PssrError(f"output {output}: name it *.tif, *.tiff or *.zarr (e.g. lr.ome.zarr)")


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
    kind = _output_kind(out, src)
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
    if kind == "tiff":
        write_tiff_stack(out, sections, shape, vol.dtype, voxel)
        Path(str(out) + ".crappify.json").write_text(json.dumps(info, indent=2))
        return info
    if voxel is None:
        log(f"note: the input has no voxel size; writing scale (1, {scale}, {scale}) "
            "(pass --voxel-size)")
    level = Level("0", shape, voxel or (1.0, scale, scale), (1, 1, 1))
    chunk = (1, min(shape[1], 1024), min(shape[2], 1024))  # one section per chunk row
    write_image(out, sections, level, chunk, vol.dtype, name=out.stem,
                provenance={"operation": "crappify", **info})
    return info

