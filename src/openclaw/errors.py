"""Errors a user can cause and fix, or wait out.

Every error openclaw raises for a person to read derives from `OpenclawError`: it carries a
one-line message that names the problem; the CLI prints it without a traceback and exits
with `exit_code`. Anything else that escapes is a bug.

Each error also says whether trying again later may succeed (`transient`): the database
or a provider unreachable, a statement timeout, a full outbox (`TransientError`), or not:
a bad flag, a bad config value, a corrupt file, a refused row (the default). Where it
depends on the instance (a provider's HTTP status, NotStoredError's `retryable`) the
instance says. `is_transient` answers the same question for the libraries' errors too.
"""

from __future__ import annotations

import errno
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
    """Base class: a problem the user can act on, or wait out (`transient`)."""

    exit_code = 1
    transient: bool = False  # whether trying again later, unchanged, may succeed

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TransientError(OpenclawError):
    """Trying again later may succeed: something we depend on is down, busy or slow."""

    transient = True


class UsageError(OpenclawError):
    """A bad value on the command line (exit code 2, as for any usage error)."""

    exit_code = 2


class ConfigError(OpenclawError):
    """A configuration file is missing, unreadable or invalid."""


class InvalidConfigError(ConfigError):
    """A value of the wrong type or out of range in a config file or the environment: one
    line that names it (`gateway config: webhook must be an object, got a string`), exit
    code 2 as for any usage error. The models that check them are in openclaw.config."""

    exit_code = 2


class NotFoundError(OpenclawError):
    """The thing asked for (an issue id, a context key, a snapshot) does not exist."""


class DatabaseError(OpenclawError):
    """The database cannot be reached, or refused what we asked."""


class DatabaseUnavailableError(DatabaseError, TransientError):
    """The database cannot be reached or cannot answer now (down, starting, a timeout)."""


class NotStoredError(DatabaseError):
    """A session write that could not be kept: Postgres refused the row for what it holds
    (`retryable` False: sending it again will not help), or Postgres is unreachable and the
    outbox cannot take more (`retryable` True)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.transient = retryable


class MigrationError(DatabaseError):
    """The schema cannot be brought up to date (an edited migration, a failed statement)."""


# -- what "transient" means for the libraries' errors

# SQLSTATEs after which the same statement may succeed later, unchanged: the connection or
# the server is unavailable (classes 08, 53 insufficient resources, 58 system error), the
# server stops or starts (57P0x), a standby after a failover (25006), a lost race (40001,
# 40P01), a lock or a statement that timed out (55P03, 57014) or an object in use (55006).
# openclaw.outbox.classify adds what is "retry" for the outbox alone (not migrated yet).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "58")
TRANSIENT_SQLSTATES = frozenset(
    {
        "25006",  # read_only_sql_transaction: a standby, after a failover
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "55006",  # object_in_use
        "57014",  # query_canceled (a statement timeout, or a cancel)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down)
        "57P04",  # database_dropped
        "57P05",  # idle_session_timeout
    }
)

# OS errors that a later try may not meet: the network or a peer, not this machine's disk.
# ENOSPC, EACCES, ENOENT, EROFS and the like are not transient: a person must act first
# (the outbox still waits them out: openclaw.outbox.classify keeps every OSError "retry").
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.ETIMEDOUT,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENETRESET,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
    }
)


def is_transient_sqlstate(state: str) -> bool:
    """Whether a statement that failed with SQLSTATE `state` may succeed if sent again later."""
    return state in TRANSIENT_SQLSTATES or state.startswith(TRANSIENT_SQLSTATE_CLASSES)


def is_transient(exc: BaseException) -> bool:
    """Whether trying again later, unchanged, may succeed.

    - OpenclawError: its `transient` (per class, or per instance where it depends).
    - psycopg: by SQLSTATE (is_transient_sqlstate); an OperationalError or InterfaceError
      without one is a connection that failed or broke; psycopg_pool's PoolTimeout too.
    - httpx: a transport error (connect, read, write, pool, timeouts), except a URL whose
      scheme it does not support; an HTTPStatusError for 429, 502, 503 or 504.
    - OSError: a timeout, a refused or reset connection, an unreachable network (by errno);
      not a full disk, a missing file or a permission: a person must act first.
    - anything else (a bug, a bad value): no.

    psycopg and httpx are not imported for this (see is_database_error).
    """
    if isinstance(exc, OpenclawError):
        return exc.transient
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        state: str | None = exc.sqlstate
        if state is None:  # no answer from the server: the connection failed or broke
            return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return is_transient_sqlstate(state)
    pool = sys.modules.get("psycopg_pool")
    if pool is not None and isinstance(exc, pool.PoolTimeout):
        return True
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        if isinstance(exc, httpx.UnsupportedProtocol):  # a bad URL: no later try will do
            return False
        if isinstance(exc, httpx.TransportError):
            return True
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code in (429, 502, 503, 504)
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _TRANSIENT_ERRNOS
    return False
