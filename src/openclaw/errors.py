"""Errors a user can cause and fix.

Every error here carries a one-line message that names the problem; the CLI prints it
without a traceback and exits with `exit_code`. Anything else that escapes is a bug.
"""

from __future__ import annotations

import sys


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (libpq adds hint lines)."""
    lines = (line.strip() for line in str(exc).splitlines())
    return next((line for line in lines if line), type(exc).__name__)


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` is psycopg's. psycopg is not imported for this: whatever raised one of
    its errors has loaded it, and a command that never touches a database doesn't pay for it."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


class OpenclawError(Exception):
    """Base class: a problem the user can act on."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(OpenclawError):
    """A bad value on the command line (exit code 2, as for any usage error)."""

    exit_code = 2


class ConfigError(OpenclawError):
    """A configuration file is missing, unreadable or invalid."""


class NotFoundError(OpenclawError):
    """The thing asked for (an issue id, a context key, a snapshot) does not exist."""


class DatabaseError(OpenclawError):
    """The database cannot be reached, or refused what we asked."""


class NotStoredError(DatabaseError):
    """A session write that could not be kept: Postgres refused the row for what it holds
    (`retryable` False: sending it again will not help), or Postgres is unreachable and the
    outbox cannot take more (`retryable` True)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class MigrationError(DatabaseError):
    """The schema cannot be brought up to date (an edited migration, a failed statement)."""
