"""The login roles an assistant uses: this database's reader, and (for --allow-writes) its writer.

**The reader** may connect to its own database, use the schema `reader` (one view per
table, migration 0002) and SELECT from it; it owns nothing, inherits nothing, cannot
create, and its sessions start read only with a statement timeout, whichever client uses
it (our MCP server, or a generic Postgres MCP server given `openclaw db reader-url`).

**The writer** (`openclaw db grant-writer`, used by `openclaw mcp serve --allow-writes`)
may SELECT, INSERT and UPDATE the three context tables (task_log, known_issues,
project_context) and use their id sequences: nothing else, no DELETE, no other table, no
DDL. It reads those three tables whole, `secret` rows of project_context included (an
UPDATE ... RETURNING needs it); it is for an assistant trusted to write them.

**One pair per database.** Roles belong to the whole server, and a session may read the
query text (literals included) of any session of its own role in `pg_stat_activity`, on
any database. So each database has roles of its own, named by this rule (the same in SQL,
`public.openclaw_login_role(kind, dbname)`, migration 0009, for later migrations' grants):

    openclaw_<kind>_<part>, kind = reader | writer, and <part> is
    - the database name itself, when it is made of [a-z0-9_] only, is at most 47 bytes,
      and does not end in `_` and 8 hex digits;
    - otherwise: the name with A-Z lowered and every other character outside [a-z0-9_]
      made `_`, cut to 38 characters, then `_` and the first 8 hex digits of the SHA-256
      of the database name (UTF-8).
    e.g. openclaw -> openclaw_reader_openclaw; My-App -> openclaw_reader_my_app_<8 hex>.

A name of the first kind never ends like one of the second, so two databases share a
role only if someone who may create databases grinds a 32-bit hash collision on purpose.

The shared role `openclaw_reader` of earlier versions loses its grants in a database
(migration 0009, and every grant here) but is not dropped: other databases of the
server may still use it. Drop it once none does: `DROP ROLE openclaw_reader`.

**What every login still sees** (PostgreSQL shows it to PUBLIC, whatever the grants):
the names of all databases (pg_database) and roles (pg_roles, so the other projects'
reader role names, which carry their database names), the server's settings and
version, and in its own database the catalog: names, columns and comments of every
table and view, function bodies (pg_proc.prosrc), but no rows it was not granted. In
`pg_stat_activity` it sees that other sessions exist (role, database, client address,
state) but not their query text. Where the granting user owns the database, CONNECT is
taken from PUBLIC (and given to this database's roles), so the roles of another database
cannot connect here at all; grant CONNECT to any other role that needs it. TEMPORARY is
taken from PUBLIC there too: a generic client may lift a role's read-only default with
BEGIN READ WRITE, and temporary tables are bounded by no temp_file_limit. Databases that
openclaw does not own (`postgres`, another application's) keep PostgreSQL's default of
CONNECT for PUBLIC, so a role may log in there and read their catalog: revoke it there
if that matters.

**Settings a role can lift.** A role may change its own defaults (ALTER ROLE current_user
SET statement_timeout = 0, default_transaction_read_only = off, work_mem...), and so may
whoever holds its URL. The walls that hold against that are the grants (SELECT on the
reader views only; the writer's three tables) and what our MCP server sets itself on
each connection (read-only transactions, the per-call deadline, work_mem): a generic
client given the URL gets the defaults as a convenience, not as a wall, and `openclaw db
grant-reader` sets them again.

**Large objects.** `lo_create`, `lo_from_bytea` and their kin are executable by PUBLIC and
need no privilege: a role given read-only *defaults* may still open a READ WRITE
transaction (a generic client can) and fill the disk with large objects. Where the
granting user is a superuser owning the database (the embedded server), EXECUTE on the
functions that create or write large objects is revoked from PUBLIC in this database;
openclaw keeps no large objects. Elsewhere only a superuser can revoke them (they belong
to the bootstrap superuser): a DBA may run the same REVOKE (LARGE_OBJECT_WRITERS below).
Server-side lo_import/lo_export already need superuser or pg_read/write_server_files.

Creating roles needs CREATEROLE, which a migration must not assume, so the roles are made
by `openclaw db grant-reader` / `grant-writer`, or by `openclaw mcp serve` and `openclaw
mcp config` with the owner's URL. A password is generated when a role is made (or with
--new-password) and the URL saved in `$OPENCLAW_HOME/reader-url` / `writer-url` (0600);
another machine gets it from there, or from `OPENCLAW_READER_URL` / `OPENCLAW_WRITER_URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode

from psycopg import AsyncConnection, errors, sql
from psycopg.conninfo import conninfo_to_dict

from openclaw.errors import DatabaseError

Kind = Literal["reader", "writer"]
READER: Kind = "reader"
WRITER: Kind = "writer"
LEGACY_ROLE = "openclaw_reader"  # shared by every database of a server before issue 12
SCHEMA = "reader"
WRITER_TABLES = ("task_log", "known_issues", "project_context")
STATEMENT_TIMEOUT = "10s"  # for clients that set none themselves
# Memory per sort or hash of a reader's query (four parallel questions once took 3.7 GB of
# backends): what a sort or hash needs past this goes to temporary files, which
# temp_file_limit bounds in turn.
WORK_MEM = "16MB"
HASH_MEM_MULTIPLIER = "1"
READER_URL_ENV = "OPENCLAW_READER_URL"
WRITER_URL_ENV = "OPENCLAW_WRITER_URL"
_URL_ENV = {READER: READER_URL_ENV, WRITER: WRITER_URL_ENV}
# The functions that create or write large objects (see the module's docstring).
LARGE_OBJECT_WRITERS = (
    "lo_creat(integer)",
    "lo_create(oid)",
    "lo_from_bytea(oid, bytea)",
    "lo_put(oid, bigint, bytea)",
    "lowrite(integer, bytea)",
    "lo_truncate(integer, integer)",
    "lo_truncate64(integer, bigint)",
    "lo_import(text)",
    "lo_import(text, oid)",
)

_MAX_NAME_BYTES = 63  # NAMEDATALEN - 1
_PREFIX_BYTES = len("openclaw_reader_")  # the same for writer
_HASH_CHARS = 8
_HASHED_TAIL = re.compile(r"_[0-9a-f]{8}")
_OUTSIDE = re.compile(r"[^a-z0-9_]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def login_role(kind: Kind, database: str) -> str:
    """This database's reader or writer role (the rule is in the module's docstring)."""
    clean = _OUTSIDE.sub("_", database.translate(_ASCII_LOWER))
    room = _MAX_NAME_BYTES - _PREFIX_BYTES
    if clean == database and len(clean) <= room and not _HASHED_TAIL.fullmatch(clean[-9:]):
        part = clean
    else:
        digest = hashlib.sha256(database.encode()).hexdigest()[:_HASH_CHARS]
        part = f"{clean[: room - _HASH_CHARS - 1]}_{digest}"
    return f"openclaw_{kind}_{part}"


def url_path(home: Path, kind: Kind) -> Path:
    return home / f"{kind}-url"


def login_url(main_url: str, role: str, password: str | None, database: str) -> str:
    """The main database's URL (host, port, TLS) with a role's credentials, as a
    `postgresql://` URL (generic MCP servers take URLs, not `key=value` strings)."""
    params = conninfo_to_dict(main_url)
    user = quote(role) + (":" + quote(password, safe="") if password else "")
    host = str(params.pop("host", "") or "")
    query: dict[str, str] = {}
    netloc_host = host
    if host.startswith("/"):  # a Unix socket directory goes in the query
        query["host"], netloc_host = host, ""
    port = params.get("port")
    netloc = f"{user}@{netloc_host}" + (f":{port}" if port and netloc_host else "")
    if port and not netloc_host:
        query["port"] = str(port)
    for key in ("sslmode", "sslrootcert"):
        if params.get(key):
            query[key] = str(params[key])
    path = quote(database, safe="")
    return f"postgresql://{netloc}/{path}" + (f"?{urlencode(query, safe='/')}" if query else "")


def _url_params(url: str) -> dict[str, object]:
    """A URL's connection parameters; none for a malformed URL (it belongs to nobody)."""
    try:
        return dict(conninfo_to_dict(url))
    except errors.ProgrammingError:
        return {}


def url_user(url: str) -> str | None:
    user = _url_params(url).get("user")
    return str(user) if user else None


def url_database(url: str) -> str | None:
    params = _url_params(url)
    name = params.get("dbname") or params.get("user")  # libpq's default is the user's name
    return str(name) if name else None


def url_socket_dir(url: str) -> str | None:
    """The Unix socket directory a URL connects through, if any."""
    host = str(_url_params(url).get("host") or "")
    return host if host.startswith("/") else None


def saved_url(home: Path, kind: Kind) -> str | None:
    """The URL in the environment (OPENCLAW_READER_URL / OPENCLAW_WRITER_URL), else the one
    saved in the home."""
    env = os.environ.get(_URL_ENV[kind], "").strip()
    if env:
        return env
    return saved_file_url(home, kind)


def saved_file_url(home: Path, kind: Kind) -> str | None:
    path = url_path(home, kind)
    text = path.read_text().strip() if path.is_file() else ""
    return text or None


def save_url(home: Path, kind: Kind, url: str) -> None:
    path = url_path(home, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written 0600 from the first byte: it holds a password.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(url + "\n")
    os.chmod(path, 0o600)  # a file made by an earlier version keeps its mode otherwise


async def current_database(conn: AsyncConnection) -> str:
    row = await (await conn.execute("SELECT current_database()")).fetchone()
    assert row is not None
    return str(row[0])


async def role_exists(conn: AsyncConnection, role: str) -> bool:
    row = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))).fetchone()
    return row is not None


async def _privileges(conn: AsyncConnection) -> tuple[bool, bool, bool]:
    """(superuser, may create roles, owns the current database) of the current user."""
    row = await (
        await conn.execute(
            "SELECT r.rolsuper, r.rolcreaterole, d.datdba = r.oid FROM pg_roles r, pg_database d"
            " WHERE r.rolname = current_user AND d.datname = current_database()"
        )
    ).fetchone()
    return (bool(row[0]), bool(row[1]), bool(row[2])) if row else (False, False, False)


async def can_create_roles(conn: AsyncConnection) -> bool:
    superuser, createrole, _ = await _privileges(conn)
    return superuser or createrole


async def _execute_retrying(conn: AsyncConnection, statement: sql.Composed, attempts: int = 30) -> None:
    """Run an idempotent role statement. A role's settings are catalog rows of the server,
    so processes granting at once (several `mcp serve` starting) update the same rows, and
    all but one get "tuple concurrently updated" (or, for a setting the first of them is
    adding, a duplicate key): try again."""
    for attempt in range(1, attempts + 1):
        try:
            await conn.execute(statement)
            return
        except (errors.InternalError_, errors.UniqueViolation) as exc:
            lost = isinstance(exc, errors.UniqueViolation) or "concurrently updated" in str(exc)
            if not lost or attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0.01, 0.05))  # jitter: the losers must not meet again


async def _ensure_role(conn: AsyncConnection, role: str, *, new_password: bool) -> str | None:
    """Create the login role if missing, or give it a new password when asked; returns the
    password it set, if it set one."""
    ident = sql.Identifier(role)
    if not await role_exists(conn, role):
        password = secrets.token_urlsafe(24)
        try:
            await conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION"
                    " NOBYPASSRLS CONNECTION LIMIT 20 PASSWORD {}"
                ).format(ident, sql.Literal(password))
            )
        except errors.Error as exc:  # another process made it first: keep theirs
            if not await role_exists(conn, role):
                raise DatabaseError(f"cannot create role {role}: {exc}") from None
            return None
        return password
    if new_password:
        password = secrets.token_urlsafe(24)
        await _execute_retrying(
            conn, sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password))
        )
        return password
    return None


async def _check_may_grant(conn: AsyncConnection, role: str) -> None:
    if not await can_create_roles(conn):
        raise DatabaseError(
            f"the database user may not create roles; as a user with CREATEROLE (or a superuser),"
            f" run `openclaw db grant-reader` (role {role})"
        )


async def _close_database(conn: AsyncConnection, database: str, roles: list[str]) -> None:
    """CONNECT to this database for its own roles only, where we own it; and the large
    object writers revoked, where we are the superuser owning it (module docstring)."""
    superuser, _, owner = await _privileges(conn)
    db = sql.Identifier(database)
    for role in roles:
        await _execute_retrying(
            conn, sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, sql.Identifier(role))
        )
    if not owner:
        return
    await _execute_retrying(conn, sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(db))
    # Temporary tables: a generic client with a role's URL may open a READ WRITE transaction
    # and fill the disk with them, and temp_file_limit does not count them.
    await _execute_retrying(conn, sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(db))
    if superuser:
        await _execute_retrying(
            conn,
            sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC").format(
                sql.SQL(", ").join(sql.SQL("pg_catalog." + f) for f in LARGE_OBJECT_WRITERS)
            ),
        )


async def _revoke_legacy(conn: AsyncConnection, database: str) -> None:
    """The shared role of earlier versions loses what it was granted in this database."""
    if not await role_exists(conn, LEGACY_ROLE):
        return
    legacy, schema = sql.Identifier(LEGACY_ROLE), sql.Identifier(SCHEMA)
    for statement in (
        "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {legacy}",
        "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM {legacy}",
        "REVOKE ALL ON SCHEMA {schema} FROM {legacy}",
        "REVOKE CONNECT ON DATABASE {db} FROM {legacy}",
    ):
        await _execute_retrying(
            conn, sql.SQL(statement).format(schema=schema, legacy=legacy, db=sql.Identifier(database))
        )
    # Its search_path here; PostgreSQL 16+ lets only who has ADMIN on the role change it.
    with contextlib.suppress(errors.InsufficientPrivilege):  # a setting, no access
        await _execute_retrying(
            conn,
            sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(legacy, sql.Identifier(database)),
        )


async def grant_reader(conn: AsyncConnection, *, new_password: bool) -> str | None:
    """Create this database's reader role if missing (or give it a new password when
    `new_password`) and grant it the reader schema of this database. Returns the password
    it set, if it set one. Run on an autocommit connection of a user with CREATEROLE (or a
    superuser)."""
    database = await current_database(conn)
    role = login_role(READER, database)
    await _check_may_grant(conn, role)
    password = await _ensure_role(conn, role, new_password=new_password)
    ident, schema = sql.Identifier(role), sql.Identifier(SCHEMA)
    for statement in (
        "ALTER ROLE {role} SET default_transaction_read_only = on",
        "ALTER ROLE {role} SET jit = off",  # JIT costs seconds on the short questions it is asked
        f"ALTER ROLE {{role}} SET statement_timeout = '{STATEMENT_TIMEOUT}'",
        f"ALTER ROLE {{role}} SET work_mem = '{WORK_MEM}'",
        f"ALTER ROLE {{role}} SET hash_mem_multiplier = {HASH_MEM_MULTIPLIER}",
        "ALTER ROLE {role} IN DATABASE {database} SET search_path = {schema}",
        "GRANT USAGE ON SCHEMA {schema} TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
    ):
        await _execute_retrying(
            conn, sql.SQL(statement).format(role=ident, database=sql.Identifier(database), schema=schema)
        )
    if (await _privileges(conn))[0]:  # only a superuser may bound temporary files
        # A sort too big for memory could otherwise fill the server's disk before the timeout.
        await _execute_retrying(conn, sql.SQL("ALTER ROLE {} SET temp_file_limit = '256MB'").format(ident))
    await _close_database(conn, database, [role])
    await _revoke_legacy(conn, database)
    return password


async def grant_writer(conn: AsyncConnection, *, new_password: bool) -> str | None:
    """Create this database's writer role if missing (or give it a new password) and grant
    it what the MCP write tools need (openclaw.context.tasks, issues, kv): SELECT (for
    RETURNING and ON CONFLICT), INSERT and UPDATE on the three context tables, USAGE on
    their id sequences. Returns the password it set, if it set one."""
    database = await current_database(conn)
    role = login_role(WRITER, database)
    await _check_may_grant(conn, role)
    password = await _ensure_role(conn, role, new_password=new_password)
    ident = sql.Identifier(role)
    statements = [
        sql.SQL("ALTER ROLE {} SET jit = off").format(ident),
        sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(ident, sql.Literal(STATEMENT_TIMEOUT)),
        # Its tables by their plain names, never a schema named like the role.
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = public").format(
            ident, sql.Identifier(database)
        ),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
    ]
    for table in WRITER_TABLES:
        target = sql.Identifier("public", table)
        statements.append(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(target, ident))
        # Its id sequence (BIGSERIAL), for INSERT's nextval: the sequences the table owns.
        sequences = await (
            await conn.execute(
                "SELECT s.oid::regclass::text FROM pg_class s JOIN pg_depend d"
                " ON d.classid = 'pg_class'::regclass AND d.objid = s.oid"
                " AND d.refclassid = 'pg_class'::regclass AND d.refobjid = %s::regclass"
                " WHERE s.relkind = 'S'",
                (f"public.{table}",),
            )
        ).fetchall()
        for (sequence,) in sequences:
            statements.append(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(sql.SQL(sequence), ident))
    for statement in statements:
        await _execute_retrying(conn, statement)
    await _close_database(conn, database, [role])
    return password


_GRANTS = {READER: grant_reader, WRITER: grant_writer}


@dataclass(frozen=True, slots=True)
class Login:
    kind: Kind
    role: str
    url: str
    outcome: str  # "created", "new password set", "grants refreshed", "exists"


async def ensure_login(
    conn: AsyncConnection,
    main_url: str,
    home: Path,
    kind: Kind,
    *,
    new_password: bool = False,
    rotate_unknown: bool = True,
) -> Login:
    """Make sure this database's `kind` role exists with its grants, and return a URL to
    log in as it: the one saved in the home if it is this role's, or a new one.

    `rotate_unknown`: when the home has no URL for this role (made elsewhere, or by an
    earlier version), give it a new password so that this machine can log in (other
    machines' saved URLs stop working). Without it, the URL has no password, for servers
    that trust local logins. `conn`: autocommit, as the owner."""
    database = await current_database(conn)
    role = login_role(kind, database)
    saved = saved_file_url(home, kind)
    known = saved if saved and url_user(saved) == role and url_database(saved) == database else None
    if not await can_create_roles(conn):
        if await role_exists(conn, role):
            return Login(kind, role, known or login_url(main_url, role, None, database), "exists")
        raise DatabaseError(
            f"role {role} does not exist and this database user may not create it;"
            f" a user with CREATEROLE (or a superuser) can run `openclaw db grant-{kind}`"
        )
    existed = await role_exists(conn, role)
    password = await _GRANTS[kind](conn, new_password=new_password or (known is None and rotate_unknown))
    if password is None:
        return Login(kind, role, known or login_url(main_url, role, None, database), "grants refreshed")
    url = login_url(main_url, role, password, database)
    save_url(home, kind, url)
    return Login(kind, role, url, "new password set" if existed else "created")
