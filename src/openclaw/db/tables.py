"""The tables of openclaw's schema, in the order they are shown."""

RUNTIME_TABLES = ("sessions", "messages", "llm_calls", "metrics_snapshots", "cron_executions")
CONTEXT_TABLES = ("deployments", "config_snapshots", "known_issues", "task_log", "project_context")
TABLES = RUNTIME_TABLES + CONTEXT_TABLES
