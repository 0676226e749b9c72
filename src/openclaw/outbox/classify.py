"""What a failed write means, by SQLSTATE (DESIGN.md §5).

- `RETRY`: Postgres cannot take writes now, but will. Every SQLSTATE that
  openclaw.errors.is_transient_sqlstate calls transient (one table for both): the
  connection or the server is unavailable (classes 08, 53, 57P0x, 58), the server is a
  read-only standby after a failover (25006: wait for a writable primary), the transaction
  lost a race (40001, 40P01), a lock or statement timed out (55P03, 57014). And, for the
  outbox alone, whose rows wait for it: the schema or the rights are not there yet
  (42P01, 42703, 42501: someone has still to run the migrations or grant the rights), the
  database is not created or the login not accepted yet (3D000, 28000, 28P01).
  Errors without a SQLSTATE that psycopg raises for a broken connection, the pool's
  timeout, OS errors (every one: the entries wait on the disk, a full one too) and our
  own errors that say they are transient are the same.
- `BAD_ROW`: Postgres refuses this row for what it holds: a data error (22), a constraint
  (23), or a limit the row exceeds (54). Only that row is set aside, with its reason.
- `BUG`: anything else, above all an exception that is not a database error: our code is
  wrong for this kind of row. Its rows are kept, and a person is told.
"""

from __future__ import annotations

import enum

import psycopg
from psycopg_pool import PoolTimeout

from openclaw.errors import OpenclawError, is_transient_sqlstate


class Verdict(enum.Enum):
    RETRY = "retry"
    BAD_ROW = "bad row"
    BUG = "bug"


# Retried by the outbox, though a person must act first: its rows wait for that.
_OUTBOX_RETRY_STATES = frozenset(
    {
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
    if isinstance(exc, OpenclawError) and exc.transient:  # ours, saying the database is away
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
    if is_transient_sqlstate(state) or state in _OUTBOX_RETRY_STATES:
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
