"""A real HTTP and websocket server on loopback speaking enough of Discord (REST v10 and the
gateway) for discord.py: the login calls, sending and editing messages, and a gateway that
says HELLO, answers heartbeats, IDENTIFY (READY) and RESUME (RESUMED).

It runs its own event loop in a thread, so that blocking tests (a gateway subprocess) and
async tests alike can drive it. discord.py asks for `compress=zlib-stream`, but it only
decompresses binary frames: text frames of plain JSON are read as they are.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.waiting import DEADLINE_S

BOT_ID = 900
MESSAGE_CONTENT_INTENT = 1 << 15


def _user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": bot,
    }


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body only when its content type is exactly application/json
    # (aiohttp's json_response adds "; charset=utf-8").
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


class FakeDiscord:
    def __init__(self, token: str = "fake-token") -> None:
        self.token = token
        self.base_url = ""  # the REST base, what `discord.api_base` is set to
        self.ws_url = ""
        self.sent: list[dict[str, Any]] = []  # messages the bot sent, edits applied in place
        self.actions: list[tuple[str, int, str]] = []  # ("send" | "edit", channel id, text)
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self._ids = itertools.count(10_000)
        self._seq = 0
        self._ws: web.WebSocketResponse | None = None
        self._request: web.Request | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # What a test does

    def user_says(
        self, user_id: int, channel_id: int, text: str, *, guild_id: int | None = None, bot: bool = False
    ) -> None:
        """A MESSAGE_CREATE on the open gateway connection, in a DM unless `guild_id` is given."""
        message = self._message(channel_id, _user(user_id, f"user{user_id}", bot=bot), text)
        if guild_id is not None:
            message["guild_id"] = str(guild_id)
        self._call(self._dispatch("MESSAGE_CREATE", message))

    def drop(self, code: int | None = None) -> None:
        """Close the gateway connection with this close code, or without a close frame, as
        a network failure would."""

        def cut() -> None:
            if self._request is not None and self._request.transport is not None:
                self._request.transport.close()

        assert self.loop is not None
        if code is None:
            self.loop.call_soon_threadsafe(cut)
        else:
            assert self._ws is not None
            asyncio.run_coroutine_threadsafe(self._ws.close(code=code), self.loop)

    def texts(self, channel_id: int) -> list[str]:
        return [m["content"] for m in self.sent if int(m["channel_id"]) == channel_id]

    def actions_in(self, channel_id: int) -> list[tuple[str, str]]:
        return [(what, text) for what, channel, text in self.actions if channel == channel_id]

    # The server

    def _call(self, coroutine: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=DEADLINE_S)

    def _message(self, channel_id: int, author: dict[str, Any], content: str) -> dict[str, Any]:
        return {
            "id": str(next(self._ids)),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
        }

    async def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        assert self._ws is not None, "discord.py is not connected"
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/api/v10/users/@me", self._me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        app.router.add_get("/api/v10/gateway", self._gateway_url)
        app.router.add_get("/api/v10/gateway/bot", self._gateway_url)
        app.router.add_post("/api/v10/channels/{channel}/messages", self._send)
        app.router.add_patch("/api/v10/channels/{channel}/messages/{message}", self._edit)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/api/") and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _me(self, _: web.Request) -> web.Response:
        return _json(_user(BOT_ID, "fakebot", bot=True))

    async def _application(self, _: web.Request) -> web.Response:
        return _json(
            {
                "id": str(BOT_ID),
                "name": "fakebot",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": _user(1, "owner"),
                "verify_key": "0" * 64,
                "flags": 0,
            }
        )

    async def _gateway_url(self, _: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.ws_url, "shards": 1, "session_start_limit": limit})

    async def _send(self, request: web.Request) -> web.Response:
        channel = int(request.match_info["channel"])
        content = (await request.json())["content"]
        message = self._message(channel, _user(BOT_ID, "fakebot", bot=True), content)
        self.sent.append(message)
        self.actions.append(("send", channel, content))
        return _json(message)

    async def _edit(self, request: web.Request) -> web.Response:
        channel = int(request.match_info["channel"])
        content = (await request.json())["content"]
        for message in self.sent:
            if message["id"] == request.match_info["message"]:
                message["content"] = content
                self.actions.append(("edit", channel, content))
                return _json(message)
        return _json({"message": "Unknown Message", "code": 10008}, status=404)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws, self._request = ws, request
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            op, data = payload["op"], payload["d"]
            if op == 1:
                await ws.send_json({"op": 11})
            elif op in (2, 6) and data["token"] != self.token:
                await ws.close(code=4004, message=b"Authentication failed.")
            elif op == 2:
                self.identifies.append(data)
                ready = {
                    "v": 10,
                    "user": _user(BOT_ID, "fakebot", bot=True),
                    "guilds": [],
                    "private_channels": [],
                    "session_id": f"session-{len(self.identifies)}",
                    "resume_gateway_url": self.ws_url,
                    "application": {"id": str(BOT_ID), "flags": 0},
                }
                await self._dispatch("READY", ready)
            elif op == 6:
                self.resumes.append(data)
                await self._dispatch("RESUMED", {})
        return ws


@contextmanager
def serve_discord(token: str = "fake-token") -> Iterator[FakeDiscord]:
    fake = FakeDiscord(token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fake.base_url = f"http://127.0.0.1:{port}/api/v10"
    fake.ws_url = f"ws://127.0.0.1:{port}/gateway"
    loop = asyncio.new_event_loop()
    fake.loop = loop
    runner = web.AppRunner(fake.app(), shutdown_timeout=1)
    started = threading.Event()

    def run() -> None:
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(timeout=DEADLINE_S), "the fake Discord did not start"
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
        sock.close()
