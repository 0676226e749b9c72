-- openclaw schema 0009: one reader (and one writer) role per database, not per server.
--
-- A session sees the query text of every session of its own role in pg_stat_activity, on
-- any database of the server; so the reader role shared by every openclaw database
-- (openclaw_reader) let a reader of one project read another's live SQL, literals
-- included. Each database now has its own roles (openclaw.db.reader: made by `openclaw
-- db grant-reader` / `grant-writer`, or by `openclaw mcp serve` / `mcp config` as the
-- owner). This function names them by the same rule as openclaw.db.reader.login_role,
-- so that later migrations grant to this database's reader:
--
--     DO $$ DECLARE r TEXT := public.openclaw_login_role('reader'); BEGIN
--         IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
--             EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA reader TO %I', r);
--         END IF; END $$;
--
-- The rule: openclaw_<kind>_<name> when the name is [a-z0-9_] only, at most 47 bytes and
-- does not end in `_` and 8 hex digits; else the name with A-Z lowered and anything else
-- outside [a-z0-9_] made `_`, cut to 38 characters, `_`, and the first 8 hex digits of
-- the SHA-256 of the name (UTF-8).
CREATE OR REPLACE FUNCTION public.openclaw_login_role(kind TEXT, dbname TEXT DEFAULT current_database())
RETURNS TEXT
LANGUAGE sql STABLE
AS $$
    SELECT 'openclaw_' || kind || '_' || CASE
        WHEN clean = dbname AND octet_length(clean) <= 47 AND right(clean, 9) !~ '^_[0-9a-f]{8}$' THEN clean
        ELSE left(clean, 38) || '_' || left(encode(sha256(convert_to(dbname, 'UTF8')), 'hex'), 8)
    END
      FROM (SELECT regexp_replace(
                       translate(dbname, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
                       '[^a-z0-9_]', '_', 'g') AS clean) AS s
$$;
COMMENT ON FUNCTION public.openclaw_login_role(TEXT, TEXT) IS
    'The name of a database''s reader or writer login role (kind: reader or writer); see openclaw.db.reader.';

-- This database's reader sees the views as they are now; the shared role of earlier
-- versions (granted by 0002, 0004 and 0007 when it exists) loses them here, but is not
-- dropped: other databases of the server may still use it until they migrate.
DO $$
DECLARE
    reader_role TEXT := public.openclaw_login_role('reader');
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader_role) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA reader TO %I', reader_role);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA reader TO %I', reader_role);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'openclaw_reader') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA reader FROM openclaw_reader;
        REVOKE ALL ON ALL FUNCTIONS IN SCHEMA reader FROM openclaw_reader;
        REVOKE ALL ON SCHEMA reader FROM openclaw_reader;
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM openclaw_reader', current_database());
    END IF;
END $$;
