"""An output's lifecycle, once for every engine command (``run``, ``convert``).

A command only plans (a :class:`~pssr_volume.plan.Plan`: the engine job, the output's layout,
settings, fingerprint, provenance, notes and summary lines) and summarises what came back.
Everything between is here, in this order::

    check the placement      the output is not, is not inside, does not contain the input
    check the cluster        profile, GPU, SLURM: before any work (planning may be slow)
    plan                     the command's own; writes nothing
    --dry-run                print the plan and the state of an existing output; stop
    check the output         exists? --resume (same fingerprint) or --overwrite; complete?
    hold the lease           one run per output, until it is finished or given up
      check the output       again: another run may have finished it meanwhile
      --verify               damaged or missing chunks: their tasks are undone
      open the executor      workers, their log beside the output
        open the output      create it (after --overwrite's removal) or reuse it (resume)
        execute              the engine: each block once, journalled, then the pyramid
      complete the output    provenance "complete", the journal removed

Every rule of the lifecycle (the placement rule, the thread-count rule of ``--resume``,
what a dry run may look at) is written only here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pssr_volume.cluster.executors import open_executor
from pssr_volume.cluster.spec import ClusterSpec, check_cluster
from pssr_volume.config import JobConfig
from pssr_volume.engine import RunStats, execute, task_total
from pssr_volume.errors import PssrError, note_line
from pssr_volume.io.consistency_map import record_consistency
from pssr_volume.io.lease import hold
from pssr_volume.io.ome_zarr import check_output, check_placement, complete_output, open_output
from pssr_volume.io.stores import log_path
from pssr_volume.plan import Plan
from pssr_volume.progress import ProgressBar
from pssr_volume.verify import TaskMap, verify_for_resume

__all__ = ["Log", "drive"]

Log = Callable[[str], None]


def _nothing(plan: Plan) -> RunStats:
    n = len(plan.job.grid)
    return RunStats(blocks_total=n, blocks_skipped=n)


def drive(config: JobConfig, make_plan: Callable[[ClusterSpec], Plan], log: Log = lambda s: None,
          verify: bool = False, dry_run_lines: Callable[[Plan], list[str]] = lambda p: [],
          checks: Callable[[Plan], list[str]] = lambda p: []) -> tuple[Plan, RunStats]:
    """Plan with ``make_plan``, then create or resume, execute and finish the output.

    Parameters
    ----------
    config : JobConfig
        The command's configuration (``output``, ``resume``, ``overwrite``, ``dry_run``,
        the cluster and ``progress``).
    make_plan : callable
        The command's planner, given the resolved cluster; it writes nothing.
    log : callable
        Receives the notes, the summary and progress messages, one line each.
    verify : bool
        With ``config.resume``: check every chunk first and redo the tasks that wrote
        damaged or missing ones (:mod:`pssr_volume.verify`).
    dry_run_lines : callable
        More lines a dry run prints after the summary (``run``: its cost estimate).
    checks : callable
        Checks of the input that need the network (``run``: the scale check), run once the
        output is held and there is work to do, before the first task; their lines are
        logged after the summary.

    Returns
    -------
    (Plan, RunStats)
        The plan and what the engine did (all blocks skipped: nothing was left to do).

    Raises
    ------
    PssrError
        For any user error (nothing is written then) or a failed task (finished blocks are
        kept; ``--resume`` completes the output).
    """
    if verify and not config.resume:
        raise PssrError("--verify checks an output before finishing it: use it with --resume")
    output = config.output
    check_placement(config.input, output)
    cluster = check_cluster(config)  # profile, GPU, SLURM: fail before any work
    plan = make_plan(cluster)
    _check_size(plan)
    for line in _chunk_warning(plan):
        log(line)
    if config.dry_run:
        state = _state_for_dry_run(config, plan)
        for line in [*map(note_line, plan.notes), *plan.summary, *dry_run_lines(plan),
                     *([] if state is None else [state])]:
            log(line)
        return plan, RunStats(blocks_total=len(plan.job.grid))
    if _check(config, plan) and not verify:
        log(f"{output} is complete: nothing to resume")
        return plan, _nothing(plan)
    with hold(output, f"pssr-volume {plan.command}"):
        # again, now that no other run can start on it (one may have finished meanwhile)
        complete = _check(config, plan)
        if verify:  # damage found: the output is unfinished again, those tasks undone
            complete = not verify_for_resume(output, TaskMap(plan.job.levels, plan.job.stages),
                                             log)
        if complete:
            log(f"{output} is complete: nothing to resume")
            return plan, _nothing(plan)
        with open_executor(cluster, log_path(output)) as ex:
            _open(plan, config, cluster.threads)
            for line in [*map(note_line, plan.notes), *plan.summary, *checks(plan)]:
                log(line)
            if ex.dashboard:
                log(f"cluster {config.cluster}: {ex.n_workers} worker(s), "
                    f"dashboard {ex.dashboard}")
            bar = ProgressBar(config.progress, plan.verb)
            try:
                stats = execute(plan.job, ex, bar)
            finally:
                bar.close()
        if stats.residuals:  # a network's data-consistency figures (pssr_volume.consistency)
            record_consistency(output, stats.residuals, plan.job.grid.counts,
                               plan.job.grid.block, getattr(config, "consistency_map", False))
        complete_output(output)
    return plan, stats


MAX_TASKS = 10_000_000  # the driver tracks every task and journal key: beyond, use bigger blocks


def _check_size(plan: Plan) -> None:
    """Refuse a plan of more tasks than one driver can track, before anything is written
    (an absurd shape would otherwise run out of memory or never end)."""
    tasks = task_total(plan.job)
    if tasks > MAX_TASKS:
        shape = "x".join(map(str, plan.job.grid.out_shape))
        part = ", or --roi for a part of the volume" if plan.command == "run" else ""
        raise PssrError(f"{plan.command} would need {tasks:,} tasks for an output of {shape} "
                        f"voxels (at most {MAX_TASKS:,}); use a larger --block-shape{part}")


SMALL_CHUNK_BYTES = 64 << 10  # a chunk is a codec call, a shard index entry or a file
MANY_CHUNKS = 10_000  # ... and a small output of small chunks is no harm


def _chunk_warning(plan: Plan) -> list[str]:
    """A warning for chunks so small that the output is mostly overhead (one file each
    without shards: NGFF 0.4)."""
    chunk = plan.layout.chunk
    size = math.prod(chunk) * np.dtype(plan.layout.dtype).itemsize
    level0 = math.prod(math.ceil(n / c) for n, c in zip(plan.job.levels[0].shape, chunk))
    if size >= SMALL_CHUNK_BYTES or level0 <= MANY_CHUNKS:
        return []
    where = "files" if plan.layout.shards is None else "shard index entries"
    return [f"warning: chunks of {size:,} bytes ({'x'.join(map(str, chunk))}): {level0:,} "
            f"{where} at level 0 alone, each with its own overhead; use a --chunk-shape of at "
            f"least {SMALL_CHUNK_BYTES >> 10} KiB (the default is up to 8,256,256)"]


def _check(config: JobConfig, plan: Plan) -> bool:
    """:func:`~pssr_volume.io.ome_zarr.check_output` with the plan's fingerprint: refuse an
    existing output unless ``--resume`` (same settings) or ``--overwrite``; whether a resumed
    output is already complete."""
    return check_output(config.output, resume=config.resume, overwrite=config.overwrite,
                        fingerprint=plan.fingerprint, settings=plan.settings)


def _open(plan: Plan, config: JobConfig, threads: int) -> None:
    """Create the output store (after ``--overwrite`` removal), or reuse it on resume.

    ``threads`` (torch threads per worker, 0 if unknown) is recorded: on the CPU a
    different thread count can change a few voxels of a network's output by one grey
    level, so a resume with another count is refused (a copy, ``convert``, has no network
    and no such rule).
    """
    first = open_output(config.output, plan.layout, {**plan.provenance, "torch_threads": threads},
                        overwrite=config.overwrite)
    if first is None or plan.job.model_path is None or plan.job.device != "cpu":
        return
    before = first.get("torch_threads", 0)
    if before and threads and before != threads:
        raise PssrError(
            f"cannot resume {config.output}: the first run used {before} torch thread(s) per "
            f"worker, this one {threads}; use the same --workers (or profile) as the first run"
        )


def _state_for_dry_run(config: JobConfig, plan: Plan) -> str | None:
    """What a real run would do with an existing output, as one line (None: a new output).
    A dry run writes nothing, so an existing output is no reason to refuse it; what the
    real run would refuse is said, not raised."""
    try:
        complete = _check(config, plan)
    except PssrError as e:
        return f"output  a real run would stop: {e}"
    if complete:
        return f"output  {config.output} is complete: a real run has nothing to do"
    return None
