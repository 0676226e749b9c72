-- openclaw schema 0003: outbox entries that are not idempotent by themselves.
--
-- Most outbox rows carry their own key (llm_calls.id, messages.uid...), so shipping one
-- twice writes nothing twice. An increment ("add 120 tokens to this session", spooled in
-- postgres mode during an outage) has no such key: its uid is recorded here in the same
-- transaction as the increment, so a replay after a crash between commit and spool
-- cleanup adds nothing.
CREATE TABLE IF NOT EXISTS outbox_applied (
    uid         UUID PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE outbox_applied IS 'Outbox increments already applied (their uids), so a replay applies nothing twice.';
