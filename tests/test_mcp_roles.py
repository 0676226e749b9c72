"""The roles an assistant logs in as (issue 12): one reader and one writer per database,
never the owner's credentials in an IDE, and `mcp serve` from the reader's URL alone.

Roles belong to the whole server: every role a test makes is dropped when it ends (the
databases of the `db_url` fixture drop their reader and writer with them, tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from mcp import Client, StdioServerParameters
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import Cli, FreshDatabases, database_url

OPENCLAW = str(Path(sys.executable).with_name("openclaw"))
CLIENTS = ("windsurf", "claude-code", "cursor", "vscode")


def _dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


def _grant(cli: Cli, home: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """`db grant-reader` (or `grant-writer`) with its own home; returns the saved URL."""
    monkeypatch.setenv("OPENCLAW_HOME", str(home))
    home.mkdir(exist_ok=True)
    kind = "writer" if "grant-writer" in args else "reader"
    result = cli("db", *args)
    assert result.exit_code == 0, result.stderr
    url = cli("db", f"{kind}-url").stdout.strip()
    assert url.startswith("postgresql://openclaw_")
    return url


@pytest.fixture
def other_db_url(pg_server_url: str, fresh_databases: FreshDatabases) -> Iterator[str]:
    """A second fresh database on the same server."""
    name = fresh_databases.take()
    yield database_url(pg_server_url, name)
    fresh_databases.give_back(name)


def test_the_role_rule_is_the_same_in_python_and_sql(conn_url: str) -> None:
    from openclaw.db.reader import login_role

    names = [
        "openclaw",
        "openclaw_test_0123456789ab",
        "My-App",
        "my_app",
        "a_deadbeef",
        "ends_in_hex_0123abcd",
        "ünïcödé ✓ database",
        "x" * 47,
        "x" * 48,
        "y" * 63,
        "with space",
        "quote\"and'apostrophe",
        "UPPER",
        "dots.and-dashes",
        "",
    ]
    with psycopg.connect(conn_url) as conn:
        for name in names:
            for kind in ("reader", "writer"):
                row = conn.execute("SELECT public.openclaw_login_role(%s, %s)", (kind, name)).fetchone()
                assert row is not None
                role = login_role(kind, name)  # type: ignore[arg-type]
                assert row[0] == role, name
                assert len(role.encode()) <= 63 and role.startswith(f"openclaw_{kind}_")
        own = conn.execute("SELECT public.openclaw_login_role('reader'), current_database()").fetchone()
        assert own is not None and own[0] == login_role("reader", own[1])
    # Names that sanitising would merge keep apart; an unchanged name keeps its plain form.
    assert login_role("reader", "my_app") == "openclaw_reader_my_app"
    assert login_role("reader", "My-App") != login_role("reader", "my_app")
    assert login_role("reader", "x" * 48) != login_role("reader", "x" * 49)


@pytest.fixture
def conn_url(db_url: str) -> str:
    return db_url


def test_readers_of_two_databases_cannot_see_each_other(
    cli: Cli,
    capsys: pytest.CaptureFixture[str],
    db_url: str,
    other_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session may read the query text of its own role's sessions on any database: with
    one shared reader, project A's assistant read project B's live SQL, literals included."""
    reader_a = _grant(cli, tmp_path / "home-a", monkeypatch, "grant-reader")
    reader_b = _grant(Cli(capsys, other_db_url), tmp_path / "home-b", monkeypatch, "grant-reader")
    assert conninfo_to_dict(reader_a)["user"] != conninfo_to_dict(reader_b)["user"]
    with psycopg.connect(reader_b, autocommit=True) as b, psycopg.connect(reader_a, autocommit=True) as a:
        b.execute("SELECT 'the staging password is hunter2' AS secret")
        own = b.execute("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
        assert own is not None and "pg_stat_activity" in own[0]  # a reader sees its own
        seen = a.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = %s", (b.info.backend_pid,)
        ).fetchone()
        assert seen is not None and "hunter2" not in (seen[0] or "")
        assert seen[0] == "<insufficient privilege>"
    # Nor can it log in to the other database (openclaw's superuser owns it here).
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(make_conninfo(reader_a, dbname=_dbname(other_db_url))).close()


def test_a_new_reader_password_is_this_databases_only(
    cli: Cli,
    capsys: pytest.CaptureFixture[str],
    db_url: str,
    other_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`db grant-reader --new-password` in one project once broke every project's URL."""
    _grant(cli, tmp_path / "home-a", monkeypatch, "grant-reader")
    reader_b = _grant(Cli(capsys, other_db_url), tmp_path / "home-b", monkeypatch, "grant-reader")
    user_b = conninfo_to_dict(reader_b)["user"]

    def password_hash() -> str:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (user_b,)).fetchone()
        assert row is not None
        return str(row[0])

    before = password_hash()
    _grant(cli, tmp_path / "home-a", monkeypatch, "grant-reader", "--new-password")
    assert password_hash() == before


def test_upgrade_from_the_shared_reader(
    cli: Cli, db_url: str, isolated_environment: Path, pg_server_url: str
) -> None:
    """An earlier version's deployment: the shared role holds grants here and its URL is
    saved in the home. The next `db grant-reader` makes this database's role, saves its
    URL, and takes the shared role's grants here (the role stays: others may use it)."""
    database = _dbname(db_url)
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        made = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'openclaw_reader'").fetchone() is None
        if made:
            admin.execute("CREATE ROLE openclaw_reader LOGIN")
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            for statement in (
                "GRANT CONNECT ON DATABASE {} TO openclaw_reader",
                "GRANT USAGE ON SCHEMA reader TO openclaw_reader",
                "GRANT SELECT ON ALL TABLES IN SCHEMA reader TO openclaw_reader",
            ):
                conn.execute(sql.SQL(statement).format(sql.Identifier(database)))
        old_url = make_conninfo(db_url, user="openclaw_reader")
        (isolated_environment / "reader-url").write_text(old_url + "\n")
        assert cli("db", "grant-reader").exit_code == 0
        saved = (isolated_environment / "reader-url").read_text().strip()
        assert saved != old_url and conninfo_to_dict(saved)["user"] != "openclaw_reader"
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "SELECT has_schema_privilege('openclaw_reader', 'reader', 'USAGE'),"
                " has_table_privilege('openclaw_reader', 'reader.known_issues', 'SELECT'),"
                " has_database_privilege('openclaw_reader', current_database(), 'CONNECT'),"
                " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'openclaw_reader')"
            ).fetchone()
        assert row == (False, False, False, True)
        with psycopg.connect(saved) as conn:
            assert conn.execute("SELECT count(*) FROM known_issues").fetchone() == (0,)
    finally:
        if made:
            with psycopg.connect(pg_server_url, autocommit=True) as admin:
                admin.execute("DROP ROLE IF EXISTS openclaw_reader")


@pytest.fixture
def owner_url(pg_server_url: str) -> Iterator[str]:
    """A database owned by a password-protected role that is no superuser (CREATEROLE,
    CREATEDB), migrated by it: the owner whose credentials must not reach an IDE."""
    suffix = uuid.uuid4().hex[:12]
    owner, database, password = (
        f"openclaw_test_owner_{suffix}",
        f"openclaw_test_{suffix}",
        f"pw-{suffix}-owner",
    )
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                sql.Identifier(owner), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner))
        )
        # PostgreSQL 15+: the schema public belongs to the database's owner only when made so.
        with psycopg.connect(database_url(pg_server_url, database), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner)))
    try:
        yield make_conninfo(database_url(pg_server_url, database), user=owner, password=password)
    finally:
        from openclaw.db.reader import READER, WRITER, login_role

        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            for role in (login_role(READER, database), login_role(WRITER, database), owner):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _stdio_env(client: str, output: str) -> dict[str, str]:
    if client == "claude-code":
        words = output.split()
        return dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--env")
    document = json.loads(output)
    env: dict[str, str] = document["servers" if client == "vscode" else "mcpServers"]["openclaw"]["env"]
    return env


def test_config_snippets_carry_no_owner_credentials_and_serve_from_them(
    capsys: pytest.CaptureFixture[str],
    owner_url: str,
    isolated_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every client's snippet, with and without --allow-writes, even with DATABASE_URL set
    in the developer's shell: the reader's (and writer's) URL, never the owner's. The
    server the IDE starts from it alone answers, reads as the reader, writes as the writer."""
    owner = conninfo_to_dict(owner_url)
    monkeypatch.setenv("DATABASE_URL", owner_url)
    cli = Cli(capsys, None)
    assert cli("db", "migrate").exit_code == 0
    assert cli("issues", "add", "disk fills up", "--severity", "high", "--component", "infra").exit_code == 0
    for allow_writes in (False, True):
        for client in CLIENTS:
            result = cli("mcp", "config", "--client", client, *(["--allow-writes"] if allow_writes else []))
            assert result.exit_code == 0, result.stderr
            for secret in (str(owner["password"]), str(owner["user"]), "DATABASE_URL", owner_url):
                assert secret not in result.stdout and secret not in result.stderr, (client, secret)
            env = _stdio_env(client, result.stdout)
            expected = {"OPENCLAW_HOME", "OPENCLAW_READER_URL"} | (
                {"OPENCLAW_WRITER_URL"} if allow_writes else set()
            )
            assert set(env) == expected, client
    monkeypatch.delenv("DATABASE_URL")
    params = StdioServerParameters(
        command=OPENCLAW,
        args=["mcp", "serve", "--allow-writes"],
        env={**env, "GATEWAY_CONFIG": str(isolated_environment / "none.json")},
    )

    async def scenario() -> None:
        async with Client(params) as client:
            issues = await client.call_tool("open_issues", {})
            assert not issues.is_error, issues.content
            assert [i["title"] for i in issues.structured_content["issues"]] == ["disk fills up"]  # type: ignore[index]
            who = await client.call_tool("query", {"sql": "SELECT current_user"})
            assert who.structured_content["rows"][0][0].startswith("openclaw_reader_")  # type: ignore[index]
            task = await client.call_tool("log_task", {"description": "from the IDE"})
            assert not task.is_error, task.content

    (isolated_environment / "none.json").write_text("{}")
    asyncio.run(scenario())
    with psycopg.connect(owner_url) as conn:
        assert conn.execute("SELECT description FROM task_log").fetchall() == [("from the IDE",)]
        # The IDE's server logged in as the roles only, never as the owner.
        assert conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'openclaw-mcp' AND usename = %s",
            (owner["user"],),
        ).fetchone() == (0,)


def test_mcp_call_from_the_reader_url_alone(
    cli: Cli, db_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With OPENCLAW_READER_URL the server needs no owner: a DATABASE_URL that leads nowhere
    is not even tried, nothing is migrated, no role is made."""
    reader = _grant(cli, isolated_environment, monkeypatch, "grant-reader")
    monkeypatch.setenv("OPENCLAW_READER_URL", reader)
    nowhere = Cli(cli._capsys, "postgresql://owner:owner-secret@127.0.0.1:1/nowhere")
    result = nowhere("mcp", "call", "query", "sql=SELECT current_user")
    assert result.exit_code == 0, result.stderr
    assert conninfo_to_dict(reader)["user"] in result.stdout
    writes = nowhere("mcp", "call", "log_task", "description=x", "--allow-writes")
    assert writes.exit_code == 1
    assert "OPENCLAW_WRITER_URL" in writes.stderr and len(writes.stderr.strip().splitlines()) == 1


def test_the_writer_writes_the_context_tables_only(
    cli: Cli, db_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _grant(cli, isolated_environment, monkeypatch, "grant-writer")
    assert oct((isolated_environment / "writer-url").stat().st_mode & 0o777) == "0o600"

    async def writes() -> None:
        from openclaw.context import issues, kv, tasks

        async with await psycopg.AsyncConnection.connect(writer) as conn:
            await tasks.log_task(conn, "wrote as the writer", category="bugfix", files_changed=["a.py"])
            issue = await issues.add_issue(conn, "an issue", severity="low", component="core")
            await issues.set_issue_status(conn, issue.id, "resolved")
            await kv.set_value(conn, "current_focus", {"what": "roles"})
            await kv.set_value(conn, "current_focus", {"what": "roles, again"})
            await conn.commit()

    asyncio.run(writes())
    refused = (
        "DELETE FROM task_log",
        "DELETE FROM project_context",
        "TRUNCATE known_issues",
        "INSERT INTO sessions DEFAULT VALUES",
        "SELECT * FROM public.messages",
        "UPDATE deployments SET notes = 'x'",
        "CREATE TABLE public.planted (x int)",
        "CREATE SCHEMA planted",
        "ALTER TABLE task_log ADD COLUMN planted int",
        "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "SELECT setval('task_log_id_seq', 1)",
    )
    with psycopg.connect(writer, autocommit=True) as conn:
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM task_log").fetchone() == (1,)
        assert conn.execute("SELECT value FROM project_context").fetchone() == ({"what": "roles, again"},)


def test_roles_given_out_cannot_make_large_objects(
    cli: Cli, db_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-only defaults are only defaults: a generic client may BEGIN READ WRITE. Large
    objects need no privilege to be made, so lo_create & co. are revoked from PUBLIC where
    openclaw's superuser owns the database (as here, and on the embedded server)."""
    for kind in ("grant-reader", "grant-writer"):
        with psycopg.connect(_grant(cli, isolated_environment, monkeypatch, kind)) as conn:
            conn.execute("ROLLBACK")
            conn.execute("BEGIN READ WRITE")
            for call in ("SELECT lo_from_bytea(0, 'x')", "SELECT lo_create(0)", "SELECT lo_creat(-1)"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(call)
                conn.execute("ROLLBACK")
                conn.execute("BEGIN READ WRITE")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)
