-- openclaw schema 0011: the LLM-call rollup trigger reads its batch's rows by id.
--
-- 0004's openclaw_llm_rollup_add(only_ids) read `llm_calls WHERE only_ids IS NULL OR id =
-- ANY(only_ids)`. A SQL function's statements are planned once, for any argument: the OR
-- made every batch's trigger scan the whole table, three times, and the outbox's flush of
-- a backlog slowed as the table grew (50,000 calls: 1,250 rows/s, 3% of a raw COPY).
-- Written as two branches of a UNION ALL, the plan keeps both: a one-time filter skips
-- the whole-table branch when ids are given, and the other reads those ids by primary key.
CREATE OR REPLACE FUNCTION openclaw_llm_calls_of(only_ids UUID[]) RETURNS SETOF llm_calls
LANGUAGE sql STABLE
AS $$
    SELECT * FROM llm_calls WHERE only_ids IS NULL
    UNION ALL
    SELECT * FROM llm_calls WHERE id = ANY(only_ids)
$$;

CREATE OR REPLACE FUNCTION openclaw_llm_rollup_add(only_ids UUID[] DEFAULT NULL) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO llm_calls_hourly AS h
        (hour, model, provider, calls, errors, latency_ms_sum, first_token_ms_sum, first_token_calls, total_tokens)
    SELECT date_trunc('hour', created_at, 'UTC'), model, coalesce(provider, ''), count(*),
           count(*) FILTER (WHERE error IS NOT NULL), sum(latency_ms),
           coalesce(sum(time_to_first_token_ms), 0), count(time_to_first_token_ms), sum(usage_total_tokens)
      FROM openclaw_llm_calls_of(only_ids)
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
      FROM openclaw_llm_calls_of(only_ids)
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (hour, model, provider, bucket) DO UPDATE SET calls = h.calls + EXCLUDED.calls;
    INSERT INTO llm_latency_daily AS d (day, model, provider, bucket, calls)
    SELECT date_trunc('day', created_at, 'UTC'), model, coalesce(provider, ''), openclaw_latency_bucket(latency_ms),
           count(*)
      FROM openclaw_llm_calls_of(only_ids)
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, model, provider, bucket) DO UPDATE SET calls = d.calls + EXCLUDED.calls;
$$;
