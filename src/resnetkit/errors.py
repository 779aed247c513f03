"""Exceptions a user can cause and fix. The CLI prints them as one line, without a traceback."""


class ResnetkitError(Exception):
    """A problem with the user's input, files, or environment; the message names the fix."""
