"""``pssr-volume run``: plan, prepare the output, execute on a cluster, finish.

The library entry point behind the command line::

    from pssr_volume.config import RunConfig
    from pssr_volume.run import run
    stats = run(RunConfig(input="in.tif", output="out.ome.zarr"))
"""

from __future__ import annotations

from collections.abc import Callable

from pssr_volume.cluster.executors import ClusterSpec, check_cluster, open_executor
from pssr_volume.config import RunConfig
from pssr_volume.engine import RunStats, execute
from pssr_volume.errors import PssrError, note_line
from pssr_volume.estimate import describe, estimate
from pssr_volume.io.lease import hold
from pssr_volume.io.ome_zarr import check_output, complete_output, open_output
from pssr_volume.io.stores import Location, log_path
from pssr_volume.plan import Plan, make_plan
from pssr_volume.progress import ProgressBar
from pssr_volume.verify import TaskMap, verify_for_resume


def _fmt(values: tuple | list, sep: str = "x") -> str:
    return sep.join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def summary(plan: Plan) -> list[str]:
    """Human-readable lines describing a planned run."""
    job, m = plan.job, plan.model
    top, last = job.levels[0], job.levels[-1]
    return [
        f"input   {job.input.path}: {job.input.kind} {_fmt(job.input.shape)} {job.input.dtype}, "
        f"voxel {_fmt(plan.settings['input_voxel_size_nm'])} nm",
        f"model   {m.config.name} ({m.config.architecture}, x{m.config.scale}, "
        f"{m.config.in_slices} section(s) in, receptive field {m.receptive_field[1]} px, "
        f"sha256 {m.sha256[:12]})",
        f"output  {job.output}: {_fmt(top.shape)} {job.dtype} at {_fmt(top.voxel_size)} nm, "
        f"{len(job.levels)} levels (to {_fmt(last.shape)}), chunks {_fmt(job.chunk)}, "
        + (f"shards {_fmt(plan.shards[0])}, " if plan.shards else "")
        + f"NGFF {plan.config.ngff_version}",
        f"blocks  {len(job.grid)} of {_fmt(job.grid.block)} (grid {_fmt(job.grid.counts)}), "
        f"halo {_fmt(job.grid.halo[1:], ',')} px, blend {job.blend}, device {job.device}",
        *([] if job.noise is None else [
            f"noise   var = {job.noise[0]:.3g} + {job.noise[1]:.3g} * I (normalised intensity; "
            f"{plan.settings['noise']['source']}, std {_noise_std(job.noise)} at I = 0.1, 0.5, 0.9)"
        ]),
    ]


def _noise_std(noise: tuple[float, float]) -> str:
    return "/".join(f"{(noise[0] + noise[1] * i) ** 0.5:.3f}" for i in (0.1, 0.5, 0.9))


def prepare_output(plan: Plan, threads: int = 0) -> None:
    """Create the output store (after ``--overwrite`` removal), or reuse it on resume.

    ``threads`` (torch threads per worker, 0 if unknown) is recorded: on the CPU a
    different thread count can change a few voxels by one grey level, so a resume
    with another count is refused.
    """
    out: Location = plan.config.output
    first = open_output(out, plan.layout(), {**plan.provenance(), "torch_threads": threads},
                        overwrite=plan.config.overwrite)
    if first is not None:
        before = first.get("torch_threads", 0)
        if plan.job.device == "cpu" and before and threads and before != threads:
            raise PssrError(
                f"cannot resume {out}: the first run used {before} torch thread(s) per worker, "
                f"this one {threads}; use the same --workers (or profile) as the first run"
            )


def run(config: RunConfig, log: Callable[[str], None] = lambda s: None,
        verify: bool = False) -> RunStats:
    """Restore ``config.input`` into the OME-Zarr ``config.output``.

    The output's lease (:mod:`pssr_volume.io.lease`) is held from before the output is
    created or reused until it is finished: another run on it is refused meanwhile. With
    ``verify`` (``--resume --verify``), every chunk is checked first and the tasks that
    wrote damaged or missing chunks are redone (:mod:`pssr_volume.verify`).

    Raises
    ------
    PssrError
        For any user error (nothing is written then) or a failed task
        (finished blocks are kept; ``--resume`` completes the run).
    """
    if verify and not config.resume:
        raise PssrError("--verify checks an output before finishing it: use it with --resume")
    cluster = check_cluster(config)  # profile, GPU, SLURM: fail before any work
    plan = make_plan(config, cluster)
    if config.dry_run:
        for line in [*map(note_line, plan.notes), *summary(plan),
                     *describe(estimate(plan))]:
            log(line)
        return RunStats(blocks_total=len(plan.job.grid))
    n = len(plan.job.grid)
    if plan.complete and not verify:
        log(f"{config.output} is complete: nothing to resume")
        return RunStats(blocks_total=n, blocks_skipped=n)
    with hold(config.output, "pssr-volume run"):
        # again, now that no other run can start on it (one may have finished meanwhile)
        complete = check_output(config.output, resume=config.resume, overwrite=config.overwrite,
                                fingerprint=plan.fingerprint, settings=plan.settings)
        if verify:  # damage found: the output is unfinished again, those tasks undone
            tasks = TaskMap(plan.job.levels, plan.job.stages)
            complete = not verify_for_resume(config.output, tasks, log)
        if complete:
            log(f"{config.output} is complete: nothing to resume")
            return RunStats(blocks_total=n, blocks_skipped=n)
        stats = _restore(plan, cluster, config, log)
        complete_output(config.output)
    return stats


def _restore(plan: Plan, cluster: ClusterSpec, config: RunConfig,
             log: Callable[[str], None]) -> RunStats:
    with open_executor(cluster, log_path(config.output)) as ex:
        prepare_output(plan, cluster.threads)
        for note in plan.notes:
            log(note_line(note))
        for line in summary(plan):
            log(line)
        if ex.dashboard:
            log(f"cluster {config.cluster}: {ex.n_workers} worker(s), dashboard {ex.dashboard}")
        bar = ProgressBar(config.progress, "restoring")
        try:
            return execute(plan.job, ex, bar)
        finally:
            bar.close()
