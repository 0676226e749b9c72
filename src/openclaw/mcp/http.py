"""Streamable HTTP for remote assistants: loopback by default, a bearer token always.

The token lives in `$OPENCLAW_HOME/mcp-token` (mode 0600, made on first use) unless
OPENCLAW_MCP_TOKEN gives one; `openclaw mcp config --http` prints it into the snippet.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_ENV = "OPENCLAW_MCP_TOKEN"
DEFAULT_PORT = 8765


def mcp_token(home: Path) -> str:
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    path = home / "mcp-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


class BearerToken:
    """Refuse every HTTP request without `Authorization: Bearer <token>`. The scheme is
    case-insensitive (RFC 9110, 11.1: `bearer` and `BEARER` are the same scheme, and some
    clients send them), the token is compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    def _authorized(self, header: bytes) -> bool:
        scheme, _, credentials = header.partition(b" ")
        # Compared even when the scheme is wrong, so that the time taken says nothing.
        matches = hmac.compare_digest(credentials.strip(b" \t"), self.expected)
        return scheme.lower() == b"bearer" and matches

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not self._authorized(given):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send(
                    {"type": "http.response.body", "body": b'{"error": "missing or invalid bearer token"}'}
                )
                return
        await self.app(scope, receive, send)
