"""Exceptions a user can cause and fix. The CLI prints them as one line, without a traceback.

Every failure caused by input (an option, a file, the network, a missing optional package) is a
``ResnetkitError`` raised where the input is checked, with a message that names the problem and
the fix. Subclasses also derive from the matching built-in exception, so code that catches
``ValueError`` or ``OSError`` keeps working.
"""


class ResnetkitError(Exception):
    """A problem with the user's input, files, or environment; the message names the fix."""


class InvalidOption(ResnetkitError, ValueError):
    """An argument or flag outside its valid range; the message names it and the range."""


class BadFile(ResnetkitError, OSError):
    """A file or directory that cannot be read or written as asked (missing, unreadable, corrupt,
    of the wrong kind, or in an unwritable place)."""


class MissingDependency(ResnetkitError, ImportError):
    """An optional package (an extra) that the requested feature needs is not installed."""
