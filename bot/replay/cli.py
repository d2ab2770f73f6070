"""`kefu eval replay`: the command-line side of the shadow replay (options, progress, writing the report)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from bot.concurrency import run_blocking
from bot.config import Config
from bot.errors import KefuError
from bot.replay.run import DEFAULT_CONCURRENCY, replay
from bot.replay.reading import read_messages
from bot.replay.report import FORMATS, choose_format, render

PROGRESS_SECONDS = 2.0


def add_replay_parser(eval_commands: Any, common: argparse.ArgumentParser) -> None:
    command = eval_commands.add_parser(
        "replay", parents=[common], help="run past shopper messages through the bot without sending anything",
        description="Shadow replay: every message of a CSV goes through the whole pipeline of the config's shop "
                    "(its responder included) on a temporary database, with no channel, no HTTP server and no "
                    "handoff notifications; the report says what the bot would have done.")
    command.add_argument("--messages", type=Path, required=True, metavar="FILE.csv",
                         help="shopper messages with a header row; UTF-8, comma, semicolon or tab separated")
    command.add_argument("--text-col", metavar="C", help="column with the text, by name or number from 1 "
                                                         "(default: text, message or body, else the only column)")
    command.add_argument("--conversation-col", metavar="K", help="column naming each message's conversation "
                                                                 "(default: every row is a conversation of its own)")
    command.add_argument("--limit", type=int, metavar="N", help="replay only the first N messages")
    command.add_argument("--format", choices=FORMATS, help="report format (default: by --output's suffix, "
                                                           "else markdown)")
    command.add_argument("--output", "-o", type=Path, metavar="FILE", help="write the report here "
                                                                          "(default: standard output)")
    command.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                         help=f"conversations replayed at once (default {DEFAULT_CONCURRENCY})")


class ProgressLine:
    """'replayed 120/480 messages…' on stderr every few seconds and at the end: long replays show life."""

    def __init__(self, stream: TextIO, every_seconds: float = PROGRESS_SECONDS):
        self._stream = stream
        self._every = every_seconds
        self._last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < self._every:
            return
        self._last = now
        print(f"replayed {done}/{total} messages…", file=self._stream, flush=True)


async def replay_command(config: Config, args: argparse.Namespace) -> int:
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)  # one log line per turn would drown the progress
    if args.concurrency < 1:
        raise KefuError(f"--concurrency must be at least 1, not {args.concurrency}")
    messages = await run_blocking(read_messages, args.messages, text_col=args.text_col,
                                  conversation_col=args.conversation_col, limit=args.limit)
    print(f"replaying {len(messages.rows)} messages from {args.messages} on {config.shop.name} "
          f"(responder: {config.responder.backend}); nothing is sent", file=sys.stderr, flush=True)
    report = await replay(config, messages, concurrency=args.concurrency, progress=ProgressLine(sys.stderr))
    text = render(report, choose_format(args.format, args.output))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        await run_blocking(args.output.write_text, text, encoding="utf-8")
    except OSError as exc:
        raise KefuError(f"{args.output}: cannot write the report: {exc.strerror or exc}") from exc
    print(f"wrote the report to {args.output}", file=sys.stderr)
    return 0
