"""The block engine: read -> normalise -> predict -> blend or crop -> write -> pyramid.

Task functions here run on workers; :func:`execute` drives them through any
:class:`Executor` (see :mod:`pssr_volume.cluster`, the only module that knows
how clusters are made). Every output chunk has exactly one writer:

* ``crop``: one task per block reads its tile, predicts and writes its chunks.
* ``linear``/``cosine``/``gaussian``: one task per block predicts its tile and
  cuts it, already weighted, into pieces for the blocks it overlaps; the
  block's write task sums the pieces sent to it (each prediction is computed
  once; only the overlap pieces travel) and writes its chunks.

After its level-0 data, a task writes the pyramid levels its region covers
whole chunks of; later pyramid stages read the previous level back. Each task
records itself in the journal only after its data is written, so ``--resume``
skips exactly the finished work.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pssr_volume.blend import reach
from pssr_volume.blocks import (
    Box,
    box_shape,
)
from pssr_volume.consistency import Residual
from pssr_volume.errors import PssrError, RunFailed, first_line
from pssr_volume.io.journal import Journal
from pssr_volume.plan import Job
from pssr_volume.pyramid import task_count, task_regions
from pssr_volume.tasks import (
    Index,
    Times,
    blend_pieces,
    blend_write,
    block_key,
    copy_block,
    pick,
    process_block,
    pyramid_key,
    pyramid_task,
)


class Future(Protocol):
    """The part of a future the driver uses."""

    def result(self) -> Any: ...


class CompletionQueue(Protocol):
    """Futures added to it come out of ``next_batch()`` as they finish: the next one to
    finish, and any others finished by then."""

    def add(self, future: Future) -> None: ...

    def next_batch(self) -> list[Future]: ...


class Executor(Protocol):
    """What the driver needs from a cluster (see :mod:`pssr_volume.cluster`).

    Tasks go out in batches (``submit_many``: one message to a scheduler for many tasks) and
    their results come back in batches (``fetch``: one round trip for all the finished tasks
    of a batch): what the driver and the scheduler spend per task bounds how many GPUs one
    driver keeps busy (1.6 ms of CPU a task batched, 4.3 ms one at a time, with 256 simulated
    GPU workers: benchmarks/bench_scale.py)."""

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None) -> Future: ...

    def submit_many(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]],
                    keys: Sequence[str]) -> list[Future]: ...

    def fetch(self, futures: Sequence[Future]) -> dict[Future, Any]: ...

    def completion_queue(self) -> CompletionQueue: ...

    def cancel(self, futures: Sequence[Future]) -> None: ...

    @property
    def n_workers(self) -> int: ...


@dataclass
class RunStats:
    """What a run did."""

    blocks_total: int = 0
    blocks_skipped: int = 0
    blocks_done: int = 0
    pyramid_tasks: int = 0
    voxels_written: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # summed over tasks
    levels: int = 1  # output levels
    block_levels: int = 0  # the block tasks write levels 0..block_levels (the rest: pyramid tasks)
    # seconds before the first finished task began its own work: cluster and worker start-up,
    # imports, scheduling (``seconds`` includes them; None: no task ran)
    startup_seconds: float | None = None
    # each block's data-consistency sums, from the journal (a network run; blocks of an
    # earlier, interrupted run included): pssr_volume.consistency
    residuals: dict[tuple[int, int, int], Residual] = field(default_factory=dict)

    def add_times(self, times: Times) -> None:
        """Add one task's seconds per stage."""
        for name, sec in times.items():
            self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + sec

    @property
    def mvoxels_per_second(self) -> float:
        """Level-0 output megavoxels written per second of this run."""
        return self.voxels_written / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def task_finished(self, elapsed: float, times: Times) -> None:
        """Note a finished task, ``elapsed`` seconds into the run: the first one sets
        :attr:`startup_seconds`."""
        if self.startup_seconds is None:
            self.startup_seconds = max(0.0, elapsed - sum(times.values()))


class TaskFailed(Exception):
    """A task failed for good (after the executor's retries)."""

    def __init__(self, label: str, error: BaseException):
        super().__init__(label, error)
        self.label, self.error = label, error


MAX_BATCH = 64  # tasks in one submission: 256 GPU workers start within 0.2 s (bench_scale)


class _Window:
    """Keep at most ``limit`` tasks in flight, handing each result to ``on_done``
    as it finishes (one completion queue for the whole stage). Tasks are submitted in
    batches of up to ``limit // 4`` (at most :data:`MAX_BATCH`) and results taken in
    batches (:class:`Executor`)."""

    def __init__(self, executor: Executor, limit: int, on_done: Callable[[Any], None]):
        self.executor, self.limit, self.on_done = executor, limit, on_done
        self.batch = max(1, min(limit // 4, MAX_BATCH))
        self.queue = executor.completion_queue()
        self.pending: dict[Any, str] = {}

    def add(self, future: Future, label: str) -> None:
        self.queue.add(future)
        self.pending[future] = label
        while len(self.pending) >= self.limit:
            self._next()

    def add_all(self, fn: Callable[..., Any], tasks: Iterable[tuple[tuple[Any, ...], str, str]]
                ) -> None:
        """Submit ``fn(*args)`` for each ``(args, key, label)`` of ``tasks``, taken as they
        are needed, a batch at a time."""
        it = iter(tasks)
        while chunk := list(itertools.islice(it, self.batch)):
            while self.pending and len(self.pending) + len(chunk) > self.limit:
                self._next()
            futures = self.executor.submit_many(fn, [a for a, _, _ in chunk],
                                                [k for _, k, _ in chunk])
            for future, (_, _, label) in zip(futures, chunk):
                self.queue.add(future)
                self.pending[future] = label

    def _next(self) -> None:
        batch = self.queue.next_batch()
        values = self.executor.fetch(batch)
        for future in batch:
            label = self.pending.pop(future)
            try:
                result = values[future] if future in values else future.result()
            except Exception as e:
                self.executor.cancel(list(self.pending))
                raise TaskFailed(label, e) from e
            self.on_done(result)

    def finish(self) -> None:
        while self.pending:
            self._next()


def _fmt_index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, index)) + ")"


def _submit_crop(job: Job, ex: Executor, todo: Iterable[Index], window: _Window,
                 run: str) -> None:
    task = process_block if job.model_path is not None else copy_block
    window.add_all(task, (((job, index), f"block-{run}-{index}", f"block {_fmt_index(index)}")
                          for index in todo))


def _submit_blend(job: Job, ex: Executor, todo: list[Index], window: _Window, run: str) -> None:
    grid = job.grid
    margin = (grid.halo[1] * grid.scale, grid.halo[2] * grid.scale)
    r = reach(job.blend, grid.block[1:], margin)
    needed: dict[Index, int] = {}
    for index in todo:
        for src in grid.neighbours(index, r):
            needed[src] = needed.get(src, 0) + 1
    predictions: dict[Index, Future] = {}
    for index in todo:
        sources = grid.neighbours(index, r)
        picks = []
        for src in sources:
            if src not in predictions:
                predictions[src] = ex.submit(blend_pieces, job, src, key=f"predict-{run}-{src}")
            picks.append(ex.submit(pick, predictions[src], index, key=f"pick-{run}-{src}-{index}"))
            needed[src] -= 1
            if needed[src] == 0:
                del predictions[src]
        window.add(ex.submit(blend_write, job, index, sources, *picks, key=f"write-{run}-{index}"),
                   f"block {_fmt_index(index)}")


class Progress(Protocol):
    """Progress reporting: ``start(total)`` once, then ``advance(n)``."""

    def start(self, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class _NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


def _blocks_recorded(job: Job, stats: RunStats) -> int:
    """Blocks the journal records as done: workers may have finished blocks whose results
    the driver has not yet received (what an interrupted run keeps)."""
    try:
        return sum(k.startswith("block ") for k in Journal(job.output).done())
    except Exception:  # the journal unreadable now: what the driver saw, a lower bound
        return stats.blocks_skipped + stats.blocks_done


def execute(job: Job, executor: Executor, progress: Progress | None = None) -> RunStats:
    """Run every unfinished task of ``job`` on ``executor``.

    Parameters
    ----------
    job : Job
        The planned run; its output must exist already.
    executor : Executor
        Where tasks run.
    progress : Progress, optional
        Told the number of unfinished tasks, then each one that finishes.

    Raises
    ------
    PssrError
        If a task fails (after the executor's retries). Finished tasks stay
        recorded, so the run can be completed with ``--resume``.
    """
    t0 = time.perf_counter()
    progress = progress or _NoProgress()
    run = uuid.uuid4().hex[:8]
    done = Journal(job.output).done()
    stats = RunStats(blocks_total=len(job.grid), levels=len(job.levels),
                     block_levels=job.stages[0].last)
    # blocks are enumerated lazily (no object per block of the whole volume is held; the
    # blend modes, which count each block's neighbours, list the blocks to do)
    pending = _pending(job, done)
    stats.blocks_skipped = len(job.grid) - int(np.count_nonzero(pending))
    todo = _todo(job, pending)
    pyramid = [
        [r for r in task_regions(job.levels[st.first].shape, st.task)
         if pyramid_key(st.first, r) not in done]
        for st in job.stages[1:]
    ]
    progress.start(stats.blocks_total - stats.blocks_skipped + sum(map(len, pyramid)))
    limit = max(4, 4 * executor.n_workers)

    def block_done(result: tuple[Index, Times]) -> None:
        index, times = result
        stats.task_finished(time.perf_counter() - t0, times)
        stats.add_times(times)
        stats.blocks_done += 1
        stats.voxels_written += math.prod(box_shape(job.grid.block_at(index).write))
        progress.advance(1)

    def pyramid_done(result: tuple[Box, Times]) -> None:
        stats.task_finished(time.perf_counter() - t0, result[1])
        stats.add_times(result[1])
        stats.pyramid_tasks += 1
        progress.advance(1)

    try:
        window = _Window(executor, limit, block_done)
        if job.blend == "crop":
            _submit_crop(job, executor, todo, window, run)
        else:
            _submit_blend(job, executor, list(todo), window, run)
        window.finish()
        for s, (st, regions) in enumerate(zip(job.stages[1:], pyramid), start=1):
            window = _Window(executor, limit, pyramid_done)
            window.add_all(pyramid_task, (
                ((job, s, region), f"pyramid-{run}-{st.first}-{region}",
                 f"pyramid level {st.first} at {_fmt_index(tuple(a for a, _ in region))}")
                for region in regions))
            window.finish()
    except BaseException as e:
        if not isinstance(e, Exception):  # Ctrl-C, SIGTERM: tell the handler what is kept
            e.blocks_kept = (_blocks_recorded(job, stats),  # type: ignore[attr-defined]
                             stats.blocks_total)
        if not isinstance(e, TaskFailed):
            raise
        done_now = stats.blocks_skipped + stats.blocks_done
        if isinstance(e.error, PssrError) and not isinstance(e.error, RunFailed):
            raise PssrError(  # the input (or output) is at fault, not the run: exit 2
                f"{e.label}: {e.error} ({done_now} of {stats.blocks_total} blocks are done and "
                "kept; fix this, then rerun with --resume)") from e
        raise RunFailed(
            f"{e.label} failed: {first_line(e.error)} ({done_now} of {stats.blocks_total} "
            "blocks are done and kept; rerun with --resume)"
        ) from e
    if job.model_path is not None:
        stats.residuals = _residuals(job)
    stats.seconds = time.perf_counter() - t0
    return stats


def _blocks_done(job: Job, done: set[str]) -> int:
    """How many of the grid's blocks the journal's keys ``done`` record."""
    return len(job.grid) - int(np.count_nonzero(_pending(job, done)))


def _pending(job: Job, done: set[str]) -> np.ndarray:
    """A flag per block of the grid, in raster order: whether the journal's keys ``done``
    leave it to do. One byte a block (10 MB at the most tasks a plan may have), made with one
    key lookup a block: a resume of 500,000 finished blocks finds the rest in about a second."""
    if not done:
        return np.ones(len(job.grid), dtype=bool)
    return np.fromiter((block_key(i) not in done for i in job.grid.indices()), dtype=bool,
                       count=len(job.grid))


def _todo(job: Job, pending: np.ndarray) -> Iterator[Index]:
    """The blocks ``pending`` flags, in raster order, each made when it is needed."""
    _, cy, cx = job.grid.counts
    step = 1 << 16
    for start in range(0, len(pending), step):
        for k in np.flatnonzero(pending[start:start + step]).tolist():
            z, r = divmod(start + k, cy * cx)
            y, x = divmod(r, cx)
            yield (z, y, x)


def task_total(job: Job) -> int:
    """Block tasks plus later pyramid tasks of a job, counted without making them."""
    return len(job.grid) + sum(task_count(job.levels[st.first].shape, st.task)
                               for st in job.stages[1:])


def _residuals(job: Job) -> dict[tuple[int, int, int], Residual]:
    """The consistency sums the block tasks left in the journal, by block index."""
    found = {}
    notes = Journal(job.output).notes()
    for index in job.grid.indices():  # a key made and looked up: cheaper than one parsed
        note = notes.get(block_key(index))
        if note is not None and (residual := Residual.from_note(note)) is not None:
            found[index] = residual
    return found
