"""The one exception type that reaches users."""


class PssrError(Exception):
    """A user-facing error: bad input, bad flag value, incompatible model, existing output.

    The command line prints its message as a single line on stderr and exits
    non-zero, without a traceback. Messages are complete sentences that name
    the offending path or value.
    """
