"""``pssr-volume convert``: any supported input to multiscale OME-Zarr, losslessly, on the engine.

Level 0 holds the input's voxels unchanged (same dtype and values); the other levels are
mean-pooled as in ``pssr-volume run``. It is a job of the block engine without a network
(:func:`pssr_volume.tasks.copy_block`): the same clusters (``--cluster``, ``--workers``),
the same sharded layout, journal and ``--resume``, and the output store is checked,
created and finished by :mod:`pssr_volume.io.ome_zarr` as for ``run``. Memory per task is
bounded whatever the volume size::

    from pssr_volume.config import ConvertConfig
    from pssr_volume.convert import convert
    convert(ConvertConfig(input="raw/", output="raw.ome.zarr", voxel_size=(50, 4.6, 4.6)))
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pssr_volume import __version__
from pssr_volume.blocks import BlockGrid, check_chunking
from pssr_volume.config import ConvertConfig
from pssr_volume.estimate import describe, estimate
from pssr_volume.io.inputs import InputVolume, open_input
from pssr_volume.io.ome_zarr import OutputLayout, chunk_codec
from pssr_volume.io.precomputed_layout import output_scales
from pssr_volume.io.stores import absolute
from pssr_volume.lifecycle import drive
from pssr_volume.plan import Job, Plan, fingerprint
from pssr_volume.pyramid import plan_levels, plan_stages, shard_shapes
from pssr_volume.types import Shape3

__all__ = ["ConvertStats", "convert"]

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


def plan_convert(config: ConvertConfig) -> Plan:
    """Validate ``config`` and derive the job (writes nothing).

    Raises
    ------
    PssrError
        For a bad input, option or output.
    """
    c = config
    vol = open_input(c.input)  # a missing input: "input not found: PATH"
    out = c.output
    notes = list(vol.notes)
    voxel = _voxel_size(c.voxel_size, vol, notes.append)
    chunk = _chunk(c.chunk_shape, vol.shape)
    block = c.block_shape or _task_shape(vol.shape, chunk, np.dtype(vol.dtype).itemsize)
    check_chunking(block, chunk, c.shard_shape)
    origin = vol.translation or (0.0, 0.0, 0.0)  # where the input lies (its NGFF translation,
    levels = plan_levels(vol.shape, voxel, c.levels, translation=origin)  # offset, origin)
    dt = np.dtype(vol.dtype)
    method = c.downsample or ("mode" if dt.kind in "iu" and dt.itemsize >= 4 else "mean")
    stages = plan_stages(levels, block, chunk)
    shards = shard_shapes(levels, stages, chunk, c.shard_shape) if c.ngff.sharding \
        else None
    settings = {
        "operation": "convert",
        "input": {"path": vol.path, "array": vol.array_path, "shape": list(vol.shape),
                  "dtype": vol.dtype},
        "voxel_size_nm": list(voxel),
        "block_shape": list(block),
        "chunk_shape": list(chunk),
        "shard_shapes": None if shards is None else [list(s) for s in shards],
        "levels": [{"path": lv.path, "shape": list(lv.shape), "voxel_size_nm": list(lv.voxel_size)}
                   for lv in levels],
        "dtype": vol.dtype,
        "downsample": method,
        "ngff_version": c.ngff_version,
        "compression": {"codec": chunk_codec(c.ngff_version), "level": c.compression_level},
    }
    scales = output_scales(c.output_format, levels, shards, chunk, voxel,
                           c.chunk_shape is not None, vol.dtype, notes, settings)
    ident = fingerprint(settings)
    job = Job(
        input=vol, output=absolute(out), model_path=None, model_sha="", device="cpu",
        batch_size=1, threads=0, grid=BlockGrid(vol.shape, 1, block, (0, 0, 0), 1),
        blend="crop", norm=(0.0, 1.0), levels=levels, stages=stages, chunk=chunk,
        dtype=vol.dtype, downsample=method, output_format=c.output_format,
    )
    provenance = {
        "software": "pssr-volume",
        "version": __version__,
        "operation": "convert",
        "input": {"path": vol.source, "array": vol.array_path, "kind": vol.kind,
                  "shape": list(vol.shape), "dtype": vol.dtype,
                  "voxel_size_nm": None if vol.voxel_size is None else list(vol.voxel_size)},
        "settings": settings,
        "fingerprint": ident,
        "command": c.model_dump(mode="json"),
    }
    layout = OutputLayout(levels, chunk, shards, vol.dtype, c.ngff_version, c.compression_level,
                          name=_name(vol), downsample=method, precomputed=scales)
    summary = (
        f"input   {vol.source}: {vol.kind} {_fmt(vol.shape)} {vol.dtype}, voxel "
        f"{_fmt(levels[0].voxel_size)} nm",
        f"output  {out}: {len(levels)} levels (to {_fmt(levels[-1].shape)}), chunks "
        f"{_fmt(scales[0].chunk if scales else chunk)}, "
        + (f"shards {_fmt(shards[0])}, " if shards else "")
        + ("neuroglancer precomputed" if scales else f"NGFF {c.ngff_version}"),
    )
    return Plan("convert", "converting", job, layout, settings, ident, provenance,
                tuple(notes), summary)


def convert(config: ConvertConfig, log: Callable[[str], None] = lambda s: None,
            verify: bool = False) -> ConvertStats:
    """Convert ``config.input`` into a multiscale OME-Zarr image at ``config.output``.

    Parameters
    ----------
    config : ConvertConfig
        ``input``: any input :func:`~pssr_volume.io.inputs.open_input` accepts (TIFF,
        TIFF folder, Zarr, OME-Zarr level, N5, ``file.h5:/dataset``, MRC); ``output``:
        the OME-Zarr to create; ``voxel_size`` overrides the input's metadata (without
        either, 1 nm is used and a warning is logged); ``chunk_shape`` defaults to up to
        ``8, 256, 256``; ``levels`` to "until y and x fit in 256"; ``block_shape`` (one
        task's region) to whole chunks in z and a square in y, x that reads at most
        :data:`TASK_BYTES`.
    log : callable
        Receives human-readable notes and warnings.
    verify : bool
        With ``config.resume``: check every chunk first and redo the tasks that wrote
        damaged or missing ones (see :mod:`pssr_volume.verify`).

    The output's lifecycle (placement rule, lease, ``--resume`` checks, ``verify``,
    creation, execution, completion) is :func:`pssr_volume.lifecycle.drive`'s.

    Raises
    ------
    PssrError
        For a bad input, option or output (nothing is written then); a failed task
        (finished blocks are kept; ``--resume`` completes the conversion).
    """
    started = time.perf_counter()
    plan, stats = drive(config, lambda cluster: plan_convert(config), log, verify,
                        dry_run_lines=lambda plan: describe(estimate(plan)))
    vol, levels = plan.job.input, plan.job.levels
    return ConvertStats(str(config.output), vol.shape, vol.dtype, levels[0].voxel_size,
                        len(levels), stats.blocks_done + stats.pyramid_tasks,
                        time.perf_counter() - started)


# --- options -----------------------------------------------------------------------------


def _voxel_size(given: Sequence[float] | None, vol: InputVolume,
                note: Callable[[str], None]) -> tuple[float, float, float]:
    if given is not None:
        return (float(given[0]), float(given[1]), float(given[2]))
    if vol.voxel_size is not None:
        return vol.voxel_size
    note("warning: the input has no voxel size and --voxel-size was not given: using 1 nm")
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


def _name(vol: InputVolume) -> str:
    base = os.path.basename(vol.path.rstrip(os.sep)) or "volume"
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".ome.zarr", ".zarr", ".n5",
                   ".h5", ".hdf5", ".hdf", ".mrc", ".rec", ".st", ".map"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or base
    return base


def _fmt(values: Sequence[float]) -> str:
    return "x".join(f"{v:g}" for v in values)

