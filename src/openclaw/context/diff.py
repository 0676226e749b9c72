"""Differences between two JSON documents, for `config diff` and `changed_keys`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from openclaw.context.redact import is_redacted

_MISSING: Any = object()


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Change:
    path: str  # e.g. models.providers.openai.baseUrl, agents.list[0].name
    kind: ChangeKind
    old: Any = None
    new: Any = None


def changed_top_level_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Top-level keys added, removed or changed, in the new document's order, removed last."""
    changed = [k for k in new if k not in old or old[k] != new[k]]
    return changed + [k for k in old if k not in new]


def diff(old: Any, new: Any) -> list[Change]:
    changes: list[Change] = []
    _diff(old, new, "", changes)
    return changes


def _join(path: str, key: str) -> str:
    if key.isidentifier() or key.replace("-", "_").isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in new:
            _diff(old.get(key, _MISSING), new[key], _join(path, key), out)
        for key in old:
            if key not in new:
                out.append(Change(_join(path, key), ChangeKind.REMOVED, old=old[key]))
    elif isinstance(old, list) and isinstance(new, list):
        for i, item in enumerate(new):
            _diff(old[i] if i < len(old) else _MISSING, item, f"{path}[{i}]", out)
        for i in range(len(new), len(old)):
            out.append(Change(f"{path}[{i}]", ChangeKind.REMOVED, old=old[i]))
    elif old is _MISSING:
        out.append(Change(path, ChangeKind.ADDED, new=new))
    elif old != new or type(old) is not type(new):
        out.append(Change(path, ChangeKind.CHANGED, old=old, new=new))


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def describe_change(change: Change) -> str:
    """One line per change: `+ path: value`, `- path: value`, `~ path: old -> new`."""
    if change.kind is ChangeKind.ADDED:
        return f"+ {change.path}: {_show(change.new)}"
    if change.kind is ChangeKind.REMOVED:
        return f"- {change.path}: {_show(change.old)}"
    if is_redacted(change.old) and is_redacted(change.new):
        return f"~ {change.path}: (secret changed)"
    return f"~ {change.path}: {_show(change.old)} -> {_show(change.new)}"
