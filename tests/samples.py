"""Config documents with secrets in every place openclaw-rs users keep them."""

MANUAL = {
    "meta": {"name": "openclaw", "version": "1.16.0"},
    "env": {"OPENROUTER_API_KEY": "sk-or-env-secret", "DEBUG": "1", "PORT": 8080},
    "models": {
        "providers": {
            "moonshot": {
                "baseUrl": "https://api.moonshot.ai/v1",
                "api": "openai-completions",
                "apiKey": "sk-moonshot-secret",
                "models": [{"id": "kimi-k2", "contextWindow": 128000}],
            },
        },
        "fallbacks": ["moonshot/kimi-k2"],
    },
    "gateway": {"mode": "local", "port": 3100, "auth": {"mode": "token", "token": "gw-token-secret"}},
    "channels": {"telegram": {"enabled": True, "botToken": "123:tg-secret", "allowFrom": [42]}},
    "tools": {"db": "postgresql://openclaw:pg-secret@127.0.0.1:5432/openclaw"},
}
GATEWAY = {
    "telegram": {"bot_token": "tg-bot-secret", "allowed_user_ids": [123]},
    "webhook": {"token": "hook-secret"},
    "mcp_servers": [{"name": "gh", "command": "npx", "args": ["x"], "env": {"GITHUB_TOKEN": "ghp-secret"}}],
    "agent": {"name": "main", "sandbox": {"max_exec_timeout_secs": 30}},
}
SECRETS = [
    "sk-or-env-secret",
    "sk-moonshot-secret",
    "gw-token-secret",
    "123:tg-secret",
    "pg-secret",
    "tg-bot-secret",
    "hook-secret",
    "ghp-secret",
]
