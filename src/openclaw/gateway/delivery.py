"""Where cron results go: the first allowed Telegram user (as openclaw-rs did)."""

from __future__ import annotations

import httpx

from openclaw.cron.jobs import Job
from openclaw.cron.runner import Deliver
from openclaw.gateway.config import ChannelConfig

TELEGRAM_MAX_CHARS = 4096


def telegram_delivery(telegram: ChannelConfig, client: httpx.AsyncClient) -> Deliver | None:
    if not telegram.enabled or not telegram.allowed_user_ids:
        return None
    chat_id = telegram.allowed_user_ids[0]
    url = f"{telegram.api_base}/bot{telegram.bot_token}/sendMessage"

    async def deliver(job: Job, text: str) -> None:
        body = f"⏰ {job.name}\n\n{text}"[:TELEGRAM_MAX_CHARS]
        response = await client.post(url, json={"chat_id": chat_id, "text": body}, timeout=30)
        if response.status_code >= 400:
            raise RuntimeError(f"Telegram answered HTTP {response.status_code}: {response.text[:200]}")

    return deliver
