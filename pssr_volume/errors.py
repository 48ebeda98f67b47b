"""The exceptions that reach users, and the one-line form of any exception."""

from __future__ import annotations


class PssrError(Exception):
    """A user-facing error: bad input, bad flag value, incompatible model, existing output.

    The command line prints its message as a single line on stderr and exits with
    :attr:`exit_code`, without a traceback. Messages are complete sentences that
    name the offending path or value ("input not found: PATH").
    """

    exit_code = 2  # a user error: nothing was wrong with the tool or the data it wrote


class RunFailed(PssrError):
    """Work started and did not finish (a failed task, SIGTERM); finished work is kept."""

    exit_code = 1


def first_line(e: BaseException) -> str:
    """``"TypeName: first line of the message"`` (just the type name when it has none)."""
    text = (str(e).strip().splitlines() or [""])[0].strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def note_line(note: str) -> str:
    """How a plan's note is printed: warnings as they are, other notes as ``note: ...``."""
    return note if note.startswith("warning") else f"note: {note}"


def kept(e: BaseException) -> str:
    """What an interrupted run keeps, from the block counts the engine attached to the
    interrupting exception (``blocks_kept``): for the one-line message."""
    counts = getattr(e, "blocks_kept", None)
    if counts is None:
        return "blocks finished so far are kept"
    done, total = counts
    if done == 0:
        return f"no block of {total} was finished yet"
    return f"{done} of {total} blocks are done and kept"
