"""Facts about this machine and process, used as defaults for deployments and tasks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path


def hostname() -> str:
    return socket.gethostname()


def git_head(cwd: Path | None = None) -> str | None:
    """`git rev-parse HEAD` of the directory, or None outside a repository (or without git)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    head = result.stdout.strip()
    return head if result.returncode == 0 and head else None


def systemd_unit(cgroup_file: Path = Path("/proc/self/cgroup")) -> str | None:
    """The systemd service this process runs in (from its cgroup), if any."""
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        for part in reversed(line.rpartition(":")[2].split("/")):
            if part.endswith(".service"):
                return part
    return None


def executable_path() -> str | None:
    """Where the `openclaw` command that runs now is installed."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "openclaw" and argv0.exists():
        return str(argv0.resolve())
    found = shutil.which("openclaw")
    return str(Path(found).resolve()) if found else None
