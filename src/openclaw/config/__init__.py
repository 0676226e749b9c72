"""Typed settings: the pydantic model tree of openclaw's two config files and its environment.

    gateway_file.py  the gateway's snake_case config ($GATEWAY_CONFIG), shared with openclaw-rs
    manual_file.py   openclaw-manual.json (camelCase), shared with Node OpenClaw, read-only
    env.py           the environment overrides (pydantic-settings)
    problems.py      a validation error as one line that names the path

`openclaw.app.load_settings()` reads all of it once, at the edge (a CLI command). The
models validate; what the runtime holds are the resolved, frozen settings built from
them (`GatewayConfig`, `LlmConfig`, `SandboxSettings`, `Settings`), passed down as
constructor parameters. Nothing below the edge reads a config file or the environment.

This package's __init__ imports nothing: `openclaw --help` and `openclaw context get` must
not load pydantic (tests/test_cli_startup.py).
"""
