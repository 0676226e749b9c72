"""The agent: turn loop, tools, history window."""
