"""Telegram, by long polling (python-telegram-bot), on the shared channel core.

Updates are handled concurrently, so a new message can cancel the chat's running answer.
The Bot API address is configurable (`telegram.api_base`), which is also how the tests
point it at a local fake Bot API server.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from openclaw.gateway.channel import ChannelCore, Incoming

log = logging.getLogger(__name__)

MAX_CHARS = 4096  # Telegram's limit for one message


class TelegramReplier:
    def __init__(self, application: Application, chat_id: int) -> None:  # type: ignore[type-arg]
        self.bot = application.bot
        self.chat_id = chat_id

    async def send(self, text: str) -> object:
        message = await self.bot.send_message(self.chat_id, text[:MAX_CHARS] or "…")
        return message.message_id

    async def edit(self, handle: object, text: str) -> None:
        assert isinstance(handle, int)
        # Streaming edits are best effort: "message is not modified", flood control or a
        # network hiccup must not cost the answer (the final text is edited in at the end).
        try:
            await self.bot.edit_message_text(text[:MAX_CHARS] or "…", chat_id=self.chat_id, message_id=handle)
        except BadRequest:
            pass
        except TelegramError as exc:
            log.warning("telegram: an edit of chat %s failed: %s", self.chat_id, exc)


class TelegramChannel:
    def __init__(self, core: ChannelCore) -> None:
        self.core = core
        config = core.config
        self.application = (
            Application.builder()
            .token(config.bot_token or "")
            .base_url(f"{config.api_base}/bot")
            .concurrent_updates(True)
            .build()
        )
        self.application.add_handler(MessageHandler(filters.TEXT, self._on_message))

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_user is None or update.effective_chat is None or update.message is None:
            return
        incoming = Incoming(
            update.effective_user.id,
            update.effective_chat.id,
            update.message.text or "",
            update.effective_user.username,
        )
        try:
            await self.core.handle(incoming, TelegramReplier(self.application, update.effective_chat.id))
        except TelegramError as exc:
            self.core.gateway.counters.error(self.core.channel)
            log.error("telegram: could not answer chat %s: %s", update.effective_chat.id, exc)

    async def start(self) -> None:
        await self.application.initialize()
        await self.application.start()
        assert self.application.updater is not None
        await self.application.updater.start_polling(
            poll_interval=0.0, timeout=10, drop_pending_updates=False
        )
        log.warning("telegram: polling as @%s", self.application.bot.username)

    async def stop(self) -> None:
        self.core.cancel_all()  # python-telegram-bot waits for running handlers
        if self.application.updater is not None and self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
