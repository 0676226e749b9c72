-- openclaw schema 0010: sessions that `openclaw migrate-sessions` imported under a new key
-- (issue 14).
--
-- A session key is unique across agents in Postgres, but not across openclaw-rs files: two
-- agents may both have a free-form webhook key, an orphan message's key, or a legacy key.
-- When the key of a file's session already belongs to another agent, the session is
-- imported under `{key}#{agent}` (openclaw.sessions.keys.renamed_key) and recorded here:
-- a re-run finds the same key here, and `openclaw sessions verify` compares the file's
-- session with the renamed one. A table beside `sessions`, not a column of it: the
-- sessions row is rewritten on every append, and stays as narrow as it was.
CREATE TABLE IF NOT EXISTS session_renames (
    session_key  TEXT PRIMARY KEY REFERENCES sessions (session_key) ON UPDATE CASCADE ON DELETE CASCADE,
    original_key TEXT NOT NULL,                  -- the key in the file (legacy keys rewritten)
    agent_name   TEXT NOT NULL,                  -- the agent of the file's session
    source_file  TEXT,                           -- the file of the first import that renamed it
    renamed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (original_key, agent_name)
);

CREATE OR REPLACE VIEW reader.session_renames AS SELECT * FROM public.session_renames;
COMMENT ON VIEW reader.session_renames IS 'Sessions imported from openclaw-rs files under a new key, because another agent had the key: session_key is the key in sessions, original_key the one in the agent''s file.';

-- This database's reader (migration 0009) sees the new view at once.
DO $$
DECLARE
    reader_role TEXT := public.openclaw_login_role('reader');
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader_role) THEN
        EXECUTE format('GRANT SELECT ON reader.session_renames TO %I', reader_role);
    END IF;
END $$;
