-- openclaw schema 0007: no message is refused for its size, no key is refused by an index
-- (issue 11 §1).
--
-- 1. messages.content_tsv is built from the first 50,000 characters of the content.
--
-- A tsvector holds at most 1,048,575 bytes of lexemes and positions: an 840 KB message of
-- distinct words failed with SQLSTATE 54000, and the message was refused with it. The bound
-- on what 50,000 characters can cost, from PostgreSQL's to_tsvector (make_tsvector):
--   - each distinct lexeme costs its bytes, one alignment byte, a 2-byte position count, and
--     2 bytes per position it keeps; every token of the text gives at most one position
--     (the parser counts one per token), so at most (lexeme bytes + 5) per token;
--   - the default parser's tokens are runs of the text; only a compound (a hyphenated word,
--     a URL) is emitted again as its parts, which do not overlap each other: the tokens
--     cover each character at most twice, and there are at most as many tokens as
--     characters (parts need a character between them);
--   - the 'simple' dictionary lower-cases, which can lengthen a character (Ⱥ, 2 bytes, is
--     ⱥ, 3 bytes) but to no more than 5 bytes (4 for one code point; ICU's Lithuanian
--     rules turn Ĩ into three code points, 5 bytes).
-- So N characters cost at most 2 * 5 * N + 5 * N = 15 N bytes: 750,000 for N = 50,000,
-- under the limit. The worst text we could construct (distinct 4-byte letters in
-- hyphenated pairs, tests/test_text_limits.py) costs 7.5 bytes a character.
--
-- Words after the first 50,000 characters are not found by search_sessions; the message
-- itself is stored whole. The column keeps its name, so reader.message_words, the MCP
-- search and the plan's own queries (content_tsv @@ ...) keep working, through the index.
--
-- PostgreSQL 15 and 16 cannot change a generated column's expression: the column is made
-- again, which rewrites messages and rebuilds the index once. Whether it is done already is
-- read from the catalog (the column depends on openclaw_message_words), so a second run,
-- such as init.sql run again, changes nothing.

-- SQL, immutable, names qualified: the planner inlines it into the column's expression, and
-- no search_path can change what it calls.
CREATE OR REPLACE FUNCTION openclaw_message_words(content TEXT) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.to_tsvector('pg_catalog.simple'::pg_catalog.regconfig,
                                  pg_catalog."left"(coalesce(content, ''), 50000))
$$;
COMMENT ON FUNCTION openclaw_message_words(TEXT) IS
    'The words of a message for full-text search: those of its first 50,000 characters, which always fit in a tsvector.';

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
          FROM pg_attrdef AS d
          JOIN pg_attribute AS a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
          JOIN pg_depend AS dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
         WHERE d.adrelid = 'messages'::regclass AND a.attname = 'content_tsv'
           AND dep.refclassid = 'pg_proc'::regclass
           AND dep.refobjid = 'openclaw_message_words(text)'::regprocedure
    ) THEN
        -- CASCADE: the index and reader.message_words go with the column, and come back below.
        ALTER TABLE messages DROP COLUMN IF EXISTS content_tsv CASCADE;
        ALTER TABLE messages ADD COLUMN content_tsv tsvector
            GENERATED ALWAYS AS (openclaw_message_words(content)) STORED;
    END IF;
END $$;

CREATE INDEX IF NOT EXISTS idx_messages_fts ON messages USING gin (content_tsv);
CREATE OR REPLACE VIEW reader.message_words AS SELECT id, session_id, content_tsv AS words FROM public.messages;
COMMENT ON VIEW reader.message_words IS 'Full-text search of messages (the words of their first 50,000 characters): WHERE words @@ plainto_tsquery(''simple'', ''some words''), joined to messages on id.';

-- 2. Session keys: at most 256 characters (openclaw.sessions.keys.MAX_SESSION_KEY_CHARS),
-- so at most 1,024 bytes in UTF-8.
--
-- A longer key failed in the key's index (`index row requires 100032 bytes`, SQLSTATE
-- 54000, as when Postgres is out of resources). Every entry point refuses such a key now;
-- one that still reaches Postgres breaks this CHECK, a constraint error (SQLSTATE 23514)
-- that says the row is bad. CHECKs run before the row reaches any index.
--
-- Added NOT VALID, then validated: a database that already holds a longer key (the index
-- allows up to about 2,700 bytes) still migrates, keeps that row, and a notice says so;
-- new rows must obey.
DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('sessions', 'sessions_session_key_length_check',
        $$octet_length(session_key) <= 1024$$);
    -- llm_calls has an index on its session_key too
    PERFORM openclaw_ensure_check('llm_calls', 'llm_calls_session_key_length_check',
        $$octet_length(session_key) <= 1024$$);
END $ensure$;

-- A reader role made before this migration sees the view made again.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'openclaw_reader') THEN
        GRANT USAGE ON SCHEMA reader TO openclaw_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA reader TO openclaw_reader;
    END IF;
END $$;
