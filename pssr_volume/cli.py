"""The ``pssr-volume`` command line: parse flags into config objects, call the library.

Every user error ends as one line on stderr (``Error: ...``) and exit status
2; a failed run exits 1. Tracebacks are shown only with
``PSSR_VOLUME_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from pssr_volume import __version__
from pssr_volume.cli_checks import check_early, cli_path, input_exists
from pssr_volume.cli_errors import report
from pssr_volume.cli_options import (
    Numbers,
    Ranges,
    ZRange,
    arch_args,
    choices,
    default,
    output_format_options,
)
from pssr_volume.config import (
    ConvertConfig,
    CrappifyConfig,
    DemoConfig,
    EvaluateConfig,
    RunConfig,
)
from pssr_volume.train_config import TrainConfig


def _echo(line: str) -> None:
    click.echo(line, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pssr-volume")
def cli() -> None:
    """Restore undersampled EM volumes with PSSR super-resolution, blockwise,
    into multiscale OME-Zarr."""


@cli.command(short_help="Restore a volume blockwise into multiscale OME-Zarr.")
@click.argument("input")
@click.argument("output")
@click.option("--model", default=None,
              help="Model file (.safetensors) or bundled model name (pssr-volume info "
                   "--models lists them). Default: pssr-em-x4.")
@click.option("--cluster", default=default(RunConfig, "cluster"), show_default=True,
              help="local | cuda | slurm | tcp://HOST:PORT | sync (in-process, for debugging).")
@click.option("--workers", type=int, default=None, help="Worker processes (local cluster).")
@click.option("--profile", type=click.Path(path_type=Path), default=None,
              help="Cluster profile YAML (see workflows/).")
@click.option("--block-shape", type=Numbers(3, int, "ZYX"), default=None,
              help="Output write block, a multiple of the output chunk. Default 2,4096,4096.")
@click.option("--chunk-shape", type=Numbers(3, int, "ZYX"), default=None,
              help="Output chunk shape. Default: up to 8,256,256, dividing the block.")
@click.option("--shard-shape", type=Numbers(3, int, "ZYX"), default=None,
              help="Level-0 shard (NGFF 0.5): chunks stored together in one file; divides the "
                   "block. Default: one shard per write block.")
@click.option("--halo", type=Numbers(2, int, "YX"), default=None,
              help="Input pixels of context per side. Default: the model's receptive field "
                   "rounded up to its grid (pssr-volume info MODEL shows it).")
@click.option("--blend", type=choices(RunConfig, "blend"), default=default(RunConfig, "blend"),
              show_default=True, help="How overlapping predictions combine.")
@click.option("--resume", is_flag=True, help="Finish an interrupted run (same settings).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--voxel-size", type=Numbers(3, float, "ZYX"), default=None,
              help="Input voxel size in nm, when the input has none (or to override it).")
@click.option("--levels", type=int, default=None,
              help="Pyramid levels. Default: until y and x fit in 256.")
@click.option("--device", type=choices(RunConfig, "device"), default=None,
              help="Default: cuda with --cluster cuda or a local GPU, else cpu.")
@click.option("--batch-size", type=int, default=default(RunConfig, "batch_size"),
              show_default=True, help="Sections per forward pass.")
@output_format_options
@click.option("--nan-value", type=float, default=None,
              help="Replace NaN and infinite input values (float inputs) by this value. "
                   "Default: refuse such inputs.")
@click.option("--noise", type=Numbers(2, float, "AB"), default=None,
              help="Noise model var = A + B*I of the input (I: intensity normalised to 0..1), "
                   "for noise-aware models. Default: estimated once from the volume.")
@click.option("--roi", type=Ranges(), default=None,
              help="Restore only this sub-volume (input voxels, Z0:Z1,Y0:Y1,X0:X1).")
@click.option("--gpu", default=None,
              help="The GPU model a cuda run is planned for (task size, GPU-hours): v100, "
                   "a100, a40, a6000, l40s, h100, h200. Default: the SLURM profile's gpu_type, "
                   "else h100.")
@click.option("--consistency-map", is_flag=True,
              help="Also write each block's data-consistency figure (the restoration degraded "
                   "back vs the input) as the array 'consistency' in the output.")
@click.option("--force", is_flag=True,
              help="Run a multi-section model on sections more than 2x further apart than "
                   "it was trained on (refused by default).")
@click.option("--dry-run", is_flag=True,
              help="Check everything and print the plan and its cost; write nothing.")
@click.option("--verify", is_flag=True,
              help="With --resume: check every chunk first and rewrite damaged or missing ones.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def run(verify: bool, **kwargs: Any) -> None:
    """Restore INPUT (TIFF, folder of TIFFs, Zarr, OME-Zarr, N5, file.h5:/dataset, MRC)
    into the OME-Zarr OUTPUT."""
    config = RunConfig(**kwargs)  # flags are checked before the heavy imports (torch, dask)
    check_early(config)
    from pssr_volume.run import run as run_restore
    from pssr_volume.run import run_summary

    stats = run_restore(config, log=_echo, verify=verify)
    if config.dry_run:
        _echo("dry run: nothing was written")
        return
    _echo(run_summary(stats))


@cli.command(short_help="Train a model on high-resolution volumes degraded on the fly.")
@click.argument("hr_inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for model.safetensors, metrics.csv and train.json.")
@click.option("--name", default=default(TrainConfig, "name"), show_default=True)
# the network's settings default to None here: with --init, the model's own are taken,
# and only flags actually given are checked against them
@click.option("--architecture", default=None,
              help=f"Network architecture. Default: {default(TrainConfig, 'architecture')}.")
@click.option("--arch-arg", "arch_arg", multiple=True, help="Architecture argument KEY=VALUE.")
@click.option("--in-slices", type=int, default=None,
              help=f"Adjacent sections in. Default: {default(TrainConfig, 'in_slices')}.")
@click.option("--noise-aware/--blind", "noise_input", default=None,
              help="Give the network its input's noise model (estimated per training tile, per "
                   "volume when restoring) as an extra channel. Default: "
                   + ("noise-aware." if default(TrainConfig, "noise_input") else "blind."))
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="Start from this model's weights (a bundled model's name or a file): "
                   "fine-tuning. Its architecture and inputs are used; a pssr-fast model may "
                   "be deepened (--arch-arg blocks=N, the new blocks start as the identity).")
@click.option("--scale", type=int, default=None,
              help=f"Upsampling factor in y and x. Default: {default(TrainConfig, 'scale')}.")
@click.option("--crappifier", default=default(TrainConfig, "crappifier"), show_default=True,
              help="mix (PSSR and PSSR2 orders, a range of noise levels) or a preset name.")
@click.option("--steps", type=int, default=default(TrainConfig, "steps"), show_default=True)
@click.option("--loss", type=choices(TrainConfig, "loss"), default=default(TrainConfig, "loss"),
              show_default=True,
              help="ssim: W (1 - SSIM) + (1 - W) L1 (W: --ssim-weight), SSIM as the "
                   "evaluation computes it; mse-ssim: the same with MSE for L1.")
@click.option("--ssim-weight", type=float, default=default(TrainConfig, "ssim_weight"),
              show_default=True, help="W of --loss ssim (0.8 SSIM-led, 0.2 about "
              "balanced) and mse-ssim (balanced near 0.01-0.02).")
@click.option("--batch-size", type=int, default=default(TrainConfig, "batch_size"),
              show_default=True)
@click.option("--tile", type=int, default=default(TrainConfig, "tile"), show_default=True,
              help="HR tile edge (px).")
@click.option("--lr", type=float, default=default(TrainConfig, "lr"), show_default=True)
@click.option("--val-every", type=int, default=default(TrainConfig, "val_every"),
              show_default=True)
@click.option("--val-tiles", type=int, default=default(TrainConfig, "val_tiles"),
              show_default=True)
@click.option("--seed", type=int, default=default(TrainConfig, "seed"), show_default=True)
@click.option("--device", type=choices(TrainConfig, "device"), default=None)
@click.option("--threads", type=int, default=default(TrainConfig, "threads"),
              help="torch CPU threads (0: torch's default).")
@click.option("--amp", type=choices(TrainConfig, "amp"), default=default(TrainConfig, "amp"),
              show_default=True,
              help="Mixed precision. auto: bf16 on GPUs that support it (else fp16) and on "
                   "CPUs that compute bf16 natively (AVX512-BF16, AMX); off: float32.")
@click.option("--workers", type=int, default=default(TrainConfig, "workers"), show_default=True,
              help="Processes making training batches ahead (0: in the training process).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its checkpoint (same settings).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(hr_inputs: tuple[Path, ...], arch_arg: tuple[str, ...], progress: bool,
          resume: bool, **kwargs: Any) -> None:
    """Train a model on HR_INPUTS (volumes at the target pixel size), crappified on the fly.

    Writes model.safetensors (best validation PSNR), train.json, metrics.csv/.json,
    training.png and a checkpoint at every validation into --out."""
    given = {k: v for k, v in kwargs.items() if v is not None}
    if arch_arg:
        given["arch_args"] = arch_args(arch_arg)
    config = TrainConfig(inputs=hr_inputs, **given)
    from pssr_volume.train import train as run_training

    path = run_training(config, log=_echo, progress=progress, resume=resume)
    _echo(f"wrote {path}")


@cli.command(short_help="Degrade a high-resolution volume into a low-resolution one.")
@click.argument("input")
@click.argument("output")
@click.option("--preset", default=default(CrappifyConfig, "preset"), show_default=True,
              help="pssr-em | pssr-fluo | pssr2 | integrate-read | jpeg | mix (one random training "
                   "degradation).")
@click.option("--scale", type=int, default=default(CrappifyConfig, "scale"), show_default=True)
@click.option("--seed", type=int, default=default(CrappifyConfig, "seed"), show_default=True)
@click.option("--voxel-size", type=Numbers(3, float, "ZYX"), default=None,
              help="Input voxel size in nm, when the input has none (or to override it).")
def crappify(**kwargs: Any) -> None:
    """Degrade INPUT into a new low-resolution OUTPUT (.tif/.tiff: ImageJ TIFF; .zarr:
    OME-Zarr), section by section; the voxel size grows by --scale in y and x."""
    config = CrappifyConfig(**kwargs)
    input_exists(config.input)
    from pssr_volume.crappify.volume import crappify_volume

    done = crappify_volume(config, log=_echo)
    _echo(f"wrote {config.output}: {'x'.join(map(str, done['output_shape']))} {done['dtype']} "
          f"({config.preset}, x{config.scale}, seed {config.seed})")


@cli.command(short_help="Score models against interpolation and BM3D baselines.")
@click.option("--hr", "hr", multiple=True, required=True, type=click.Path(path_type=Path),
              help="High-resolution volume (repeatable).")
@click.option("--lr", "lr", multiple=True, type=click.Path(path_type=Path),
              help="Real low-resolution volume paired with the --hr of the same position.")
@click.option("--preset", "presets", multiple=True,
              help="Crappifier for --hr volumes (repeatable). Default: pssr-em and pssr2.")
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="Model file or bundled model name (repeatable). Default: pssr-em-x4.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for results.json, results.md and montages.")
@click.option("--scale", type=int, default=default(EvaluateConfig, "scale"), show_default=True)
@click.option("--seed", type=int, default=default(EvaluateConfig, "seed"), show_default=True)
@click.option("--z", type=ZRange(), default=None, help="Evaluate sections START:STOP only.")
@click.option("--crop", type=Numbers(2, int, "YX"), default=None,
              help="Evaluate a centred HR crop of this size only.")
@click.option("--cluster", default=default(EvaluateConfig, "cluster"), show_default=True,
              help="Engine cluster for the models (see run).")
@click.option("--workers", type=int, default=None)
@click.option("--device", type=choices(EvaluateConfig, "device"), default=None)
@click.option("--batch-size", type=int, default=default(EvaluateConfig, "batch_size"),
              show_default=True)
@click.option("--block-shape", type=Numbers(3, int, "ZYX"), default=None)
@click.option("--halo", type=Numbers(2, int, "YX"), default=None)
@click.option("--montage/--no-montage", default=True, show_default=True)
@click.option("--bm3d/--no-bm3d", default=default(EvaluateConfig, "bm3d"), show_default=True,
              help="Also score BM3D denoising + bicubic (about 3 s per 256x256 LR section).")
@click.option("--overwrite", is_flag=True, help="Replace results in --out.")
def evaluate(presets: tuple[str, ...], **kwargs: Any) -> None:
    """Score models against bilinear, bicubic, spline and BM3D + bicubic (docs/DESIGN.md
    section 5): on --hr volumes degraded with each --preset, or on real --lr/--hr pairs."""
    config = EvaluateConfig(**kwargs, **({"presets": presets} if presets else {}))
    from pssr_volume.evaluate_cases import check_evaluation

    check_evaluation(config)  # bad arguments and inputs fail before torch loads
    from pssr_volume.evaluate import evaluate as run_evaluate

    run_evaluate(config, log=_echo)
    _echo(f"wrote {config.out / 'results.md'}")


@cli.command(short_help="Write a synthetic EM-like test volume.")
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--shape", type=Numbers(3, int, "ZYX"),
              default=",".join(map(str, default(DemoConfig, "shape"))), show_default=True,
              help="Shape of the low-resolution volume.")
@click.option("--seed", type=int, default=default(DemoConfig, "seed"), show_default=True)
@click.option("--hr", "hr_path", type=click.Path(path_type=Path), default=None,
              help="Also write the high-resolution ground truth here.")
def demo(**kwargs: Any) -> None:
    """Write a synthetic EM-like test volume (18.4 nm pixels, 50 nm sections) to OUTPUT.tif."""
    from pssr_volume.demo import write_demo

    config = DemoConfig(**kwargs)
    write_demo(config)
    z, y, x = config.shape
    _echo(f"wrote {config.output}: {z}x{y}x{x} uint8, voxel 50x18.4x18.4 nm")


@cli.command(short_help="Convert a volume into multiscale OME-Zarr, losslessly.")
@click.argument("input")
@click.argument("output")
@click.option("--voxel-size", type=Numbers(3, float, "ZYX"), default=None,
              help="Input voxel size in nm, when the input has none (or to override it).")
@click.option("--chunk-shape", type=Numbers(3, int, "ZYX"), default=None,
              help="Output chunk shape. Default: up to 8,256,256.")
@click.option("--levels", type=int, default=None,
              help="Pyramid levels. Default: until y and x fit in 256.")
@output_format_options
@click.option("--block-shape", type=Numbers(3, int, "ZYX"), default=None,
              help="Voxels one task copies, a multiple of the chunk. Default: whole chunks in z "
                   "and a square in y, x of at most 64 MiB.")
@click.option("--shard-shape", type=Numbers(3, int, "ZYX"), default=None,
              help="Level-0 shard (NGFF 0.5), dividing the block. Default: one shard per block.")
@click.option("--cluster", default=default(ConvertConfig, "cluster"), show_default=True,
              help="local | cuda | slurm | tcp://HOST:PORT | sync (in-process).")
@click.option("--workers", type=int, default=None, help="Worker processes (local cluster).")
@click.option("--profile", type=click.Path(path_type=Path), default=None,
              help="Cluster profile YAML (see workflows/).")
@click.option("--downsample", type=choices(ConvertConfig, "downsample"), default=None,
              help="How the pyramid pools: mean, mode (label-safe) or nearest. Default: mode "
                   "for 32- and 64-bit integer volumes (labels), mean otherwise.")
@click.option("--resume", is_flag=True, help="Finish an interrupted conversion (same settings).")
@click.option("--verify", is_flag=True,
              help="With --resume: check every chunk first and rewrite damaged or missing ones.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--dry-run", is_flag=True,
              help="Check everything and print the plan (tasks, levels, files); write nothing.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def convert(verify: bool, **kwargs: Any) -> None:
    """Convert INPUT (TIFF, OME-TIFF, folder of TIFFs, Zarr, OME-Zarr level, N5,
    file.h5:/dataset, MRC) into a multiscale OME-Zarr OUTPUT, losslessly."""
    config = ConvertConfig(**kwargs)
    check_early(config)
    from pssr_volume.convert import convert as run_convert

    stats = run_convert(config, log=_echo, verify=verify)
    if config.dry_run:
        _echo("dry run: nothing was written")
        return
    _echo(f"done: {stats.output}: {'x'.join(map(str, stats.shape))} {stats.dtype} at "
          f"{'x'.join(f'{v:g}' for v in stats.voxel_size)} nm, {stats.levels} level(s), "
          f"{stats.tasks} task(s), {stats.seconds:.1f} s in all (start-up included)")


@cli.command(short_help="Describe a volume, an output, a model or the bundled models.")
@click.argument("path", required=False)
@click.option("--models", "list_models", is_flag=True, help="List the bundled models.")
@click.option("--json", "as_json", is_flag=True,
              help="Print every attribute as one JSON document (default: a short summary).")
def info(path: Path | str | None, list_models: bool, as_json: bool) -> None:
    """Describe a volume (shape, dtype, chunks, voxel size, levels; for a pssr-volume
    output also its status, model, noise, blending, input and time), a model file or
    bundled model name (network, default halo, training, validation scores); with no
    PATH, or --models, list the bundled models. --json prints the full record."""
    from pssr_volume.info import info_lines

    where = None if path is None or list_models else cli_path(str(path))
    for line in info_lines(where, list_models, as_json):
        click.echo(line)


@cli.command(short_help="Re-read an output's chunks; report damaged or missing ones.")
@click.argument("output")
def verify(output: str) -> None:
    """Re-read every chunk of every level of the OME-Zarr OUTPUT: one line per damaged
    (undecodable, checksum mismatch) or missing chunk, then a summary. Exit status 0 when
    all is well, 1 when damage was found (rewrite it with --resume --verify)."""
    from pssr_volume.verify import DamageFound
    from pssr_volume.verify import verify as verify_output

    report = verify_output(cli_path(output, write=True),
                           on_damage=lambda d: click.echo(d.line()))
    if report.damage:
        raise DamageFound(report.summary())
    click.echo(report.summary())


@cli.command("export-model", short_help="Write a model as a bioimage.io model package.")
@click.argument("model")
@click.argument("output")
@click.option("--overwrite", is_flag=True, help="Replace an existing bioimage.io package.")
@click.option("--onnx/--no-onnx", default=True, show_default=True,
              help="Also export ONNX weights (needs the onnx and onnxscript packages).")
def export_model(**kwargs: Any) -> None:
    """Write MODEL (a bundled model's name or a .safetensors file) as the bioimage.io model
    package OUTPUT.zip (docs/FORMATS.md, section bioimage.io)."""
    from pssr_volume.bioimage.checks import check_export
    from pssr_volume.bioimage.config import ExportModelConfig

    config = ExportModelConfig(**kwargs)
    check_export(config)  # bad arguments fail before torch loads
    from pssr_volume.bioimage.package import export_model as export

    _echo(export(config, log=_echo).line())


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    try:
        cli.main(args=argv, prog_name="pssr-volume", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except (Exception, KeyboardInterrupt) as e:
        return report(e, debug=bool(os.environ.get("PSSR_VOLUME_DEBUG")))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
