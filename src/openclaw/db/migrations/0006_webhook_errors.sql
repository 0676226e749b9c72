-- openclaw schema 0006: failed webhook turns are errors (issue 10 §4.6).
--
-- A webhook turn that fails (500 AGENT_TURN_FAILED or PROVIDER_INIT_FAILED) counts in
-- `openclaw_gateway_errors_total{channel="webhook"}`; snapshots carry that counter as
-- `webhook_errors`, and the hourly rollup sums its increases like the other counters.
--
-- metrics_intervals and reader.metrics_intervals_since keep their columns: their
-- migrations are re-run, in order, by init.sql, and a view cannot lose columns on a re-run.
-- The increases of webhook_errors come from reader.metrics_webhook_errors_since instead,
-- one row per snapshot with the same ids (join on id).

ALTER TABLE metrics_snapshots
    ADD COLUMN IF NOT EXISTS webhook_errors BIGINT NOT NULL DEFAULT 0;

-- The reader's view is `SELECT *`: made again, it shows the new column.
CREATE OR REPLACE VIEW reader.metrics_snapshots AS SELECT * FROM public.metrics_snapshots;

-- The rows of reader.metrics_intervals_since(since, only_host, until), the same way (the
-- window plus, per process, the one snapshot before it), with webhook_errors' increase.
CREATE OR REPLACE FUNCTION reader.metrics_webhook_errors_since(
    since TIMESTAMPTZ, only_host TEXT DEFAULT NULL, until TIMESTAMPTZ DEFAULT NULL
)
RETURNS TABLE (id BIGINT, webhook_errors BIGINT)
LANGUAGE sql STABLE
AS $$
    WITH window_rows AS (
        SELECT s.id, s.host, s.boot_id, s.snapshot_at, s.uptime_seconds, s.webhook_errors
          FROM reader.metrics_snapshots AS s
         WHERE s.snapshot_at >= since AND (until IS NULL OR s.snapshot_at < until)
           AND (only_host IS NULL OR s.host = only_host)
    ), boots AS (
        SELECT DISTINCT host, boot_id FROM window_rows
    ), previous AS (
        SELECT p.*
          FROM boots AS b
         CROSS JOIN LATERAL (
            SELECT s.id, s.host, s.boot_id, s.snapshot_at, s.uptime_seconds, s.webhook_errors
              FROM reader.metrics_snapshots AS s
             WHERE s.host = b.host AND s.boot_id = b.boot_id AND s.snapshot_at < since
             ORDER BY s.snapshot_at DESC, s.id DESC
             LIMIT 1
         ) AS p
        UNION ALL  -- snapshots from before boot ids (the plan's own schema)
        SELECT p.*
          FROM boots AS b
         CROSS JOIN LATERAL (
            SELECT s.id, s.host, s.boot_id, s.snapshot_at, s.uptime_seconds, s.webhook_errors
              FROM reader.metrics_snapshots AS s
             WHERE s.host = b.host AND s.boot_id IS NULL AND s.snapshot_at < since
             ORDER BY s.snapshot_at DESC, s.id DESC
             LIMIT 1
         ) AS p
         WHERE b.boot_id IS NULL
    ), both_rows AS (
        SELECT * FROM window_rows UNION ALL SELECT * FROM previous
    ), increases AS (
        SELECT r.id, r.snapshot_at,
               public.openclaw_counter_increase(r.webhook_errors, lag(r.webhook_errors) OVER w,
                                                r.uptime_seconds, lag(r.uptime_seconds) OVER w) AS webhook_errors
          FROM both_rows AS r
        WINDOW w AS (PARTITION BY r.host, r.boot_id ORDER BY r.snapshot_at, r.id)
    )
    SELECT i.id, i.webhook_errors FROM increases AS i WHERE i.snapshot_at >= since
$$;
COMMENT ON FUNCTION reader.metrics_webhook_errors_since(TIMESTAMPTZ, TEXT, TIMESTAMPTZ) IS
    'Failed webhook turns per snapshot interval: join to metrics_intervals_since(since, host, until) on id.';

-- The hourly rollup sums them too. Rows rolled up before this migration had no webhook
-- errors to count: 0 is their right value.
ALTER TABLE metrics_hourly
    ADD COLUMN IF NOT EXISTS webhook_errors BIGINT NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION openclaw_metrics_hourly_add(since TIMESTAMPTZ, only_ids BIGINT[] DEFAULT NULL)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO metrics_hourly AS h
        (host, hour, snapshots, boot_ids, last_snapshot, telegram_requests, discord_requests,
         webhook_requests, telegram_errors, discord_errors, completed_requests, total_latency_ms,
         agent_turns, tool_calls, rate_limited, concurrency_rejected, tasks_cancelled, agent_timeouts,
         webhook_errors)
    SELECT i.host, date_trunc('hour', i.snapshot_at, 'UTC'), count(*),
           array_remove(array_agg(DISTINCT i.boot_id), NULL), max(i.snapshot_at),
           sum(i.telegram_requests), sum(i.discord_requests), sum(i.webhook_requests),
           sum(i.telegram_errors), sum(i.discord_errors), sum(i.completed_requests), sum(i.total_latency_ms),
           sum(i.agent_turns), sum(i.tool_calls), sum(i.rate_limited), sum(i.concurrency_rejected),
           sum(i.tasks_cancelled), sum(i.agent_timeouts), sum(coalesce(e.webhook_errors, 0))
      FROM reader.metrics_intervals_since(since) AS i
      LEFT JOIN reader.metrics_webhook_errors_since(since) AS e ON e.id = i.id
     WHERE only_ids IS NULL OR i.id = ANY(only_ids)
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (host, hour) DO UPDATE SET
        snapshots = h.snapshots + EXCLUDED.snapshots,
        boot_ids = ARRAY(SELECT DISTINCT b FROM unnest(h.boot_ids || EXCLUDED.boot_ids) AS b),
        last_snapshot = greatest(h.last_snapshot, EXCLUDED.last_snapshot),
        telegram_requests = h.telegram_requests + EXCLUDED.telegram_requests,
        discord_requests = h.discord_requests + EXCLUDED.discord_requests,
        webhook_requests = h.webhook_requests + EXCLUDED.webhook_requests,
        telegram_errors = h.telegram_errors + EXCLUDED.telegram_errors,
        discord_errors = h.discord_errors + EXCLUDED.discord_errors,
        completed_requests = h.completed_requests + EXCLUDED.completed_requests,
        total_latency_ms = h.total_latency_ms + EXCLUDED.total_latency_ms,
        agent_turns = h.agent_turns + EXCLUDED.agent_turns,
        tool_calls = h.tool_calls + EXCLUDED.tool_calls,
        rate_limited = h.rate_limited + EXCLUDED.rate_limited,
        concurrency_rejected = h.concurrency_rejected + EXCLUDED.concurrency_rejected,
        tasks_cancelled = h.tasks_cancelled + EXCLUDED.tasks_cancelled,
        agent_timeouts = h.agent_timeouts + EXCLUDED.agent_timeouts,
        webhook_errors = h.webhook_errors + EXCLUDED.webhook_errors
$$;

CREATE OR REPLACE VIEW reader.metrics_hourly AS SELECT * FROM public.metrics_hourly;

-- Run again after 0004 (init.sql twice), the rollups were rebuilt by 0004's function,
-- which knew no webhook errors: rebuild them with this one. On a first run there are
-- none to count, and nothing is rebuilt.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM metrics_snapshots WHERE webhook_errors <> 0) THEN
        PERFORM openclaw_rebuild_rollups();
    END IF;
END $$;
