from __future__ import annotations

from openclaw.chat import Message, Role, ToolCall
from openclaw.sessions.history import history_window
from openclaw.sessions.keys import like_prefix, matches_prefix, parse_key, rewrite_legacy_key


def test_parse_keys() -> None:
    assert parse_key("tg:main:123:456") == parse_key("tg:main:123:456:3f2a")
    info = parse_key("tg:main:123:-100456")
    assert (info.agent, info.channel, info.user_id) == ("main", "telegram", "123")
    assert parse_key("dc:bot:9:77").channel == "discord"
    assert parse_key("agent:main:cli:0b6e").channel == "cli"
    assert parse_key("cron:main:0b6e").channel == "cron"
    assert parse_key("webhook:main:x").channel == "webhook"
    assert parse_key("subagent:main:x").agent == "main"
    assert parse_key("my-own-webhook-key") == parse_key("tg:x:y")  # unknown shapes: all None


def test_legacy_keys_and_prefixes() -> None:
    assert rewrite_legacy_key("tg:123:456", "main") == "tg:main:0:456"
    assert rewrite_legacy_key("dc:9:77", "bot") == "dc:bot:0:77"
    assert rewrite_legacy_key("tg:main:1:2", "main") == "tg:main:1:2"
    assert like_prefix("tg:main:1:2") == "tg:main:1:2:%"
    assert like_prefix("tg:ma_n:1%") == "tg:ma\\_n:1\\%:%"
    assert matches_prefix("tg:main:1:2:abc", "tg:main:1:2")
    assert matches_prefix("tg:main:1:2", "tg:main:1:2")
    assert not matches_prefix("tg:main:1:23", "tg:main:1:2")


def _text(role: Role, n: int, chars: int = 40) -> Message:
    return Message(role, content=f"{n}:" + "x" * chars)


def test_window_keeps_last_40() -> None:
    messages = [_text(Role.USER if i % 2 == 0 else Role.ASSISTANT, i) for i in range(100)]
    window = history_window(messages)
    assert len(window) == 40 and window[0].content == messages[60].content


def test_window_token_budget() -> None:
    # each message: 4000 chars / 4 + 4 = 1004 tokens; 11 fit in 12,000, 12 do not
    messages = [_text(Role.USER if i % 2 == 0 else Role.ASSISTANT, i, 3998) for i in range(20)]
    window = history_window(messages)
    assert len(window) == 11 and window[-1] is messages[-1]
    assert history_window(messages, token_budget=1004) == [messages[-1]]
    assert history_window(messages, token_budget=1003) == []


def test_window_drops_empty_users_and_broken_starts() -> None:
    call = ToolCall("c1", "exec", "{}")
    other = ToolCall("c2", "read_file", "{}")
    messages = [
        Message.tool_result("c0", "orphan result"),  # its call is not in the window
        Message.assistant(None, tool_calls=(call, other)),  # c2 never answered
        Message.tool_result("c1", "ok"),
        Message.user("   "),
        Message.user("hello"),
        Message.assistant("hi"),
    ]
    window = history_window(messages)
    assert [m.content for m in window] == ["hello", "hi"]
    complete = [
        Message.assistant(None, tool_calls=(call,)),
        Message.tool_result("c1", "ok"),
        Message.assistant("done"),
    ]
    assert history_window(complete) == complete


def test_window_cut_inside_a_tool_exchange() -> None:
    call = ToolCall("c1", "exec", "{}")
    messages = [Message.user("q")] + [
        Message.assistant(None, tool_calls=(call,)),
        Message.tool_result("c1", "r"),
    ] * 20
    window = history_window(messages)  # 41 messages: the user one falls out
    assert window[0].role is Role.ASSISTANT and len(window) == 40
    window = history_window(messages, max_messages=39)  # starts on a tool result: dropped
    assert window[0].role is Role.ASSISTANT and len(window) == 38
