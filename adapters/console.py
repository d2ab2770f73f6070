"""Console channel: talk to the bot in a terminal, one line per message (`kefu chat`).

Shows, under each reply, which FAQ entry answered and why, so a merchant can try
their FAQ files before going live. Typing the number of a suggestion asks it.

A push channel like Telegram: every reply to this conversation is queued for
delivery by the core and printed by `deliver`, so what an agent writes (in the web
console of `kefu serve`, a separate process sharing the database) appears here live,
and whatever was written while the terminal was closed appears at the next start.
The worker looks only at this terminal's conversation and polls for rows another
process queued. A reply is printed once: `handle()` waits until its answer came
through `deliver` (the delivery is then marked sent, so the next start does not
show it again).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import threading
from typing import Any, TextIO

from bot.config import Config
from bot.errors import KefuError, OverloadedError
from bot.messages import DeliveryPolicy, Gateway, HandleResult, HandoffState, Message, Reply, ReplyKind

log = logging.getLogger(__name__)

CHANNEL = "console"
QUIT_COMMANDS = {"/quit", "/exit", "/q"}
POLL_SECONDS = 1.0  # how soon a reply written by another process (an agent in `kefu serve`) is printed
ANSWER_WAIT_SECONDS = 10.0  # the delivery worker prints an answer at once; this only guards against a stall


class ConsoleChannel:
    name = CHANNEL

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
        self.delivery = DeliveryPolicy(max_attempts=3, backoff_seconds=1.0, conversation=user,
                                       poll_seconds=POLL_SECONDS)
        self._printed: set[int] = set()  # message ids shown in this session
        self._printed_more = asyncio.Event()
        self._ready = asyncio.Event()  # the banner is out: deliveries may print
        self._prompting = False

    def _print(self, text: str = "") -> None:
        self._stdout.write(text + "\n")
        self._stdout.flush()

    async def start(self) -> None:
        self._print(f"Chatting with {self._shop}'s bot. Type a question; /help for commands, /lang CODE to choose "
                    f"the language ({', '.join(self._languages)}); /quit to leave.")
        await self._show_state()
        self._ready.set()
        self._task = asyncio.create_task(self._loop(), name="kefu-console")

    async def _show_state(self) -> None:
        """Say plainly when a person, not the bot, answers this conversation (else a later chat seems dead)."""
        transcript = await self._gateway.transcript(CHANNEL, self._user)
        if transcript is None or transcript.state not in (HandoffState.WAITING_AGENT, HandoffState.AGENT):
            return
        if transcript.state == HandoffState.AGENT and transcript.agent:
            who = f"with {transcript.agent} from {self._shop}'s team"
        else:
            who = f"waiting for a person from {self._shop}'s team"
        self._print(f"     This conversation ('{self._user}') is {who}: what you write goes to them and the bot "
                    f"stays quiet. Type /bot to go back to the bot, or /reset to start over "
                    f"(kefu chat --user NAME starts another conversation).")

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def deliver(self, reply: Reply) -> None:
        """Called by the core's delivery worker for every reply of this conversation, answers included."""
        await self._ready.wait()
        if reply.message_id not in self._printed:
            self._show(reply)

    def _show(self, reply: Reply) -> None:
        if reply.message_id is not None:
            self._printed.add(reply.message_id)
        if self._prompting:  # a pushed reply arrived while the shopper is at the prompt
            self._stdout.write("\n")
        self._render(reply)
        if self._prompting:
            self._stdout.write("you> ")
            self._stdout.flush()
        self._printed_more.set()

    async def _shown(self, reply: Reply) -> None:
        """Wait until the delivery worker printed this answer (printing it here if it stalls)."""
        try:
            async with asyncio.timeout(ANSWER_WAIT_SECONDS):
                while reply.message_id not in self._printed:
                    self._printed_more.clear()
                    await self._printed_more.wait()
        except TimeoutError:
            self._show(reply)

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
            self._prompting = True
            line = await lines.get()
            self._prompting = False
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
                result = await self._send(message)
            except KefuError as exc:
                self._print(f"  (kefu could not answer: {exc})")
                continue
            if result.reply is None:
                self._print(f"     (passed to a person: the conversation is {result.state.value}; the bot stays quiet; "
                            f"/bot goes back to the bot)")
                continue
            await self._shown(result.reply)

    async def _send(self, message: Message) -> HandleResult:
        """The terminal waits while kefu is overloaded: nothing was stored, so it sends the line again."""
        while True:
            try:
                return await self._gateway.handle(message)
            except OverloadedError as exc:
                self._print(f"  (kefu is busy; sending it again in {exc.retry_after} s)")
                await asyncio.sleep(exc.retry_after)

    def _render(self, reply: Reply) -> None:
        self._print(f"{'agent' if reply.kind == ReplyKind.AGENT else 'bot'}> {reply.text}")
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
