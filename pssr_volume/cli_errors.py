"""How the command line reports a failure: one line on stderr and an exit status (2 for a
user error, 1 for a run that failed, 130 for an interrupt); a traceback only with
``PSSR_VOLUME_DEBUG=1``."""

from __future__ import annotations

import click
from pydantic import ValidationError

from pssr_volume.cli_options import validation_message
from pssr_volume.errors import PssrError, first_line, kept


def _echo(line: str) -> None:
    click.echo(line, err=True)


def report(e: BaseException, debug: bool = False) -> int:
    """Print ``e`` as one ``Error:`` line; return the exit status. With ``debug``, a
    pssr-volume error or an internal one is raised again instead (its traceback)."""
    if isinstance(e, (click.exceptions.Abort, KeyboardInterrupt)):
        cause = e.__cause__ if isinstance(e, click.exceptions.Abort) and e.__cause__ else e
        if getattr(cause, "blocks_kept", None) is None:  # not while blocks were written
            _echo("Error: interrupted")
        else:
            _echo(f"Error: interrupted ({kept(cause)}; rerun with --resume)")
        return 130
    if isinstance(e, click.ClickException):
        _echo(f"Error: {e.format_message()}")
        return 2
    if isinstance(e, ValidationError):
        _echo(f"Error: {validation_message(e)}")
        return 2
    if debug:
        raise e
    if isinstance(e, PssrError):
        _echo(f"Error: {e}")
        return e.exit_code
    _echo(f"Error: internal error: {first_line(e)} (set PSSR_VOLUME_DEBUG=1 for a traceback)")
    return 1
