"""openclaw: an AI chat-agent gateway whose runtime state lives in PostgreSQL."""

# The one place the version is written (pyproject.toml reads it from here): reading it from
# the installed metadata costs every command ~45 ms of importlib.metadata.
__version__ = "0.1.0"

__all__ = ["__version__"]
