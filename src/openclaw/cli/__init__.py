"""The `openclaw` command: thin Typer commands over the library packages."""
