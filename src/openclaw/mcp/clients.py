"""The exact configuration snippet each coding assistant wants (reference mcp.md)."""

from __future__ import annotations

import json
import shlex
from typing import Any

CLIENTS = ("windsurf", "claude-code", "cursor", "vscode")
WHERE = {
    "windsurf": "~/.codeium/windsurf/mcp_config.json",
    "claude-code": "run this, or put the JSON in the project's .mcp.json",
    "cursor": ".cursor/mcp.json in the project, or ~/.cursor/mcp.json",
    "vscode": ".vscode/mcp.json in the project",
}


def snippet(
    client: str,
    *,
    command: str,
    args: list[str],
    env: dict[str, str],
    url: str | None = None,
    token: str | None = None,
) -> str:
    """A stdio entry (command, args, env), or with `url` a remote entry with the token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if client == "claude-code":
        if url:
            header = f" --header {shlex.quote(f'Authorization: Bearer {token}')}" if token else ""
            return f"claude mcp add --transport http openclaw {shlex.quote(url)}{header}"
        env_flags = "".join(f" --env {shlex.quote(f'{k}={v}')}" for k, v in env.items())
        return f"claude mcp add openclaw{env_flags} -- {shlex.join([command, *args])}"
    entry: dict[str, Any]
    if client == "windsurf":
        entry = (
            {"serverUrl": url, "headers": headers} if url else {"command": command, "args": args, "env": env}
        )
        document: dict[str, Any] = {"mcpServers": {"openclaw": entry}}
    elif client == "cursor":
        entry = {"url": url, "headers": headers} if url else {"command": command, "args": args, "env": env}
        document = {"mcpServers": {"openclaw": entry}}
    elif client == "vscode":
        if url:
            entry = {"type": "http", "url": url, "headers": headers}
        else:
            entry = {"type": "stdio", "command": command, "args": args, "env": env}
        document = {"servers": {"openclaw": entry}}
    else:
        raise ValueError(client)
    return json.dumps(document, indent=2)
