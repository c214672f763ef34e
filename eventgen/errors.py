"""Exceptions raised by eventgen.

Every error a user can cause derives from :class:`EventgenError`; its message says what
was expected, what was found and how to fix it. The CLI prints that one line and exits
with code 2.
"""

from __future__ import annotations


class EventgenError(Exception):
    """Base class of all user-facing eventgen errors."""


class ConfigError(EventgenError):
    """A configuration key or value is unknown or out of range."""


class InputError(EventgenError):
    """An input file or table is missing, malformed or does not match its schema."""


class OutputError(EventgenError):
    """An output cannot be written (exists already, unknown format, ...)."""


class BundleError(EventgenError):
    """A fitted bundle is missing, corrupt, foreign or unsafe to load."""
