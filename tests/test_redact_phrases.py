"""Secrets that slipped through (issue 12): header maps and lists, password-like phrases in
free text, `NAME=value` assignments; each rule with the values that must survive it, and
the whole way from `openclaw context set` / `config snapshot` to the MCP reader."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp import Client

from openclaw.context.issues import add_issue
from openclaw.context.kv import get_value, set_value
from openclaw.context.redact import Redactor, is_secret_key, looks_secret
from openclaw.context.tasks import log_task
from openclaw.db import DatabaseTarget, TargetSource
from openclaw.mcp.server import create_server
from openclaw.mcp.state import open_state
from tests.conftest import Cli

MARKER = re.compile(r"\[redacted:[0-9a-f]{12}\]")


def shown(text: str) -> str:
    """`text` with every marker written `<R>`, so a table can say where the markers are."""
    return MARKER.sub("<R>", text)


def scrubbed(redactor: Redactor, text: str) -> str:
    """`text` as a config snapshot stores it (under a key that says nothing)."""
    out = redactor.redact({"notes": text})["notes"]
    assert isinstance(out, str)
    return out


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(b"k" * 32)


# (input, expected): a password-like phrase loses its secret word only; the sentence stays.
REDACTED = [
    # the red team's sentence, and the brief's forms
    ("the staging password is hunter2", "the staging password is <R>"),
    ("password: hunter2", "password: <R>"),
    ("pwd=hunter2", "pwd=<R>"),
    ("passphrase hunter2", "passphrase <R>"),
    ("token is abc123", "token is <R>"),
    ("api key: sk-abc", "api key: <R>"),
    ("pass: x", "pass: <R>"),
    ("db pass: Tr0ub4dor&3", "db pass: <R>"),
    # connectors: is / was / are / = / : / => / changed to / is now
    ("the password for the staging db is hunter2", "the password for the staging db is <R>"),
    ("Password for prod: s3cr3t!", "Password for prod: <R>"),
    ("the password was changed to hunter3", "the password was changed to <R>"),
    ("changed the password to Hunter3", "changed the password to <R>"),
    ("the root password is now Xk9-pq", "the root password is now <R>"),
    ("the staging password is correcthorse", "the staging password is <R>"),
    ('password is "correct horse battery staple"', 'password is "<R>"'),
    ("the password is 'hunter2', don't share it", "the password is '<R>', don't share it"),
    ("the staging password is hunter2.", "the staging password is <R>."),
    ("Client secret: 9f8e7d6c", "Client secret: <R>"),
    ("bot token is 1234:abcd", "bot token is <R>"),
    ("credentials: admin/hunter2", "credentials: <R>"),
    ("PIN: 4711", "PIN: <R>"),
    ("the access key is AKIDEXAMPLE1", "the access key is <R>"),
    ("deploy key = dk_live_77", "deploy key = <R>"),
    # several in one text, and on several lines
    ("user: bob\npass: x\nhost: db1", "user: bob\npass: <R>\nhost: db1"),
    ("prod password: a1b2c3, staging password: d4e5f6", "prod password: <R>, staging password: <R>"),
    # other languages
    ("Das Passwort ist hunter2", "Das Passwort ist <R>"),
    ("Kennwort: geheim123", "Kennwort: <R>"),
    ("le mot de passe est hunter2", "le mot de passe est <R>"),
    ("la contraseña es hunter2.", "la contraseña es <R>."),
    ("a senha é hunter2", "a senha é <R>"),
    ("het wachtwoord is hunter2", "het wachtwoord is <R>"),
    ("lösenord: hunter2", "lösenord: <R>"),
    ("пароль: hunter2", "пароль: <R>"),
    # header lines in text
    ("X-Custom-Auth: custom-SECRET-abc", "X-Custom-Auth: <R>"),
    ("X-Api-Key: abc123", "X-Api-Key: <R>"),
    ("X-Auth-Token: tkn-42", "X-Auth-Token: <R>"),
    ("Cookie: session=abc; csrftoken=xyz", "Cookie: <R>"),
    ("Set-Cookie: sid=31d4d96e407aad42; Path=/", "Set-Cookie: <R>"),
    ("Authorization: Token abc123", "Authorization: Token <R>"),
    ("Authorization: Bearer abcdefghijkl", "Authorization: Bearer <R>"),
    # assignments with identifier-like names
    ("export DB_PASSWORD=hunter2", "export DB_PASSWORD=<R>"),
    ("PGPASSWORD=hunter2 psql -h db", "PGPASSWORD=<R> psql -h db"),
    ('GITHUB_TOKEN="gho_16C7e42F292c"', 'GITHUB_TOKEN="<R>"'),
    ('{"api_key": "abc-123-def"}', '{"api_key": "<R>"}'),
    ("apiKey: 0a1b2c3d", "apiKey: <R>"),
    ("spring.datasource.password=hunter2", "spring.datasource.password=<R>"),
    # a token longer than the candidate window is redacted whole, never cut
    ("token: " + "A1" * 400 + " end", "token: <R> end"),
    # the second red team: command lines in notes (curl -u, mysql -p<pw>, sshpass -p)
    (
        "deploy with curl -u admin:Hunter2xyz https://staging/api and mysql -uroot -pHunter2xyz app",
        "deploy with curl -u admin:<R> https://staging/api and mysql -uroot -p<R> app",
    ),
    (
        "rotated creds; the password, as agreed, is Hunter2xyz; sshpass -p Hunter2xyz ssh box",
        "rotated creds; the password, as agreed, is <R>; sshpass -p <R> ssh box",
    ),
    ("curl --user bob:pw123 https://x", "curl --user bob:<R> https://x"),
    ("curl --user=bob:pw123 https://x", "curl --user=bob:<R> https://x"),
    ('curl -u "admin:Hunter2xyz" https://x', 'curl -u "admin:<R>" https://x'),
    ("curl -uadmin:Hunter2xyz https://x", "curl -uadmin:<R> https://x"),
    ("mysqldump -h db -u root -p'Hunter 2' app", "mysqldump -h db -u root -p'<R>' app"),
    ("sshpass -pHunter2xyz ssh box", "sshpass -p<R> ssh box"),
    ("redis-cli -h cache -a Hunter2xyz ping", "redis-cli -h cache -a <R> ping"),
    # compatibility forms and invisible characters: matched folded, replaced as written
    ("ｐａｓｓｗｏｒｄ is Hunter2xyz", "ｐａｓｓｗｏｒｄ is <R>"),
    ("pass\u200bword is hunter2", "pass\u200bword is <R>"),
    ("pass\u00adword: hunter2", "pass\u00adword: <R>"),
    ("ＤＢ＿ＰＡＳＳＷＯＲＤ=hunter2", "ＤＢ＿ＰＡＳＳＷＯＲＤ=<R>"),
    ("ｃｕｒｌ -u admin:Hunter2xyz", "ｃｕｒｌ -u admin:<R>"),
    # a bare "key" when its value looks like one
    ("the key is 9f8e7d6c5b4a39281726", "the key is <R>"),
    ("the keys are 9f8e7d6c5b4a39281726 and 1a2b3c4d5e6f", "the keys are <R> and 1a2b3c4d5e6f"),
    # Chinese, Japanese, Korean, Italian
    ("密码是hunter2", "密码是<R>"),
    ("密码：hunter2", "密码：<R>"),
    ("口令: hunter2", "口令: <R>"),
    ("パスワードは hunter2 です", "パスワードは <R> です"),
    ("パスワード：「hunter2」", "パスワード：「<R>」"),
    ("비밀번호는 hunter2입니다", "비밀번호는 <R>입니다"),
    ("parola d'ordine è hunter2", "parola d'ordine è <R>"),
    ("la password per il db è hunter2", "la password per il db è <R>"),
    # the value on the next line
    ("password is\nhunter2", "password is\n<R>"),
    ("token:\nabc123def", "token:\n<R>"),
    ("Passwort:\n  hunter2.", "Passwort:\n  <R>."),
    # codes that open something, pairs after a login, creds
    ("the wifi code is hunter2", "the wifi code is <R>"),
    ("the door code is 4711", "the door code is <R>"),
    ("verification code: 123456", "verification code: <R>"),
    ("login with admin / hunter2", "login with admin / <R>"),
    ("log in as root:hunter2", "log in as root:<R>"),
    ("creds are admin:hunter2", "creds are <R>"),
    ("AWS_CREDS=bob:secret", "AWS_CREDS=<R>"),
    ("the password (new) is Hunter2xyz", "the password (new) is <R>"),
    # URLs: secrets by name in a query, URL-encoded in another parameter, in a hook's path
    ("https://x.example/cb?access_token=abc123&x=1", "https://x.example/cb?access_token=<R>&x=1"),
    ("https://x.example/a?q=1&api_key%3Dabc123def", "https://x.example/a?q=1&api_key%3D<R>"),
    (
        "https://x.example/login?next=%2Fcb%3Fapi_key%3Dabc123def%26x%3D1",
        "https://x.example/login?next=%2Fcb%3Fapi_key%3D<R>%26x%3D1",
    ),
    ("https://x.example/hook/" + "9f8e7d6c5b" * 4, "https://x.example/hook/<R>"),
    (
        "https://outlook.office.com/webhook/abc/IncomingWebhook/" + "0a" * 16 + "/x",
        "https://outlook.office.com/webhook/abc/IncomingWebhook/<R>/x",
    ),
    # a quoted value after an assignment, whole
    ('token="abc def ghi"', 'token="<R>"'),
    ("token='abc def'", "token='<R>'"),
    ("--api-key='a b c'", "--api-key='<R>'"),
]

# Values that must come back exactly as they went in.
SURVIVES = [
    "reset your password in settings",
    "password policy: 12 characters minimum",
    "the token bucket refills",
    "maxTokens: 4096",
    "max_tokens: 4096",
    "max tokens: 4096",
    "tokens: 1200",
    "passwordless login is enabled",
    "forgot password flow is broken",
    "token count 1200",
    "the password is stored hashed",
    "the password is stored hashed with argon2",
    "the password is wrong",
    "the password is too short",
    "the password is required",
    "the password is in the vault",
    "the token is expired",
    "the token is opaque",
    "the token is short-lived",
    "the API key is in the vault",
    "api key rotation is monthly",
    "the secret sauce",
    "the secret is out",
    "secrets: 3",
    "passwords must be at least 12 characters",
    "password: 12 characters",
    "password: None",
    "password: ********",
    "password: <your password>",
    "password: [redacted]",
    "the password is ${DB_PASSWORD}",
    "password: $DB_PASSWORD",
    "password: {{ secrets.db }}",
    "password file: /run/secrets/db",
    "password: /run/secrets/db_password",
    "token endpoint: https://auth.example/token",
    "token: sha256 hashed",
    "password: settings.db_password_field",
    "password: getpass()",
    "Basic authentication is enabled",
    "Bearer tokens expire hourly",
    "Authorization: required for /logs",
    "Authorization is required",
    "the session cookie is sticky",
    "Cookie: the session cookie is sticky",
    "second pass: refactor",
    "first pass: done",
    "tests pass: 3/5",
    "pin the version to 1.2.3",
    "version pin: 1.2.3",
    "sessionKey: tg:main:1:2",
    "primary_key: id",
    "sort_key: created_at",
    "author: bob",
    "oauth: enabled",
    "the key is to test early",
    "Das Passwort ist falsch",
    "le mot de passe est incorrect",
    "la contraseña es incorrecta",
    "olvidé mi contraseña",
    "hunter2 is a famous password",
    "a token is a string",
    "rotate the token to be safe",
    "password reset-flow",
    "password reset link expired",
    "a password manager",
    "token budget 12000",
    "tokenizer: cl100k",
    "the credentials are stored in vault",
    "keyboard: dvorak",
    "monkey: george",
    "the pass rate is 93%",
    # lines of this project's own documents that an earlier draft redacted
    "The token is `webhook.token` of the gateway config",
    "Secrets: `models.providers.*.apiKey`, `env.*`, `gateway.auth.token`",
    "Secrets: both `bot_token`s, `webhook.token`, `mcp_servers[].env`.",
    "export DATABASE_URL=postgresql://openclaw:<password>@127.0.0.1:5432/openclaw",
    # the second red team's rules: commit hashes are not keys
    "git commit 9f8e7d6c5b4a39281726aa",
    "deployed abc123def4567890abc123def4567890abc12345",
    "see https://github.com/org/repo/commit/9f8e7d6c5b4a39281726aa9f8e7d6c5b4a3928",
    "https://github.com/org/repo/blob/9f8e7d6c5b4a39281726aa9f8e7d6c5b4a3928/README.md",
    "https://cdn.example/assets/9f8e7d6c5b4a39281726aa9f8e7d6c5b.js",
    "https://x.example/hook/abc",
    # command lines without a password in them
    "curl -u $USER:$PASS https://x",
    'curl -u "$USER:$PASS" https://x',
    "curl -u user:password https://x",
    "mysql -p app",
    "mysql -u root -p",
    "mysql -P 3306 -h db",
    "mysqldump -p app > dump.sql",
    "docker run -u 1000:1000 app",
    "docker exec -u app:app web sh",
    "docker run -u $(id -u):$(id -g) app",
    "git push -u origin main",
    "sort -u names.txt",
    "sshpass -f ~/.pw ssh box",
    "sshpass -p $SSHPASS ssh box",
    "redis-cli -p 6379 ping",
    "use --password to set it",
    "pass the --api-key option",
    # sessions and refreshes are settings
    "the session was reset",
    "refresh the page",
    "sid: 42",
    "session: main",
    "refresh: 5m",
    # a bare key
    "the primary key is user_id",
    "key: value",
    "keys: 3",
    "sort key: created_at",
    "the key is F5",
    "ssh key: ed25519",
    # codes that are not secrets
    "the error code is E1234",
    "exit code is 137",
    "status code: 404",
    "the code is on GitHub",
    "the access code flow",
    # logins and creds without a password
    "login with Google / GitHub",
    "login with email/password",
    "log in with localhost:5432",
    "login as admin/admin",
    "sign in with SSO",
    "login: admin",
    "login with user:pass",
    "the creds file is in the vault",
    "creds rotated",
    "the creds are stored in vault",
    # a line break after the keyword, then no value alone on its line
    "the password is\nstored in the vault",
    "password:\n  file: /run/secrets/db",
    "password:\n  env: DB_PASSWORD",
    "token:\nTokens are rotated daily.",
    "password:\n- rotate monthly",
    "the password is\n\nhunter2 is a famous password",
    "the password, as agreed, is required",
    "the password (if any) is optional",
    "the token, as usual, is in the vault",
    # other languages
    "la password è sbagliata",
    "la parola d'ordine è sbagliata",
    "パスワードは8文字以上",
    "密码长度至少8位",
    "密码是什么",
    "비밀번호를 잊으셨나요?",
    "ｐａｓｓｗｏｒｄ ｐｏｌｉｃｙ: 12 characters minimum",
    # queries without a secret
    "https://x.example/search?q=token&page=2",
    "https://x.example/a?max_tokens=100",
    "https://x.example/?next=%2Fhome%3Fpage%3D2",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_password_like_phrases_lose_only_the_secret(redactor: Redactor, text: str, expected: str) -> None:
    out = scrubbed(redactor, text)
    assert shown(out) == expected
    assert scrubbed(redactor, out) == out  # idempotent


@pytest.mark.parametrize("text", SURVIVES)
def test_ordinary_sentences_survive(redactor: Redactor, text: str) -> None:
    assert scrubbed(redactor, text) == text


def test_folded_text_is_replaced_as_written(redactor: Redactor) -> None:
    # The keyword is found in the folded text; the marker hides the value as it was typed,
    # and the rest of the text is kept character for character.
    out = redactor.redact_text("ｐａｓｓ\u200bｗｏｒｄ is ｈｕｎｔｅｒ２, ok")
    assert out == f"ｐａｓｓ\u200bｗｏｒｄ is {redactor.marker('ｈｕｎｔｅｒ２')}, ok"


def test_config_keys_of_the_second_red_team(redactor: Redactor) -> None:
    config = {
        "db": {"pw": "pw-1", "creds": "bob:creds-2", "passcode": "3333", "key_value": "kv-4"},
        "oauth": {"refresh": "1//0gRefresh5AbCdEfGhIjKlMnOpQrStUv", "interval": {"refresh": "5m"}},
        "web": {"session": "s3ss10n6AbCdEfGhIjKlMnOpQ", "sid": 42, "sessionKey": "tg:main:1:2"},
    }
    out = redactor.redact(config)
    text = json.dumps(out)
    for secret in ("pw-1", "creds-2", "3333", "kv-4", "Refresh5", "s3ss10n6"):
        assert secret not in text, secret
    assert out["oauth"]["interval"] == {"refresh": "5m"}
    assert out["web"]["sid"] == 42 and out["web"]["sessionKey"] == "tg:main:1:2"


def test_the_marker_is_the_hmac_of_the_secret_word(redactor: Redactor) -> None:
    out = redactor.redact_text("the staging password is hunter2")  # free text: a task, an issue
    assert out == scrubbed(redactor, "the staging password is hunter2")
    assert out == f"the staging password is {redactor.marker('hunter2')}"
    other = Redactor(b"o" * 32).redact_text("the staging password is hunter2")
    assert other != out and "hunter2" not in other


# --- headers ----------------------------------------------------------------------------

PROVIDER: dict[str, Any] = {
    "models": {
        "providers": {
            "custom": {
                "baseUrl": "https://llm.example/v1",
                "apiKey": "sk-custom-secret-000000",
                "headers": {
                    "X-Custom-Auth": "custom-SECRET-abc",
                    "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                    "X-Auth-Token": "tkn-1",
                    "api-key": "azure-2",
                    "x-goog-api-key": "goog-3",
                    "Ocp-Apim-Subscription-Key": "apim-4",
                    "Cookie": "sid=5",
                    "Set-Cookie": "sid=6",
                    "X-Request-Signature": "sig-7",
                    "X-Tenant-Secret-Id": "ten-8",
                    "X-Honeycomb-Team": "hc-9",  # a credential whose name does not say so
                    "Content-Type": "application/json",
                    "User-Agent": "openclaw/1.0",
                    "HTTP-Referer": "https://openclaw.example",
                    "X-Title": "openclaw",
                    "anthropic-version": "2023-06-01",
                },
                "extraHeaders": [
                    {"name": "X-Auth", "value": "xa-10"},
                    {"name": "Accept", "value": "text/event-stream"},
                ],
                "http_headers": [
                    "Authorization: Bearer abcdefghijkl",
                    "X-Api-Key:k-11",
                    "Accept: */*",
                    ["X-Session", "sess-12"],
                ],
                "models": [{"id": "m1", "maxTokens": 4096, "contextWindow": 128000}],
            }
        }
    },
    "mcp_servers": [
        {
            "command": "npx",
            "args": [
                "mcp-remote",
                "https://mcp.example/sse",
                "--header",
                "X-Custom-Auth: hdr-13",
                "-H",
                "Accept: application/json",
                "--header=Authorization:Token hdr-14",
                "-h",
            ],
        }
    ],
    "table": {"headers": ["Name", "Age"]},
    "auth": {
        "basicAuth": "user:pw-15",
        "X-Custom-Auth": "cust-16",
        "dbPass": "pass-17",
        "root_pwd": "pwd-18",
        "proxyAuth": {"mode": "none"},
        "author": "bob",
        "oauth": "enabled",
    },
}
HEADER_SECRETS = [
    "custom-SECRET-abc",
    "Zm9vOmJhcg",
    "tkn-1",
    "azure-2",
    "goog-3",
    "apim-4",
    "sid=5",
    "sid=6",
    "sig-7",
    "ten-8",
    "hc-9",
    "xa-10",
    "abcdefghijkl",
    "k-11",
    "sess-12",
    "hdr-13",
    "hdr-14",
    "pw-15",
    "cust-16",
    "pass-17",
    "pwd-18",
    "sk-custom-secret",
]


def test_header_maps_lists_and_flags(redactor: Redactor) -> None:
    out = redactor.redact(PROVIDER)
    text = json.dumps(out)
    for secret in HEADER_SECRETS:
        assert secret not in text, secret
    provider = out["models"]["providers"]["custom"]
    headers = provider["headers"]
    assert list(headers) == list(PROVIDER["models"]["providers"]["custom"]["headers"])  # names stay
    for harmless in ("Content-Type", "User-Agent", "HTTP-Referer", "X-Title", "anthropic-version"):
        assert headers[harmless] == PROVIDER["models"]["providers"]["custom"]["headers"][harmless]
    assert headers["X-Custom-Auth"] == redactor.marker("custom-SECRET-abc")
    assert provider["extraHeaders"] == [
        {"name": "X-Auth", "value": redactor.marker("xa-10")},
        {"name": "Accept", "value": "text/event-stream"},
    ]
    assert shown(json.dumps(provider["http_headers"])) == json.dumps(
        ["Authorization: <R>", "X-Api-Key:<R>", "Accept: */*", ["X-Session", "<R>"]]
    )
    assert provider["models"] == [{"id": "m1", "maxTokens": 4096, "contextWindow": 128000}]
    assert [shown(a) for a in out["mcp_servers"][0]["args"]] == [
        "mcp-remote",
        "https://mcp.example/sse",
        "--header",
        "X-Custom-Auth: <R>",
        "-H",
        "Accept: application/json",
        "--header=Authorization:<R>",
        "-h",
    ]
    assert out["table"] == {"headers": ["Name", "Age"]}  # table headers are not HTTP headers
    assert out["auth"]["proxyAuth"] == {"mode": "none"}
    assert out["auth"]["author"] == "bob" and out["auth"]["oauth"] == "enabled"
    assert redactor.redact(out) == out


def test_a_changed_header_secret_shows_as_changed(redactor: Redactor) -> None:
    before = redactor.redact({"headers": {"X-Custom-Auth": "one"}})
    after = redactor.redact({"headers": {"X-Custom-Auth": "two"}})
    assert before != after and "one" not in json.dumps(before) and "two" not in json.dumps(after)


@pytest.mark.parametrize(
    ("key", "value", "secret"),
    [
        ("X-Custom-Auth", "x", True),
        ("Helicone-Auth", "x", True),
        ("proxy_auth", "x", True),
        ("basicAuth", "x", True),
        ("dbPass", "x", True),
        ("root-pwd", "x", True),
        ("basicAuth", {"user": "u"}, False),  # a section: its own keys decide
        ("author", "bob", False),
        ("oauth", "enabled", False),
        ("bypass", "yes", False),
        ("compass", "north", False),
        ("foreign_key", "user_id", False),
        # the second red team
        ("pw", "x", True),
        ("db_pw", "x", True),
        ("rootPw", "x", True),
        ("creds", "bob:secret", True),
        ("aws_creds", "bob:secret", True),
        ("creds", {"user": "bob"}, False),  # a section: its own keys decide
        ("passcode", "1234", True),
        ("key_value", "x", True),
        ("refresh", "1//0gAbCdEfGhIjKlMnOpQrStUvWxYz0123456789", True),
        ("refresh", "5m", False),
        ("session", "s3ss10nIdAbCdEfGhIjKlMnOpQ", True),
        ("session", "main", False),
        ("sid", 42, False),
        ("sessionKey", "tg:main:1:2", False),
        ("sessionKey", "s3ss10nIdAbCdEfGhIjKlMnOpQ", False),
        ("spinner", "dots", False),
        ("footprint", "small", False),
    ],
)
def test_key_names_ending_in_auth_pass_pwd(key: str, value: Any, secret: bool) -> None:
    assert is_secret_key(key, value) is secret


def test_phrases_do_not_hide_a_whole_context_value() -> None:
    # The flag that hides a row from the reader is for credentials by key or format; a
    # sentence with a password in it is stored redacted and stays readable.
    assert not looks_secret("notes", "the staging password is hunter2")
    assert looks_secret("notes", {"headers": {"X-Custom-Auth": "x"}})


# --- linear time ------------------------------------------------------------------------

ADVERSARIAL = {
    "letters": "a" * 1_000_000,
    "dashes": "-" * 1_000_000,
    "word-dash": "a-" * 500_000,
    "spaces": " " * 1_000_000,
    "scheme": "x://" * 250_000,
    "userinfo": "a://b:" + "c" * 1_000_000,
    "jwt-ish": "eyJ-" * 250_000,
    "flags": "--a-key" * 150_000,
    "keywords": "password:" * 110_000,
    "keyword-space": "password is " * 80_000,
    "unclosed-quote": 'password: "' * 90_000,
    "code-candidates": "password:a(" * 90_000,
    "qualifiers": "password for a b c " * 50_000,
    "header-lines": "Cookie: the " * 80_000,
    "assignments": "DB_PASSWORD=" * 80_000,
    "pem": "-----BEGIN " + "A" * 1_000_000,
    "pass-lines": "pass: x\n" * 125_000,
    "pass-in-a-line": "second pass: refactor " * 45_000,
    "cookie-lines": "Cookie: a=1\n" * 85_000,
    "sentences": "the staging password is hunter2; token count 1200. " * 20_000,
    # the second red team's rules
    "full-width": "ｐａｓｓｗｏｒｄ is " * 70_000,
    "zero-width": "pass\u200bword:\u200b" * 90_000,
    "full-width-letters": "ａ" * 1_000_000,
    "user-flags": "-u a:" * 200_000,
    "user-flag-run": "-u " + "a" * 1_000_000,
    "password-tools": "mysql -p " * 110_000,
    "tool-arguments": "sshpass " + "-x " * 330_000,
    "login-pairs": "login with a/" * 80_000,
    "cjk-keywords": "密码是" * 330_000,
    "cjk-value": "密码是" + "a" * 1_000_000,
    "encoded-queries": "api_key%3D" * 100_000,
    "encoded-separators": "%26" * 330_000,
    "url-segments": "https://x.example/hook/" + ("a1" * 20 + "/") * 24_000,
    "line-break-connectors": "password:\n" * 100_000,
    "asides": "password, " * 100_000,
    "bare-keys": "key is " * 140_000,
    "queries": "?a=" * 330_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_a_megabyte_of_adversarial_text_is_redacted_in_linear_time(redactor: Redactor, name: str) -> None:
    # Nothing is asserted about time: a quadratic pattern makes this test run for hours
    # instead of a second. (Before issue 12, "dashes" took about 25 s per 20 KB.)
    text = ADVERSARIAL[name]
    out = scrubbed(redactor, text)
    looks_secret("notes", text)
    if name == "sentences":
        assert "hunter2" not in out and out.count("token count 1200") == 20_000


# --- the context tables -----------------------------------------------------------------


# The writers below use the installation's redactor ($OPENCLAW_HOME, a temporary directory).


async def test_context_values_are_stored_redacted(conn: psycopg.AsyncConnection) -> None:
    entry = await set_value(conn, "staging", "the staging password is hunter2")
    assert shown(entry.value) == "the staging password is <R>"
    await set_value(conn, "focus", {"task": "token bucket", "note": "password policy: 12 characters minimum"})
    await set_value(conn, "db_password", "hunter3")
    await set_value(conn, "proxy", {"headers": {"X-Custom-Auth": "custom-SECRET-1"}})
    rows = await (
        await conn.execute("SELECT key, value::text, secret FROM project_context ORDER BY key")
    ).fetchall()
    text = json.dumps(rows)
    for secret in ("hunter2", "hunter3", "custom-SECRET-1"):
        assert secret not in text
    assert {key: hidden for key, _, hidden in rows} == {
        "db_password": True,
        "focus": False,
        "proxy": True,
        "staging": False,  # readable, with the password redacted
    }
    assert (await get_value(conn, "focus")).value == {
        "task": "token bucket",
        "note": "password policy: 12 characters minimum",
    }
    reader = await (
        await conn.execute("SELECT key, value FROM reader.project_context ORDER BY key")
    ).fetchall()
    assert [(k, shown(v) if isinstance(v, str) else v) for k, v in reader] == [
        ("focus", {"task": "token bucket", "note": "password policy: 12 characters minimum"}),
        ("staging", "the staging password is <R>"),
    ]


async def test_writers_take_a_redactor(conn: psycopg.AsyncConnection, redactor: Redactor) -> None:
    entry = await set_value(conn, "notes", "password: hunter2", redactor=redactor)
    assert entry.value == f"password: {redactor.marker('hunter2')}"
    task = await log_task(conn, "password: hunter2", redactor=redactor)
    issue = await add_issue(conn, "password: hunter2", severity="low", component=None, redactor=redactor)
    assert task.description == issue.title == entry.value


async def test_tasks_and_issues_are_stored_redacted(conn: psycopg.AsyncConnection) -> None:
    task = await log_task(conn, "rotated it: the staging password is now hunter2 (token count 1200)")
    assert "hunter2" not in task.description and task.description.endswith("(token count 1200)")
    fixed = await log_task(conn, "fixed the token bucket refill")
    assert fixed.description == "fixed the token bucket refill"
    issue = await add_issue(
        conn,
        "login fails: password is hunter2",
        severity="high",
        component="gateway",
        description="reset your password in settings does nothing; forgot password flow is broken",
        workaround="export PGPASSWORD=hunter3 and log in by hand",
    )
    assert shown(issue.title) == "login fails: password is <R>"
    assert issue.description == "reset your password in settings does nothing; forgot password flow is broken"
    assert shown(issue.workaround or "") == "export PGPASSWORD=<R> and log in by hand"
    dump = await (
        await conn.execute("SELECT t::text FROM task_log t UNION ALL SELECT i::text FROM known_issues i")
    ).fetchall()
    assert "hunter" not in json.dumps(dump)


async def test_scrub_redacts_rows_stored_before_the_rules(
    conn: psycopg.AsyncConnection, redactor: Redactor
) -> None:
    from openclaw.context.issues import scrub_issues
    from openclaw.context.kv import scrub_values
    from openclaw.context.tasks import scrub_tasks

    await conn.execute(
        "INSERT INTO project_context (key, value) VALUES ('notes', %s), ('focus', %s)",
        ('"the staging password is hunter2"', '{"phase": 3}'),
    )
    await conn.execute("INSERT INTO task_log (description) VALUES ('deployed with pwd=hunter3'), ('plain')")
    await conn.execute(
        """INSERT INTO known_issues (title, severity, workaround)
           VALUES ('x', 'low', 'Cookie: sid=hunter4'), ('y', 'low', NULL)"""
    )
    assert await scrub_values(conn, redactor) == 1
    assert await scrub_tasks(conn, redactor) == 1
    assert await scrub_issues(conn, redactor) == 1
    dump = []
    for table in ("project_context", "task_log", "known_issues"):
        dump += await (await conn.execute(f"SELECT t::text FROM {table} t")).fetchall()
    assert "hunter" not in json.dumps(dump) and "phase" in json.dumps(dump)
    assert (await scrub_values(conn, redactor), await scrub_tasks(conn, redactor)) == (0, 0)
    assert await scrub_issues(conn, redactor) == 0


# --- end to end: CLI writes, the MCP reader reads ---------------------------------------

FREE_TEXT_SURVIVORS = [
    "reset your password in settings",
    "the token bucket refills",
    "password policy: 12 characters minimum",
]


def test_cli_writes_and_the_mcp_reader_sees_no_secret(
    cli: Cli, db_url: str, isolated_environment: Path
) -> None:
    home = isolated_environment
    assert cli("context", "set", "staging_notes", "the staging password is hunter2").exit_code == 0
    assert cli("context", "set", "current_focus", json.dumps({"notes": FREE_TEXT_SURVIVORS})).exit_code == 0
    assert cli("task", "log", "rotated creds; the new password is hunter3").exit_code == 0
    config = home / "openclaw-manual.json"
    provider = {
        "baseUrl": "https://llm.example/v1",
        "headers": {"X-Custom-Auth": "custom-SECRET-one", "Content-Type": "application/json"},
        "models": [{"id": "m", "maxTokens": 4096}],
    }
    config.write_text(json.dumps({"models": {"providers": {"custom": provider}}}))
    assert cli("config", "snapshot").exit_code == 0
    provider["headers"] = {"X-Custom-Auth": "custom-SECRET-two", "Content-Type": "application/json"}
    config.write_text(json.dumps({"models": {"providers": {"custom": provider}}}))
    assert cli("config", "snapshot").exit_code == 0

    seen = asyncio.run(_read_everything_through_mcp(db_url, home))
    for secret in ("hunter2", "hunter3", "custom-SECRET"):
        assert secret not in seen, secret
    for survivor in [*FREE_TEXT_SURVIVORS, "the staging password is [redacted:", "application/json"]:
        assert survivor in seen, survivor
    assert "X-Custom-Auth: (secret changed)" in seen

    with psycopg.connect(db_url) as conn:
        for table in ("project_context", "config_snapshots", "task_log", "known_issues"):
            rows = conn.execute(f"SELECT t::text FROM {table} t").fetchall()
            assert not any(s in json.dumps(rows) for s in ("hunter2", "hunter3", "custom-SECRET")), table


async def _read_everything_through_mcp(db_url: str, home: Path) -> str:
    target = DatabaseTarget(TargetSource.OPTION, url=db_url)
    parts: list[str] = []
    async with open_state(target, home) as state, Client(create_server(state)) as client:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("context_get", {"key": "staging_notes"}),
            ("context_get", {"key": "current_focus"}),
            ("context_list", {}),
            ("config_changes", {"limit": 2}),
            ("recent_tasks", {}),
            ("query", {"sql": "SELECT config_json::text FROM config_snapshots"}),
            ("query", {"sql": "SELECT key, value::text FROM project_context"}),
        ]
        for tool, args in calls:
            result = await client.call_tool(tool, args)
            assert not result.is_error, (tool, result.content)
            parts.append(json.dumps(result.structured_content))
            parts += [getattr(c, "text", "") for c in result.content]
    return "\n".join(parts)


def test_absurd_nesting_is_refused_cleanly(cli: Cli, redactor: Redactor) -> None:
    deep = "[" * 300 + '"password: hunter2"' + "]" * 300
    result = cli("context", "set", "deep", deep)
    assert result.exit_code != 0 and "nested more than 200 levels" in result.stderr
    assert cli("context", "get", "deep").exit_code == 1  # nothing was written
    ok = "[" * 150 + '"password: hunter2"' + "]" * 150
    assert cli("context", "set", "deep", ok).exit_code == 0
    assert "hunter2" not in cli("context", "get", "deep").stdout
