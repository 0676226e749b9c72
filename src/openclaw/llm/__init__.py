"""LLM providers (OpenAI-compatible, Anthropic), the fallback chain and the call log."""
