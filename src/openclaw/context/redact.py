"""Secrets never reach the database: redaction of config documents and free text (DESIGN.md §6).

A secret value becomes `[redacted:<hash>]`, where the hash is an HMAC of the value under
a key kept in `$OPENCLAW_HOME/redaction.key` (created on first use, mode 0600). A changed
secret therefore still shows as changed, and nobody who reads the database (a prompt-
injected assistant included) can test guesses of a weak password against the hash.

What counts as a secret, in three nets:
- by key name: token, apiKey / *Key, password, passcode, secret, credential, authorization,
  cookie, key_value... and a last word auth / pass / pwd / pw / creds when it holds a value
  (X-Custom-Auth, dbPass, db_pw, aws_creds), but not counts such as maxTokens: a number
  under a token-ish name is kept; refresh, session, sid only when the value is a long
  random word (`refresh: 5m`, `session: main`, `sid: 42`, `sessionKey` are settings);
- by place: everything under `env`, `environment` and `channels`, at any depth; in a
  header map or header list (`headers`, `extraHeaders`, `http_headers`...) every value
  but those of a short list of harmless headers (Content-Type, User-Agent...); the
  argument after `-H` / `--header` the same way;
- by value: passwords in URLs and `key=value` strings, secrets in URL queries, bot tokens
  in Telegram and Discord URLs, well-known key formats (sk-, ghp_, xoxb-, AKIA...), the
  value after a `--api-key`-like flag in an argument list, `SOME_TOKEN=x` assignments, and
  password-like phrases in prose ("the staging password is hunter2", "Passwort: x"):
  only the word after the phrase is replaced, and only when it looks like a credential
  rather than a word of the sentence ("the password is stored hashed" is kept).
  Also in prose: the value on the next line when it stands alone there ("password is",
  "hunter2" below it), keywords in Chinese, Japanese, Korean and Italian (密码是x, パスワードは x),
  "wifi / door / verification code", a bare "key" only before a word of letters and digits
  (a commit hash without such a word before it is kept), "creds", the password of a
  `user:pw` / `user / pw` pair after "login with" / "log in as", and credentials on
  command lines: `curl -u user:pw`, `--user user:pw`, `mysql -p<pw>`, `sshpass -p <pw>`,
  `redis-cli -a <pw>` (not `$PASS`, not `-u 1000:1000`, not `mysql -p` that prompts).
  In URLs: secrets by name in a query, also URL-encoded (`%3Fapi_key%3Dx`), and a long
  random path segment after a hook / token / secret / key segment (`/hook/<40 hex>`; a
  `/commit/<40 hex>` is kept). A quoted value after `name=` is redacted whole.

Keywords are matched in the text folded to NFKC with invisible characters dropped
(ｐａｓｓｗｏｒｄ, a zero-width space inside "password"); the value is replaced in the
text as written, which is otherwise kept character for character.

Every regular expression here runs on every config snapshot and context write, so each
is linear in the text: a scan that has no bound starts only where a run of its characters
starts (a look-behind), quantifiers are possessive or bounded, and the phrase net judges
its candidate in Python instead of by backtracking.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openclaw.errors import ConfigError, UsageError
from openclaw.home import openclaw_home

MARKER_PREFIX = "[redacted:"
KEY_BYTES = 32
MAX_DEPTH = 200  # levels of nesting in a document; no config or context value comes close

# Key names are compared lower-cased with '_' and '-' removed: apiKey, api_key, API-KEY.
_SECRET_KEY_PARTS = (
    "token",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "authorization",
    "cookie",
    "privatekey",
    "privkey",
    "apikey",
    "bearer",
    "jwt",
    "signature",
    "passcode",
)
# A name whose last word is "key" is a secret (openaiKey, access_key, SIGNING-KEY, key),
# and so is one ending in salt, seed, pin, otp or sig (signing_salt, otpSeed)...
_KEY_WORD_AT_END = re.compile(
    r"(?:^|[_\-.\s])(?:[kK][eE][yY][sS]?|salt|seed|pin|otp|sig|SALT|SEED|PIN|OTP|SIG)$"
    r"|[a-z0-9](?:K(?:ey|EY)[sS]?|Salt|SALT|Seed|SEED|Pin|PIN|Otp|OTP|Sig|SIG)$"
)
# ... except these. ("monkey" is not caught: "key" must be a word of its own.)
_NOT_SECRET_KEYS = frozenset(
    {
        "sessionkey",
        "publickey",
        "primarykey",
        "foreignkey",
        "uniquekey",
        "sortkey",
        "hotkey",
        "idempotencykey",
        "cachekey",
        "partitionkey",
        "routingkey",
        "lookupkey",
        "groupkey",
    }
)
# Short names that are secrets when they hold a value, but may also name a section whose
# other settings are not secret (`gateway.auth` is a token or `{mode, token}`); also as
# the last word of a longer name: X-Custom-Auth, proxy_auth, basicAuth, dbPass, root-pwd
# ("author", "oauth" and "bypass" are not: the word must stand on its own).
# (pw and creds too: db_pw, rootPw, aws_creds: "bob:secret".)
_SECRET_SECTION_NAMES = frozenset({"auth", "pass", "pwd", "pw", "cred", "creds"})
_SECTION_WORD_AT_END = re.compile(
    r"(?:^|[_\-.\s])(?:[aA][uU][tT][hH]|[pP][aA][sS][sS]|[pP][wW][dD]?|[cC][rR][eE][dD][sS]?)$"
    r"|[a-z0-9](?:Auth|AUTH|Pass|PASS|Pwd|PWD|Pw|PW|Creds?|CREDS?)$"
)
# A key value ("key_value": the key's material, not a key-value pair's name).
_SECRET_EXACT_NAMES = frozenset({"keyvalue"})
# Names that hold a secret only when the value looks like one (a long random word): a
# refresh token or a session id, but `refresh: 5m`, `session: main`, `sid: 42` are settings.
_TOKEN_VALUED_NAMES = frozenset({"refresh", "session", "sessionid", "sid"})
_SECRET_SUBTREES = frozenset({"env", "environment", "channels"})

# --- header maps and lists --------------------------------------------------------------
# A header's value is far more often a credential than another setting's (providers and
# gateways invent their own: X-Custom-Auth, X-Honeycomb-Team, Ocp-Apim-Subscription-Key),
# so inside a header map the rule is reversed: every value is redacted unless its header is
# one of these, which carry no credential.
_HARMLESS_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "anthropic-beta",
        "anthropic-version",
        "cache-control",
        "connection",
        "content-encoding",
        "content-language",
        "content-type",
        "dnt",
        "host",
        "http-referer",
        "keep-alive",
        "openai-beta",
        "openai-organization",
        "openai-project",
        "origin",
        "pragma",
        "referer",
        "te",
        "upgrade",
        "user-agent",
        "x-correlation-id",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-request-id",
        "x-requested-with",
        "x-title",
    }
)
# `-H 'X-Api-Key: x'` (curl, mcp-remote), `--header`, `--headers`, `--extra-header`...
_HEADER_FLAG = re.compile(r"^(?:-H|--[\w-]*[hH][eE][aA][dD][eE][rR][sS]?)$")
_HEADER_FLAG_WITH_VALUE = re.compile(r"^(?P<head>--[\w-]*headers?=)(?P<line>.*)$", re.I | re.S)
# Fields that name the header in the `[{"name": "X-Auth", "value": "..."}]` form.
_HEADER_NAME_FIELDS = ("name", "key", "header")


def _is_header_place(key: str, value: Any) -> bool:
    name = _normalise(key)
    return isinstance(value, dict | list) and name.endswith("headers")


def _harmless_header(name: str) -> bool:
    return name.strip().lower().replace("_", "-") in _HARMLESS_HEADERS


# --- value patterns ---------------------------------------------------------------------
# A flag is matched whole (possessive) and its name checked in Python: a pattern like
# `[\w-]*(key|token)[\w-]*$` backtracks quadratically over a long argument.
_FLAG = re.compile(r"^--?[\w-]++$")
_FLAG_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential")


def _is_secret_flag(item: str) -> bool:
    if not _FLAG.match(item):
        return False
    lowered = item.lower()
    return any(word in lowered for word in _FLAG_SECRET_WORDS) and not _HEADER_FLAG.match(item)


def _flag_names_secret(match: re.Match[str]) -> bool:
    flag = match["head"].lower()
    return any(word in flag for word in ("key", "token", "secret", "password"))


def _not_a_placeholder(match: re.Match[str]) -> bool:
    return not _PLACEHOLDER.match(match["secret"])


def _query_names_secret(match: re.Match[str]) -> bool:
    value = match["secret"]
    as_value: Any = int(value) if value.isdigit() else value
    return is_secret_key(match["name"], as_value) and not _PLACEHOLDER.match(value)


_HOOK_SEGMENTS = frozenset(
    {"hook", "hooks", "webhook", "webhooks", "token", "tokens", "secret", "secrets", "key", "keys",
     "trigger", "triggers", "services", "incoming"}
)  # fmt: skip


def _secret_path_segment(match: re.Match[str]) -> bool:
    """A segment of 32 characters or more, with letters and digits, in a URL whose path
    names a hook or a credential before it. (Looks back 256 characters, no further.)"""
    segment = match["secret"]
    if not (any(c.isdigit() for c in segment) and any(c.isalpha() for c in segment)):
        return False
    start = match.start("secret")
    window = match.string[max(0, start - 256) : start]
    scheme = window.rfind("://")
    if scheme == -1 or any(c.isspace() for c in window[scheme:]):
        return False
    segments = window[scheme + 3 :].split("/")[1:-1]  # the host first, this segment last
    return any(s.lower() in _HOOK_SEGMENTS or s.lower().startswith(("webhook", "hook")) for s in segments)


# A value after `=`: in quotes (the quote in the head) to its closing quote, else a word.
_QUOTED_OR_WORD = (
    r"(?P<secret>(?<=')(?:[^'\\\n]|\\.){1,1024}+(?=')|(?<=\")(?:[^\"\\\n]|\\.){1,1024}+(?=\")"
    r"|(?<!['\"])WORD)"
)

_Pattern = tuple[re.Pattern[str], Callable[[re.Match[str]], bool] | None]

_VALUE_PATTERNS: list[_Pattern] = [
    # scheme://user:PASSWORD@host
    (
        re.compile(
            r"(?P<head>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}+://[^:/@\s]*+:)(?P<secret>[^@\s/]++)(?=@)",
            re.I,
        ),
        _not_a_placeholder,  # postgresql://u:<password>@host
    ),
    # ?password=X&api_key=Y in URLs, password=X in libpq key=value strings
    (
        re.compile(
            r"(?P<head>(?:^|[?&\s;,])(?:ssl)?(?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|key)"
            r"\s*+=\s*+['\"]?)" + _QUOTED_OR_WORD.replace("WORD", r"[^&\s;,]++"),
            re.I,
        ),
        None,
    ),
    # --api-key=X inside one argument ("--api-key='a b'" whole)
    (
        re.compile(r"(?P<head>(?<![\w-])--?[\w-]++=['\"]?)" + _QUOTED_OR_WORD.replace("WORD", r"\S++")),
        _flag_names_secret,
    ),
    # secrets in URL queries by name (?access_token=x&refresh_token=y), also URL-encoded
    # inside another parameter (?next=%2Fcb%3Fapi_key%3Dx%26y%3D1)
    (
        re.compile(r"(?P<head>(?<=[?&])(?P<name>[A-Za-z][\w.-]{0,63}+)=)(?P<secret>[^&\s#\"'<>]++)"),
        _query_names_secret,
    ),
    (
        re.compile(
            r"(?P<head>(?:(?<=%26)|(?<=%3F)|(?<![\w%.-]))(?P<name>[A-Za-z][\w-]{0,63}+)(?:%3D|%253D))"
            r"(?P<secret>(?:(?!%26|%2526)[^&\s#;,\"'<>])++)",
            re.I,
        ),
        _query_names_secret,
    ),
    # Telegram bot URLs and bare bot tokens: 123456:AA...
    (re.compile(r"(?P<head>/bot)(?P<secret>\d{5,}:[\w-]{20,})"), None),
    (re.compile(r"(?P<head>)(?P<secret>(?<![\w:])\d{5,}:[\w-]{30,})"), None),
    # Discord (and Slack-like) webhook URLs: /api/webhooks/<id>/<token>
    (re.compile(r"(?P<head>/webhooks/\d+/)(?P<secret>[\w-]{20,})"), None),
    # PEM private keys, HTTP credentials, JWTs, Slack webhooks, signed URLs
    (
        re.compile(
            r"(?P<head>)(?P<secret>-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----[\s\S]*?"
            r"(?:-----END [A-Z ]{0,40}PRIVATE KEY-----|$))"
        ),
        None,
    ),
    # ("Basic authentication is enabled" is a sentence.)
    (
        re.compile(r"(?P<head>\b(?:Bearer|Basic)\s++)(?P<secret>[\w\-.~+/=]{8,}+)"),
        lambda m: not _is_prose(m["secret"]),
    ),
    (re.compile(r"(?P<head>)(?P<secret>(?<![\w-])eyJ[\w-]{5,}+\.[\w-]{5,}+\.[\w-]++)"), None),
    (re.compile(r"(?P<head>hooks\.slack\.com/services/)(?P<secret>[\w/]+)"), None),
    # a long random path segment after a hook / token / secret / key segment of a URL
    # (https://x.example/hook/<40 hex>); a commit URL (/commit/<40 hex>) is kept
    (
        re.compile(r"(?P<head>)(?<=/)(?P<secret>[A-Za-z0-9_-]{32,}+)(?![\w.~%-])"),
        _secret_path_segment,
    ),
    (re.compile(r"(?P<head>[?&](?:sig|signature|x-amz-signature)=)(?P<secret>[^&\s]+)", re.I), None),
    # Well-known key formats
    (
        re.compile(
            r"(?P<head>)(?P<secret>\b(?:sk-[\w-]{16,}|sk_live_\w{16,}|gh[pousr]_\w{30,}|github_pat_\w{30,}"
            r"|xox[abpors]-[\w-]{10,}|AKIA[0-9A-Z]{16}|AIza[\w-]{30,}|glpat-[\w-]{20,}))"
        ),
        None,
    ),
]

# --- free text: phrases and assignments -----------------------------------------------
# "<keyword> <connector> <candidate>": the keyword names a credential, the connector says
# the candidate is its value. A strong connector (":", "=", "is", "ist", "est"...) makes
# any candidate a secret unless it is a word of the sentence (a stop word, "stored",
# "hashing"), a placeholder (${X}, <password>, ***), a path, URL, version or code; after a
# weak one (a plain space, "to": "passphrase hunter2", "changed it to Xy9") the candidate
# must also look like a credential (letters with digits, inner capitals or symbols).
_PHRASE_KEYWORDS = (
    r"pass(?:word|wd|phrase|code)s?|pwd|pw|pass|pin|otp"
    r"|(?:api|access|secret|private|signing|encryption|licen[cs]e|ssh|master|client|app|deploy|service"
    r"|account|storage|subscription)[ \t_-]?keys?"
    r"|apikeys?|tokens?|secrets?|credentials?|creds?|cookie|authorization|(?<=-)auth"
    # codes that open something ("the wifi code is x"; never a bare "code": exit, error, status)
    r"|(?:wi-?fi|wlan|door|gate|alarm|security|verification|unlock|entry|access|lock)[ \t_-]?(?:code|pin)s?"
    # German, Dutch, French, Spanish, Portuguese, Swedish, Polish, Russian, Italian
    r"|passw(?:ort|örter)|kennw(?:ort|örter)|wachtwoord(?:en)?|mots?[ \t]de[ \t]passe|contrase(?:ñ|n)as?"
    r"|senhas?|lösenord|has(?:ł|l)o|пароль|parol[ae][ \t]d['’]ordine"
    # a bare key last: its value must look like one (_looks_like_key)
    r"|keys?"
)
# Chinese, Japanese, Korean: no word boundaries, the value often written attached
# ("密码是hunter2", "パスワードは hunter2 です", "비밀번호는 hunter2입니다"): the value is the
# run of ASCII after the connector.
_CJK_PHRASE = re.compile(
    r"(?P<kw>密码|密碼|口令|パスワード|暗証番号|비밀번호|암호)"
    r"(?P<conn>[ \t]{0,3}(?:是|为|為|:|=|は|が|는|은|이|가)?[ \t]{0,3})"
    r"[「『\"'“]?(?P<value>[!-~]{1,256}+)"
)
# "login with admin / hunter2", "log in as root:hunter2": the password of the pair.
_LOGIN_PAIR = re.compile(
    r"(?<!\w)(?:log[ \t]?(?:in|on)|logged[ \t](?:in|on)|sign(?:ed)?[ \t]?in)"
    r"(?:[ \t]{1,3}(?:with|as|using|via|is|are))?[ \t]{0,3}:?[ \t]{1,3}"
    r"(?P<user>[\w.@+-]{1,64}+)(?P<sep>[ \t]{0,2}/[ \t]{0,2}|:)(?P<value>[^\s/]{1,256}+)",
    re.I,
)
# Credentials on a command line inside text: `-u user:pw` / `--user user:pw` (curl, wget,
# httpie...), and the password flags of tools that take one attached or after a flag.
_USER_FLAG = re.compile(
    r"(?<![\w-])(?:-u[ \t]*+|--(?:http-|proxy-)?user(?:[ \t]++|=))[\"']?+"
    r"(?P<user>[^\s:\"']{1,128}+):(?P<value>[^\s\"']{1,256}+)"
)
_PASSWORD_TOOL = re.compile(
    r"(?<![\w-])(?P<tool>mysql(?:dump|admin|import|check|slap|sh)?|mariadb(?:-dump|-admin)?|mycli"
    r"|sshpass|redis-cli)(?![\w-])"
)
_ARGUMENT = re.compile(r"[ \t]*+(?P<arg>[^\s;|&]++)")
_PLACEHOLDER_PASSWORDS = frozenset({"pass", "password", "passwd", "pwd", "pw", "secret", "token"})
_STRONG_VERBS = r"is|was|are|were|equals|ist|lautet|war|est|était|es|era|é|è|är|jest|это"
# After a strong connector the value may start the next line ("password is\nhunter2").
_GAP = r"(?:[ \t]{1,3}|[ \t]{0,3}\r?\n[ \t]{0,3})"
_PHRASE = re.compile(
    # (The look-ahead on the keywords' first letters skips most positions cheaply.)
    r"(?<!\w)(?=[paosemlcdtkwhпgvu])(?P<kw>" + _PHRASE_KEYWORDS + r")(?!\w)"
    r"(?:"
    # "password for the staging db is x", "Passwort für prod: x"
    r"(?P<qual>[ \t]{1,3}(?:for|of|on|at|in|für|pour|de|del|para|do|da|van|voor|per|di)"
    r"(?:[ \t]{1,3}[\w.@/-]{1,64}+){1,3}?)?"
    # "the password, as agreed, is x", "the password (new) is x"
    r"(?P<aside>[ \t]{0,3}(?:,[^,()\n]{1,40}+,|\([^,()\n]{1,40}+\)))?"
    r"(?P<strong>[\"'”]?[ \t]{0,3}(?::=|=>|->|→|:|=)[ \t]{0,3}(?:\r?\n[ \t]{0,3})?"
    r"|[ \t]{1,3}(?:(?:is|was|has[ \t]been|have[ \t]been)[ \t]{1,3})?(?:now[ \t]{1,3})?"
    r"(?:changed|set|updated|rotated|reset)[ \t]{1,3}to" + _GAP + "|[ \t]{1,3}(?:" + _STRONG_VERBS + r")"
    r"(?:[ \t]{1,3}(?:now|still|just|currently))?" + _GAP + ")"
    r"|(?P<weak>[ \t]{1,3}(?:to[ \t]{1,3})?)"
    r")",
    re.I,
)
# Keywords after which the whole rest of the line is the value (a header line).
_REST_OF_LINE_KEYWORDS = frozenset({"cookie", "authorization"})
_AUTH_SCHEMES = frozenset(
    {"bearer", "basic", "token", "digest", "negotiate", "ntlm", "apikey", "key", "hmac"}
)
# `DB_PASSWORD=x`, `apiKey: x`, `"api_key": "x"`: a name spelled like an identifier
# (underscore, inner capital, or all capitals) that net 1 calls a secret.
_ASSIGNMENT = re.compile(r"(?<![\w$])(?P<name>[A-Za-z_]\w*+)[\"']?[ \t]{0,3}(?::(?![/:])|=(?!=))[ \t]{0,3}")
_ASSIGNMENT_HINTS = ("pass", "pwd", "pw", "token", "secret", "key", "auth", "cred", "cookie", "sig", "salt",
                     "seed", "pin", "otp", "bearer", "jwt", "refresh", "session", "sid")  # fmt: skip
_INNER_CAPITAL = re.compile(r"[a-z0-9][A-Z]")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CANDIDATE = re.compile(r"\S{1,256}+")
_OPEN_QUOTES = {'"': '"', "'": "'", "`": "`", "“": "”", "‘": "’", "«": "»", "„": "“"}
# ("!" and "?" stay with the word: in a password they are more likely than in a sentence.)
_TRAILING_PUNCTUATION = ".,;:)]}>\"'”’»`"
_LEADING_PUNCTUATION = "([{\"'“‘«„`"
# Words that follow "password is" / "token:" in ordinary sentences. Kept small on purpose:
# the prose suffixes below catch most of the rest.
_STOP_WORDS = _words(
    """
    a an the this that these those it its is are was were be been being not no none null nil
    true false yes on off n/a na tbd todo unknown empty blank unset set missing required optional
    needed mandatory wrong incorrect invalid valid correct expired ok okay fine same different
    weak strong long short new old too very still already also only just now never always here
    there below above inside elsewhere in at to for of from with by via as or and but if then
    when where what which who how why your my our their his her you we they i me us them
    secret secure insecure safe unsafe hidden private public sensitive case plain plaintext
    stored hashed encrypted rotated changed reset saved managed kept shown masked redacted
    generated provided supplied configured defined loaded used ignored sent passed given
    available unavailable bucket count counts limit limits budget budgets usage length size
    type types policy policies flow flows field fields file files form page manager store vault
    prompt reset rotation expiry expiration endpoint endpoints header headers cookie cookies
    jwt opaque bearer basic token tokens key keys auth authentication
    please must should will can could would may might need needs has have had do does did
    same-site samesite httponly random unique complex simple static dynamic temporary permanent
    global local shared personal readonly read-only writable scoped stale fresh current default
    both all any each every some many few several most more less other another see use like such
    out up over bad good great broken gone lost sticky persistent ephemeral visible invisible enough
    identical equal similar unchanged right long-lived short-lived single multiple per one two
    falsch richtig ungültig gültig abgelaufen leer neu nicht geheim erforderlich gespeichert
    faux vrai incorrect incorrecte correcte invalide expiré expirée vide requis requise obligatoire
    pas trop oublié
    incorrecta correcta inválida válida caducada vacía obligatoria requerida demasiado
    errada correta inválida vazia obrigatória
    sbagliata sbagliato errata errato scaduta scaduto vuota vuoto obbligatoria richiesta corretta
    valida nuova troppo non
    """
)
_PROSE_SUFFIX = re.compile(
    r"(?:ed|ing|ly|able|ible|tion|sion|ment|ness|less|ful|ado|ada|ido|ida|é|ée|és|ées)$"
)
_UNITS = _words(
    """chars characters char letters digits symbols bytes bits words times attempts tries
    days day hours hour minutes minute mins seconds second secs weeks months years
    zeichen caractères caracteres"""
)
_PLACEHOLDER = re.compile(
    r"^(?:\$\{|\$[A-Z_][A-Z0-9_]*$|\{\{|\{%|<[\w\s.-]*>?$|%\w+%$|\[[\w\s.-]*\]$|\*+$|•+$|[xX]{3,}$|\.{3}$|…$)"
)
_VERSION = re.compile(r"^v?\d+(?:\.\d+)+[a-z0-9.+-]*$", re.I)
_TECH_WORD = re.compile(
    r"^(?:sha|md|argon|base|utf|oauth|http|https|ipv|x|rs|hs|es|ps|aes|ed|rsa|pbkdf|blake|crc|tls|ssl|gpt|"
    r"scrypt|bcrypt)-?\d+[a-z]{0,2}\d*$",
    re.I,
)
# settings.db_password, models.providers.*.apiKey, mcp_servers[].env: names, not values
_DOTTED_IDENTIFIER = re.compile(r"^[A-Za-z_*][\w*\[\]]*+(?:\.[A-Za-z_*][\w*\[\]]*+)+$")
_CREDENTIAL_SYMBOLS = frozenset("!@#$%^&*+=?~/|\\:")
_RANDOM_WORD = re.compile(r"^[\w+/=-]++$")


def _is_prose(word: str) -> bool:
    """A word of the sentence, not a value: a stop word or a word with a prose ending, in
    lower case or capitalised (`Stored`), never with inner capitals or digits."""
    lowered = word.lower()
    plain_case = word.islower() or word.isupper() or (word[0].isupper() and word[1:].islower())
    if lowered in _STOP_WORDS:
        return plain_case  # "None", "N/A", "stored"; never "NoNe"
    if not word.replace("-", "").replace("'", "").isalpha() or word.isupper() or not plain_case:
        return False
    return len(lowered) > 4 and bool(_PROSE_SUFFIX.search(lowered))


def _looks_random(word: str) -> bool:
    """A long random word (a session id, a refresh token, a key in hex or base64): 24
    characters or more of letters, digits and `-_+/=`, with letters and digits."""
    return (
        len(word) >= 24
        and _RANDOM_WORD.match(word) is not None
        and any(c.isdigit() for c in word)
        and any(c.isalpha() for c in word)
    )


def _looks_like_key(word: str) -> bool:
    """After a bare "key" (not "api key"): eight characters or more, letters and digits
    ("the key is 9f8e7d6c5b4a", never "the key is to test early")."""
    return len(word) >= 8 and any(c.isdigit() for c in word) and any(c.isalpha() for c in word)


def _looks_like_credential(word: str) -> bool:
    """What a credential looks like without a connector to say so: six characters or more,
    letters with digits, inner capitals or symbols (hunter2, Tr0ub4dor&3, abc123)."""
    if len(word) < 6 or not any(c.isalpha() for c in word):
        return False
    has_digit = any(c.isdigit() for c in word)
    inner_capital = any(c.isupper() for c in word[1:]) and any(c.islower() for c in word)
    has_symbol = any(c in _CREDENTIAL_SYMBOLS for c in word)
    return has_digit or inner_capital or has_symbol


def _not_a_value(word: str, *, keyword: str, following: str) -> bool:
    """Candidates that are kept whatever the connector: placeholders, masks, paths, URLs,
    versions, code, counts of tokens, lengths ("12 characters")."""
    if not any(c.isalnum() for c in word) or _PLACEHOLDER.match(word):
        return True
    if word.startswith(MARKER_PREFIX):
        return True
    if "://" in word or word.startswith(("/", "~/", "./", "../")):
        return True
    if _VERSION.match(word) or _TECH_WORD.match(word) or _DOTTED_IDENTIFIER.match(word):
        return True
    if word.endswith(("(", "()")) or "(" in word or "[" in word:
        return True
    if word.isdigit():
        lowered = keyword.lower()
        if lowered.startswith("token") or (lowered.endswith("s") and lowered != "pass"):
            return True  # "tokens: 4096", "secrets: 3": counts
        if following.lower().strip(_TRAILING_PUNCTUATION) in _UNITS:
            return True  # "password: 12 characters minimum"
    return False


def _normalise(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def is_secret_key(key: str, value: Any = None) -> bool:
    name = _normalise(key)
    if isinstance(value, bool) or value is None:
        return False
    if name in _SECRET_SECTION_NAMES or _SECTION_WORD_AT_END.search(key):
        if not isinstance(value, dict):
            return True
        if name in _SECRET_SECTION_NAMES:
            return False
    if "token" in name and isinstance(value, int | float):
        return False  # maxTokens, contextTokens: counts, not credentials
    if name in _SECRET_EXACT_NAMES:
        return True
    if name in _TOKEN_VALUED_NAMES:
        return isinstance(value, str) and _looks_random(value)
    if any(part in name for part in _SECRET_KEY_PARTS):
        return True
    return bool(_KEY_WORD_AT_END.search(key)) and name not in _NOT_SECRET_KEYS


def looks_secret(key: str, value: Any) -> bool:
    """Whether a key-value entry looks like a credential, by its key (also compatibility
    forms of letters: ＡＰＩ_KEY), by any key inside it, or by a secret-looking text in it.
    (The phrase net is not asked: a sentence with a password in it is stored with the
    password redacted, and stays readable.)"""
    if is_secret_key(unicodedata.normalize("NFKC", key), value if value is not None else ""):
        return True
    if isinstance(value, dict):
        return any(looks_secret(str(k), v) for k, v in value.items())
    if isinstance(value, list):
        return any(looks_secret("", v) for v in value)
    return isinstance(value, str) and any(
        (m := p.search(value)) is not None and (check is None or check(m)) for p, check in _VALUE_PATTERNS
    )


def is_redacted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MARKER_PREFIX)


def default_redactor() -> Redactor:
    """The redactor of this installation ($OPENCLAW_HOME), for writers that were not given one."""
    return Redactor.for_home(openclaw_home())


class Redactor:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a redaction key has {KEY_BYTES} bytes, not {len(key)}")
        self._key = key

    @classmethod
    def for_home(cls, home: Path) -> Redactor:
        """The redactor of this installation, creating its key on first use."""
        path = home / "redaction.key"
        try:
            return cls._read(path)
        except FileNotFoundError:
            pass
        try:
            home.mkdir(parents=True, exist_ok=True)
            # Write a complete key under a temporary name, then link it into place: a
            # concurrent first use either wins the link or reads the winner's whole key.
            tmp = home / f".redaction.key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_bytes(KEY_BYTES).hex())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
            return cls._read(path)
        except FileNotFoundError:
            raise ConfigError(f"cannot create {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from None

    @classmethod
    def _read(cls, path: Path) -> Redactor:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise ConfigError(f"{path} is damaged: delete it to make a new one") from None

    def marker(self, value: Any) -> str:
        digest = hmac.new(self._key, json.dumps(value, sort_keys=True).encode(), hashlib.sha256)
        return f"{MARKER_PREFIX}{digest.hexdigest()[:12]}]"

    def redact(self, document: Any) -> Any:
        """A copy of `document` with every secret replaced by its marker. Idempotent:
        markers are left as they are."""
        _check_depth(document)
        return self._walk(document, secret=False)

    def redact_entry(self, key: str, value: Any) -> Any:
        """`value` as stored under `key` (a context entry): the key name counts as in a
        config document, so `{"db_password": "x"}` and `db_password = "x"` agree."""
        _check_depth(value)
        return self._walk({key: value}, secret=False)[key]

    def redact_text(self, text: str) -> str:
        """Free text (a task description, an issue's workaround) with the value patterns,
        assignments and password-like phrases redacted; the sentence is kept."""
        return self._scrub_string(text)

    def _walk(self, value: Any, *, secret: bool) -> Any:
        if isinstance(value, dict):
            return {k: self._walk_entry(k, v, secret=secret) for k, v in value.items()}
        if isinstance(value, list):
            return self._walk_list(value, secret=secret)
        if is_redacted(value):
            return value
        if secret and value is not None and not isinstance(value, bool):
            return self.marker(value)
        if isinstance(value, str):
            return self._scrub_string(value)
        return value

    def _walk_entry(self, key: str, value: Any, *, secret: bool) -> Any:
        if not secret and _is_header_place(key, value):
            return self._walk_headers(value)
        return self._walk(
            value, secret=secret or is_secret_key(key, value) or _normalise(key) in _SECRET_SUBTREES
        )

    def _walk_list(self, items: list[Any], *, secret: bool) -> list[Any]:
        out: list[Any] = []
        after_flag = after_header_flag = False
        for item in items:
            if after_header_flag and isinstance(item, str) and not secret:
                out.append(self._header_line(item))
            elif isinstance(item, str) and not secret and (m := _HEADER_FLAG_WITH_VALUE.match(item)):
                out.append(m["head"] + self._header_line(m["line"]))
            else:
                out.append(self._walk(item, secret=secret or after_flag))
            after_flag = isinstance(item, str) and _is_secret_flag(item)
            after_header_flag = isinstance(item, str) and bool(_HEADER_FLAG.match(item))
        return out

    # --- headers ----------------------------------------------------------------------

    def _walk_headers(self, headers: dict[str, Any] | list[Any]) -> Any:
        """A header map (`{"X-Custom-Auth": "..."}`) or list (`["Authorization: Bearer x"]`,
        `[{"name": "X-Auth", "value": "..."}]`, `[["X-Auth", "..."]]`)."""
        if isinstance(headers, dict):
            return {
                # A section (not a header value) is walked as any other part of a config.
                name: self._walk_entry(name, v, secret=False)
                if isinstance(v, dict)
                else self._header_value(name, v)
                for name, v in headers.items()
            }
        out: list[Any] = []
        for item in headers:
            if isinstance(item, str):
                out.append(self._header_line(item))
            elif (
                isinstance(item, dict) and "value" in item and (name := _header_name_field(item)) is not None
            ):
                out.append(
                    {
                        k: self._header_value(name, v)
                        if k == "value"
                        else self._walk_entry(k, v, secret=False)
                        for k, v in item.items()
                    }
                )
            elif isinstance(item, dict):
                out.append(self._walk_headers(item))
            elif isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
                out.append([item[0], self._header_value(item[0], item[1])])
            else:
                out.append(self._walk(item, secret=True))
        return out

    def _header_value(self, name: str, value: Any) -> Any:
        return self._walk(value, secret=not _harmless_header(name))

    def _header_line(self, line: str) -> str:
        """`Name: value` with the value redacted unless the header is harmless; a line
        that is not of that form is redacted whole."""
        if is_redacted(line) or not line.strip():
            return line
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            return self._scrub_string(line)  # not a header line: table headers ["Name", "Age"]
        if _harmless_header(name):
            return self._scrub_string(line)
        stripped = value.strip()
        if not stripped or is_redacted(stripped):
            return line
        lead = value[: len(value) - len(value.lstrip())]
        return f"{name}{colon}{lead}{self.marker(stripped)}"

    # --- strings ----------------------------------------------------------------------

    def _scrub_string(self, text: str) -> str:
        for pattern, check in _VALUE_PATTERNS:

            def replace(match: re.Match[str], check: Callable[[re.Match[str]], bool] | None = check) -> str:
                if match["secret"].startswith(MARKER_PREFIX) or (check is not None and not check(match)):
                    return match[0]  # redacted already, or not a secret after all
                return match["head"] + self.marker(match["secret"])

            text = pattern.sub(replace, text)
        # The nets below read the text with compatibility forms folded (ｐａｓｓｗｏｒｄ) and
        # invisible characters dropped (pass\u200bword); what they find is replaced in the
        # text as it was written.
        folded, origin = _fold(text)
        spans = [
            *_assignment_spans(folded),
            *_phrase_spans(folded),
            *_cjk_spans(folded),
            *_login_spans(folded),
            *_command_spans(folded),
        ]
        if not spans:
            return text
        spans.sort(key=lambda span: (span[0], -span[1]))
        out: list[str] = []
        pos = 0
        for start, end in spans:
            if origin is not None:
                start, end = origin[start], origin[end - 1] + 1
            if start < pos:
                continue  # found by another net
            out += [text[pos:start], self.marker(text[start:end])]
            pos = end
        out.append(text[pos:])
        return "".join(out)


_Span = tuple[int, int]
# Characters that do not show: a keyword split by one is still the keyword.
_INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff")
_INVISIBLE_CHARACTER = re.compile("[" + "".join(sorted(_INVISIBLE)) + "]")


def _fold(text: str) -> tuple[str, list[int] | None]:
    """`text` with each character in its NFKC form (full-width letters and colons become
    ASCII) and invisible characters dropped, with where each folded character came from;
    (text, None) when folding changes nothing (always for ASCII)."""
    if text.isascii() or (
        unicodedata.is_normalized("NFKC", text) and _INVISIBLE_CHARACTER.search(text) is None
    ):
        return text, None
    parts: list[str] = []
    origin: list[int] = []
    for i, c in enumerate(text):
        if c in _INVISIBLE:
            continue
        folded = c if c.isascii() else unicodedata.normalize("NFKC", c)
        parts.append(folded)
        origin += [i] * len(folded)
    return "".join(parts), origin


def _assignment_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    pos = 0
    for m in _ASSIGNMENT.finditer(text):
        if m.start() < pos:
            continue
        name = m["name"]
        identifier = (
            "_" in name.strip("_") or _INNER_CAPITAL.search(name) or (name.isupper() and len(name) > 1)
        )
        lowered = name.lower()
        if not identifier or not any(hint in lowered for hint in _ASSIGNMENT_HINTS):
            continue  # plain words are the phrase net's
        found = _candidate(text, m.end())
        if found is None:
            continue
        start, end, word, quoted = found
        as_value: Any = int(word) if word.isdigit() else word
        if not is_secret_key(name, as_value):
            continue
        if not word.strip() or _not_a_value(word, keyword=name, following="") or _is_prose(word):
            continue
        end = _whole_token(text, start, end, quoted)
        spans.append((start, end))
        pos = end
    return spans


def _phrase_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    pos = 0
    for m in _PHRASE.finditer(text):
        if m.start() < pos:
            continue
        keyword = m["kw"]
        lowered = keyword.lower()
        strong = m["strong"] is not None
        if lowered in ("pass", "pin", "otp") and not strong:
            continue  # everyday words: "second pass", "pin the version"
        found = _candidate(text, m.end())
        if found is None:
            continue
        start, end, word, quoted = found
        if lowered == "pass" and not (_at_line_start(text, m.start()) or _looks_like_credential(word)):
            continue  # "second pass: refactor"; but "pass: x" as a line of its own
        if lowered in ("key", "keys") and not _looks_like_key(word):
            continue  # "the key is to test early", "primary key: id"
        if strong and "\n" in m["strong"] and not _ends_line(text, end + 1 if quoted else end):
            continue  # the next line is not a value alone: "password:\n  file: /run/x"
        if lowered in _REST_OF_LINE_KEYWORDS:
            # A header line ("Cookie: a=1; b=2"), never prose ("the session cookie is set").
            if not strong or m["strong"].strip(" \t\r\n\"'”") not in (":", "="):
                continue
            span = _header_rest(text, start, word)
            if span is not None:
                spans.append(span)
                pos = span[1]
            continue
        if not _phrase_value_is_secret(keyword, word, quoted=quoted, strong=strong, text=text, end=end):
            continue
        end = _whole_token(text, start, end, quoted)
        spans.append((start, end))
        pos = end
    return spans


def _ends_line(text: str, pos: int) -> bool:
    """Whether the line ends at `pos`, after at most one sentence mark."""
    if pos < len(text) and text[pos] in ".,;!":
        pos += 1
    return pos >= len(text) or text[pos] in "\r\n"


def _cjk_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    for m in _CJK_PHRASE.finditer(text):
        start = m.start("value")
        word = m["value"].rstrip(_TRAILING_PUNCTUATION)
        end = start + len(word)
        if len(word) < 4:
            continue  # "パスワードは8文字以上": a length
        strong = bool(m["conn"].strip())
        if _phrase_value_is_secret(m["kw"], word, quoted=False, strong=strong, text=text, end=end):
            spans.append((start, end))
    return spans


def _login_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    for m in _LOGIN_PAIR.finditer(text):
        start = m.start("value")
        word = m["value"].rstrip(_TRAILING_PUNCTUATION)
        if not _command_secret(word) or word == m["user"] or word.isdigit():
            continue  # "login with localhost:5432", "log in as admin/admin"
        if _not_a_value(word, keyword="login", following="") or _is_prose(word):
            continue
        if "/" in m["sep"]:  # "login with Google / GitHub": a choice, not a pair
            if not any(c.isdigit() or c in _CREDENTIAL_SYMBOLS for c in word):
                continue
        elif not _looks_like_credential(word):
            continue
        spans.append((start, start + len(word)))
    return spans


def _command_secret(word: str) -> bool:
    """A password given on a command line, not a placeholder (`$PASS`, `<pw>`, `password`)."""
    return (
        any(c.isalnum() for c in word)
        and not word.startswith(("$", MARKER_PREFIX, "//"))
        and not _PLACEHOLDER.match(word)
        and word.lower() not in _PLACEHOLDER_PASSWORDS
    )


def _command_spans(text: str) -> list[_Span]:
    """`curl -u user:pw`, `mysql -p<pw>`, `sshpass -p <pw>`, `redis-cli -a <pw>`."""
    spans: list[_Span] = []
    for m in _USER_FLAG.finditer(text):
        word = m["value"].rstrip(_TRAILING_PUNCTUATION)
        if _command_secret(word) and word != m["user"] and not word.isdigit():
            spans.append((m.start("value"), m.start("value") + len(word)))  # not uid:gid, app:app
    scanned = 0
    for m in _PASSWORD_TOOL.finditer(text):
        if m.start() < scanned:
            continue
        tool = m["tool"]
        pos = m.end()
        takes_next = False
        for _ in range(40):  # the arguments of this command, on its line
            a = _ARGUMENT.match(text, pos)
            if a is None:
                break
            pos = a.end()
            arg, start = a["arg"], a.start("arg")
            if not takes_next and (
                (tool == "sshpass" and arg == "-p") or (tool == "redis-cli" and arg in ("-a", "--pass"))
            ):
                takes_next = True
                continue
            if not takes_next:
                if tool == "redis-cli" or not arg.startswith("-p") or arg.startswith("--") or len(arg) < 3:
                    continue  # `mysql -p` alone prompts; `-P 3306` is a port
                arg, start = arg[2:], start + 2
            takes_next = False
            quote = text[start]
            if quote in "\"'":  # -p'a b': to the closing quote, on this line
                close = text.find(quote, start + 1, start + 258)
                if close > start + 1 and "\n" not in text[start:close]:
                    if _command_secret(text[start + 1 : close]):
                        spans.append((start + 1, close))
                    pos = max(pos, close + 1)
                    if tool == "sshpass":
                        break
                    continue
            value = arg.strip("\"'")
            lead = len(arg) - len(arg.lstrip("\"'"))
            if _command_secret(value):
                spans.append((start + lead, start + lead + len(value)))
            if tool == "sshpass":
                break  # what follows is the command it runs
        scanned = pos
    return spans


def _header_rest(text: str, start: int, first: str) -> tuple[int, int] | None:
    """`Cookie: a=1; b=2`, `Authorization: Token abc`: the rest of the line, after an
    auth scheme's name; None when the line goes on as a sentence."""
    if first.lower() in _AUTH_SCHEMES:
        start = start + len(first)
        while start < len(text) and text[start] in " \t":
            start += 1
        nxt = _candidate(text, start)
        if nxt is None:
            return None
        first = nxt[2]
    elif _is_prose(first):
        return None
    if first.startswith(MARKER_PREFIX) or _PLACEHOLDER.match(first):
        return None
    end = text.find("\n", start)
    end = len(text) if end == -1 else end
    found = text.find("\r", start, end)  # within the line only: linear over many lines
    end = end if found == -1 else found
    while end > start and text[end - 1] in " \t":
        end -= 1
    return (start, end) if end > start else None


def _at_line_start(text: str, pos: int) -> bool:
    """Whether only a bullet or indentation (at most 8 characters) comes before `pos` on
    its line. (Looks back 9 characters, no further: a scan to the line's start for every
    keyword would be quadratic on a long line.)"""
    start = max(0, pos - 9)
    window = text[start:pos]
    cut = max(window.rfind("\n"), window.rfind("\r"))
    if cut == -1 and start > 0:
        return False
    return not window[cut + 1 :].strip(" \t-*•")


def _check_depth(document: Any) -> None:
    """Refuse a document nested deeper than MAX_DEPTH (the walk recurses: a deeper one
    would end in RecursionError, mid-way), looking without recursion."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UsageError(
                f"a value nested more than {MAX_DEPTH} levels deep cannot be checked for secrets"
            )
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


def _header_name_field(item: dict[str, Any]) -> str | None:
    for field in _HEADER_NAME_FIELDS:
        name = item.get(field)
        if isinstance(name, str):
            return name
    return None


def _candidate(text: str, pos: int) -> tuple[int, int, str, bool] | None:
    """The value after a connector: a quoted string (of at most 256 characters, on one
    line) or the next word without its sentence punctuation. (start, end, word, quoted)."""
    if pos >= len(text):
        return None
    close = _OPEN_QUOTES.get(text[pos])
    if close is not None:
        found = text.find(close, pos + 1, pos + 258)
        if found > pos + 1 and "\n" not in text[pos + 1 : found]:
            return pos + 1, found, text[pos + 1 : found], True
    m = _CANDIDATE.match(text, pos)
    if m is None:
        return None
    start, end = m.span()
    while start < end and text[start] in _LEADING_PUNCTUATION and not text.startswith(MARKER_PREFIX, start):
        start += 1
    while end > start and text[end - 1] in _TRAILING_PUNCTUATION:
        if text[end - 1] == "]" and text[start:end].startswith(MARKER_PREFIX):
            break  # a marker's own bracket
        end -= 1
    if end <= start:
        return None
    return start, end, text[start:end], False


def _whole_token(text: str, start: int, end: int, quoted: bool) -> int:
    """Where a secret that filled the candidate's 256 characters really ends: a long
    token is redacted whole, never cut. (Only reached when it is redacted, so the scan is
    paid once per replaced token.)"""
    if quoted or end - start < 250:
        return end
    while end < len(text) and not text[end].isspace():
        end += 1
    return end


def _phrase_value_is_secret(
    keyword: str, word: str, *, quoted: bool, strong: bool, text: str, end: int
) -> bool:
    if quoted:  # quotes say "a value": no need to look like a credential, but `webhook.token` is a name
        return (
            bool(word.strip())
            and not _not_a_value(word, keyword=keyword, following="")
            and not _is_prose(word)
        )
    following = _candidate(text, end + 1) if end < len(text) and text[end] in " \t" else None
    if _not_a_value(word, keyword=keyword, following=following[2] if following else ""):
        return False
    if _is_prose(word):
        return False
    return strong or _looks_like_credential(word)
