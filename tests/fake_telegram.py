"""A real HTTP server on loopback speaking enough of the Telegram Bot API for the gateway:
getMe, deleteWebhook, getUpdates (long polling), sendMessage, editMessageText."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import parse_qsl


class FakeBotApi:
    def __init__(self) -> None:
        self.base_url = ""
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # messages the bot sent, edits applied in place
        self.calls: list[str] = []
        self._next_update = 1
        self._next_message = 100
        self._arrived: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def user_says(self, user_id: int, chat_id: int, text: str) -> None:
        """Queue an incoming message (thread-safe: the server runs in its own loop)."""
        update = {
            "update_id": self._next_update,
            "message": {
                "message_id": self._next_update,
                "date": int(time.time()),
                "text": text,
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": user_id, "is_bot": False, "first_name": "User", "username": f"user{user_id}"},
            },
        }
        self._next_update += 1
        self.updates.append(update)
        if self._loop is not None and self._arrived is not None:
            self._loop.call_soon_threadsafe(self._arrived.set)

    def texts(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if m["chat"]["id"] == chat_id]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._loop, self._arrived = asyncio.get_running_loop(), asyncio.Event()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        params: dict[str, Any] = {}
        if body.startswith(b"{"):
            params = json.loads(body)
        else:
            for key, value in parse_qsl(body.decode()):
                try:
                    params[key] = json.loads(value)
                except json.JSONDecodeError:
                    params[key] = value
        method = scope["path"].rsplit("/", 1)[-1]
        self.calls.append(method)
        result = await self.answer(method, params)
        payload = json.dumps({"ok": True, "result": result}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def answer(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return {"id": 1, "is_bot": True, "first_name": "Fake", "username": "fake_bot"}
        if method in ("deleteWebhook", "setMyCommands", "sendChatAction"):
            return True
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            deadline = time.monotonic() + min(float(params.get("timeout") or 0), 2.0)
            while True:
                pending = [u for u in self.updates if u["update_id"] >= offset]
                if pending or time.monotonic() >= deadline:
                    return pending
                assert self._arrived is not None
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - time.monotonic()))
        if method == "sendMessage":
            self._next_message += 1
            message = {
                "message_id": self._next_message,
                "date": int(time.time()),
                "text": params["text"],
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "from": {"id": 1, "is_bot": True, "first_name": "Fake"},
            }
            self.sent.append(message)
            return message
        if method == "editMessageText":
            for message in self.sent:
                if message["message_id"] == int(params["message_id"]):
                    message["text"] = params["text"]
                    return message
        return True
