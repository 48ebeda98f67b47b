"""``pssr-volume run``: plan a restoration and its summary; the lifecycle drives the rest.

The library entry point behind the command line::

    from pssr_volume.config import RunConfig
    from pssr_volume.run import run
    stats = run(RunConfig(input="in.tif", output="out.ome.zarr"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pssr_volume.cluster.spec import ClusterSpec
from pssr_volume.config import ModelConfig, RunConfig
from pssr_volume.consistency import Residual
from pssr_volume.consistency import describe as consistency_lines
from pssr_volume.cross_scale import cross_scale_gain, sample_box
from pssr_volume.cross_scale import describe as scale_lines
from pssr_volume.engine import RunStats
from pssr_volume.estimate import describe, estimate
from pssr_volume.io.ome_zarr import update_provenance
from pssr_volume.lifecycle import drive
from pssr_volume.plan import Plan, make_plan
from pssr_volume.tasks import network, read_tile


def _fmt(values: tuple | list, sep: str = "x") -> str:
    return sep.join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def summary(plan: Plan) -> list[str]:
    """Human-readable lines describing a planned run."""
    job, m, layout = plan.job, plan.model, plan.layout
    assert m is not None  # a run's plan has a network
    top, last = job.levels[0], job.levels[-1]
    return [
        f"input   {job.input.path}: {job.input.kind} {_fmt(job.input.shape)} {job.input.dtype}, "
        f"voxel {_fmt(plan.settings['input_voxel_size_nm'])} nm",
        f"model   {m.config.name} ({m.config.architecture}, x{m.config.scale}, "
        f"{m.config.in_slices} section(s) in, receptive field {m.receptive_field[1]} px, "
        f"sha256 {m.sha256[:12]})",
        f"output  {job.output}: {_fmt(top.shape)} {job.dtype} at {_fmt(top.voxel_size)} nm, "
        f"{len(job.levels)} levels (to {_fmt(last.shape)}), chunks "
        f"{_fmt(layout.precomputed[0].chunk if layout.precomputed else job.chunk)}, "
        + (f"shards {_fmt(layout.shards[0])}, " if layout.shards else "")
        + ("neuroglancer precomputed" if layout.precomputed else f"NGFF {layout.ngff_version}"),
        f"blocks  {len(job.grid)} of {_fmt(job.grid.block)} (grid {_fmt(job.grid.counts)}), "
        f"halo {_fmt(job.grid.halo[1:], ',')} px, blend {job.blend}, device {job.device}",
        *([] if job.noise is None else [
            f"noise   var = {job.noise[0]:.3g} + {job.noise[1]:.3g} * I (normalised intensity; "
            f"{plan.settings['noise']['source']}, std {_noise_std(job.noise)} at I = 0.1, 0.5, 0.9)"
        ]),
    ]


def _noise_std(noise: tuple[float, float]) -> str:
    return "/".join(f"{(noise[0] + noise[1] * i) ** 0.5:.3f}" for i in (0.1, 0.5, 0.9))


def plan_run(config: RunConfig, cluster: ClusterSpec | None = None) -> Plan:
    """``run``'s plan (:func:`pssr_volume.plan.make_plan`) with its summary lines."""
    plan = make_plan(config, cluster)
    return replace(plan, summary=tuple(summary(plan)))


def run(config: RunConfig, log: Callable[[str], None] = lambda s: None,
        verify: bool = False) -> RunStats:
    """Restore ``config.input`` into the OME-Zarr ``config.output``.

    The output's lifecycle (placement rule, lease, ``--resume`` checks, ``verify``,
    creation, execution, completion) is :func:`pssr_volume.lifecycle.drive`'s; with
    ``config.dry_run`` the plan and its cost estimate are printed and nothing is written.

    Raises
    ------
    PssrError
        For any user error (nothing is written then) or a failed task
        (finished blocks are kept; ``--resume`` completes the run).
    """
    plan, stats = drive(config, lambda cluster: plan_run(config, cluster), log, verify,
                        dry_run_lines=lambda plan: describe(estimate(plan)), checks=scale_check)
    if stats.residuals and plan.model is not None:
        model = plan.model.config
        for line in consistency_lines(sum(stats.residuals.values(), Residual()),
                                      len(stats.residuals), validation_ratio(model),
                                      model.name):
            log(line)
    return stats


def scale_check(plan: Plan) -> list[str]:
    """The scale check (:mod:`pssr_volume.cross_scale`) on a central sample of the input, in
    the driver, on its CPU, once the output is created and held; its figure goes into the
    output's provenance (``scale_check``). No lines for an input too small to reduce, or a job
    without a network."""
    job = replace(plan.job, device="cpu")
    if plan.model is None or job.model_path is None:
        return []
    s, halo = job.grid.scale, job.grid.halo[0]
    box = sample_box(job.input.shape, s, halo, plan.model.grid)
    if box is None:
        return []
    noise = None if job.noise is None else (job.noise[0] / s**2, job.noise[1] / s**2)
    gain = cross_scale_gain(read_tile(job, box), lambda r: network(job, r, noise), s, halo)
    update_provenance(job.output, scale_check={"cross_scale_gain_db": round(gain, 4)})
    model = plan.model.config
    voxel = job.input.voxel_size
    return scale_lines(gain, validation_gain(model), s, voxel[2] if voxel else None, model.name)


def validation_gain(model: ModelConfig) -> float | None:
    """The highest scale-check figure the model showed on its validation data, where its
    file records one (``metrics.consistency.max_cross_scale_gain_db``)."""
    value = (model.metrics.get("consistency") or {}).get("max_cross_scale_gain_db")
    return float(value) if isinstance(value, (int, float)) else None


def validation_ratio(model: ModelConfig) -> float | None:
    """The highest consistency ratio the model showed on its validation data, where its
    file records one (``metrics.consistency.max_ratio``: benchmarks/consistency_check.py)."""
    value = (model.metrics.get("consistency") or {}).get("max_ratio")
    return float(value) if isinstance(value, (int, float)) else None


def _levels(first: int, last: int) -> str:
    return f"level {first}" if first == last else f"levels {first}-{last}"


def run_summary(stats: RunStats) -> str:
    """The ``done:`` line of a run: blocks, where each pyramid level was written (inside the
    block tasks, or by later pyramid tasks that read the level below back), and the time:
    the start-up (until the first finished task began its own work: workers, imports,
    scheduling) apart, and the output rate over the rest."""
    parts = [f"done: {stats.blocks_done} block(s) restored, {stats.blocks_skipped} already done"]
    top, inside = stats.levels - 1, stats.block_levels
    if top > 0:
        pyramid = (f"pyramid {_levels(1, inside)} written in the block tasks" if inside
                   else "pyramid")
        if top > inside:
            pyramid += (f"{',' if inside else ''} {_levels(inside + 1, top)} by "
                        f"{stats.pyramid_tasks} later pyramid task(s)")
        parts.append(pyramid)
    if stats.startup_seconds is None:  # no task ran
        parts.append(f"{stats.seconds:.1f} s")
    else:
        work = stats.seconds - stats.startup_seconds
        rate = stats.voxels_written / 1e6 / work if work > 0 else 0.0
        parts.append(f"{stats.seconds:.1f} s: {stats.startup_seconds:.1f} s start-up, then "
                     f"{rate:.2f} output Mvoxel/s")
    return "; ".join(parts)
