"""Read-only tools over the context tables, so the bot can answer "what's the current focus?"."""

from __future__ import annotations

import json
from typing import Any

from openclaw.agent.tools import Tool
from openclaw.context.issues import list_issues
from openclaw.context.kv import get_value, list_values
from openclaw.context.tasks import list_tasks
from openclaw.db.database import Database
from openclaw.errors import NotFoundError
from openclaw.llm.types import ToolSpec

_NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}, "required": []}


def context_tools(database: Database) -> list[Tool]:
    async def open_issues(_: dict[str, Any]) -> str:
        async with database.connection(wait_s=5) as conn:
            issues = await list_issues(conn)
        return (
            "\n".join(
                f"#{i.id} [{i.severity}] {i.title}"
                + (f" (workaround: {i.workaround})" if i.workaround else "")
                for i in issues
            )
            or "no open issues"
        )

    async def recent_tasks(args: dict[str, Any]) -> str:
        async with database.connection(wait_s=5) as conn:
            tasks = await list_tasks(conn, limit=min(int(args.get("limit") or 10), 50))
        return (
            "\n".join(f"{t.completed_at:%Y-%m-%d} [{t.category or '-'}] {t.description}" for t in tasks)
            or "none"
        )

    async def project_context(args: dict[str, Any]) -> str:
        key = args.get("key")
        async with database.connection(wait_s=5) as conn:
            if key:
                try:
                    return json.dumps((await get_value(conn, str(key))).value, ensure_ascii=False)
                except NotFoundError as exc:
                    return str(exc)
            entries = await list_values(conn)
        return "\n".join(f"{e.key}: {json.dumps(e.value, ensure_ascii=False)}" for e in entries) or "empty"

    return [
        Tool(
            ToolSpec("open_issues", "Known open issues, most severe first, with workarounds.", _NO_ARGS),
            open_issues,
        ),
        Tool(
            ToolSpec(
                "recent_tasks",
                "What was done lately (the task log), newest first.",
                {"type": "object", "properties": {"limit": {"type": "integer"}}, "required": []},
            ),
            recent_tasks,
        ),
        Tool(
            ToolSpec(
                "project_context",
                "The project context store, e.g. key current_focus.",
                {"type": "object", "properties": {"key": {"type": "string"}}, "required": []},
            ),
            project_context,
        ),
    ]
