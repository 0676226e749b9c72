"""What a new user meets in the first ten minutes: sessions in Postgres by default, old
session files pointed out, models checked, mistakes in one line, Ctrl-C that behaves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from openclaw.chat import Message, Role
from openclaw.db.embedded import stop_embedded
from openclaw.sessions.sqlite_store import SqliteSessionStore, sessions_db_path
from tests.conftest import Cli
from tests.fake_llm import FakeLlm, Step, chunk, serve
from tests.test_mcp import call, mcp_client
from tests.waiting import wait_for

OPENCLAW = [sys.executable, "-m", "openclaw"]


def answer(text: str) -> list[str]:
    return [chunk(text), chunk(finish="stop"), "[DONE]"]


def write_models(home: Path, base_url: str, *, second: str | None = None) -> None:
    providers = {"fake": {"baseUrl": base_url + "/v1", "apiKey": "sk-x", "models": ["m1"]}}
    fallbacks = ["fake/m1"]
    if second:
        providers["other"] = {"baseUrl": second + "/v1", "apiKey": "sk-y", "models": ["m2"]}
        fallbacks.append("other/m2")
    (home / "openclaw-manual.json").write_text(
        json.dumps({"models": {"providers": providers, "fallbacks": fallbacks}})
    )


@pytest.fixture
def fake(isolated_environment: Path) -> Iterator[FakeLlm]:
    with serve(FakeLlm()) as app:
        write_models(isolated_environment, app.base_url)
        yield app


def interruptible(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    """A child in its own process group that takes SIGINT as a terminal's Ctrl-C (a
    background shell may have left SIGINT ignored for us, and children inherit that)."""
    return subprocess.Popen(
        args,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,  # type: ignore[call-overload]
    )


class Output:
    """What a child has written to a pipe so far, read without blocking."""

    def __init__(self, pipe: object) -> None:
        self.fd = pipe.fileno()  # type: ignore[attr-defined]
        os.set_blocking(self.fd, False)
        self.text = ""

    def shows(self, text: str) -> bool:
        with contextlib.suppress(BlockingIOError):
            self.text += os.read(self.fd, 65536).decode()
        return text in self.text


def ctrl_c(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # a terminal signals the whole foreground group


# ---- sessions live in Postgres unless chosen otherwise ---------------------------------------


def test_a_fresh_home_chats_into_postgres_and_mcp_finds_it(
    cli: Cli, fake: FakeLlm, db_url: str, isolated_environment: Path
) -> None:
    fake.then(Step(sse=answer("Use the blue-green deploy.")))
    result = cli("agent", "-m", "how should we roll out the zebra release?")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(cli("sessions", "list", "--from", "postgres", "--json").stdout)
    assert len(listed) == 1 and listed[0]["session_key"].startswith("agent:main:cli:")
    assert not (isolated_environment / "agents").exists()  # no SQLite file was made

    async def ask() -> None:
        async with mcp_client(db_url, isolated_environment) as client:
            found = await call(client, "search_sessions", text="zebra release")
            assert "zebra release" in json.dumps(found)
            history = await call(client, "session_history", session_key=listed[0]["session_key"])
            assert "blue-green deploy" in json.dumps(history)

    asyncio.run(ask())


def _legacy_file(home: Path) -> Path:
    async def write() -> None:
        store = SqliteSessionStore(sessions_db_path(home, "main"), "main")
        await store.create_session("tg:main:1:1", "main")
        await store.append_messages("tg:main:1:1", [Message(Role.USER, content="from openclaw-rs")])
        await store.close()

    asyncio.run(write())
    return sessions_db_path(home, "main")


def test_db_status_points_at_session_files_postgres_lacks(cli: Cli, isolated_environment: Path) -> None:
    path = _legacy_file(isolated_environment)
    status = cli("db", "status")
    assert status.exit_code == 0, status.stderr
    assert "1 session in openclaw-rs files are not in Postgres" in status.stderr
    assert str(path) in status.stderr and "openclaw migrate-sessions" in status.stderr
    info = json.loads(cli("db", "status", "--json").stdout)
    assert info["unimported_session_files"] == [
        {"path": str(path), "agent": "main", "sessions": 1, "missing": 1}
    ]
    assert cli("migrate-sessions").exit_code == 0
    assert "migrate-sessions" not in cli("db", "status").stderr
    assert json.loads(cli("db", "status", "--json").stdout)["unimported_session_files"] == []


# ---- models ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nosuch/model", "unknown provider 'nosuch'"),
        ("fake/nosuch", "provider 'fake' has no model 'nosuch'"),
        ("garbage", "is not of the form provider/model"),
    ],
)
def test_an_unknown_model_is_a_usage_error(cli: Cli, fake: FakeLlm, model: str, message: str) -> None:
    result = cli("agent", "-m", "hi", "--model", model)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    if "garbage" not in model:
        assert "fake/m1" in result.stderr  # the known ones are listed
    assert fake.requests == []  # no model was asked


def test_use_fallback_false_tries_the_first_model_only(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, isolated_environment: Path
) -> None:
    with serve(FakeLlm()) as first, serve(FakeLlm()) as second:
        write_models(isolated_environment, first.base_url, second=second.base_url)
        first.then(Step(400, {"error": "bad request"}))
        second.then(Step(sse=answer("the second model")))
        monkeypatch.setenv("USE_FALLBACK", "false")
        result = cli("agent", "-m", "hi")
        assert result.exit_code == 1 and "the second model" not in result.stdout
        assert second.requests == []


def test_a_base_url_that_is_not_text_is_named(cli: Cli, isolated_environment: Path) -> None:
    (isolated_environment / "openclaw-manual.json").write_text(
        json.dumps({"models": {"providers": {"p": {"baseUrl": 42, "models": ["m"]}}}})
    )
    result = cli("models", "list")
    assert result.exit_code == 2, result.stderr  # a wrong type: a usage error (issue 13)
    assert result.stderr == (
        "openclaw: error: openclaw-manual.json: models.providers.p.baseUrl must be a string, got an integer\n"
    )


# ---- configuration and files -------------------------------------------------------------------


def test_a_gateway_config_that_gateway_config_names_must_exist(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "typo.json"))
    result = Cli(capsys, None)("db", "url")
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"openclaw: error: GATEWAY_CONFIG names {tmp_path / 'typo.json'}, which does not exist"
    )


def test_db_url_prints_without_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = "postgresql://openclaw@127.0.0.1:1/openclaw"
    result = Cli(capsys, nowhere)("db", "url")
    assert result.exit_code == 0 and result.stdout == nowhere + "\n", result.stderr


@pytest.mark.parametrize("make_home", ["under_a_file", "read_only"])
def test_a_home_that_cannot_be_written_gets_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_home: str
) -> None:
    if make_home == "under_a_file":
        (tmp_path / "file").write_text("")
        home = tmp_path / "file" / "home"
    else:
        home = tmp_path / "ro"
        home.mkdir(mode=0o500)
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories; the capsh test below covers it")
    monkeypatch.setenv("OPENCLAW_HOME", str(home))
    result = Cli(capsys, None)("mcp", "config", "--client", "claude-code", "--http")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("openclaw: error: ") and str(home) in lines[0], lines


def test_an_unwritable_home_as_a_normal_user(tmp_path: Path) -> None:
    capsh = shutil.which("capsh")
    if capsh is None or os.geteuid() != 0:
        pytest.skip("needs root and capsh to act as a user that file permissions apply to")
    home = tmp_path / "locked"
    home.mkdir(mode=0o500)
    env = {**os.environ, "OPENCLAW_HOME": str(home), "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    result = subprocess.run(
        [
            capsh,
            "--drop=cap_dac_override,cap_dac_read_search",
            "--",
            "-c",
            f"{sys.executable} -m openclaw mcp config --client claude-code --http",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"openclaw: error: permission denied: {home / 'mcp-token'}" + (
        " (files of openclaw live under $OPENCLAW_HOME)"
    )


def test_cron_list_without_jobs_is_an_answer(cli: Cli, isolated_environment: Path) -> None:
    result = cli("cron", "list")
    assert result.exit_code == 0 and result.stdout.startswith("no jobs"), result.stderr
    assert json.loads(cli("cron", "list", "--json").stdout) == {"jobs": [], "skipped": []}


def test_config_diff_without_snapshots_says_so(cli: Cli) -> None:
    result = cli("config", "diff")
    assert result.exit_code == 0 and result.stdout.startswith("no snapshots of "), result.stderr


@pytest.mark.slow
def test_postgres_down_is_said_once(fake: FakeLlm, isolated_environment: Path) -> None:
    fake.then(Step(sse=answer("answered anyway")))
    result = subprocess.run(
        [*OPENCLAW, "agent", "-m", "hi"],
        env=_env(isolated_environment, "postgresql://openclaw@127.0.0.1:1/openclaw"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "answered anyway" in result.stdout, result.stderr
    said = [line for line in result.stderr.splitlines() if "Postgres" in line]
    # One warning when it turns out to be down, one summary of what waits for it.
    assert len(said) == 2 and "Postgres not ready" in said[0] and "wait in the outbox" in said[1], said


# ---- the terminal chat ------------------------------------------------------------------------


def _env(home: Path, db_url: str) -> dict[str, str]:
    return {**os.environ, "OPENCLAW_HOME": str(home), "DATABASE_URL": db_url}


def test_chat_handles_help_and_exit_itself(fake: FakeLlm, db_url: str, isolated_environment: Path) -> None:
    result = subprocess.run(
        [*OPENCLAW, "chat"],
        input="/help\n/exit\n",
        env=_env(isolated_environment, db_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "/exit, /quit" in result.stdout and fake.requests == []


def _stalling(text: str) -> Step:
    """A stream that says `text` and then waits for ever."""
    return Step(sse=[chunk(text)], stall_after=1)


@pytest.mark.slow
def test_ctrl_c_stops_an_agent_turn_and_logs_the_attempt(
    cli: Cli, fake: FakeLlm, db_url: str, isolated_environment: Path
) -> None:
    fake.then(_stalling("half an ans"))
    proc = interruptible([*OPENCLAW, "agent", "-m", "hi"], _env(isolated_environment, db_url))
    output = Output(proc.stdout)
    wait_for(lambda: output.shows("half an ans"), process=proc, what="the streamed start of the answer")
    ctrl_c(proc)
    os.set_blocking(output.fd, True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert (output.text + out).endswith("half an ans\n")  # the prompt starts on a line of its own
    assert err.strip().splitlines()[-1] == "openclaw: error: interrupted", err
    calls = json.loads(cli("logs", "--json").stdout)
    assert len(calls) == 1 and calls[0]["error"] == "cancelled", calls
    assert calls[0]["response_content"] == "half an ans"


@pytest.mark.slow
def test_ctrl_c_in_chat_stops_the_answer_not_the_chat(
    fake: FakeLlm, db_url: str, isolated_environment: Path
) -> None:
    fake.then(_stalling("a very long"), Step(sse=answer("second answer")))
    proc = interruptible([*OPENCLAW, "chat"], _env(isolated_environment, db_url), stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("tell me everything\n")
    proc.stdin.flush()
    output = Output(proc.stdout)
    wait_for(lambda: output.shows("a very long"), process=proc, what="the first answer streaming")
    ctrl_c(proc)
    # The prompt comes back on a line of its own, not glued to the half answer.
    wait_for(lambda: output.shows("a very long\nyou> "), process=proc, what="the prompt after Ctrl-C")
    proc.stdin.write("and now?\n/exit\n")
    proc.stdin.flush()
    os.set_blocking(output.fd, True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "second answer" in output.text + out and "(stopped)" in err


@pytest.mark.embedded
def test_ctrl_c_during_the_first_initdb_is_one_line(isolated_environment: Path) -> None:
    env = {**os.environ, "OPENCLAW_HOME": str(isolated_environment)}
    env.pop("DATABASE_URL", None)
    pgdata = isolated_environment / "pgdata"
    proc = interruptible([*OPENCLAW, "db", "status"], env)
    try:

        def initdb_runs() -> bool:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    args = cmdline.read_bytes().split(b"\0")
                except OSError:
                    continue
                if args and args[0].endswith(b"/initdb") and str(pgdata).encode() in args:
                    return True
            return False

        wait_for(initdb_runs, process=proc, interval_s=0.005, what="initdb of the fresh home")
        ctrl_c(proc)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and err.strip() == "openclaw: error: interrupted", err
    finally:
        proc.kill()
        proc.wait()
        stop_embedded(pgdata)


def test_sqlite_stays_an_explicit_choice(
    cli: Cli, fake: FakeLlm, monkeypatch: pytest.MonkeyPatch, isolated_environment: Path
) -> None:
    monkeypatch.setenv("OPENCLAW_SESSIONS_BACKEND", "sqlite")
    fake.then(Step(sse=answer("kept in the file")))
    assert cli("agent", "-m", "hi").exit_code == 0
    with sqlite3.connect(sessions_db_path(isolated_environment, "main")) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (2,)
    assert json.loads(cli("sessions", "list", "--from", "postgres", "--json").stdout) == []


def test_mcp_call_prints_what_the_assistant_gets(cli: Cli) -> None:
    cli("issues", "add", "disk fills up", "--severity", "high", "--component", "infra")
    shown = cli("mcp", "call", "open_issues")
    assert shown.exit_code == 0, shown.stderr
    assert "disk fills up" in shown.stdout
    data = json.loads(cli("mcp", "call", "query", "sql=SELECT 40 + 2 AS answer", "--json").stdout)
    assert data["rows"] == [{"answer": 42}] or data["rows"] == [[42]], data
    assert "search_sessions" in {t["name"] for t in json.loads(cli("mcp", "tools", "--json").stdout)}
    unknown = cli("mcp", "call", "drop_everything")
    assert unknown.exit_code == 2 and "no tool 'drop_everything'" in unknown.stderr
    assert cli("mcp", "call", "open_issues", "oops").exit_code == 2


def gateway_log_until(text: str, home: Path, db_url: str, tmp_path: Path) -> str:
    """Start a real gateway, wait until its log shows `text`, stop it; what it had logged."""
    from tests.test_gateway import start_gateway

    config = tmp_path / "gateway.json"
    config.write_text("{}")
    proc, _ = start_gateway(config, home, db_url)
    try:
        assert proc.stderr is not None
        output = Output(proc.stderr)
        wait_for(lambda: output.shows(text), process=proc, what=f"{text!r} in the gateway's log")
    finally:
        proc.terminate()
        proc.communicate(timeout=120)
    return output.text


@pytest.mark.slow
def test_the_gateway_says_once_which_session_files_postgres_lacks(
    db_url: str, isolated_environment: Path, tmp_path: Path
) -> None:
    path = _legacy_file(isolated_environment)
    logged = gateway_log_until("openclaw migrate-sessions", isolated_environment, db_url, tmp_path)
    [line] = [line for line in logged.splitlines() if "not in Postgres" in line]
    assert str(path) in line and "1 session" in line


def test_an_embedded_server_that_cannot_start_names_no_missing_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("OPENCLAW_HOME", str(tmp_path / "file" / "home"))
    result = Cli(capsys, None)("db", "status")
    assert result.exit_code == 1 and "could not start the embedded PostgreSQL" in result.stderr
    assert "server log" not in result.stderr  # initdb never ran: there is no log to read


@pytest.mark.slow
def test_db_status_names_rows_waiting_for_another_database_and_adopts_an_old_outbox(
    cli: Cli, fake: FakeLlm, db_url: str, isolated_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from openclaw.db.records import to_payload
    from openclaw.llm.records import LLM_CALL, LlmCall
    from openclaw.outbox import Spool
    from openclaw.outbox.targets import ADOPT_COMMAND

    fake.then(Step(sse=answer("while elsewhere")))
    elsewhere = Cli(capsys, "postgresql://openclaw@127.0.0.1:1/elsewhere")
    assert elsewhere("agent", "-m", "hi").exit_code == 0
    status = cli("db", "status")
    assert "dbname=elsewhere" in status.stderr and "they ship when openclaw points at" in status.stderr
    [other] = json.loads(cli("db", "status", "--json").stdout)["other_outboxes"]
    assert other["pending"] > 0 and not other["legacy"]

    legacy = Spool(isolated_environment / "outbox" / "spool.db")  # an earlier openclaw's, one per home
    legacy.append(LLM_CALL, to_payload(LlmCall(model="old")))
    legacy.close()
    assert ADOPT_COMMAND in cli("db", "status").stderr
    adopted = cli("db", "adopt-outbox")
    assert adopted.exit_code == 0 and adopted.stdout.startswith("adopted 1 waiting"), adopted.stderr
    assert cli("db", "adopt-outbox").stdout.startswith("nothing to adopt")
    assert ADOPT_COMMAND not in cli("db", "status").stderr


@pytest.mark.slow
def test_the_gateway_names_a_preferred_model_that_is_not_configured(
    fake: FakeLlm, db_url: str, isolated_environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL", "fake/m2")
    logged = gateway_log_until("has no model 'm2'", isolated_environment, db_url, tmp_path)
    assert "known models: fake/m1" in logged
