"""The ``pssr-volume`` command line: parse flags into config objects, call the library.

Every user error ends as one line on stderr (``Error: ...``) and exit status
2; a failed run exits 1. Tracebacks are shown only with
``PSSR_VOLUME_DEBUG=1``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from pssr_volume import __version__
from pssr_volume.errors import PssrError


class Numbers(click.ParamType):
    """``Z,Y,X``-style comma-separated numbers of a fixed count."""

    def __init__(self, count: int, kind: type, axes: str):
        self.count, self.kind, self.axes = count, kind, axes
        self.name = ",".join(axes)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = tuple(self.kind(p) for p in parts)
        except ValueError:
            noun = "integers" if self.kind is int else "numbers"
            self.fail(f"expected {self.count} comma-separated {noun} ({self.name}), got {value!r}",
                      param, ctx)
        if len(numbers) != self.count:
            self.fail(f"expected {self.count} values ({self.name}), got {value!r}", param, ctx)
        return numbers


def _validation_message(e: ValidationError) -> str:
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    msg = err["msg"].removeprefix("Value error, ")
    return f"invalid --{field.replace('_', '-')}: {msg}" if field else msg


def _echo(line: str) -> None:
    click.echo(line, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pssr-volume")
def cli() -> None:
    """Restore undersampled EM volumes with PSSR super-resolution, blockwise,
    into multiscale OME-Zarr."""


@cli.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model file (.safetensors). Default: the bundled EM model (x4).")
@click.option("--cluster", default="local", show_default=True,
              help="local | cuda | slurm | tcp://HOST:PORT | sync (in-process, for debugging).")
@click.option("--workers", type=int, default=None, help="Worker processes (local cluster).")
@click.option("--profile", type=click.Path(path_type=Path), default=None,
              help="Cluster profile YAML (see workflows/).")
@click.option("--block-shape", type=Numbers(3, int, "ZYX"), default=None,
              help="Output write block, a multiple of the output chunk. Default 8,1024,1024.")
@click.option("--chunk-shape", type=Numbers(3, int, "ZYX"), default=None,
              help="Output chunk shape. Default: up to 8,256,256, dividing the block.")
@click.option("--halo", type=Numbers(2, int, "YX"), default=None,
              help="Input pixels of context per side. Default: the model's receptive field.")
@click.option("--blend", type=click.Choice(["crop", "linear", "cosine", "gaussian"]),
              default="crop", show_default=True, help="How overlapping predictions combine.")
@click.option("--resume", is_flag=True, help="Finish an interrupted run (same settings).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--voxel-size", type=Numbers(3, float, "ZYX"), default=None,
              help="Input voxel size in nm, when the input has none (or to override it).")
@click.option("--levels", type=int, default=None,
              help="Pyramid levels. Default: until y and x fit in 256.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Default: cuda with --cluster cuda or a local GPU, else cpu.")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Sections per forward pass.")
@click.option("--ngff-version", type=click.Choice(["0.4", "0.5"]), default="0.5",
              show_default=True, help="0.5 writes zarr v3, 0.4 zarr v2.")
@click.option("--compression-level", type=int, default=1, show_default=True,
              help="zstd level of the output chunks.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def run(**kwargs: Any) -> None:
    """Restore INPUT (TIFF, folder of TIFFs, Zarr, OME-Zarr) into the OME-Zarr OUTPUT."""
    from pssr_volume.config import RunConfig
    from pssr_volume.run import run as run_restore

    config = RunConfig(**kwargs)
    stats = run_restore(config, log=_echo)
    _echo(
        f"done: {stats.blocks_done} block(s) restored, {stats.blocks_skipped} already done, "
        f"{stats.pyramid_tasks} pyramid task(s), {stats.seconds:.1f} s "
        f"({stats.mvoxels_per_second:.2f} output Mvoxel/s)"
    )


@cli.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--shape", type=Numbers(3, int, "ZYX"), default="4,192,160", show_default=True,
              help="Shape of the low-resolution volume.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--hr", "hr_path", type=click.Path(path_type=Path), default=None,
              help="Also write the high-resolution ground truth here.")
def demo(output: Path, shape: tuple[int, int, int], seed: int, hr_path: Path | None) -> None:
    """Write a synthetic EM-like test volume (18.4 nm pixels, 50 nm sections) to OUTPUT.tif."""
    from pssr_volume.demo import write_demo_tiff

    write_demo_tiff(output, shape_lr=shape, seed=seed, hr_path=hr_path)
    _echo(f"wrote {output}: {shape[0]}x{shape[1]}x{shape[2]} uint8, voxel 50x18.4x18.4 nm")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
def info(path: Path) -> None:
    """Describe a volume or a model file."""
    if not path.exists():
        raise PssrError(f"not found: {path}")
    if path.suffix == ".safetensors":
        from pssr_volume.model import describe, model_info

        m = model_info(path)
        out = {**describe(m), "description": m.config.description,
               "training": m.config.training, "metrics": m.config.metrics}
        click.echo(json.dumps(out, indent=2))
        return
    from pssr_volume.io.inputs import open_input
    from pssr_volume.io.ome_zarr import read_provenance

    volume = open_input(path)
    click.echo(volume.describe())
    prov = read_provenance(path)
    if prov:
        click.echo(json.dumps(prov, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    debug = bool(os.environ.get("PSSR_VOLUME_DEBUG"))
    try:
        cli.main(args=argv, prog_name="pssr-volume", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        _echo("Error: aborted")
        return 130
    except click.ClickException as e:
        _echo(f"Error: {e.format_message()}")
        return 2
    except ValidationError as e:
        _echo(f"Error: {_validation_message(e)}")
        return 2
    except PssrError as e:
        if debug:
            raise
        _echo(f"Error: {e}")
        return 1 if e.__cause__ is not None else 2
    except KeyboardInterrupt:
        _echo("Error: interrupted (finished blocks are kept; rerun with --resume)")
        return 130
    except Exception as e:
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        _echo(f"Error: internal error: {type(e).__name__}: {first} "
              "(set PSSR_VOLUME_DEBUG=1 for a traceback)")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
