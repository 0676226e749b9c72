-- openclaw schema 0005: EXPLAIN for the reader, its lines cut on the server.
--
-- A plan shows the query's constants after folding: `EXPLAIN SELECT ... WHERE content =
-- repeat('x', 240000000)` is one line of 240 MB, sent whole to whoever asked. A SELECT
-- can be wrapped to cut its values on the server; EXPLAIN cannot be a subquery, so the
-- MCP server runs it through this function, which returns each line cut to `max_chars`.
--
-- It runs the text it is given, as the caller (SECURITY INVOKER): it lets the reader do
-- nothing the reader cannot do by sending that text itself, and it refuses anything but
-- EXPLAIN. Being volatile and running SQL from text, the MCP query guard refuses it by
-- name and volatility: only the server's own code calls it, with a checked statement.
CREATE OR REPLACE FUNCTION reader.openclaw_explain(statement TEXT, max_chars INTEGER)
RETURNS SETOF TEXT
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
DECLARE
    line TEXT;
BEGIN
    IF statement !~* '^\s*explain\M' THEN
        RAISE EXCEPTION 'openclaw_explain runs EXPLAIN only';
    END IF;
    FOR line IN EXECUTE statement LOOP
        RETURN NEXT CASE WHEN length(line) > max_chars
                         THEN left(line, max_chars) || '…[' || (length(line) - max_chars) || ' more characters]'
                         ELSE line END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION reader.openclaw_explain(TEXT, INTEGER) IS
    'EXPLAIN of a statement, each line cut to max_chars on the server (used by the MCP query tool).';
