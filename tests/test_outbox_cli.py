"""`openclaw outbox`: a person sees what waits and what Postgres refused, and puts it back in
line or deletes it (issue 11). The commands run against real spool files and never connect:
they work while Postgres is down."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from openclaw.app import OUTBOX_HANDLERS as RUNTIME_HANDLERS
from openclaw.db import Database
from openclaw.db.records import to_payload
from openclaw.db.target import DatabaseTarget, TargetSource, resolve_target
from openclaw.llm.records import LLM_CALL, LlmCall
from openclaw.outbox import Flusher, Spool, open_spool
from openclaw.outbox.targets import outbox_dir, spool_target
from tests.conftest import Cli
from tests.disks import tmpfs

CHECK_VIOLATION = 'CheckViolation [23514]: new row for relation "llm_calls" violates check constraint'
DOWN_URL = "postgresql://openclaw@127.0.0.1:1/openclaw_down"  # nothing listens on port 1
OPENCLAW = str(Path(sys.executable).with_name("openclaw"))
LONG_TEXT = "Tell me everything about " + "the weather " * 40 + "END-OF-TEXT"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI with DATABASE_URL set (not --database-url): the database of a deployment."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    return Cli(capsys, None)


def spool_for(home: Path, url: str | None = None) -> Spool:
    """The spool the commands read for DATABASE_URL (or `url`), as the gateway opens it."""
    target = resolve_target() if url is None else DatabaseTarget(TargetSource.OPTION, url=url)
    return open_spool(home, target)


def bury(spool: Spool, kind: str, payload: dict[str, object], reason: str = CHECK_VIOLATION) -> int:
    """Append an entry and set it aside as the flusher does; return its id. The spool must
    hold no other waiting entry."""
    assert spool.append(kind, payload)
    entry = spool.peek(1)[0]
    spool.bury(entry, reason)
    return entry.seq


@pytest.fixture
def dead_three(isolated_environment: Path, cli: Cli) -> Iterator[list[int]]:
    """Three dead entries (two llm_call, one session.append) and two waiting ones."""
    spool = spool_for(isolated_environment)
    ids = [
        bury(spool, "llm_call", {"model": "m", "n": 1}),
        bury(
            spool, "session.append", {"key": "webhook:a", "text": LONG_TEXT}, f"{CHECK_VIOLATION}\nDETAIL: x"
        ),
        bury(
            spool, "llm_call", {"model": "m", "n": 3}, "NumericValueOutOfRange [22003]: smallint out of range"
        ),
    ]
    assert spool.append("llm_call", {"model": "m", "n": 4})
    assert spool.append("metrics_snapshot", {"n": 5})
    spool.close()
    yield ids


def counts(home: Path) -> tuple[int, int]:
    spool = spool_for(home)
    try:
        return spool.pending(), spool.dead()
    finally:
        spool.close()


# ---- status ------------------------------------------------------------------------------


def test_status_shows_what_waits_what_is_dead_and_the_disk(
    cli: Cli, dead_three: list[int], isolated_environment: Path, db_url: str
) -> None:
    path = outbox_dir(isolated_environment) / spool_target(resolve_target()).file_name
    result = cli("outbox", "status")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"outbox:    {path}" in out
    assert "dbname=openclaw_test_" in out and "password" not in out
    assert "waiting:   2 entries, the oldest" in out
    assert "dead:      3 entries (see 'openclaw outbox dead')" in out
    assert "disk:      writable, " in out and " free" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "│" in line}
    assert rows["llm_call"] == ["│", "1", "│", "2"]
    assert rows["session.append"] == ["│", "0", "│", "1"]
    assert rows["metrics_snapshot"] == ["│", "1", "│", "0"]
    assert result.stderr == ""  # nothing about other spools: there are none

    info = json.loads(cli("outbox", "status", "--json").stdout)
    assert info["path"] == str(path) and info["exists"] is True
    assert (info["pending"], info["dead"]) == (2, 3)
    assert info["writable"] is True and info["unwritable_reason"] is None and info["free_bytes"] > 0
    assert info["oldest_age_s"] >= 0 and info["oldest_created_at"]
    assert info["kinds"] == {
        "llm_call": {"pending": 1, "dead": 2},
        "metrics_snapshot": {"pending": 1, "dead": 0},
        "session.append": {"pending": 0, "dead": 1},
    }
    assert info["other_spools"] == []


def test_status_works_while_postgres_is_down_and_names_the_other_spools(
    capsys: pytest.CaptureFixture[str],
    isolated_environment: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = spool_for(isolated_environment, db_url)
    assert other.append("llm_call", {"n": 1}) and other.append("llm_call", {"n": 2})
    other.close()
    down = spool_for(isolated_environment, DOWN_URL)
    bury(down, "llm_call", {"n": 3})
    down.close()
    monkeypatch.setenv("DATABASE_URL", DOWN_URL)
    cli = Cli(capsys, None)

    result = cli("outbox", "status")
    assert result.exit_code == 0, result.stderr
    assert "port=1 dbname=openclaw_down" in result.stdout and "dead:      1 entry" in result.stdout
    assert "waiting:   0 entries" in result.stdout
    others = [line for line in result.stdout.splitlines() if "2 waiting and 0 set aside for" in line]
    assert len(others) == 1 and "dbname=openclaw_test_" in others[0]
    assert "cannot connect" not in result.stderr

    info = json.loads(cli("outbox", "status", "--json").stdout)
    (listed,) = info["other_spools"]
    assert (listed["pending"], listed["dead"], listed["legacy"]) == (2, 0, False)
    # The other commands never connect either.
    assert cli("outbox", "dead").exit_code == 0
    assert cli("outbox", "requeue", "--all").exit_code == 0
    assert counts(isolated_environment) == (1, 0)  # DATABASE_URL is the one that is down


def test_status_of_a_database_that_never_spooled_creates_nothing(
    cli: Cli, isolated_environment: Path
) -> None:
    result = cli("outbox", "status")
    assert result.exit_code == 0, result.stderr
    assert "(not created yet: nothing was spooled)" in result.stdout
    assert "waiting:   0 entries" in result.stdout and "dead:      0 entries" in result.stdout
    info = json.loads(cli("outbox", "status", "--json").stdout)
    assert (info["exists"], info["pending"], info["dead"], info["kinds"]) == (False, 0, 0, {})
    assert info["oldest_age_s"] is None and info["writable"] is True
    assert "nothing set aside" in cli("outbox", "dead").stdout
    assert not outbox_dir(isolated_environment).exists()


@pytest.fixture
def read_only_outbox(isolated_environment: Path) -> Iterator[Path]:
    """$OPENCLAW_HOME/outbox on a real file system that is then made read-only (tmpfs)."""
    with tmpfs(outbox_dir(isolated_environment), "4m") as mount:
        yield mount


def test_a_read_only_disk_is_shown_and_changes_are_one_line(
    cli: Cli, isolated_environment: Path, read_only_outbox: Path
) -> None:
    spool = spool_for(isolated_environment)
    seq = bury(spool, "llm_call", {"n": 1})
    spool.close()
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_outbox)], check=True)

    result = cli("outbox", "status", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["writable"] is False and "cannot be" in info["unwritable_reason"]
    human = cli("outbox", "status")
    assert human.exit_code == 0 and "disk:      NOT writable: " in human.stdout

    # In a process of its own: what the spool logs about the disk reaches stderr there.
    requeued = subprocess.run([OPENCLAW, "outbox", "requeue", str(seq)], capture_output=True, text=True)
    assert requeued.returncode == 1
    assert requeued.stderr == (
        f"openclaw: error: outbox: {spool.path} cannot be written: attempt to write a readonly database\n"
    )
    shown = subprocess.run([OPENCLAW, "outbox", "status"], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stderr == ""


# ---- dead --------------------------------------------------------------------------------


def test_dead_lists_id_kind_time_reason_and_a_short_preview(cli: Cli, dead_three: list[int]) -> None:
    result = cli("outbox", "dead")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "│" in line]  # the rows
    assert [line.split()[0] for line in lines] == [str(seq) for seq in dead_three]
    assert result.stdout.split("┃")[0].strip() == "id"
    chat = next(line for line in lines if "session.append" in line)
    assert CHECK_VIOLATION in chat and "DETAIL" not in chat  # the reason's first line
    assert "Tell me everything about" in chat and "END-OF-TEXT" not in chat  # the preview is capped
    assert "…" in chat
    assert "[22003]" in result.stdout

    only = cli("outbox", "dead", "--kind", "session.append")
    assert [line.split()[0] for line in only.stdout.splitlines() if "│" in line] == [str(dead_three[1])]

    limited = cli("outbox", "dead", "--limit", "1")
    assert len([line for line in limited.stdout.splitlines() if "│" in line]) == 1
    assert "1 of 3 shown" in limited.stderr

    info = json.loads(cli("outbox", "dead", "--json").stdout)
    assert info["total"] == 3 and [e["id"] for e in info["entries"]] == dead_three
    full = info["entries"][1]
    assert full["kind"] == "session.append" and full["payload"] == {"key": "webhook:a", "text": LONG_TEXT}
    assert full["error"] == f"{CHECK_VIOLATION}\nDETAIL: x" and full["failed_at"] and full["created_at"]


def test_dead_escapes_what_a_terminal_would_obey(cli: Cli, isolated_environment: Path) -> None:
    spool = spool_for(isolated_environment)
    bury(spool, "session.append", {"text": "\x1b]0;owned\x07 \u202eevil"}, "Bad [22021]: \x1b[2J")
    spool.close()
    out = cli("outbox", "dead").stdout
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\u202e" in out


# ---- requeue -----------------------------------------------------------------------------


def test_requeue_by_id_puts_the_entry_back_at_its_place(
    cli: Cli, dead_three: list[int], isolated_environment: Path
) -> None:
    result = cli("outbox", "requeue", str(dead_three[1]))
    assert result.exit_code == 0, result.stderr
    assert "requeued 1 entry (session.append: 1)" in result.stdout
    assert "flusher ships them" in result.stdout
    spool = spool_for(isolated_environment)
    try:
        assert (spool.pending(), spool.dead()) == (3, 2)
        first = spool.peek(1)[0]  # its old place: before the entries that waited all along
        assert (first.seq, first.kind, first.session_key) == (dead_three[1], "session.append", "webhook:a")
        assert first.payload["text"] == LONG_TEXT
    finally:
        spool.close()


def test_requeue_by_kind_and_all(cli: Cli, dead_three: list[int], isolated_environment: Path) -> None:
    by_kind = cli("outbox", "requeue", "--kind", "llm_call")
    assert by_kind.exit_code == 0 and "requeued 2 entries (llm_call: 2)" in by_kind.stdout
    assert counts(isolated_environment) == (4, 1)
    none_left = cli("outbox", "requeue", "--kind", "llm_call")
    assert none_left.exit_code == 0 and "nothing to requeue" in none_left.stdout
    assert "kinds set aside: session.append" in none_left.stdout
    everything = cli("outbox", "requeue", "--all")
    assert everything.exit_code == 0 and "requeued 1 entry (session.append: 1)" in everything.stdout
    assert counts(isolated_environment) == (5, 0)
    assert "nothing to requeue" in cli("outbox", "requeue", "--all").stdout


def test_unknown_ids_change_nothing(cli: Cli, dead_three: list[int], isolated_environment: Path) -> None:
    for command in (["requeue"], ["drop", "--yes"]):
        result = cli("outbox", *command, str(dead_three[0]), "999", "1000")
        assert result.exit_code == 1, result
        assert result.stderr == (
            "openclaw: error: no set-aside entries with id 999, 1000 in this database's outbox"
            " (see 'openclaw outbox dead'); nothing was changed\n"
        )
        assert counts(isolated_environment) == (2, 3)


def test_negative_ids_of_adopted_entries_need_no_double_dash(cli: Cli, isolated_environment: Path) -> None:
    """Entries adopted from an earlier openclaw's outbox go before the others: their ids
    can be below zero, which the command line must not take for options."""
    spool = spool_for(isolated_environment)
    spool.prepend([], [(5, "llm_call", '{"n": 1}', 1, CHECK_VIOLATION, 2)], {}, last_seq=10)
    (adopted,) = spool.dead_entries()
    spool.close()
    assert adopted.seq < 0
    assert str(adopted.seq) in cli("outbox", "dead").stdout
    result = cli("outbox", "requeue", str(adopted.seq))
    assert result.exit_code == 0, result.stderr
    assert counts(isolated_environment) == (1, 0)


async def test_a_requeued_entry_ships_once_the_cause_is_fixed(
    cli: Cli, isolated_environment: Path, db_url: str
) -> None:
    """End to end: Postgres refuses a row (a CHECK), the flusher sets it aside, a person
    looks, fixes the cause (here: the constraint goes, as a migration would change it),
    requeues, and the flusher ships it."""
    spool = spool_for(isolated_environment)
    bad = {**to_payload(LlmCall(model="m", session_key="s")), "provider_attempt": 0}
    assert spool.append_many([(LLM_CALL, bad), (LLM_CALL, to_payload(LlmCall(model="m", session_key="t")))])
    database = await Database.open(DatabaseTarget(TargetSource.OPTION, url=db_url))
    try:
        flusher = Flusher(spool, database, RUNTIME_HANDLERS)
        assert await flusher.drain(timeout_s=60)
        assert (spool.pending(), spool.dead()) == (0, 1)
        info = json.loads(cli("outbox", "dead", "--json").stdout)
        (entry,) = info["entries"]
        assert "[23514]" in entry["error"] and entry["payload"]["provider_attempt"] == 0

        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute("ALTER TABLE llm_calls DROP CONSTRAINT llm_calls_provider_attempt_check")
        assert cli("outbox", "requeue", str(entry["id"])).exit_code == 0
        assert await flusher.drain(timeout_s=60)
        assert (spool.pending(), spool.dead()) == (0, 0)
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            row = await (await conn.execute("SELECT count(*) FROM llm_calls")).fetchone()
        assert row == (2,)
    finally:
        await database.close()
        spool.close()


# ---- drop --------------------------------------------------------------------------------


def test_drop_with_yes_deletes_for_good(cli: Cli, dead_three: list[int], isolated_environment: Path) -> None:
    result = cli("outbox", "drop", str(dead_three[0]), str(dead_three[2]), "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "deleted 2 entries for good\n"
    assert counts(isolated_environment) == (2, 1)
    info = json.loads(cli("outbox", "dead", "--json").stdout)
    assert [e["id"] for e in info["entries"]] == [dead_three[1]]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "left"), [("n\n", 1, 3), ("y\n", 0, 2)])
def test_drop_asks_on_a_terminal(
    cli: Cli,
    dead_three: list[int],
    isolated_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    left: int,
) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    result = cli("outbox", "drop", str(dead_three[0]))
    assert result.exit_code == code, result.stderr
    assert f"Delete 1 entry ({dead_three[0]}) for good?" in result.stderr
    assert counts(isolated_environment) == (2, left)


# ---- usage errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["requeue"], "name the entries: ids (from 'openclaw outbox dead'), --all or --kind K"),
        (["requeue", "1", "--all"], "give entry ids, or --all / --kind, not both"),
        (["requeue", "1", "--kind", "llm_call"], "give entry ids, or --all / --kind, not both"),
        (["requeue", "abc"], "'abc' is not an entry id"),
        (["requeue", "--al"], "'--al' is not an entry id"),
        (["drop"], "name the entries to delete"),
        (["drop", "1"], "add --yes to confirm (stdin is not a terminal)"),
        (["dead", "--limit", "0"], "--limit"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    cli: Cli, dead_three: list[int], isolated_environment: Path, args: list[str], message: str
) -> None:
    result = cli("outbox", *args)
    assert result.exit_code == 2, result
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert counts(isolated_environment) == (2, 3)


def test_help_teaches_what_dead_means_and_when_to_requeue(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    text = " ".join(cli("outbox", "--help").stdout.split())
    assert "dead (set aside) when Postgres refused it for what it holds" in text
    assert "fix the cause (an upgrade of openclaw" in text and "never connect to Postgres" in text
    assert "Entry ids come from openclaw outbox dead" in text
    requeue = " ".join(cli("outbox", "requeue", "--help").stdout.split())
    assert "once the cause is fixed" in requeue and "flusher ships them" in requeue
