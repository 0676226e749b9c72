"""`openclaw gateway`: run the service."""

from __future__ import annotations

import asyncio
import logging

import typer

from openclaw.app import load_settings, serve_gateway
from openclaw.cli.common import state


def gateway_command(ctx: typer.Context) -> None:
    """Run the gateway: HTTP API (HTTP_BIND:HTTP_PORT, default 127.0.0.1:3100), metrics
    snapshots, the outbox flusher. SIGTERM or Ctrl-C stops it cleanly.

    Configured by $GATEWAY_CONFIG (default /etc/openclaw-gateway/config.json) and
    $OPENCLAW_HOME/openclaw-manual.json, as openclaw-rs is.
    """
    # Read and checked once, here, before anything starts or writes: a wrong value is one
    # line and exit code 2. Without usable models the gateway still serves (and says why).
    settings = load_settings(require_models=False)
    # A service's log is where an outage and its end are told (once each, not per try):
    # the one-shot commands keep these quiet, the gateway does not.
    for name in ("openclaw.outbox.flusher", "openclaw.sessions.resilient"):
        logging.getLogger(name).setLevel(logging.WARNING)
    asyncio.run(serve_gateway(settings.database_target(state(ctx).database_url), settings))
