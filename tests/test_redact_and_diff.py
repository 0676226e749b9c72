from __future__ import annotations

import json
from pathlib import Path

import pytest

from openclaw.context.diff import ChangeKind, changed_top_level_keys, describe_change, diff
from openclaw.context.redact import Redactor, is_redacted
from openclaw.errors import ConfigError
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
    lines = [describe_change(c) for c in diff(old, new)]
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


TRICKY = {
    "database": {"url": "host=db user=openclaw password=hunter2 dbname=openclaw"},
    "replica": "postgresql://u@h/db?sslmode=require&password=hunter3",
    "openaiKey": "plain-openai",
    "accessKey": "plain-access",
    "signingKey": "plain-signing",
    "anthropic_key": "plain-anthropic",
    "mcp_servers": [
        {"command": "brave", "args": ["--api-key", "BSA-plain-brave", "--token=plain-flag", "-v"]}
    ],
    "hooks": {
        "discord": "https://discord.com/api/webhooks/1234567/abcdefghijklmnopqrstuvwxyz012345",
        "telegram": "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq/sendMessage",
    },
    "ENV": {"X": "plain-env-upper"},
    "environment": {"Y": "plain-environment"},
    "Channels": {"slack": {"x": "plain-channels"}},
    "gateway": {"auth": ["admin", "plain-auth-list"]},
    "notes": "use sk-proj-abcdefghijklmnopqrstuv or ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    " or 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq",
    "keep": {
        "maxTokens": 4096,
        "contextTokens": 128000,
        "tokenBudget": 12000,
        "sessionKey": "tg:main:1:2",
        "publicKey": "ssh-ed25519 AAAA",
        "keyboard": "dvorak",
        "monkey": "george",
    },
}
TRICKY_SECRETS = [
    "hunter2",
    "hunter3",
    "plain-",
    "abcdefghijklmnopqrstuvwxyz012345",
    "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq",
    "sk-proj-abcdefghijklmnopqrstuv",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
]


def test_secrets_in_unusual_places(tmp_path: Path) -> None:
    out = Redactor.for_home(tmp_path).redact(TRICKY)
    text = json.dumps(out)
    for secret in TRICKY_SECRETS:
        assert secret not in text, secret
    assert out["keep"] == TRICKY["keep"]
    assert out["mcp_servers"][0]["args"][0] == "--api-key" and out["mcp_servers"][0]["args"][3] == "-v"
    assert out["database"]["url"].startswith("host=db user=openclaw password=[redacted:")
    assert out["hooks"]["telegram"].endswith("/sendMessage")


def test_redaction_is_idempotent(tmp_path: Path) -> None:
    redactor = Redactor.for_home(tmp_path)
    once = redactor.redact(MANUAL)
    assert redactor.redact(once) == once


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        markers = pool.map(_marker_in, [str(tmp_path)] * 12)
    assert len(set(markers)) == 1


def _marker_in(home: str) -> str:
    return Redactor.for_home(Path(home)).marker("hunter2")


def test_damaged_or_unreadable_key(tmp_path: Path) -> None:
    (tmp_path / "redaction.key").write_text("")
    with pytest.raises(ConfigError, match="is damaged"):
        Redactor.for_home(tmp_path)
    (tmp_path / "redaction.key").write_text("zz")
    with pytest.raises(ConfigError, match="is damaged"):
        Redactor.for_home(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot (create|read)"):
        Redactor.for_home(tmp_path / "redaction.key" / "below-a-file")


def test_secrets_the_red_team_found_are_redacted(tmp_path: Path) -> None:
    config = {
        "passphrase": "hunter2-pass",
        "privkey": "-----BEGIN PRIVATE KEY-----MIIEvQ-----END PRIVATE KEY-----",
        "tls": {"pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB\n-----END RSA PRIVATE KEY-----"},
        "headers": ["Authorization: Bearer abcdefghijkl", "Basic dXNlcjpwYXNzd29yZA=="],
        "session": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "alerts": "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
        "download": "https://bucket.example/file?expires=1&sig=abcdef123456",
        "otp_seed": "JBSWY3DPEHPK3PXP",
        "signing_salt": "pepper",
        "pin": "1234",
        "keep": {"maxTokens": 4096, "spinner": "dots", "footprint": "small"},
        # issue 12
        "provider": {"headers": {"X-Custom-Auth": "custom-SECRET-abc", "Accept": "text/plain"}},
        "context": "the staging password is hunter2x",
    }
    out = Redactor.for_home(tmp_path).redact(config)
    assert out["provider"]["headers"]["Accept"] == "text/plain"
    assert out["context"].startswith("the staging password is [redacted:")
    text = json.dumps(out)
    for secret in (
        "hunter2",
        "MIIEvQ",
        "MIIEpAIB",
        "abcdefghijkl",
        "dXNlcjpw",
        "eyJzdWIi",
        "XXXXXXXX",
        "abcdef123456",
        "JBSWY3DP",
        "pepper",
        "1234",
        "custom-SECRET",
        "hunter2x",
    ):
        assert secret not in text, secret
    assert out["keep"] == config["keep"]


def test_context_values_that_look_like_credentials() -> None:
    from openclaw.context.redact import looks_secret

    assert looks_secret("ＡＰＩ_KEY", "x")  # full-width letters
    assert looks_secret("notes", {"deploy": "use sk-abcdefghijklmnopqrstuv"})
    assert looks_secret("servers", [{"name": "db", "password": "pw"}])
    assert not looks_secret("current_focus", {"task": "postgres migration", "phase": 3})
    assert not looks_secret("max_tokens", 4096)
