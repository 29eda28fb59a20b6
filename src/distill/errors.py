"""The one exception type users see: a one-line message naming the field and the fix."""


class DistillError(Exception):
    """Bad input or a failed run, explained in one line; the CLI prints it without a traceback."""
