"""The block engine's tasks, run on the workers: read -> normalise -> network -> round and
clip -> chunks -> pyramid, each recording itself in the journal once its data is written.

:mod:`pssr_volume.engine` submits them through an executor. Every task returns what it did
and the seconds it spent per stage (read, normalise, network, denormalise, write, pyramid).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from pssr_volume.allocator import tune_allocator
from pssr_volume.blend import block_weights, reach
from pssr_volume.blocks import (
    Box,
    apply_read_plan,
    box_intersect,
    box_shape,
    box_slices,
    padded_read_plan,
)
from pssr_volume.compute_slot import SLOT
from pssr_volume.consistency import Residual, area_mean, sums_residual
from pssr_volume.errors import PssrError
from pssr_volume.intensity import normalize
from pssr_volume.io.journal import Journal
from pssr_volume.io.output_levels import Pending, read_region, start_write, write_all
from pssr_volume.noise import NoiseModel, network_input
from pssr_volume.plan import Job
from pssr_volume.pyramid import child_region, cumulative, downsample, parent_region
from pssr_volume.stored_voxels import stored_voxels

Index = tuple[int, int, int]


def block_key(index: Index) -> str:
    """Journal key of a level-0 block (a resume looks up one per block: keep it cheap)."""
    z, y, x = index
    return f"block {z}.{y}.{x}"


def pyramid_key(level: int, region: Box) -> str:
    """Journal key of a pyramid task."""
    (z, _), (y, _), (x, _) = region
    return f"level {level} {z}.{y}.{x}"


Times = dict[str, float]  # seconds a task spent per stage of the hot path


@contextlib.contextmanager
def _stage(times: Times | None, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if times is not None:
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0


def read_tile(job: Job, tile: Box, times: Times | None = None) -> np.ndarray:
    """Read an input box as float32 normalised intensities. The box is in the job's volume
    coordinates; where it reaches past a region of interest it reads the input around it,
    and only beyond the whole input's border is it reflect-padded, as in a full run."""
    with _stage(times, "read"):
        whole = job.input.whole()
        box = tuple((a + o, b + o) for (a, b), o in zip(tile, job.input.origin))
        read, take = padded_read_plan(box, whole.shape)
        region = cast(tuple[slice, slice, slice], box_slices(read))
        data = apply_read_plan(whole.read(region), take)
        if data.dtype.kind == "f":
            data = _replace_non_finite(data, job, read)
    with _stage(times, "normalise"):
        return normalize(data, *job.norm)


def _replace_non_finite(data: np.ndarray, job: Job, read: Box) -> np.ndarray:
    bad = ~np.isfinite(data)
    if not bad.any():
        return data
    if job.nan_value is None:
        where = ", ".join(f"{a}:{b}" for a, b in read)
        raise PssrError(f"{job.input.source} holds {int(bad.sum())} NaN or infinite value(s) "
                        f"in [{where}]; pass --nan-value V to replace them with V")
    data = np.array(data, copy=True)
    data[bad] = job.nan_value
    return data


def network(job: Job, x: np.ndarray, noise: tuple[float, float] | None,
            finish: bool = False) -> np.ndarray:
    """The job's network on normalised input sections ``x`` (``(z, y, x)``), with the noise
    model ``noise`` for a noise-aware model: one output section per input section that has
    full z context, ``(nz, scale*ty, scale*tx)`` float32; with ``finish``, already mapped
    back, rounded and clipped to the output dtype on the device."""
    k = 2 * job.grid.halo[0] + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=0)  # (nz, ty, tx, k)
    tiles = np.array(np.moveaxis(windows, -1, 1), dtype=np.float32, order="C")
    if noise is not None:  # a noise-aware model: the volume's noise map as a channel
        tiles = network_input(tiles, NoiseModel(*noise))
    assert job.model_path is not None  # a job with a network
    from pssr_volume.predict import get_predictor  # torch: loaded by the tasks that run it

    predictor = get_predictor(job.model_path, job.model_sha, job.device, job.threads)
    return predictor(tiles, job.batch_size, (*job.norm, job.dtype) if finish else None)


def predict_block(job: Job, index: Index, times: Times | None = None,
                  finish: bool = False) -> tuple[Box, np.ndarray, np.ndarray]:
    """The block's prediction over the output box it predicts (clipped to the volume), and
    its input core as the network saw it (normalised: the consistency figure's reference)."""
    block = job.grid.block_at(index)
    x = read_tile(job, block.tile, times)
    with _stage(times, "network"):
        pred = network(job, x, job.noise, finish)
    s = job.grid.scale
    origin = (block.write[0][0], block.tile[1][0] * s, block.tile[2][0] * s)
    box = block.predicted(s, job.grid.out_shape)
    core = x[box_slices(block.core, tuple(a for a, _ in block.tile))]
    return box, pred[box_slices(box, origin)], core


def start_levels(job: Job, level: int, region: Box, data: np.ndarray, last: int,
                 times: Times | None = None, pooled: np.ndarray | None = None
                 ) -> list[Pending]:
    """Start writing ``data`` at ``region`` of ``level``, then pool it into the following
    levels up to ``last`` (regions there are whole chunks, or whole shards, by
    construction) and start writing each. Each level's chunks are encoded on tensorstore's
    threads while the next level is pooled; :meth:`Commit.wait` waits for them all.
    ``pooled`` is ``data`` already pooled into ``level + 1``, when the caller has it."""
    writes: list[Pending] = []
    with settled_on_error(writes):
        with _stage(times, "write"):
            writes.append(start_write(job.output_format, job.output, job.levels[level].path,
                                      region, data))
        for k in range(level + 1, last + 1):
            lv = job.levels[k]
            with _stage(times, "pyramid"):
                if k == level + 1 and pooled is not None:
                    data = pooled
                else:
                    data = downsample(data, lv.factors, job.downsample)
                region = child_region(region, lv.factors, lv.shape)
            with _stage(times, "write"):
                writes.append(start_write(job.output_format, job.output, lv.path, region, data))
    return writes


@contextlib.contextmanager
def settled_on_error(writes: list[Pending]) -> Iterator[None]:
    """Where the task fails after starting ``writes``, wait for them before it fails: no
    write of a failed task outlives it, so its retry is the only writer of its chunks."""
    try:
        yield
    except BaseException:
        for w in writes:
            with contextlib.suppress(Exception):
                w.result()
        raise


@dataclass
class Commit:
    """A task's started writes, and the journal line that records the task once they are
    all on disk."""

    output: str
    writes: list[Pending]
    key: str
    note: str | None = None

    def wait(self, times: Times | None = None) -> None:
        """Wait until every write is on disk (raises the first failure), then journal the
        task. Runs outside the compute slot: the next task computes meanwhile."""
        with _stage(times, "write"):
            write_all(self.writes)
        Journal(self.output).mark(self.key, self.note)


def _finish_block(job: Job, index: Index, values: np.ndarray, times: Times | None = None,
                  observed: np.ndarray | None = None) -> Commit:
    """Round and pool a block's prediction ``values``, start its writes and compute its
    data-consistency note: what the block commits."""
    block = job.grid.block_at(index)
    last = job.stages[0].last
    with _stage(times, "denormalise"):  # pooling the next level and the cell sums, slab by slab
        data, pooled, sums = stored_voxels(values, *job.norm, job.dtype,
                                           job.levels[1].factors if last >= 1 else None,
                                           cell=job.grid.scale)
    writes = start_levels(job, 0, block.write, data, last, times, pooled)
    with settled_on_error(writes), _stage(times, "consistency"):
        if observed is None:
            observed = read_tile(job, block.core)
        note = block_consistency(job, observed, data, sums).note()
    return Commit(job.output, writes, block_key(index), note)


def block_consistency(job: Job, observed: np.ndarray, data: np.ndarray,
                      sums: np.ndarray | None = None) -> Residual:
    """The block's stored voxels, degraded back to the input grid, against its input core
    ``observed`` (normalised; :mod:`pssr_volume.consistency`). ``sums``: the stored voxels'
    sums over each input pixel's cell, where :func:`stored_voxels` made them."""
    s = job.grid.scale
    if sums is None:
        sums = area_mean(data, s) * float(s * s)  # float data: its cell sums
    return sums_residual(sums, s, *job.norm, observed, job.noise)


def process_block(job: Job, index: Index) -> tuple[Index, Times]:
    """``crop`` mode: predict one block and write the voxels it owns; returns the
    block and the seconds it spent per stage. Computes in the process's compute slot,
    commits outside it (:mod:`pssr_volume.compute_slot`)."""
    tune_allocator()
    times: Times = {}
    with SLOT.task():
        with SLOT.compute():
            commit = _predict_and_finish(job, index, times)
        commit.wait(times)
    return index, times


def _predict_and_finish(job: Job, index: Index, times: Times) -> Commit:
    # the block's float prediction lives in this frame only: gone before the commit waits
    block = job.grid.block_at(index)
    from pssr_volume.predict import can_finish  # torch: loaded where a network runs

    # on a GPU, round and clip there and copy back only the output bytes
    on_device = job.device.startswith("cuda") and can_finish(job.dtype)
    box, pred, core = predict_block(job, index, times, finish=on_device)
    keep = pred[box_slices(block.write, tuple(a for a, _ in box))]
    return _finish_block(job, index, keep, times, core)


def copy_block(job: Job, index: Index) -> tuple[Index, Times]:
    """A job without a network (``convert``): copy one block of the input unchanged and
    pool it into the levels it covers."""
    tune_allocator()
    times: Times = {}
    block = job.grid.block_at(index)
    with SLOT.task():
        with SLOT.compute():
            with _stage(times, "read"):
                region = cast(tuple[slice, slice, slice], box_slices(block.write))
                data = np.ascontiguousarray(job.input.read(region), dtype=job.dtype)
            writes = start_levels(job, 0, block.write, data, job.stages[0].last, times)
        Commit(job.output, writes, block_key(index)).wait(times)
    return index, times


def blend_pieces(job: Job, index: Index) -> dict[Index, np.ndarray]:
    """Blend modes: predict one block and cut its weighted prediction into the
    pieces that fall into each block it overlaps (itself included)."""
    tune_allocator()
    with SLOT.task(), SLOT.compute():
        return _pieces(job, index)


def _pieces(job: Job, index: Index) -> dict[Index, np.ndarray]:
    grid = job.grid
    box, pred, _ = predict_block(job, index)
    s = grid.scale
    margin = (grid.halo[1] * s, grid.halo[2] * s)
    w = block_weights(job.blend, grid.block[1:], grid.out_shape[1:], margin, index[1:],
                      (box[1], box[2]))
    pred = pred * w[None]
    pieces = {}
    for other in grid.neighbours(index, reach(job.blend, grid.block[1:], margin)):
        overlap = box_intersect(box, grid.block_at(other).write)
        if overlap is not None:
            pieces[other] = pred[box_slices(overlap, tuple(a for a, _ in box))]
    return pieces


def pick(pieces: dict[Index, np.ndarray], index: Index) -> np.ndarray | None:
    """The piece of a block's prediction that belongs to block ``index``."""
    return pieces.get(index)


def blend_write(job: Job, index: Index, sources: Sequence[Index],
                *pieces: np.ndarray | None) -> tuple[Index, Times]:
    """Blend modes: sum the weighted pieces for block ``index`` and write it."""
    tune_allocator()
    times: Times = {}
    with SLOT.task():
        with SLOT.compute():
            commit = _blend_and_finish(job, index, sources, pieces, times)
        commit.wait(times)
    return index, times


def _blend_and_finish(job: Job, index: Index, sources: Sequence[Index],
                      pieces: Sequence[np.ndarray | None], times: Times) -> Commit:
    block = job.grid.block_at(index)
    total = np.zeros(box_shape(block.write), np.float32)
    origin = tuple(a for a, _ in block.write)
    for src, piece in zip(sources, pieces):
        if piece is None:
            continue
        box = box_intersect(job.grid.block_at(src).predicted(job.grid.scale, job.grid.out_shape),
                            block.write)
        assert box is not None  # a piece exists only where the two boxes overlap
        total[box_slices(box, origin)] += piece
    return _finish_block(job, index, total, times)


def pyramid_task(job: Job, stage: int, region: Box) -> tuple[Box, Times]:
    """Later pyramid stage: read the source level, pool, write levels of the stage."""
    tune_allocator()
    times: Times = {}
    st = job.stages[stage]
    assert st.source is not None  # only stage 0 reads the network; later stages read a level
    src = job.levels[st.source]
    factors = cumulative(job.levels, st.source, st.first)
    parent = parent_region(region, factors, src.shape)
    with SLOT.task():
        with SLOT.compute():
            with _stage(times, "read"):
                data = read_region(job.output_format, job.output, src.path, parent)
            with _stage(times, "pyramid"):
                for k in range(st.source + 1, st.first + 1):
                    data = downsample(data, job.levels[k].factors, job.downsample)
            writes = start_levels(job, st.first, region, data, st.last, times)
        Commit(job.output, writes, pyramid_key(st.first, region)).wait(times)
    return region, times
