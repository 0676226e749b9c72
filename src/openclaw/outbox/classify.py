"""What a failed write means, by SQLSTATE (DESIGN.md §5).

- `RETRY`: Postgres cannot take writes now, but will: the connection or the server is
  unavailable (classes 08, 53, 57P0x, 58), the server is a read-only standby after a
  failover (25006: wait for a writable primary), the transaction lost a race (40001,
  40P01), a lock or statement timed out (55P03, 57014), or the schema is not there yet
  (42P01, 42703, 42501: someone has still to run the migrations or grant the rights).
  Errors without a SQLSTATE that psycopg raises for a broken connection, the pool's
  timeout and OS errors are the same.
- `BAD_ROW`: Postgres refuses this row for what it holds: a data error (22), a constraint
  (23), or a limit the row exceeds (54). Only that row is set aside, with its reason.
- `BUG`: anything else, above all an exception that is not a database error: our code is
  wrong for this kind of row. Its rows are kept, and a person is told.
"""

from __future__ import annotations

import enum

import psycopg
from psycopg_pool import PoolTimeout


class Verdict(enum.Enum):
    RETRY = "retry"
    BAD_ROW = "bad row"
    BUG = "bug"


_RETRY_CLASSES = ("08", "53", "58")
_RETRY_STATES = frozenset(
    {
        "25006",  # read_only_sql_transaction: a standby, after a failover
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "55006",  # object_in_use
        "57014",  # query_canceled (a statement timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down)
        "57P04",  # database_dropped
        "57P05",  # idle_session_timeout
        "42P01",  # undefined_table: not migrated yet
        "42703",  # undefined_column: not migrated yet
        "42501",  # insufficient_privilege: the rights come with the migrations
        "3D000",  # invalid_catalog_name: the database is not created yet
        "28000",  # invalid_authorization_specification
        "28P01",  # invalid_password
    }
)
_BAD_ROW_CLASSES = ("22", "23", "54")


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, PoolTimeout | OSError):
        return Verdict.RETRY
    if not isinstance(exc, psycopg.Error):
        return Verdict.BUG
    state = exc.sqlstate
    if state is None:  # no answer from the server: the connection failed or broke
        return (
            Verdict.RETRY
            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
            else Verdict.BUG
        )
    if state in _RETRY_STATES or state.startswith(_RETRY_CLASSES):
        return Verdict.RETRY
    if state.startswith(_BAD_ROW_CLASSES):
        return Verdict.BAD_ROW
    return Verdict.BUG


def is_unavailable(exc: BaseException) -> bool:
    """Whether to keep what was being written and try again later."""
    return classify(exc) is Verdict.RETRY


def describe(exc: BaseException) -> str:
    """One line for a person: the SQLSTATE when there is one, the type, the message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__} [{state}]: {text}" if state else f"{type(exc).__name__}: {text}"
