"""Keep the embedded server running while a gateway depends on it.

The embedded server outlives the process that started it, but it can also go first
(killed, crashed, stopped by `openclaw db stop`), and a gateway then answers 503 on
`/ready` until something starts it again. `watch_embedded`, which the gateway runs while it
lives, looks every WATCH_INTERVAL_S seconds and, when the server is gone, starts it through
`start_embedded`, whose file lock makes several gateways (and CLI commands) that notice
together take turns: the first starts it, the others attach. The gateway's pool connects
again by itself (openclaw.db.pool), within a second of the server answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from openclaw.db.embedded import process_exists, start_embedded
from openclaw.errors import DatabaseError

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0  # a look costs a file read and a kill(pid, 0)


def embedded_needs_start(pgdata: Path) -> bool:
    """Whether the server of `pgdata` is gone: its postmaster.pid is gone (stopped), or names
    a process that is gone (killed, crashed).

    Not while the postmaster has exited but is not reaped yet (no server can start before:
    PostgreSQL refuses while the old pid exists), nor while postmaster.pid is being written
    (a server starting): the next look decides. Not by connecting either: a server that
    runs but refuses connections (starting, stopping) is not one to start again."""
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return True
    except OSError:
        return False  # unreadable to us: not a reason to start a second server
    try:
        pid = int(first)
    except ValueError:
        return False
    return not process_exists(pid)


async def watch_embedded(pgdata: Path, stop: asyncio.Event, *, interval_s: float = WATCH_INTERVAL_S) -> None:
    """Until `stop` is set: whenever the embedded server of `pgdata` is gone, start it again
    and log one line. A start that fails is logged once and tried again at each look."""
    failing = False
    while not stop.is_set():
        if await asyncio.to_thread(embedded_needs_start, pgdata):
            try:
                await asyncio.to_thread(start_embedded, pgdata)
            except DatabaseError as exc:
                if not failing:
                    log.error(
                        "the embedded PostgreSQL in %s is gone and did not start again: %s;"
                        " trying again every %g s",
                        pgdata,
                        exc.message,
                        interval_s,
                    )
                failing = True
            else:
                log.warning("the embedded PostgreSQL in %s was gone; it runs again", pgdata)
                failing = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
