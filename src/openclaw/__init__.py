"""openclaw: an AI chat-agent gateway whose runtime state lives in PostgreSQL."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("openclaw")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
