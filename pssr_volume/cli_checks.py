"""What the command line checks before the heavy imports (torch, dask: seconds on a busy
node): the input, the output path, a model file's header and URL schemes. The library checks
all of it again, and more, once loaded; these only make a bad argument fail in about half a
second."""

from __future__ import annotations

from pathlib import Path

from pssr_volume.config import ConvertConfig, RunConfig
from pssr_volume.errors import PssrError


def input_exists(path: Path | str) -> None:
    """Fail a missing input in a fraction of a second, before torch, dask and zarr load
    (open_input checks everything else, later; also whether a URL exists)."""
    from pssr_volume.io.inputs import input_location, refuse_special

    location = input_location(path)
    if not isinstance(location, Path):  # a URL
        return
    if not location.exists():
        raise PssrError(f"input not found: {path}")
    refuse_special(str(location), "Input")  # a FIFO or device: refused without opening it


def check_early(config: RunConfig | ConvertConfig) -> None:
    """Fail in about half a second, before torch and dask load (1 s or more on a busy
    node), what can be checked without them: the input (missing, a FIFO, unreadable,
    corrupt, unsupported), the output path (the input itself, inside it, or an existing
    output without --resume or --overwrite, unless it is a dry run) and a model file's
    header. The library checks all of it again, and more, once loaded."""
    input_exists(config.input)
    from pssr_volume.io.inputs import open_input
    from pssr_volume.io.ome_zarr import check_output, check_placement

    open_input(config.input)
    check_placement(config.input, config.output)
    if not config.resume and not config.dry_run:  # a resume needs the full plan (fingerprint)
        check_output(config.output, resume=False, overwrite=config.overwrite, fingerprint="",
                     settings={})
    if isinstance(config, RunConfig) and config.model is not None:
        from pssr_volume.bundled import resolve_model
        from pssr_volume.model_header import read_config

        read_config(resolve_model(config.model))


def cli_path(text: str, write: bool = False) -> Path | str:
    """A command-line path: a checked URL (one line for an unsupported scheme), else a
    local Path."""
    from pssr_volume.urls import check_url, scheme_of

    if scheme_of(text) is None:
        return Path(text)
    try:
        return check_url(text, write=write)
    except ValueError as e:
        raise PssrError(str(e)) from None
