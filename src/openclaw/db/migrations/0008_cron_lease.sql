-- openclaw schema 0008: a cron slot runs once, even while Postgres is down (issue 11 §7).
--
-- While Postgres answers, a scheduled run is claimed by inserting its cron_executions row
-- (a uid derived from the job and the slot). While it does not, no claim can be written;
-- one gateway per job may still run the job's slots: the one that held the job's lease in
-- cron_leases when it last reached Postgres, and only until that lease would have expired.
-- Only the holder claims slots while Postgres answers too: a holder cut off from Postgres
-- cannot be told from a dead one, so no other gateway may run a slot it might be running.
--
-- The lease is taken only once it has expired by Postgres's clock, and it is renewed by
-- its holder. `since` is where the holder's slots begin: on a takeover, the previous
-- holder's expiry (slots due before it may have run on the previous holder, out of sight);
-- NULL when no one held the lease before.

CREATE TABLE IF NOT EXISTS cron_leases (
    agent_name     TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    holder         TEXT NOT NULL,         -- the holder's host name, for people
    holder_boot_id UUID NOT NULL,         -- the holding process
    since          TIMESTAMPTZ,           -- slots due from here on are the holder's to claim
    expires_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_name, job_id)
);
COMMENT ON TABLE cron_leases IS 'Which gateway runs a cron job''s slots, per agent and job; taken once expired by Postgres''s clock.';

-- How each run was decided: `claim` (its row was claimed in Postgres: one per slot by
-- construction), `lease` (Postgres was unreachable and this gateway held the lease; the
-- uid names the process, so a second run of the slot would show as a second row, never
-- merge), `manual` (`openclaw cron run`). NULL: a run recorded before this migration.
-- scheduled_for is the slot (NULL for a manual run): one row per job and slot is the rule.
ALTER TABLE cron_executions
    ADD COLUMN IF NOT EXISTS decided_by    TEXT,
    ADD COLUMN IF NOT EXISTS scheduled_for TIMESTAMPTZ;
DO $ensure$ BEGIN
    PERFORM openclaw_ensure_check('cron_executions', 'cron_executions_decided_by_check',
        $$decided_by IN ('claim', 'lease', 'manual')$$);
END $ensure$;
CREATE INDEX IF NOT EXISTS idx_cron_slot ON cron_executions (job_id, scheduled_for)
    WHERE scheduled_for IS NOT NULL;

-- The reader's view is `SELECT *`: made again, it shows the new columns.
CREATE OR REPLACE VIEW reader.cron_executions AS SELECT * FROM public.cron_executions;
COMMENT ON VIEW reader.cron_executions IS 'One row per cron job run: running, then success, error or cancelled. decided_by: claim (claimed in Postgres), lease (run while Postgres was unreachable, by the lease holder), manual. scheduled_for: the slot; two rows for one job and slot mean it ran twice.';
