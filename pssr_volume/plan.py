"""Planning a run: validate everything, derive every default, write nothing.

:func:`make_plan` turns a :class:`~pssr_volume.config.RunConfig` into a
:class:`Plan`: the opened input, the model's identity and halo, the block
grid, the pyramid, the global intensity range and the run's fingerprint.
Every user error is raised here, before the output is touched.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pssr_volume import __version__
from pssr_volume.blocks import BlockGrid, Shape3, check_chunking, default_chunk
from pssr_volume.bundled import bundled_models, resolve_model
from pssr_volume.config import BlendMode, ModelConfig, RunConfig
from pssr_volume.device import choose_device
from pssr_volume.errors import PssrError
from pssr_volume.gpus import Gpu, gpu_named
from pssr_volume.intensity import intensity_range, sample_volume
from pssr_volume.io.inputs import InputVolume, open_input
from pssr_volume.io.ome_zarr import OutputLayout, chunk_codec
from pssr_volume.io.precomputed_layout import output_scales
from pssr_volume.io.stores import absolute
from pssr_volume.model import ModelInfo, check_model, describe, model_info, network_cost
from pssr_volume.model_fit import check_section_spacing, pixel_size_warning
from pssr_volume.model_header import read_config
from pssr_volume.noise import estimate_volume_noise
from pssr_volume.pyramid import (
    Downsampling,
    Level,
    Stage,
    plan_levels,
    plan_stages,
    shard_shapes,
)
from pssr_volume.task_size import (
    BLOCK_YX,
    CPU_BLOCK_Z,
    cpu_block_sections,
    gpu_block_sections,
)

if TYPE_CHECKING:
    from pssr_volume.cluster.spec import ClusterSpec

# Large blocks keep the halo's share small: with a 28-pixel halo a 4096-pixel block (1024
# input pixels) computes 1.11x its own area, a 1024-pixel block 1.49x; with the bundled
# model's 52 pixels, 1.21x and 1.98x (docs/PERFORMANCE.md). In z: pssr_volume.task_size.
DEFAULT_BLOCK_YX = BLOCK_YX
DEFAULT_BLOCK_Z = CPU_BLOCK_Z


@dataclass(frozen=True)
class Job:
    """What every task needs: small, immutable, picklable (sent to workers)."""

    input: InputVolume
    output: str
    model_path: str | None  # None: no network, the input is copied (``convert``)
    model_sha: str
    device: str
    batch_size: int
    threads: int
    grid: BlockGrid
    blend: BlendMode
    norm: tuple[float, float]
    levels: tuple[Level, ...]
    stages: tuple[Stage, ...]
    chunk: Shape3
    dtype: str
    downsample: Downsampling = "mean"  # how the pyramid pools (labels: "mode")
    nan_value: float | None = None  # replaces NaN and infinite input values (float inputs)
    noise: tuple[float, float] | None = None  # (a, b) for a noise-aware model's noise channel
    output_format: str = "ome-zarr"  # or "precomputed" (pssr_volume.io.output_levels)


@dataclass(frozen=True)
class Plan:
    """A validated job of any engine command and what the driver
    (:mod:`pssr_volume.lifecycle`) needs around it; :func:`make_plan` makes ``run``'s,
    :func:`pssr_volume.convert.plan_convert` ``convert``'s."""

    command: str  # "run", "convert": names the lease's holder
    verb: str  # the progress bar's label ("restoring")
    job: Job
    layout: OutputLayout
    settings: dict[str, Any]  # what determines the output's bytes
    fingerprint: str  # of ``settings``: a resume must match it
    provenance: dict[str, Any]  # group attributes recorded with the output
    notes: tuple[str, ...]
    summary: tuple[str, ...] = ()  # human-readable lines describing the planned output
    model: ModelInfo | None = None  # the network (None: ``convert``)
    gpu: Gpu | None = None  # the GPU model a cuda run is planned for (pssr_volume.gpus)


def _resolve_model(config: RunConfig) -> ModelInfo:
    path = resolve_model(config.model)
    info = model_info(path)
    if not info.recorded:  # (a bundled model's file was checked when its facts were recorded)
        check_model(path)  # weights load and give finite values: fail here, not on the workers
    return info


def _round_up(n: int, step: int) -> int:
    return math.ceil(n / step) * step


def model_cost(model: ModelInfo) -> float:
    """The network's GFLOP per output megapixel (counted on the model itself, or recorded
    for a bundled model: :func:`pssr_volume.model.network_cost`)."""
    return network_cost(model)


def _geometry(config: RunConfig, volume: InputVolume, model: ModelInfo,
              notes: list[str], gpu: Gpu | None) -> tuple[BlockGrid, Shape3]:
    scale, grid = model.config.scale, model.grid
    step = scale * grid
    if config.block_shape is None:
        yx = _round_up(DEFAULT_BLOCK_YX, step)
        z = cpu_block_sections(volume.shape, scale, yx)  # few enough files per level
        if gpu is not None:  # enough work per task that the scheduler's share stays small
            z = max(z, gpu_block_sections(model_cost(model), yx, gpu))
        block = (min(z, volume.shape[0]), yx, yx)
    else:
        block = config.block_shape
    chunk = config.chunk_shape or default_chunk(block)
    check_chunking(block, chunk, config.shard_shape)
    if config.halo is None:
        halo_yx = model.default_halo
    else:
        hy, hx = (_round_up(h, grid) for h in config.halo)
        halo_yx = (hy, hx)
        if halo_yx != tuple(config.halo):
            notes.append(f"halo rounded up to the network grid ({grid}): "
                         f"{halo_yx[0]},{halo_yx[1]}")
        if min(halo_yx[0], halo_yx[1]) < min(model.receptive_field):
            notes.append(f"halo {halo_yx[0]},{halo_yx[1]} is smaller than the model's "
                         f"receptive field {model.receptive_field[0]},"
                         f"{model.receptive_field[1]}: blocks may show seams")
    # a --roi's tiles read their halo from the input around it, on the whole input's grid
    return BlockGrid(volume.shape, scale, block, (model.z_halo, *halo_yx), grid,
                     volume.origin), chunk


def input_identity(path: str, sample: np.ndarray | None) -> dict[str, Any]:
    """What tells a changed input from the one a run started with (``--resume`` refuses a
    changed one): a file's size and modification time, and a hash of the voxels sampled for
    the intensity range (which also covers folders and stores whose files change in place)."""
    ident: dict[str, Any] = {}
    if os.path.isfile(path):
        st = os.stat(path)
        ident.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    if sample is not None:
        ident["sample_sha256"] = hashlib.sha256(np.ascontiguousarray(sample).tobytes()).hexdigest()
    return ident


def _finite(sample: np.ndarray, nan_value: float | None, source: str) -> np.ndarray:
    """The sample with non-finite values replaced by ``nan_value``; without one, refused."""
    if sample.dtype.kind != "f":
        return sample
    bad = ~np.isfinite(sample)
    n = int(bad.sum())
    if n == 0:
        return sample
    if nan_value is None:
        raise PssrError(f"{source} holds NaN or infinite values ({n} of {sample.size} sampled "
                        "voxels); pass --nan-value V to replace them with V")
    return np.where(bad, np.float64(nan_value), sample)


MAX_CHUNK_BYTES = 1 << 30  # codecs and shard indices handle chunks up to here comfortably


def _check_memory(grid: BlockGrid, chunk: Shape3, dtype: str) -> None:
    """Refuse a block, halo or chunk that cannot fit in memory, before anything starts."""
    import psutil

    itemsize = np.dtype(dtype).itemsize
    if math.prod(chunk) * itemsize > MAX_CHUNK_BYTES:
        raise PssrError(f"chunk shape {','.join(map(str, chunk))} is "
                        f"{math.prod(chunk) * itemsize / 2**30:.1f} GiB a chunk; at most "
                        f"{MAX_CHUNK_BYTES / 2**30:.0f} GiB (the default is up to 8,256,256)")
    block = grid.block_at((0, 0, 0))
    s = grid.scale
    tile_out = [(b - a) * s for a, b in block.tile[1:]]
    sections = block.write[0][1] - block.write[0][0]
    need = sections * tile_out[0] * tile_out[1] * 4 * 3  # prediction, rounding, pooling
    have = psutil.virtual_memory().total
    if need > have:
        raise PssrError(f"a block task would need about {need / 2**30:.0f} GiB (block "
                        f"{','.join(map(str, grid.block))} with halo "
                        f"{grid.halo[1]},{grid.halo[2]}) but this machine has "
                        f"{have / 2**30:.0f} GiB; use a smaller --block-shape or --halo")


def _voxel_size(config: RunConfig, volume: InputVolume, notes: list[str]) -> tuple[float, ...]:
    if config.voxel_size is not None:
        return config.voxel_size
    if volume.voxel_size is not None:
        return volume.voxel_size
    notes.append("the input has no voxel size and --voxel-size was not given: using 1 nm")
    return (1.0, 1.0, 1.0)


def _noise_model(config: RunConfig, model: ModelInfo, volume: InputVolume,
                 norm: tuple[float, float]) -> tuple[float, float] | None:
    """The noise model ``(a, b)`` a noise-aware model is given: ``--noise``, else estimated
    once from a fixed sample of the whole volume (never per block: blockwise == whole)."""
    if not model.config.noise_input:
        if config.noise is not None:
            raise PssrError(f"model {model.config.name!r} takes no noise input (it is blind); "
                            "--noise applies to noise-aware models only")
        return None
    if config.noise is not None:
        return config.noise
    if min(volume.shape[1:]) < 11:  # the estimator's 11x11 neighbourhoods
        raise PssrError(f"sections of {volume.shape[1]}x{volume.shape[2]} pixels are too small "
                        f"to estimate the noise that model {model.config.name!r} takes (it "
                        "needs at least 11x11): give it with --noise A,B")
    est = estimate_volume_noise(volume.read, volume.shape, *norm)
    return (float(f"{est.a:.6g}"), float(f"{est.b:.6g}"))


def _bundled_configs() -> dict[str, ModelConfig]:
    return {name: read_config(path) for name, path in bundled_models().items()}


def fingerprint(settings: dict[str, Any]) -> str:
    """Identity of the settings that determine the output bytes."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def make_plan(config: RunConfig, cluster: ClusterSpec | None = None) -> Plan:
    """Validate ``config`` and derive everything a run needs (writes nothing).

    The job's device and torch threads come from ``cluster``, what
    :func:`~pssr_volume.cluster.executors.check_cluster` resolved; without it,
    the device is chosen here and torch keeps its default thread count.

    Raises
    ------
    PssrError
        For any problem with the input, output path, model or settings.
    """
    notes: list[str] = []
    volume = open_input(config.input)  # a missing input: "input not found: PATH"
    notes.extend(volume.notes)
    whole = volume  # the intensity range comes from the whole volume, also for a --roi
    if config.roi is not None:
        volume = volume.with_roi(config.roi)
    model = _resolve_model(config)
    if model.config.in_slices > 1 and whole.shape[0] == 1:
        notes.append("a multi-section model on a single section: neighbours are reflections")
    if cluster is None:
        device, threads = choose_device(config.device, config.cluster), 0
    else:
        device, threads = cluster.device, cluster.threads
        if cluster.profile is not None and config.device is None:
            config = config.model_copy(update={"device": device})  # the profile's, as given
    gpu = None
    if device.startswith("cuda"):
        gpu = gpu_named(config.gpu or (cluster.gpu if cluster is not None else None))
    grid, chunk = _geometry(config, volume, model, notes, gpu)
    _check_memory(grid, chunk, volume.dtype)
    voxel = _voxel_size(config, volume, notes)
    s = model.config.scale
    known = config.voxel_size is not None or volume.voxel_size is not None
    if known:
        notes.extend(pixel_size_warning(model.config, voxel[1] / s))
    notes.extend(check_section_spacing(model.config, voxel[0] if known else None, config.force,
                                       _bundled_configs))
    out_voxel = (voxel[0], voxel[1] / s, voxel[2] / s)
    # voxel centres: output voxel j sits at input coordinate (j + 0.5) / s - 0.5; a region
    # of interest starts at its first input voxel; the input's own offset (its NGFF
    # translation, N5/HDF5 offset, MRC origin) carries over
    o, t = volume.origin, volume.translation or (0.0, 0.0, 0.0)
    shift = (t[0] + o[0] * voxel[0], t[1] + o[1] * voxel[1] - (s - 1) / 2 * out_voxel[1],
             t[2] + o[2] * voxel[2] - (s - 1) / 2 * out_voxel[2])
    levels = plan_levels(grid.out_shape, out_voxel, config.levels, translation=shift)
    if config.levels is not None and len(levels) < config.levels:
        notes.append(f"--levels {config.levels}: the volume is a single voxel in y and x "
                     f"after {len(levels)} level(s), so {len(levels)} are written")
    stages = plan_stages(levels, grid.block, chunk)
    shards = None
    if config.ngff.sharding:
        shards = shard_shapes(levels, stages, chunk, config.shard_shape)
    norm_cfg = model.config.normalization
    sample = None
    if norm_cfg.mode == "percentile" or np.dtype(volume.dtype).kind == "f":
        sample = sample_volume(whole.read, whole.shape)
        sample = _finite(sample, config.nan_value, volume.source)
    norm = intensity_range(norm_cfg, sample if norm_cfg.mode == "percentile" else None)
    noise = _noise_model(config, model, whole, norm)
    settings = {
        "model_sha256": model.sha256,
        "input": {"path": volume.path, "array": volume.array_path,
                  "shape": list(volume.shape), "dtype": volume.dtype,
                  "identity": input_identity(volume.path, sample)},
        "roi": None if config.roi is None else [list(r) for r in config.roi],
        "input_voxel_size_nm": list(voxel),
        "scale": model.config.scale,
        "block_shape": list(grid.block),
        "chunk_shape": list(chunk),
        "shard_shapes": None if shards is None else [list(s) for s in shards],
        "halo": list(grid.halo),
        "blend": config.blend,
        "intensity_range": list(norm),
        "levels": [{"path": lv.path, "shape": list(lv.shape), "voxel_size_nm": list(lv.voxel_size),
                    "translation_nm": [round(t, 6) for t in lv.translation]} for lv in levels],
        "dtype": volume.dtype,
        "ngff_version": config.ngff_version,
        "compression": {"codec": chunk_codec(config.ngff_version),
                        "level": config.compression_level},
        "device": device,
        "batch_size": config.batch_size,
        "nan_value": config.nan_value,
        "noise": None if noise is None else {"a": noise[0], "b": noise[1],
                                             "source": "given" if config.noise else "estimated"},
    }
    scales = output_scales(config.output_format, levels, shards, chunk, voxel,
                           config.chunk_shape is not None, volume.dtype, notes, settings)
    job = Job(
        input=volume, output=absolute(config.output), model_path=model.path,
        model_sha=model.sha256, device=device, batch_size=config.batch_size, threads=threads,
        grid=grid, blend=config.blend, norm=norm, levels=levels, stages=stages, chunk=chunk,
        dtype=volume.dtype, nan_value=config.nan_value, noise=noise,
        output_format=config.output_format,
    )
    ident = fingerprint(settings)
    layout = OutputLayout(levels, chunk, shards, volume.dtype, config.ngff_version,
                          config.compression_level, name=model.config.name, precomputed=scales)
    provenance = {
        "software": "pssr-volume",
        "version": __version__,
        "model": describe(model),
        "input": {"path": volume.path, "array": volume.array_path, "kind": volume.kind,
                  "shape": list(volume.shape), "dtype": volume.dtype},
        "settings": settings,
        "fingerprint": ident,
        "command": config.model_dump(mode="json"),
    }
    return Plan("run", "restoring", job, layout, settings, ident, provenance, tuple(notes),
                model=model, gpu=gpu)
