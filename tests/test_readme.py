"""The README opens with the two set-up commands, and CI runs the test one."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)
    run, test = blocks[0].strip(), blocks[1].strip()
    assert "openclaw" in run and "pytest" in test
    assert test in (REPO / ".ci" / "run").read_text()
