"""Shopper commands and messages the bot cannot read, answered by the core for every channel.

`/start` greets with the shop's top topics, `/help` explains what the bot does,
`/lang xx` fixes the reply language, `/reset` starts the conversation over, `/bot`
leaves the queue for a person; a photo, voice message or sticker without text gets a
polite note on what the bot can read. Channels only translate ("/start@shop_bot" and a
photo become a `Message`), so a webhook shopper gets the same answers as a Telegram one.
`/human` is a handoff trigger and belongs to the handoff policy. While the conversation
waits for or is with a person, everything the shopper sends goes to the agent, except
`/bot` and `/reset`: they take the shopper back to the bot (otherwise a shopper who
changed their mind, or came back days later, could never be answered by the bot again).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.handoff.agents import HandoffNotices
from bot.handoff.store import HandoffStore
from bot.messages import HandoffState, ReplyKind
from bot.responder.prompt import LANGUAGE_NAMES
from bot.responder import Draft
from bot.store import Store
from bot.texts import Texts
from knowledge.faq import FaqBase

if TYPE_CHECKING:
    from bot.pipeline import Turn

COMMAND = re.compile(r"(?is)\s*/(?P<name>start|help|lang|language|reset|bot)(?:@\w+)?(?:\s+(?P<argument>.*?))?\s*")
LEAVING = ("bot", "reset")  # the commands that take a queued shopper back to the bot
QUEUED = (HandoffState.WAITING_AGENT, HandoffState.AGENT)


@dataclass(frozen=True)
class Command:
    name: str  # start / help / lang / reset / bot
    argument: str


def parse_command(text: str) -> Command | None:
    match = COMMAND.fullmatch(text)
    if match is None:
        return None
    name = "lang" if match["name"].lower() == "language" else match["name"].lower()
    return Command(name, (match["argument"] or "").strip())


class CommandStage:
    """Runs first: a command or an unreadable message gets its answer without retrieval."""

    name = "commands"

    def __init__(self, *, store: Store, texts: Texts, languages: tuple[str, ...], default_language: str,
                 top_topics: tuple[str, ...], max_topics: int, faq: Callable[[], FaqBase],
                 records: HandoffStore, notices: HandoffNotices):
        self._store = store
        self._records = records
        self._notices = notices
        self._texts = texts
        self._languages = languages
        self._default = default_language
        self._top_topics = top_topics
        self._max_topics = max_topics
        self._faq = faq  # the FAQ version in use now (hot reload replaces it)

    async def run(self, turn: Turn) -> None:
        inbound = turn.inbound
        command = parse_command(inbound.text)
        left = False
        if turn.conversation.handoff in QUEUED:
            if command is None or command.name not in LEAVING:
                return  # everything else goes to the agent
            left = await self._leave(turn, command)
        language = self._language(turn.conversation.language, inbound.language_hint)
        if command is not None:
            turn.draft = await self._command(command, turn, language, left=left)
            turn.trace["command"] = f"/{command.name}"
        elif inbound.media and not inbound.text.strip():
            text, written_in = self._texts.get("unsupported_media", language)
            turn.draft = Draft(text=text, language=written_in, kind=ReplyKind.INFO,
                               why=f"the shopper sent a {inbound.media} without text; the bot reads text only "
                                   f"(stored, so an agent sees it after a handoff)")
            turn.trace["media"] = inbound.media
        else:
            return
        turn.done = True

    def _language(self, conversation_language: str | None, hint: str | None) -> str:
        for candidate in (conversation_language, (hint or "").split("-")[0].lower()):
            if candidate in self._languages:
                return candidate
        return self._default

    async def _leave(self, turn: Turn, command: Command) -> bool:
        """Take the conversation back from the agents' queue; False when it was back with the bot already."""
        conversation, moved = await self._records.leave(
            turn.conversation.key, turn.inbound.id, detail=f"the shopper sent /{command.name}",
            event=lambda after, agent: self._notices.left_event(after, agent, f"/{command.name}"))
        turn.conversation = conversation
        if moved:
            self._notices.wake()
            turn.trace["handoff"] = {"action": f"left the queue with /{command.name}",
                                     "state": conversation.handoff.value}
        return moved

    async def _command(self, command: Command, turn: Turn, language: str, *, left: bool = False) -> Draft:
        key = turn.conversation.key
        if command.name == "bot" and left:
            text, written_in = self._texts.get("left_queue", language)
            return Draft(text=text, language=written_in, kind=ReplyKind.INFO, quick_replies=self._topics(language),
                         why="/bot: the shopper left the queue for a person; the bot answers again")
        if command.name in ("start", "bot"):
            text, written_in = self._texts.get("welcome", language)
            why = ("/start: the welcome and the shop's top topics" if command.name == "start" else
                   "/bot: the bot answers this conversation already; the welcome and the shop's top topics")
            return Draft(text=text, language=written_in, kind=ReplyKind.INFO, quick_replies=self._topics(language),
                         why=why)
        if command.name == "help":
            text, written_in = self._texts.get("help", language, languages=self._language_list())
            return Draft(text=text, language=written_in, kind=ReplyKind.INFO, why="/help: what the bot can do")
        if command.name == "reset":
            await self._store.start_over(key, turn.inbound.id)
            text, written_in = self._texts.get("reset_done", language)
            why = "/reset: earlier messages no longer count as context; the language is detected again"
            return Draft(text=text, language=written_in, kind=ReplyKind.INFO, quick_replies=self._topics(language),
                         why=f"{why}; the shopper left the queue for a person" if left else why)
        code = command.argument.lower().split("-")[0]
        if code in self._languages:
            await self._store.set_conversation_language(key, code, locked=True)
            text, written_in = self._texts.get("language_set", code)
            return Draft(text=text, language=written_in, kind=ReplyKind.INFO,
                         why=f"/lang: the shopper chose '{code}'; kept until they choose again or /reset")
        text, written_in = self._texts.get("language_unknown", language, languages=self._language_list(),
                                           example=next((c for c in self._languages if c != language), language))
        return Draft(text=text, language=written_in, kind=ReplyKind.INFO,
                     why=f"/lang with '{command.argument}': not one of the shop's languages")

    def _language_list(self) -> str:
        return ", ".join(f"{code} ({LANGUAGE_NAMES.get(code, code)})" for code in self._languages)

    def _topics(self, language: str) -> tuple[str, ...]:
        faq = self._faq()
        wanted = self._top_topics or tuple(e.id for e in faq.entries[: self._max_topics])
        questions = [faq.by_id[i].variant(language).questions[0] for i in wanted if i in faq.by_id]
        return tuple(dict.fromkeys(questions))

