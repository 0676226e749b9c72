from __future__ import annotations

from pathlib import Path

from openclaw.cli.config_cmd import format_change
from openclaw.context.diff import ChangeKind, changed_top_level_keys, diff
from openclaw.context.redact import Redactor, is_redacted
from tests.samples import GATEWAY, MANUAL, SECRETS


def test_secrets_are_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    redactor = Redactor.for_home(tmp_path)
    text = repr(redactor.redact(MANUAL)) + repr(redactor.redact(GATEWAY))
    for secret in SECRETS:
        assert secret not in text
    out = redactor.redact(MANUAL)
    assert out["models"]["providers"]["moonshot"]["baseUrl"] == "https://api.moonshot.ai/v1"
    assert out["models"]["providers"]["moonshot"]["models"][0]["contextWindow"] == 128000
    assert out["gateway"]["auth"]["mode"] == "token" and is_redacted(out["gateway"]["auth"]["token"])
    assert out["channels"]["telegram"]["enabled"] is True
    assert is_redacted(out["env"]["PORT"])
    assert out["tools"]["db"].startswith("postgresql://openclaw:[redacted:")
    assert out["tools"]["db"].endswith("@127.0.0.1:5432/openclaw")
    gw = redactor.redact(GATEWAY)
    assert gw["telegram"]["allowed_user_ids"] == [123]
    assert gw["mcp_servers"][0]["command"] == "npx" and is_redacted(
        gw["mcp_servers"][0]["env"]["GITHUB_TOKEN"]
    )
    assert gw["agent"] == GATEWAY["agent"]


def test_markers_are_stable_change_with_the_secret_and_depend_on_the_key(tmp_path: Path) -> None:
    redactor = Redactor.for_home(tmp_path / "a")
    same = Redactor.for_home(tmp_path / "a")  # key file is reused
    other = Redactor.for_home(tmp_path / "b")
    assert redactor.marker("s3cret") == same.marker("s3cret")
    assert redactor.marker("s3cret") != redactor.marker("s3cret!")
    assert redactor.marker("s3cret") != other.marker("s3cret")
    assert (tmp_path / "a" / "redaction.key").stat().st_mode & 0o777 == 0o600


def test_changed_top_level_keys() -> None:
    old = {"a": 1, "b": {"x": 1}, "c": 3}
    new = {"b": {"x": 2}, "a": 1, "d": 4}
    assert changed_top_level_keys(old, new) == ["b", "d", "c"]
    assert changed_top_level_keys({}, {"a": 1}) == ["a"]


def test_nested_diff_is_readable() -> None:
    old = {
        "models": {
            "providers": {"p": {"baseUrl": "a", "apiKey": "[redacted:111]"}},
            "fallbacks": ["p/a", "p/b"],
        },
        "gone": True,
        "flag": 1,
    }
    new = {
        "models": {
            "providers": {"p": {"baseUrl": "b", "apiKey": "[redacted:222]", "new": 1}},
            "fallbacks": ["p/a"],
        },
        "flag": True,
        "odd key": 1,
    }
    lines = [format_change(c) for c in diff(old, new)]
    assert lines == [
        '~ models.providers.p.baseUrl: "a" -> "b"',
        "~ models.providers.p.apiKey: (secret changed)",
        "+ models.providers.p.new: 1",
        '- models.fallbacks[1]: "p/b"',
        "~ flag: 1 -> true",
        '+ ["odd key"]: 1',
        "- gone: true",
    ]
    assert all(c.kind is not ChangeKind.CHANGED for c in diff(new, new)) and diff(new, new) == []
