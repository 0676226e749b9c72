"""No message is refused for its size, no key for its length (issue 11 §1, the causes).

The full-text column is built from a bounded prefix (migration 0007 proves the bound on
what it can cost; the worst texts we could construct check it here), and messages far
over any limit land through every path that writes them and are found by their first
words. A session key has one limit wherever it enters; one that still reaches Postgres is
a constraint error (SQLSTATE class 23), not an index's 54000, which looks like an outage.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest

import openclaw.mcp.curated as curated
from openclaw.app import load_settings
from openclaw.chat import Message
from openclaw.db import Database
from openclaw.errors import ConfigError, OpenclawError, UsageError
from openclaw.gateway.app import Gateway
from openclaw.gateway.channel import ChannelCore, Incoming
from openclaw.sessions.importer import import_file
from openclaw.sessions.keys import (
    MAX_AGENT_NAME_CHARS,
    MAX_SESSION_KEY_BYTES,
    MAX_SESSION_KEY_CHARS,
    InvalidSessionKeyError,
    check_session_key,
)
from openclaw.sessions.mirror import MESSAGES, messages_entry
from openclaw.sessions.mirror import OUTBOX_HANDLERS as HANDLERS
from openclaw.sessions.postgres_store import PostgresSessionStore
from tests.conftest import Cli
from tests.fake_llm import FakeLlm, Step, completion
from tests.sessions_support import write_rust_db
from tests.test_gateway import AUTH, api, configured, fake  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
MIGRATION = REPO / "src" / "openclaw" / "db" / "migrations" / "0007_text_limits.sql"
TSVECTOR_LIMIT = 1_048_575  # bytes of lexemes and positions in one tsvector (MAXSTRPOS)
PREFIX = 50_000  # characters of a message that its words come from (0007)
PROVEN_BYTES_PER_CHAR = 15  # 0007's bound on what a character can cost


# ---- hostile texts ---------------------------------------------------------------------------


LETTERS4 = [chr(c) for c in range(0x20000, 0x2A6E0)]  # 4 bytes in UTF-8 (CJK extension B)


def _words(alphabet: str, length: int) -> Iterator[str]:
    return ("".join(w) for w in itertools.product(alphabet, repeat=length))


def _fill(pieces: Iterator[str], chars: int) -> str:
    text: list[str] = []
    size = 0
    while size < chars:
        piece = next(pieces)
        text.append(piece)
        size += len(piece)
    return "".join(text)[:chars]


def distinct_words(chars: int) -> str:
    """The issue's message: distinct ASCII words ("aaaaa aaaab ...")."""
    return _fill((w + " " for w in _words("abcdefghijklmnopqrstuvwxyz", 5)), chars)


def distinct_letters(chars: int) -> str:
    """Each word one distinct 4-byte letter."""
    return _fill(itertools.cycle(letter + " " for letter in LETTERS4), chars)


def distinct_pairs(chars: int) -> str:
    """The worst we found: hyphenated pairs of distinct 4-byte letters, each pair three
    lexemes (the pair and its two parts), 30 bytes of tsvector for 4 characters. Once the
    letters are used up (after 85,440 characters), pairs not seen before."""
    fresh = (f"{LETTERS4[i]}-{LETTERS4[i + 1]} " for i in range(0, len(LETTERS4) - 1, 2))
    then = (f"{a}-{b} " for a, b in itertools.product(LETTERS4, LETTERS4))
    return _fill(itertools.chain(fresh, then), chars)


def lengthening_pairs(chars: int) -> str:
    """Hyphenated pairs of words of the letters that lower-casing lengthens (Ⱥ and Ⱦ, 2
    bytes, are ⱥ and ⱦ, 3 bytes)."""
    words = list(_words("ȺȾ", 8))
    return _fill(itertools.cycle(f"{a}-{b} " for a, b in itertools.product(words, words)), chars)


def urls(chars: int) -> str:
    """Hosts and paths: a URL is three lexemes (the URL, its host, its path)."""
    hosts_and_paths = zip(_words("abcdefghij", 4), _words("klmnopqrst", 4), strict=True)
    return _fill(itertools.cycle(f"{h}.io/{p} " for h, p in hosts_and_paths), chars)


def one_word(chars: int) -> str:
    return _fill(itertools.repeat("a "), chars)


HOSTILE: dict[str, Callable[[int], str]] = {
    "distinct words": distinct_words,
    "distinct 4-byte letters": distinct_letters,
    "hyphenated pairs of 4-byte letters": distinct_pairs,
    "letters that lower-casing lengthens": lengthening_pairs,
    "URLs": urls,
    "one word repeated": one_word,
}


def _tsvector_bytes(conn: psycopg.Connection, expression: str, text: str) -> int:
    """What make_tsvector counts against the limit: a tsvector's size less its header (8
    bytes) and its entries (4 bytes a lexeme)."""
    row = conn.execute(
        f"SELECT pg_column_size(v) - 8 - 4 * length(v) FROM (SELECT {expression} AS v) AS x", (text,)
    ).fetchone()
    assert row is not None
    return int(row[0])


# ---- the column ------------------------------------------------------------------------------


def test_the_issues_message_is_too_big_for_a_tsvector(db_url: str) -> None:
    """The premise: the column of 0002 refused this message (SQLSTATE 54000)."""
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.ProgramLimitExceeded):
        conn.execute("SELECT to_tsvector('simple', %s)", (distinct_words(840_000),))


@pytest.mark.parametrize("shape", list(HOSTILE))
def test_the_words_of_any_message_fit_in_a_tsvector(db_url: str, shape: str) -> None:
    text = HOSTILE[shape](3 * PREFIX)
    with psycopg.connect(db_url) as conn:
        cost = _tsvector_bytes(conn, "openclaw_message_words(%s)", text)
        whole_prefix = _tsvector_bytes(conn, "to_tsvector('simple', %s)", text[:PREFIX])
    assert cost == whole_prefix  # the words of the first PREFIX characters, and only those
    assert cost <= PROVEN_BYTES_PER_CHAR * PREFIX < TSVECTOR_LIMIT
    if shape == "hyphenated pairs of 4-byte letters":
        assert cost >= 7 * PREFIX  # it is as bad as 0007 says: the bound is not idle


def test_the_bound_in_the_migration_is_the_one_tested() -> None:
    assert f"\"left\"(coalesce(content, ''), {PREFIX})" in MIGRATION.read_text()
    assert PROVEN_BYTES_PER_CHAR * PREFIX < TSVECTOR_LIMIT


HUGE = {
    "the issue's 840 KB of distinct words": distinct_words(840_000),
    "a million characters of hyphenated 4-byte letters": distinct_pairs(1_000_000),
}
LAST_WORD = " zzzzzlastword"


def _first_words(text: str) -> str:
    return text.split(" ", 1)[0]


async def _found(db_url: str, words: str) -> list[str]:
    """Keys of the sessions whose messages search_sessions (the MCP tool) finds for `words`."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        return [row["session_key"] for row in await curated.search_sessions(conn, words)]


async def _write_through_store(database: Database, tmp_path: Path, key: str, text: str) -> None:
    await PostgresSessionStore(database, "main").append_messages(key, [Message.user(text)])


async def _write_through_mirror(database: Database, tmp_path: Path, key: str, text: str) -> None:
    entry = messages_entry(key, "main", [Message.user(text)], [str(uuid.uuid4())])
    async with database.connection() as conn, conn.transaction():
        await HANDLERS[MESSAGES](conn, [entry])


async def _write_through_importer(database: Database, tmp_path: Path, key: str, text: str) -> None:
    path = tmp_path / "agents" / "main" / "sessions.db"
    ms = 1_767_225_600_000
    write_rust_db(path, [(key, "main", "m", ms, ms, 0)], [(key, "user", text, None, None, None, ms)])
    report = await import_file(database, path)
    assert report.ok and report.messages_inserted == 1, report.error


WRITERS = {
    "postgres store": _write_through_store,
    "dual mirror": _write_through_mirror,
    "importer": _write_through_importer,
}


@pytest.mark.slow
@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("message", list(HUGE))
async def test_a_huge_message_lands_and_is_found_by_its_first_words(
    database: Database, db_url: str, tmp_path: Path, writer: str, message: str
) -> None:
    text = HUGE[message] + LAST_WORD
    await WRITERS[writer](database, tmp_path, "webhook:main:huge", text)
    async with database.connection() as conn:
        stored = await (await conn.execute("SELECT length(content) FROM messages")).fetchall()
    assert stored == [(len(text),)]  # stored whole
    assert await _found(db_url, _first_words(text)) == ["webhook:main:huge"]
    assert await _found(db_url, LAST_WORD) == []  # past the first 50,000 characters


async def test_the_issues_message_through_the_webhook_is_stored_and_shipped(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
    fake: FakeLlm,  # noqa: F811
    db_url: str,
) -> None:
    """As the issue found it: one authenticated turn under the 1 MB body limit. Its
    message must reach Postgres, and nothing queued behind it may wait."""
    client, gateway = api
    fake.then(Step(body=completion("read it")))
    text = distinct_words(840_000)
    reply = await client.post(
        "/webhook", json={"message": text, "session_key": "webhook:main:big"}, headers=AUTH
    )
    assert reply.status_code == 200, reply.text
    assert await gateway.runtime.flusher.drain(timeout_s=30)  # the LLM call too
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT role, length(content) FROM messages ORDER BY id").fetchall()
        calls = conn.execute("SELECT count(*) FROM llm_calls").fetchone()
    assert rows == [("user", len(text)), ("assistant", len("read it"))] and calls == (1,)
    assert await _found(db_url, _first_words(text)) == ["webhook:main:big"]


def test_search_still_goes_through_the_word_index(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(
            "EXPLAIN SELECT id FROM reader.message_words WHERE words @@ plainto_tsquery('simple', 'word')"
        ).fetchall()
    assert "idx_messages_fts" in "\n".join(line for (line,) in plan)


# ---- session keys ----------------------------------------------------------------------------


def test_a_key_too_long_for_its_index_is_a_constraint_error(db_url: str) -> None:
    key = "webhook:main:" + "k" * 100_000
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation) as sessions:
            conn.execute("INSERT INTO sessions (session_key, agent_name) VALUES (%s, 'main')", (key,))
        with pytest.raises(psycopg.errors.CheckViolation) as calls:
            conn.execute(
                "INSERT INTO llm_calls (id, session_key, model) VALUES (%s, %s, 'm')", (uuid.uuid4(), key)
            )
    assert sessions.value.sqlstate == calls.value.sqlstate == "23514"  # class 23: this row is bad


async def test_the_longest_key_is_stored_and_one_more_character_is_not(
    database: Database, db_url: str
) -> None:
    longest = "\U00020000" * MAX_SESSION_KEY_CHARS  # 4 bytes each: the most bytes a key may have
    assert len(longest.encode()) == MAX_SESSION_KEY_BYTES and check_session_key(longest) == longest
    store = PostgresSessionStore(database, "main")
    await store.create_session(longest, "main")
    await store.append_messages(longest, [Message.user("hi")])
    assert [m.content for m in await store.load_messages(longest)] == ["hi"]
    with pytest.raises(InvalidSessionKeyError, match=f"at most {MAX_SESSION_KEY_CHARS} characters, not 257"):
        check_session_key(longest + "a")
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO sessions (session_key, agent_name) VALUES (%s, 'main')", (longest + "a",))


def test_one_limit_for_keys_everywhere() -> None:
    assert issubclass(InvalidSessionKeyError, UsageError) and issubclass(
        InvalidSessionKeyError, OpenclawError
    )
    assert f"octet_length(session_key) <= {MAX_SESSION_KEY_BYTES}" in MIGRATION.read_text()
    assert MAX_SESSION_KEY_BYTES == 4 * MAX_SESSION_KEY_CHARS  # any key within the limit, in UTF-8
    cases = {
        "": "may not be empty",
        "   ": "may not be empty",
        "k" * 257: "at most 256 characters, not 257",
        "tg:main:1:\x00": "not U+0000 at position 11",
        "cli:\ud800": "not U+D800 at position 5",
        "a\nb": "not U+000A at position 2",
    }
    for key, problem in cases.items():
        with pytest.raises(InvalidSessionKeyError, match=re.escape(problem)):
            check_session_key(key)
    config = load_settings().gateway
    assert config.webhook_key_problem("webhook:" + "k" * 248) is None
    assert config.webhook_key_problem("webhook:" + "k" * 249) is not None  # 257 characters


async def test_keys_built_from_channel_ids_always_fit(
    api: tuple[httpx.AsyncClient, Gateway],  # noqa: F811
) -> None:
    _, gateway = api
    longest_name = "a" * MAX_AGENT_NAME_CHARS
    named = Gateway(replace(gateway.config, agent_name=longest_name), gateway.runtime, "h")
    for channel, prefix in (("telegram", "tg"), ("discord", "dc")):
        core = ChannelCore(named, channel, prefix, gateway.config.telegram)
        for ids in ((-(2**63), -(2**63)), (2**64 - 1, 2**64 - 1)):
            after_new = f"{core.base_key(Incoming(ids[0], ids[1], 'hi'))}:{uuid.uuid4()}"  # as /new makes it
            assert check_session_key(after_new) == after_new


def test_an_agent_name_too_long_for_its_keys_is_a_config_error(configured: Path) -> None:  # noqa: F811
    configured.write_text('{"agent": {"name": "%s"}}' % ("a" * (MAX_AGENT_NAME_CHARS + 1)))
    with pytest.raises(ConfigError, match="agent name has at most 64 characters"):
        load_settings()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ["agent", "-m", "hi", "--session", "k" * 300],
            "--session: a session key has at most 256 characters",
        ),
        (["agent", "-m", "hi", "--session", "tg:main:1:\x00"], "--session: a session key holds printable"),
        (["agent", "-m", "hi", "--agent", "a" * 65], "--agent: an agent name has at most 64 characters"),
        (
            ["agent", "-m", "caf\udce9"],
            "--message: the message is not valid Unicode text",
        ),  # argv's bad bytes
        (["chat", "--session", "k" * 300], "--session: a session key has at most 256 characters"),
    ],
    ids=["long --session", "NUL in --session", "long --agent", "undecodable --message", "chat --session"],
)
def test_the_cli_refuses_keys_it_cannot_store(
    configured: Path,  # noqa: F811 - models are configured: without the check, the turn would run
    cli: Cli,
    db_url: str,
    args: list[str],
    problem: str,
) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and problem in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
