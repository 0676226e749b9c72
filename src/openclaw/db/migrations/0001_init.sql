-- openclaw schema 0001: the plan's init.sql with the corrections of DESIGN.md §4.
--
-- Idempotent, and an upgrade too: on an empty database it creates the schema; on one
-- that Docker's initdb or the plan's own init.sql (openclaw-rs) already initialised, it
-- adds what is missing and keeps every row. Constraints are added NOT VALID first, then
-- validated: rows written before that break a rule are kept, new rows must obey it.
-- Works on PostgreSQL 15 to 18 (CREATE OR REPLACE TRIGGER needs 14, gen_random_uuid 13).

-- ============================================================
-- TYPES AND HELPERS
-- ============================================================

-- An enum sorts in declaration order, so the plan's `ORDER BY severity DESC` puts
-- critical first (on TEXT it put 'medium' first).
DO $$
BEGIN
    CREATE TYPE issue_severity AS ENUM ('low', 'medium', 'high', 'critical');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- Add a CHECK constraint unless the table has one of that name.
CREATE OR REPLACE FUNCTION openclaw_ensure_check(tbl regclass, name text, expr text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = tbl AND conname = name) THEN
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s) NOT VALID', tbl, name, expr);
        BEGIN
            EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', tbl, name);
        EXCEPTION WHEN check_violation THEN
            RAISE NOTICE 'openclaw: % keeps old rows that break %; new rows must obey it', tbl, name;
        END;
    END IF;
END $$;

-- Increase of a cumulative counter since the previous snapshot of the same process.
-- A restart (uptime went down) or a counter that went down starts again from zero.
CREATE OR REPLACE FUNCTION openclaw_counter_increase(
    cur BIGINT, prev BIGINT, uptime BIGINT, prev_uptime BIGINT
) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN prev IS NULL OR uptime < prev_uptime OR cur < prev THEN cur
        ELSE cur - prev
    END
$$;

-- ============================================================
-- RUNTIME TABLES (replacing SQLite)
-- ============================================================

CREATE TABLE IF NOT EXISTS sessions (
    id              BIGSERIAL PRIMARY KEY,
    session_key     TEXT UNIQUE NOT NULL,
    agent_name      TEXT NOT NULL,
    model           TEXT NOT NULL DEFAULT '',
    channel         TEXT,                          -- telegram, discord, cli, cron, webhook, subagent
    user_id         TEXT,                          -- platform user id, parsed from the key
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    total_tokens    BIGINT NOT NULL DEFAULT 0
);

DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('sessions', 'sessions_session_key_check', $$session_key <> ''$$);
    PERFORM openclaw_ensure_check('sessions', 'sessions_channel_check',
        $$channel IN ('telegram', 'discord', 'cli', 'cron', 'webhook', 'subagent')$$);
    PERFORM openclaw_ensure_check('sessions', 'sessions_total_tokens_check', $$total_tokens >= 0$$);
END $ensure$;

CREATE INDEX IF NOT EXISTS idx_sessions_agent ON sessions (agent_name, updated_at DESC);
CREATE INDEX IF NOT EXISTS idx_sessions_channel ON sessions (channel);
-- find_latest_session(prefix) is a LIKE 'prefix%' on the key, whatever the collation.
CREATE INDEX IF NOT EXISTS idx_sessions_key_pattern ON sessions (session_key text_pattern_ops);

CREATE TABLE IF NOT EXISTS messages (
    id                  BIGSERIAL PRIMARY KEY,
    session_id          BIGINT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    role                TEXT NOT NULL,
    content             TEXT,
    reasoning_content   TEXT,
    tool_calls_json     JSONB,
    tool_call_id        TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()  -- when the message happened
);

ALTER TABLE messages ADD COLUMN IF NOT EXISTS uid UUID NOT NULL DEFAULT gen_random_uuid();  -- idempotency key
DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('messages', 'messages_role_check', $$role IN ('system', 'user', 'assistant', 'tool')$$);
END $ensure$;

CREATE UNIQUE INDEX IF NOT EXISTS uq_messages_uid ON messages (uid);
CREATE INDEX IF NOT EXISTS idx_messages_session ON messages (session_id, id);

-- ============================================================
-- LLM CALL LOG
-- ============================================================

CREATE TABLE IF NOT EXISTS llm_calls (
    id                      UUID PRIMARY KEY,      -- the log entry's own id: replays are no-ops
    session_key             TEXT,
    model                   TEXT NOT NULL,
    provider_attempt        SMALLINT NOT NULL DEFAULT 1,
    messages_count          INT NOT NULL DEFAULT 0,
    request_tokens_est      INT NOT NULL DEFAULT 0,
    streaming               BOOLEAN NOT NULL DEFAULT false,
    response_content        TEXT,
    response_reasoning      TEXT,
    response_tool_calls     INT NOT NULL DEFAULT 0,
    tool_call_names         TEXT[],
    usage_prompt_tokens     INT NOT NULL DEFAULT 0,
    usage_completion_tokens INT NOT NULL DEFAULT 0,
    usage_total_tokens      INT NOT NULL DEFAULT 0,
    latency_ms              INT NOT NULL DEFAULT 0,
    error                   TEXT,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now()  -- when the call started
);

ALTER TABLE llm_calls
    ADD COLUMN IF NOT EXISTS provider               TEXT,
    ADD COLUMN IF NOT EXISTS usage_cached_tokens    INT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS usage_reasoning_tokens INT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS finish_reason          TEXT,
    ADD COLUMN IF NOT EXISTS time_to_first_token_ms INT,
    ADD COLUMN IF NOT EXISTS http_status            SMALLINT,
    ADD COLUMN IF NOT EXISTS host                   TEXT;
DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('llm_calls', 'llm_calls_provider_attempt_check', $$provider_attempt >= 1$$);
END $ensure$;

CREATE INDEX IF NOT EXISTS idx_llm_calls_session ON llm_calls (session_key);
CREATE INDEX IF NOT EXISTS idx_llm_calls_model ON llm_calls (model, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_llm_calls_errors ON llm_calls (created_at DESC) WHERE error IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_llm_calls_created ON llm_calls (created_at DESC);

-- ============================================================
-- METRICS SNAPSHOTS
-- ============================================================

-- Counters are cumulative since the process started; sum them through metrics_intervals.
CREATE TABLE IF NOT EXISTS metrics_snapshots (
    id                      BIGSERIAL PRIMARY KEY,
    host                    TEXT NOT NULL,
    telegram_requests       BIGINT NOT NULL DEFAULT 0,
    discord_requests        BIGINT NOT NULL DEFAULT 0,
    telegram_errors         BIGINT NOT NULL DEFAULT 0,
    discord_errors          BIGINT NOT NULL DEFAULT 0,
    rate_limited            BIGINT NOT NULL DEFAULT 0,
    concurrency_rejected    BIGINT NOT NULL DEFAULT 0,
    completed_requests      BIGINT NOT NULL DEFAULT 0,
    total_latency_ms        BIGINT NOT NULL DEFAULT 0,
    agent_turns             BIGINT NOT NULL DEFAULT 0,
    tool_calls              BIGINT NOT NULL DEFAULT 0,
    webhook_requests        BIGINT NOT NULL DEFAULT 0,
    tasks_cancelled         BIGINT NOT NULL DEFAULT 0,
    agent_timeouts          BIGINT NOT NULL DEFAULT 0,
    process_rss_bytes       BIGINT NOT NULL DEFAULT 0,
    uptime_seconds          BIGINT NOT NULL DEFAULT 0,
    snapshot_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE metrics_snapshots
    ADD COLUMN IF NOT EXISTS uid                 UUID NOT NULL DEFAULT gen_random_uuid(),  -- idempotency key
    ADD COLUMN IF NOT EXISTS boot_id             UUID,  -- one per process start
    ADD COLUMN IF NOT EXISTS version             TEXT,
    ADD COLUMN IF NOT EXISTS gateway_connects    BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS gateway_disconnects BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS gateway_resumes     BIGINT NOT NULL DEFAULT 0;

CREATE UNIQUE INDEX IF NOT EXISTS uq_metrics_snapshots_uid ON metrics_snapshots (uid);
CREATE INDEX IF NOT EXISTS idx_metrics_host_time ON metrics_snapshots (host, snapshot_at DESC);
CREATE INDEX IF NOT EXISTS idx_metrics_boot ON metrics_snapshots (host, boot_id, snapshot_at, id);

-- One row per snapshot with the counters' increase since the previous snapshot of the
-- same process: sum() over it answers "how many requests this week" across restarts.
CREATE OR REPLACE VIEW metrics_intervals AS
SELECT
    id,
    host,
    boot_id,
    version,
    snapshot_at,
    openclaw_counter_increase(uptime_seconds, lag(uptime_seconds) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS interval_seconds,
    openclaw_counter_increase(telegram_requests, lag(telegram_requests) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS telegram_requests,
    openclaw_counter_increase(discord_requests, lag(discord_requests) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS discord_requests,
    openclaw_counter_increase(telegram_errors, lag(telegram_errors) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS telegram_errors,
    openclaw_counter_increase(discord_errors, lag(discord_errors) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS discord_errors,
    openclaw_counter_increase(rate_limited, lag(rate_limited) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS rate_limited,
    openclaw_counter_increase(concurrency_rejected, lag(concurrency_rejected) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS concurrency_rejected,
    openclaw_counter_increase(completed_requests, lag(completed_requests) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS completed_requests,
    openclaw_counter_increase(total_latency_ms, lag(total_latency_ms) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS total_latency_ms,
    openclaw_counter_increase(agent_turns, lag(agent_turns) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS agent_turns,
    openclaw_counter_increase(tool_calls, lag(tool_calls) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS tool_calls,
    openclaw_counter_increase(webhook_requests, lag(webhook_requests) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS webhook_requests,
    openclaw_counter_increase(tasks_cancelled, lag(tasks_cancelled) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS tasks_cancelled,
    openclaw_counter_increase(agent_timeouts, lag(agent_timeouts) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS agent_timeouts,
    openclaw_counter_increase(gateway_connects, lag(gateway_connects) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS gateway_connects,
    openclaw_counter_increase(gateway_disconnects, lag(gateway_disconnects) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS gateway_disconnects,
    openclaw_counter_increase(gateway_resumes, lag(gateway_resumes) OVER w, uptime_seconds, lag(uptime_seconds) OVER w) AS gateway_resumes,
    process_rss_bytes,
    uptime_seconds
FROM metrics_snapshots
WINDOW w AS (PARTITION BY host, boot_id ORDER BY snapshot_at, id);

-- ============================================================
-- CRON EXECUTION LOG
-- ============================================================

CREATE TABLE IF NOT EXISTS cron_executions (
    id              BIGSERIAL PRIMARY KEY,
    job_name        TEXT NOT NULL,
    agent_name      TEXT NOT NULL,
    model           TEXT,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    duration_ms     INT,
    status          TEXT NOT NULL DEFAULT 'running',
    error           TEXT,
    tokens_used     INT NOT NULL DEFAULT 0
);

ALTER TABLE cron_executions
    ADD COLUMN IF NOT EXISTS uid         UUID NOT NULL DEFAULT gen_random_uuid(),  -- a run's start and end share it
    ADD COLUMN IF NOT EXISTS job_id      TEXT,
    ADD COLUMN IF NOT EXISTS host        TEXT,
    ADD COLUMN IF NOT EXISTS session_key TEXT;
DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('cron_executions', 'cron_executions_status_check',
        $$status IN ('running', 'success', 'error', 'cancelled')$$);
END $ensure$;

CREATE UNIQUE INDEX IF NOT EXISTS uq_cron_executions_uid ON cron_executions (uid);
CREATE INDEX IF NOT EXISTS idx_cron_job ON cron_executions (job_name, started_at DESC);
CREATE INDEX IF NOT EXISTS idx_cron_started ON cron_executions (started_at DESC);

-- ============================================================
-- DEVELOPER CONTEXT TABLES
-- ============================================================

CREATE TABLE IF NOT EXISTS deployments (
    id              BIGSERIAL PRIMARY KEY,
    host            TEXT NOT NULL,
    component       TEXT NOT NULL,
    version         TEXT NOT NULL,
    binary_path     TEXT,
    service_name    TEXT,                           -- systemd unit name
    git_commit      TEXT,
    built_at        TIMESTAMPTZ,
    deployed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    status          TEXT NOT NULL DEFAULT 'active',
    notes           TEXT
);

ALTER TABLE deployments
    ADD COLUMN IF NOT EXISTS pid           INT,
    ADD COLUMN IF NOT EXISTS superseded_by BIGINT REFERENCES deployments (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    ADD COLUMN IF NOT EXISTS superseded_at TIMESTAMPTZ;
DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('deployments', 'deployments_host_check', $$host <> ''$$);
    PERFORM openclaw_ensure_check('deployments', 'deployments_component_check', $$component <> ''$$);
    PERFORM openclaw_ensure_check('deployments', 'deployments_status_check',
        $$status IN ('active', 'stopped', 'failed', 'superseded')$$);
END $ensure$;

-- The plan's writers never superseded anything: keep only the newest active row of each
-- host and component active before the one-active-row rule below.
DO $$
BEGIN
    UPDATE deployments AS old
       SET status = 'superseded', superseded_by = newest.id, superseded_at = now()
      FROM (SELECT DISTINCT ON (host, component) id, host, component
              FROM deployments WHERE status = 'active'
             ORDER BY host, component, deployed_at DESC, id DESC) AS newest
     WHERE old.status = 'active' AND old.host = newest.host AND old.component = newest.component
       AND old.id <> newest.id;
    -- Check superseded_by now: CREATE INDEX refuses a table with pending deferred checks.
    SET CONSTRAINTS ALL IMMEDIATE;
END $$;

CREATE INDEX IF NOT EXISTS idx_deployments_host ON deployments (host, component, deployed_at DESC);
-- "What's deployed where" is one row per host and component.
CREATE UNIQUE INDEX IF NOT EXISTS uq_deployments_active ON deployments (host, component)
    WHERE status = 'active';

-- A new active deployment supersedes the active one of the same host and component,
-- whoever inserts it (the CLI, the gateway, a script). The advisory lock serialises two
-- deployments of the same pair, so the second supersedes the first instead of failing.
CREATE OR REPLACE FUNCTION openclaw_supersede_deployment() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'active' THEN
        PERFORM pg_advisory_xact_lock(hashtext('openclaw.deployments'), hashtext(NEW.host || '/' || NEW.component));
        UPDATE deployments
           SET status = 'superseded', superseded_by = NEW.id, superseded_at = now()
         WHERE host = NEW.host AND component = NEW.component AND status = 'active';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER trg_deployments_supersede
    BEFORE INSERT ON deployments
    FOR EACH ROW EXECUTE FUNCTION openclaw_supersede_deployment();

-- Config history. Secrets are redacted before they get here (a marker plus a keyed hash,
-- so a changed secret still shows as changed); changed_keys compares with the previous
-- snapshot of the same host and path. (Rows written by openclaw-rs may hold secrets in
-- plain text: `openclaw config scrub` redacts them.)
CREATE TABLE IF NOT EXISTS config_snapshots (
    id              BIGSERIAL PRIMARY KEY,
    config_path     TEXT NOT NULL,
    config_json     JSONB NOT NULL,
    changed_keys    TEXT[],                         -- top-level keys added, removed or changed
    change_source   TEXT,
    snapshot_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE config_snapshots ADD COLUMN IF NOT EXISTS host TEXT;
DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('config_snapshots', 'config_snapshots_change_source_check',
        $$change_source IN ('manual', 'watchdog', 'windsurf', 'cli', 'gateway')$$);
END $ensure$;

CREATE INDEX IF NOT EXISTS idx_config_time ON config_snapshots (snapshot_at DESC);
CREATE INDEX IF NOT EXISTS idx_config_path ON config_snapshots (config_path, host, id DESC);

CREATE TABLE IF NOT EXISTS known_issues (
    id              BIGSERIAL PRIMARY KEY,
    title           TEXT NOT NULL,
    description     TEXT,
    severity        issue_severity NOT NULL DEFAULT 'medium',
    status          TEXT NOT NULL DEFAULT 'open',
    component       TEXT,
    workaround      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at     TIMESTAMPTZ
);

-- The plan's severity is TEXT; make it the enum (unknown values become 'medium').
DO $$
BEGIN
    IF (SELECT atttypid FROM pg_attribute
         WHERE attrelid = 'known_issues'::regclass AND attname = 'severity') = 'text'::regtype THEN
        ALTER TABLE known_issues ALTER COLUMN severity DROP DEFAULT;
        ALTER TABLE known_issues ALTER COLUMN severity TYPE issue_severity USING (
            CASE WHEN lower(btrim(severity)) IN ('low', 'medium', 'high', 'critical')
                 THEN lower(btrim(severity)) ELSE 'medium' END)::issue_severity;
        ALTER TABLE known_issues ALTER COLUMN severity SET DEFAULT 'medium';
    END IF;
END $$;
DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('known_issues', 'known_issues_title_check', $$btrim(title) <> ''$$);
    PERFORM openclaw_ensure_check('known_issues', 'known_issues_status_check', $$status IN ('open', 'resolved', 'wontfix')$$);
    PERFORM openclaw_ensure_check('known_issues', 'known_issues_component_check',
        $$component IN ('gateway', 'agent', 'cli', 'core', 'infra')$$);
    PERFORM openclaw_ensure_check('known_issues', 'known_issues_resolved_check', $$(status = 'open') = (resolved_at IS NULL)$$);
END $ensure$;

CREATE INDEX IF NOT EXISTS idx_issues_status ON known_issues (status, severity);

CREATE TABLE IF NOT EXISTS task_log (
    id              BIGSERIAL PRIMARY KEY,
    description     TEXT NOT NULL,
    category        TEXT,
    files_changed   TEXT[],
    version         TEXT,
    git_commit      TEXT,
    completed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('task_log', 'task_log_description_check', $$btrim(description) <> ''$$);
    PERFORM openclaw_ensure_check('task_log', 'task_log_category_check',
        $$category IN ('feature', 'bugfix', 'refactor', 'deploy', 'config')$$);
END $ensure$;

CREATE INDEX IF NOT EXISTS idx_task_time ON task_log (completed_at DESC);
CREATE INDEX IF NOT EXISTS idx_task_category ON task_log (category);

CREATE TABLE IF NOT EXISTS project_context (
    key             TEXT PRIMARY KEY,
    value           JSONB NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('project_context', 'project_context_key_check', $$key <> ''$$);
END $ensure$;

-- ============================================================
-- DESCRIPTIONS (shown to the coding assistant by describe_schema)
-- ============================================================

COMMENT ON TABLE sessions IS 'Chat sessions, one per session key (tg:{agent}:{user}:{chat}, dc:..., agent:{agent}:cli:{uuid}, cron:..., webhook:...).';
COMMENT ON TABLE messages IS 'Messages of a session in order (id); created_at is when the message happened.';
COMMENT ON TABLE llm_calls IS 'Every LLM call, successes, errors and each fallback attempt; created_at is when the call started.';
COMMENT ON TABLE metrics_snapshots IS 'Gateway counters, cumulative since the process (boot_id) started; do not sum them, use metrics_intervals.';
COMMENT ON VIEW metrics_intervals IS 'Per-snapshot increase of each counter since the previous snapshot of the same process; sum() over a time window is correct across restarts.';
COMMENT ON TABLE cron_executions IS 'One row per cron job run: running, then success, error or cancelled.';
COMMENT ON TABLE deployments IS 'What is deployed where: one active row per host and component; older rows are superseded.';
COMMENT ON TABLE config_snapshots IS 'Config file history per host and path, secrets redacted; changed_keys are the top-level keys that changed.';
COMMENT ON TABLE known_issues IS 'Known bugs and workarounds; severity sorts low < medium < high < critical.';
COMMENT ON TABLE task_log IS 'What was done, when: the log of development work for session continuity.';
COMMENT ON TABLE project_context IS 'Project key-value store (JSON values), e.g. current_focus.';
