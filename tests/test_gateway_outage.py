"""A real gateway process serving Telegram while Postgres goes away mid-traffic and comes
back: every message, LLM call, metrics snapshot and cron execution arrives, once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import SupportsIndex

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.fake_llm import FakeLlm, Step, chunk, completion, serve
from tests.fake_telegram import FakeBotApi
from tests.sessions_support import TcpProxy
from tests.test_gateway import configured, fake, proxy, start_gateway  # noqa: F401  (fixtures)
from tests.waiting import wait_for


class Answers(list[Step]):
    """Every request is answered, streamed (chats) or not (cron), whatever the order."""

    def __init__(self, model: FakeLlm) -> None:
        super().__init__()
        self.fake = model

    def __bool__(self) -> bool:
        return True

    def pop(self, index: SupportsIndex = -1) -> Step:
        n = len(self.fake.requests)
        if self.fake.requests[-1].get("stream"):
            return Step(sse=[chunk(f"answer {n}"), chunk(finish="stop"), "[DONE]"])
        return Step(body=completion(f"answer {n}"))


def _last_cron_run_ms(jobs: Path) -> float:
    return float(json.loads(jobs.read_text())["jobs"][0].get("state", {}).get("lastRunAtMs", 0))


@pytest.mark.slow
def test_postgres_outage_during_telegram_traffic_loses_and_duplicates_nothing(
    configured: Path,  # noqa: F811
    fake: FakeLlm,  # noqa: F811
    db_url: str,
    isolated_environment: Path,
    proxy: tuple[TcpProxy, asyncio.AbstractEventLoop],  # noqa: F811
) -> None:
    tcp, loop = proxy
    through_proxy = make_conninfo(db_url, host="127.0.0.1", port=str(tcp.port))
    jobs = isolated_environment / "cron" / "jobs.json"
    jobs.parent.mkdir()
    jobs.write_text(
        json.dumps(
            {
                "version": 1,
                "jobs": [
                    {
                        "id": "tick",
                        "name": "tick",
                        "schedule": {"kind": "every", "everyMs": 1500},
                        "payload": {"kind": "agentTurn", "message": "cron says hi"},
                    }
                ],
            }
        )
    )
    fake.script = Answers(fake)  # type: ignore[assignment]
    with serve(FakeBotApi()) as api:  # type: ignore[arg-type]
        config = json.loads(configured.read_text())
        config["telegram"] = {"bot_token": "123:fake", "allowed_user_ids": [42], "api_base": api.base_url}
        configured.write_text(json.dumps(config))
        proc, _ = start_gateway(configured, isolated_environment, through_proxy)
        try:
            chats = [501, 502, 503, 504, 505, 506]
            api.user_says(42, chats[0], "before the outage")
            wait_for(lambda: api.texts(chats[0]))
            loop.call_soon_threadsafe(tcp.cut)  # Postgres goes away mid-traffic
            cut_ms = time.time() * 1000
            for chat in chats[1:4]:
                api.user_says(42, chat, f"during the outage {chat}")
                wait_for(lambda chat=chat: "".join(api.texts(chat)[:1]).startswith("answer"))
            wait_for(lambda: _last_cron_run_ms(jobs) >= cut_ms)  # a cron run (and snapshots) while down
            loop.call_soon_threadsafe(tcp.restore)
            restored_ms = time.time() * 1000
            for chat in chats[4:]:
                api.user_says(42, chat, f"after the outage {chat}")
                wait_for(lambda chat=chat: "".join(api.texts(chat)[:1]).startswith("answer"))
            wait_for(lambda: _last_cron_run_ms(jobs) >= restored_ms)  # and one after
        except AssertionError as failure:
            proc.kill()
            raise AssertionError(
                f"{failure}; the gateway said: {proc.communicate(timeout=30)[1][-2000:]}"
            ) from None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with psycopg.connect(db_url) as conn:
        sessions = conn.execute(
            "SELECT count(*) FROM sessions WHERE session_key LIKE 'tg:main:42:%'"
        ).fetchone()
        chat_messages = conn.execute(
            "SELECT count(*), count(DISTINCT m.uid) FROM messages m JOIN sessions s ON s.id = m.session_id"
            " WHERE s.session_key LIKE 'tg:%'"
        ).fetchone()
        calls = conn.execute("SELECT count(*), count(DISTINCT id) FROM llm_calls").fetchone()
        runs = conn.execute(
            "SELECT count(*), count(DISTINCT uid), count(*) FILTER (WHERE status = 'success'),"
            " count(*) FILTER (WHERE status = 'running') FROM cron_executions"
        ).fetchone()
        snapshots = conn.execute(
            "SELECT count(*), count(DISTINCT uid), max(telegram_requests) FROM metrics_snapshots"
        ).fetchone()
    assert sessions == (6,)
    assert chat_messages == (12, 12)  # each chat: the user's text and the answer, once
    assert runs is not None and runs[0] == runs[1] and runs[2] >= 1 and runs[3] == 0  # once each, all ended
    # One call per chat turn and per cron run (a run cut short by the shutdown may have none).
    assert calls is not None and calls[0] == calls[1] and 6 + runs[2] <= calls[0] <= 6 + runs[0]
    assert (
        snapshots is not None and snapshots[0] == snapshots[1] and snapshots[2] == 6
    )  # the last one is final
