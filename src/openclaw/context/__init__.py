"""Developer context: deployments, config history, known issues, task log, key-value store.

Written by the CLI, the gateway and (with --allow-writes) the MCP server, all through
these functions; read by the coding assistant.
"""

from openclaw.context.models import (
    ChangeSource,
    Component,
    ConfigSnapshot,
    ContextEntry,
    Deployment,
    DeploymentStatus,
    IssueStatus,
    KnownIssue,
    Severity,
    Task,
    TaskCategory,
)

__all__ = [
    "ChangeSource",
    "Component",
    "ConfigSnapshot",
    "ContextEntry",
    "Deployment",
    "DeploymentStatus",
    "IssueStatus",
    "KnownIssue",
    "Severity",
    "Task",
    "TaskCategory",
]
