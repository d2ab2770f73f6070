"""Console channel: talk to the bot in a terminal, one line per message (`kefu chat`).

Shows, under each reply, which FAQ entry answered and why, so a merchant can try
their FAQ files before going live. Typing the number of a suggestion asks it.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import threading
from typing import Any, TextIO

from bot.config import Config
from bot.errors import KefuError
from bot.messages import Gateway, Message, Reply

log = logging.getLogger(__name__)

CHANNEL = "console"
QUIT_COMMANDS = {"/quit", "/exit", "/q"}


class ConsoleChannel:
    name = CHANNEL
    delivery = None  # replies are printed as they come back

    def __init__(self, *, gateway: Gateway, shop_name: str, languages: tuple[str, ...], user: str, stdin: TextIO,
                 stdout: TextIO, show_why: bool, show_sources: bool = False):
        self._gateway = gateway
        self._shop = shop_name
        self._user = user
        self._stdin = stdin
        self._stdout = stdout
        self._show_why = show_why
        self._show_sources = show_sources
        self._task: asyncio.Task[None] | None = None
        self._suggestions: tuple[str, ...] = ()
        self._languages = languages

    def _print(self, text: str = "") -> None:
        self._stdout.write(text + "\n")
        self._stdout.flush()

    async def start(self) -> None:
        self._print(f"Chatting with {self._shop}'s bot. Type a question; /help for commands, /lang CODE to choose "
                    f"the language ({', '.join(self._languages)}); /quit to leave.")
        self._task = asyncio.create_task(self._loop(), name="kefu-console")

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def deliver(self, reply: Reply) -> None:
        self._render(reply)

    def _start_reader(self) -> asyncio.Queue[str]:
        """Read input on a daemon thread: a blocked readline must not hold up shutdown."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:
            while True:
                line = self._stdin.readline()
                try:
                    loop.call_soon_threadsafe(lines.put_nowait, line)
                except RuntimeError:  # the event loop has closed: nobody is listening any more
                    return
                if not line:
                    return

        threading.Thread(target=read, name="kefu-console-input", daemon=True).start()
        return lines

    async def _loop(self) -> None:
        lines = self._start_reader()
        while True:
            self._stdout.write("you> ")
            self._stdout.flush()
            line = await lines.get()
            if not line:
                self._print()
                return
            text = line.strip()
            if not text:
                continue
            if text.lower() in QUIT_COMMANDS:
                return
            if text.isdigit() and 1 <= int(text) <= len(self._suggestions):
                text = self._suggestions[int(text) - 1]
                self._print(f"     → {text}")
            message = Message(channel=CHANNEL, conversation=self._user, user_id=self._user, text=text,
                              display_name=self._user)
            try:
                result = await self._gateway.handle(message)
            except KefuError as exc:
                self._print(f"  (kefu could not answer: {exc})")
                continue
            if result.reply is None:
                self._print(f"     (passed to a person: the conversation is {result.state.value}; the bot stays quiet)")
                continue
            self._render(result.reply)

    def _render(self, reply: Reply) -> None:
        self._print(f"bot> {reply.text}")
        self._suggestions = reply.quick_replies
        for number, suggestion in enumerate(reply.quick_replies, start=1):
            self._print(f"     {number}) {suggestion}")
        if self._show_why:
            confidence = f"{reply.confidence:.2f}" if reply.confidence is not None else "-"
            faq = ",".join(reply.faq_ids) or "-"
            self._print(f"     [{reply.kind.value} · faq {faq} · confidence {confidence} · {reply.language}]")
            self._print(f"     why: {reply.why}")
        elif self._show_sources and reply.faq_ids:
            self._print(f"     source: {', '.join(reply.faq_ids)}")


def create_adapter(*, config: Config, gateway: Gateway, http_app: Any = None, stdin: TextIO | None = None,
                   stdout: TextIO | None = None, user: str | None = None, show_why: bool = True) -> ConsoleChannel:
    return ConsoleChannel(
        gateway=gateway,
        shop_name=config.shop.name,
        languages=config.shop.languages,
        user=user or getpass.getuser(),
        stdin=stdin or sys.stdin,
        stdout=stdout or sys.stdout,
        show_why=show_why,
        show_sources=config.responder.show_sources,
    )
