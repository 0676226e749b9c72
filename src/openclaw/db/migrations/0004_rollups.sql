-- openclaw schema 0004: hourly rollups, so "how did the models do this week" and "how busy
-- was the bot this week" read a few hundred rows instead of every call and snapshot.
--
-- Triggers keep them: one statement-level trigger per batch that lands (a flusher's COPY
-- or INSERT), aggregating the batch's own rows (its transition table). Replays insert
-- nothing (ON CONFLICT DO NOTHING) and so add nothing. Rows deleted from the raw tables
-- stay counted: the rollups are history. The raw tables stay the truth for anything
-- finer than an hour.

-- Nothing may land between the backfill at the end and the triggers that take over.
LOCK TABLE llm_calls, metrics_snapshots IN SHARE MODE;

-- ============================================================
-- LLM CALLS PER HOUR, MODEL AND PROVIDER
-- ============================================================

CREATE TABLE IF NOT EXISTS llm_calls_hourly (
    hour                TIMESTAMPTZ NOT NULL,  -- a UTC hour (date_trunc('hour', t, 'UTC'))
    model               TEXT NOT NULL,
    provider            TEXT NOT NULL,  -- '' when the call did not say
    calls               BIGINT NOT NULL,
    errors              BIGINT NOT NULL,
    latency_ms_sum      BIGINT NOT NULL,
    first_token_ms_sum  BIGINT NOT NULL,
    first_token_calls   BIGINT NOT NULL,
    total_tokens        BIGINT NOT NULL,
    PRIMARY KEY (hour, model, provider)
);

-- Latency histogram: bucket b holds latencies in [1.1^(b-1), 1.1^b) ms (bucket 0: under
-- 1 ms), so a percentile read from it is within 10% of the exact one.
CREATE TABLE IF NOT EXISTS llm_latency_hourly (
    hour        TIMESTAMPTZ NOT NULL,
    model       TEXT NOT NULL,
    provider    TEXT NOT NULL,
    bucket      SMALLINT NOT NULL,
    calls       BIGINT NOT NULL,
    PRIMARY KEY (hour, model, provider, bucket)
);

-- The same per UTC day: a week's percentile reads 7 days of buckets, not 168 hours.
CREATE TABLE IF NOT EXISTS llm_latency_daily (
    day         TIMESTAMPTZ NOT NULL,  -- date_trunc('day', t, 'UTC')
    model       TEXT NOT NULL,
    provider    TEXT NOT NULL,
    bucket      SMALLINT NOT NULL,
    calls       BIGINT NOT NULL,
    PRIMARY KEY (day, model, provider, bucket)
);

CREATE OR REPLACE FUNCTION openclaw_latency_bucket(latency_ms INT) RETURNS SMALLINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN latency_ms < 1 THEN 0 ELSE floor(ln(latency_ms) / ln(1.1))::int + 1 END::smallint $$;

-- Adds calls (those of `only_ids`, or all) to the rollups. The trigger passes a batch's
-- ids; openclaw_rebuild_rollups() passes none. ORDER BY: concurrent flushers take the
-- rollup rows' locks in one order, and never deadlock.
CREATE OR REPLACE FUNCTION openclaw_llm_rollup_add(only_ids UUID[] DEFAULT NULL) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO llm_calls_hourly AS h
        (hour, model, provider, calls, errors, latency_ms_sum, first_token_ms_sum, first_token_calls, total_tokens)
    SELECT date_trunc('hour', created_at, 'UTC'), model, coalesce(provider, ''), count(*),
           count(*) FILTER (WHERE error IS NOT NULL), sum(latency_ms),
           coalesce(sum(time_to_first_token_ms), 0), count(time_to_first_token_ms), sum(usage_total_tokens)
      FROM llm_calls WHERE only_ids IS NULL OR id = ANY(only_ids)
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (hour, model, provider) DO UPDATE SET
        calls = h.calls + EXCLUDED.calls,
        errors = h.errors + EXCLUDED.errors,
        latency_ms_sum = h.latency_ms_sum + EXCLUDED.latency_ms_sum,
        first_token_ms_sum = h.first_token_ms_sum + EXCLUDED.first_token_ms_sum,
        first_token_calls = h.first_token_calls + EXCLUDED.first_token_calls,
        total_tokens = h.total_tokens + EXCLUDED.total_tokens;
    INSERT INTO llm_latency_hourly AS h (hour, model, provider, bucket, calls)
    SELECT date_trunc('hour', created_at, 'UTC'), model, coalesce(provider, ''), openclaw_latency_bucket(latency_ms),
           count(*)
      FROM llm_calls WHERE only_ids IS NULL OR id = ANY(only_ids)
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (hour, model, provider, bucket) DO UPDATE SET calls = h.calls + EXCLUDED.calls;
    INSERT INTO llm_latency_daily AS d (day, model, provider, bucket, calls)
    SELECT date_trunc('day', created_at, 'UTC'), model, coalesce(provider, ''), openclaw_latency_bucket(latency_ms),
           count(*)
      FROM llm_calls WHERE only_ids IS NULL OR id = ANY(only_ids)
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, model, provider, bucket) DO UPDATE SET calls = d.calls + EXCLUDED.calls;
$$;

CREATE OR REPLACE FUNCTION openclaw_llm_calls_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openclaw_llm_rollup_add(ARRAY(SELECT id FROM new_rows));
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER trg_llm_calls_rollup
    AFTER INSERT ON llm_calls REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION openclaw_llm_calls_rollup();

-- ============================================================
-- GATEWAY COUNTERS PER HOUR AND HOST (increases, as metrics_intervals gives them)
-- ============================================================

CREATE TABLE IF NOT EXISTS metrics_hourly (
    host                    TEXT NOT NULL,
    hour                    TIMESTAMPTZ NOT NULL,
    snapshots               BIGINT NOT NULL,
    boot_ids                UUID[] NOT NULL,  -- the processes seen in the hour
    last_snapshot           TIMESTAMPTZ NOT NULL,
    telegram_requests       BIGINT NOT NULL,
    discord_requests        BIGINT NOT NULL,
    webhook_requests        BIGINT NOT NULL,
    telegram_errors         BIGINT NOT NULL,
    discord_errors          BIGINT NOT NULL,
    completed_requests      BIGINT NOT NULL,
    total_latency_ms        BIGINT NOT NULL,
    agent_turns             BIGINT NOT NULL,
    tool_calls              BIGINT NOT NULL,
    rate_limited            BIGINT NOT NULL,
    concurrency_rejected    BIGINT NOT NULL,
    tasks_cancelled         BIGINT NOT NULL,
    agent_timeouts          BIGINT NOT NULL,
    PRIMARY KEY (host, hour)
);

-- Adds the per-interval increases of snapshots (those of `only_ids`, or all) taken from
-- `since` on to the rollup; each is computed against the snapshot before it, in the same
-- process (a process's snapshots arrive in order: one spool ships them first in, first out).
CREATE OR REPLACE FUNCTION openclaw_metrics_hourly_add(since TIMESTAMPTZ, only_ids BIGINT[] DEFAULT NULL)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO metrics_hourly AS h
    SELECT host, date_trunc('hour', snapshot_at, 'UTC'), count(*), array_remove(array_agg(DISTINCT boot_id), NULL),
           max(snapshot_at), sum(telegram_requests), sum(discord_requests), sum(webhook_requests),
           sum(telegram_errors), sum(discord_errors), sum(completed_requests), sum(total_latency_ms),
           sum(agent_turns), sum(tool_calls), sum(rate_limited), sum(concurrency_rejected),
           sum(tasks_cancelled), sum(agent_timeouts)
      FROM reader.metrics_intervals_since(since)
     WHERE only_ids IS NULL OR id = ANY(only_ids)
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
        agent_timeouts = h.agent_timeouts + EXCLUDED.agent_timeouts
$$;

CREATE OR REPLACE FUNCTION openclaw_metrics_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openclaw_metrics_hourly_add((SELECT min(snapshot_at) FROM new_rows), ARRAY(SELECT id FROM new_rows));
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER trg_metrics_rollup
    AFTER INSERT ON metrics_snapshots REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION openclaw_metrics_rollup();

-- Recompute every rollup from the raw tables: after a restore, after rows were deleted
-- on purpose, or after a bulk load that bypassed the triggers. Also how this migration
-- fills them, idempotently (init.sql may have run it before the migration runner).
CREATE OR REPLACE FUNCTION openclaw_rebuild_rollups() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE llm_calls, metrics_snapshots IN SHARE MODE;  -- nothing lands meanwhile
    TRUNCATE llm_calls_hourly, llm_latency_hourly, llm_latency_daily, metrics_hourly;
    PERFORM openclaw_llm_rollup_add();
    PERFORM openclaw_metrics_hourly_add('-infinity');
END $$;

SELECT openclaw_rebuild_rollups();

-- The reader sees the rollups too.
CREATE OR REPLACE VIEW reader.llm_calls_hourly AS SELECT * FROM public.llm_calls_hourly;
CREATE OR REPLACE VIEW reader.llm_latency_hourly AS SELECT * FROM public.llm_latency_hourly;
CREATE OR REPLACE VIEW reader.llm_latency_daily AS SELECT * FROM public.llm_latency_daily;
CREATE OR REPLACE VIEW reader.metrics_hourly AS SELECT * FROM public.metrics_hourly;
COMMENT ON VIEW reader.llm_calls_hourly IS 'LLM calls per hour (start of the call), model and provider: counts, errors, latency and token sums. avg = sum / calls.';
COMMENT ON VIEW reader.llm_latency_hourly IS 'Latency histogram per hour, model and provider: bucket b counts calls in [1.1^(b-1), 1.1^b) ms.';
COMMENT ON VIEW reader.llm_latency_daily IS 'The latency histogram per UTC day, model and provider (as llm_latency_hourly).';
COMMENT ON VIEW reader.metrics_hourly IS 'Gateway counter increases per host and hour (sums of metrics_intervals), restarts handled; boot_ids are the processes seen.';
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'openclaw_reader') THEN
        GRANT SELECT ON reader.llm_calls_hourly, reader.llm_latency_hourly, reader.llm_latency_daily, reader.metrics_hourly
            TO openclaw_reader;
    END IF;
END $$;
