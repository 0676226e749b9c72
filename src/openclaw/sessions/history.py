"""The history window replayed to the model, by openclaw-rs's rules (reference §1).

1. Keep the last `max_messages` (40) messages.
2. Walk back from the newest within a token budget (12,000), a message costing
   characters / 4 + 4 (content, and tool-call JSON for assistant messages).
3. Drop empty user messages, tool results orphaned at the start of the window (their
   assistant call fell outside it), and a leading assistant message whose tool calls
   have no results in the window.
"""

from __future__ import annotations

from collections.abc import Sequence

from openclaw.chat import Message, Role

MAX_MESSAGES = 40
TOKEN_BUDGET = 12_000
PER_MESSAGE_TOKENS = 4


def estimate_tokens(message: Message) -> int:
    chars = len(message.content or "") + len(message.tool_calls_json() or "")
    return chars // 4 + PER_MESSAGE_TOKENS


def history_window(
    messages: Sequence[Message], *, max_messages: int = MAX_MESSAGES, token_budget: int = TOKEN_BUDGET
) -> list[Message]:
    recent = list(messages[-max_messages:]) if max_messages > 0 else []
    start = len(recent)
    spent = 0
    while start > 0:
        cost = estimate_tokens(recent[start - 1])
        if spent + cost > token_budget:
            break
        spent += cost
        start -= 1
    window = [m for m in recent[start:] if not (m.role is Role.USER and not (m.content or "").strip())]
    return _trim_broken_start(window)


def _trim_broken_start(window: list[Message]) -> list[Message]:
    while window:
        first = window[0]
        if first.role is Role.TOOL:
            window = window[1:]  # its assistant tool call is outside the window
            continue
        if first.role is Role.ASSISTANT and first.tool_calls:
            wanted = {call.id for call in first.tool_calls}
            answered = {m.tool_call_id for m in window[1:] if m.role is Role.TOOL}
            if not wanted <= answered:
                window = window[1:]
                continue
        break
    return window
