"""``pssr-volume convert``: any supported input to multiscale OME-Zarr, losslessly.

The input is read in chunk-aligned tasks (whole output chunks, a bounded number
of bytes each), written to level 0 unchanged, and pooled into the pyramid with
the same writer and chunk-aligned stages as ``pssr-volume run``
(:func:`pssr_volume.io.ome_zarr.create_output`, :mod:`pssr_volume.pyramid`).
Memory stays constant whatever the volume size; no cluster is needed::

    from pssr_volume.config import ConvertConfig
    from pssr_volume.convert import convert
    convert(ConvertConfig(input="raw/", output="raw.ome.zarr", voxel_size=(50, 4.6, 4.6)))
"""

from __future__ import annotations

import datetime
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from pssr_volume import __version__
from pssr_volume.config import ConvertConfig
from pssr_volume.errors import PssrError
from pssr_volume.io.inputs import InputVolume, input_location, open_input
from pssr_volume.io.ome_zarr import (
    check_paths,
    create_output,
    is_zarr_store,
    remove_output,
    update_provenance,
)
from pssr_volume.pyramid import (
    Level,
    child_region,
    cumulative,
    downsample,
    parent_region,
    plan_levels,
    plan_stages,
    task_regions,
)
from pssr_volume.types import Shape3

__all__ = ["ConvertStats", "convert"]

Box = tuple[tuple[int, int], ...]
DEFAULT_CHUNK: Shape3 = (8, 256, 256)
TASK_BYTES = 64 << 20  # upper bound on the data one task reads


@dataclass(frozen=True)
class ConvertStats:
    """What a conversion did."""

    output: str
    shape: Shape3
    dtype: str
    voxel_size: tuple[float, float, float]
    levels: int
    tasks: int
    seconds: float


def convert(config: ConvertConfig, log: Callable[[str], None] = lambda s: None) -> ConvertStats:
    """Convert `input` into a multiscale OME-Zarr image at `output`.

    Level 0 holds the input's voxels unchanged (same dtype and values); the
    other levels are mean-pooled as in ``pssr-volume run``.

    Parameters
    ----------
    config : ConvertConfig
        ``input``: any input :func:`~pssr_volume.io.inputs.open_input` accepts (TIFF,
        TIFF folder, Zarr, OME-Zarr level, N5, ``file.h5:/dataset``, MRC); ``output``:
        the OME-Zarr to create; ``voxel_size`` overrides the input's metadata (without
        either, 1 nm is used and a warning is logged); ``chunk_shape`` defaults to up to
        ``8, 256, 256``; ``levels`` to "until y and x fit in 256".
    log : callable
        Receives human-readable notes and warnings.

    Returns
    -------
    ConvertStats

    Raises
    ------
    PssrError
        For a bad input, option or output (nothing is written then) or a read
        failure (the partial output is removed).
    """
    c = config
    location = input_location(c.input)
    out = Path(c.output)
    vol = open_input(c.input)
    check_paths(location, out)
    if Path(vol.path) != location:  # an OME-Zarr level or N5 s0: its group is the input too
        check_paths(Path(vol.path), out)
    for note in vol.notes:
        log(f"note: {note}")
    voxel = _voxel_size(c.voxel_size, vol, log)
    chunk = _chunk(c.chunk_shape, vol.shape)
    pyramid = plan_levels(vol.shape, voxel, c.levels)
    task = _task_shape(vol.shape, chunk, np.dtype(vol.dtype).itemsize)
    stages = plan_stages(pyramid, task, chunk)
    _check_output(out, c.overwrite)
    settings = {
        "voxel_size_nm": list(voxel),
        "chunk_shape": list(chunk),
        "levels": [{"path": lv.path, "shape": list(lv.shape), "voxel_size_nm": list(lv.voxel_size)}
                   for lv in pyramid],
        "dtype": vol.dtype,
        "ngff_version": c.ngff_version,
        "compression": {"codec": "zstd", "level": c.compression_level},
    }
    provenance = {
        "software": "pssr-volume",
        "version": __version__,
        "operation": "convert",
        "input": {"path": vol.source, "kind": vol.kind, "shape": list(vol.shape),
                  "dtype": vol.dtype,
                  "voxel_size_nm": None if vol.voxel_size is None else list(vol.voxel_size)},
        "settings": settings,
        "status": "running",
    }
    if out.exists() and c.overwrite:
        remove_output(out)
    elif out.is_dir():
        out.rmdir()  # empty (anything else was refused above)
    log(f"input   {vol.source}: {vol.kind} {_fmt(vol.shape)} {vol.dtype}, voxel {_fmt(voxel)} nm")
    log(f"output  {out}: {len(pyramid)} levels (to {_fmt(pyramid[-1].shape)}), chunks "
        f"{_fmt(chunk)}, NGFF {c.ngff_version}")
    started = time.perf_counter()
    create_output(out, pyramid, chunk, vol.dtype, c.ngff_version, c.compression_level,
                  name=_name(vol), provenance=provenance)
    try:
        n_tasks = _write(vol, out, pyramid, stages, c.progress)
    except BaseException:
        remove_output(out)
        raise
    update_provenance(out, status="complete",
                      completed=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    return ConvertStats(str(out), vol.shape, vol.dtype, voxel, len(pyramid), n_tasks,
                        time.perf_counter() - started)


def _write(vol: InputVolume, out: Path, pyramid: tuple[Level, ...], stages: Sequence[Any],
           progress: bool) -> int:
    group = zarr.open_group(str(out), mode="r+")
    arrays = [group[lv.path] for lv in pyramid]
    work = [(k, region) for k, st in enumerate(stages)
            for region in task_regions(pyramid[st.first].shape, st.task)]
    with tqdm(total=len(work), unit="task", desc="converting", disable=not progress,
              dynamic_ncols=True) as bar:
        for k, region in work:
            st = stages[k]
            if st.source is None:
                zs, ys, xs = (slice(a, b) for a, b in region)
                data = vol.read((zs, ys, xs))
            else:
                factors = cumulative(pyramid, st.source, st.first)
                src = parent_region(region, factors, pyramid[st.source].shape)
                data = np.asarray(arrays[st.source][tuple(slice(a, b) for a, b in src)])
                for lv in pyramid[st.source + 1: st.first + 1]:
                    data = downsample(data, lv.factors)
            _write_levels(arrays, pyramid, st.first, st.last, region, data)
            bar.update(1)
    return len(work)


def _write_levels(arrays: list[Any], pyramid: tuple[Level, ...], first: int, last: int,
                  region: Box, data: np.ndarray) -> None:
    """Write `data` at `region` of level `first`, then pool it into levels up to `last`."""
    arrays[first][tuple(slice(a, b) for a, b in region)] = data
    for k in range(first + 1, last + 1):
        lv = pyramid[k]
        data = downsample(data, lv.factors)
        region = child_region(region, lv.factors, lv.shape)
        arrays[k][tuple(slice(a, b) for a, b in region)] = data


# --- options -----------------------------------------------------------------------------


def _voxel_size(given: Sequence[float] | None, vol: InputVolume,
                log: Callable[[str], None]) -> tuple[float, float, float]:
    if given is not None:
        return (float(given[0]), float(given[1]), float(given[2]))
    if vol.voxel_size is not None:
        return vol.voxel_size
    log("warning: the input has no voxel size and --voxel-size was not given: using 1 nm")
    return (1.0, 1.0, 1.0)


def _chunk(given: Sequence[int] | None, shape: Shape3) -> Shape3:
    if given is not None:
        return (int(given[0]), int(given[1]), int(given[2]))
    return tuple(max(1, min(c, n)) for c, n in zip(DEFAULT_CHUNK, shape))  # type: ignore[return-value]


def _task_shape(shape: Shape3, chunk: Shape3, itemsize: int) -> Shape3:
    """Whole chunks in z, the largest square multiple of the chunk in y, x (at
    least one chunk) such that a task of a later pyramid stage, which reads up to
    8 times its own size from the level above, stays within :data:`TASK_BYTES`."""
    cz, cy, cx = chunk
    most = max(math.ceil(shape[1] / cy), math.ceil(shape[2] / cx))
    budget = TASK_BYTES // 8
    k = 1
    while k < most and cz * (k + 1) * cy * (k + 1) * cx * itemsize <= budget:
        k += 1
    return (cz, cy * k, cx * k)


# --- paths -------------------------------------------------------------------------------


def _check_output(out: Path, overwrite: bool) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise PssrError(f"output exists: {out} (use --overwrite to replace it)")
    if not (out.is_dir() and is_zarr_store(out)):
        raise PssrError(f"refusing to overwrite {out}: it is not a Zarr store")


def _name(vol: InputVolume) -> str:
    base = os.path.basename(vol.path.rstrip(os.sep)) or "volume"
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".ome.zarr", ".zarr", ".n5",
                   ".h5", ".hdf5", ".hdf", ".mrc", ".rec", ".st", ".map"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or base
    return base


def _fmt(values: Sequence[float]) -> str:
    return "x".join(f"{v:g}" for v in values)
