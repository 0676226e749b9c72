"""The README opens with the two set-up commands, and CI runs the test one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_llm import FakeLlm, Step, chunk, serve

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)
    run, test = blocks[0].strip(), blocks[1].strip()
    assert "openclaw" in run and "pytest" in test
    assert test in (REPO / ".ci" / "run").read_text()


# ---- the Quick tour runs as written ------------------------------------------------------------

README = REPO / "README.md"
TOUR_ANSWER = "Blue-green: keep the old version serving until the new one answers its health check."
TOUR_USAGE = {"prompt_tokens": 96, "completion_tokens": 17, "total_tokens": 113}
_NORMALISE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "<time>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"untrusted-data-[0-9a-f]+"), "untrusted-data-<token>"),
    (re.compile(r"\d+(\.\d+)? (kB|MB|GB)\b"), "<size>"),
    (re.compile(r"PostgreSQL \d+\.\d+"), "PostgreSQL <version>"),
    (re.compile(r"━+"), "━"),
    (re.compile(r" +"), " "),
]


def _normalise(line: str) -> str:
    for pattern, replacement in _NORMALISE:
        line = pattern.sub(replacement, line)
    return line.strip()


def tour_steps() -> list[tuple[str, list[str]]]:
    """The `$ command` lines of the Quick tour's console blocks, each with the output shown."""
    section = README.read_text().split("\n## Quick tour\n", 1)[1].split("\n## ", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)\n```", section, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


def _matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line after normalising; a `...` line stands for any number of lines."""
    want = [_normalise(line) for line in expected if line.strip()]
    got = [_normalise(line) for line in actual if line.strip()]

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i] == "...":
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and want[i] == got[j] and match(i + 1, j + 1)

    return match(0, 0)


@pytest.mark.embedded
@pytest.mark.slow
def test_the_quick_tour_is_true_on_a_fresh_home(tmp_path: Path) -> None:
    """Runs every command of the Quick tour in a shell, in order, on a fresh home and the
    embedded server, with a loopback stand-in for the model server the tour configures."""
    home = tmp_path / "me"
    home.mkdir()
    work = tmp_path / "work"  # not a git checkout: `deploy log` finds no commit, as shown
    work.mkdir()
    gateway_config = tmp_path / "gateway.json"
    gateway_config.write_text("{}")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCLAW_HOME", "DATABASE_URL")}
    env |= {
        "HOME": str(home),
        "GATEWAY_CONFIG": str(gateway_config),
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        "COLUMNS": "240",
    }
    steps = tour_steps()
    assert len(steps) > 20
    with serve(FakeLlm()) as llm:
        llm.then(Step(sse=[chunk(TOUR_ANSWER), chunk(finish="stop"), chunk(usage=TOUR_USAGE), "[DONE]"]))
        port = llm.base_url.rsplit(":", 1)[1]
        try:
            for command, expected in steps:
                result = subprocess.run(
                    ["bash", "-c", command.replace("11434", port)],
                    cwd=work,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=180,
                )
                shown = result.stdout.replace(str(home), "/home/me").replace(port, "11434")
                if os.environ.get("OPENCLAW_PRINT_TOUR"):  # to refresh the README by hand
                    print(f"$ {command}\n{shown}", file=sys.stderr)
                    continue
                fails = any("openclaw: error:" in line for line in expected)  # a mistake, shown
                assert (result.returncode != 0) == fails, f"$ {command}\n{shown}"
                assert _matches(expected, shown.splitlines()), (
                    f"$ {command}\nREADME shows:\n" + "\n".join(expected) + f"\nit printed:\n{shown}"
                )
        finally:
            subprocess.run(["bash", "-c", "openclaw db stop"], env=env, capture_output=True, timeout=120)


# ---- every command in the README's table exists --------------------------------------------------


def table_commands() -> list[list[str]]:
    """The command paths of the README's command table, e.g. ["db", "migrate"]."""
    section = README.read_text().split("\n### Commands\n", 1)[1].split("\n## ", 1)[0]
    paths: list[list[str]] = []
    for row in section.splitlines():
        if not row.startswith("| `openclaw"):
            continue
        cell = row.split(" | ")[0]
        top: list[str] = []
        for span in re.findall(r"`([^`]+)`", cell):
            while re.search(r"\[[^\[\]]*\]", span):  # options, also nested ones
                span = re.sub(r"\[[^\[\]]*\]", "", span)
            for alternative in span.split(r" \| "):
                words = []
                for word in alternative.split():
                    if not re.fullmatch(r"[a-z][a-z-]*", word):
                        break
                    words.append(word)
                if words and words[0] == "openclaw":
                    path = words[1:3] if len(words) > 2 else words[1:]
                    top = path[:1]
                elif words and top and words[0] == top[0]:
                    path = words[:2]
                elif words:
                    path = [*top, words[0]]
                else:
                    continue
                paths.append(path)
    return paths


def test_every_command_in_the_readme_table_exists_and_has_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from openclaw.cli.app import main

    paths = table_commands()
    assert ["db", "migrate"] in paths and ["issues", "reopen"] in paths and ["logs", "show"] in paths
    for path in paths:
        capsys.readouterr()
        assert main([*path, "--help"]) == 0, path
        assert "Usage: openclaw " + " ".join(path) in capsys.readouterr().out, path


def test_every_command_is_in_the_readme_table() -> None:
    import typer

    from openclaw.cli.app import app

    group = typer.main.get_command(app)
    ctx = group.make_context("openclaw", ["--help"], resilient_parsing=True)
    documented = {path[0] for path in table_commands()}
    assert set(group.list_commands(ctx)) <= documented  # type: ignore[attr-defined]
