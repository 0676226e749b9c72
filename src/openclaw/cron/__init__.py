"""Cron jobs from `$OPENCLAW_HOME/cron/jobs.json`, run by the gateway."""
