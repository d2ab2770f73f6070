"""`kefu privacy …`: answer a shopper's data request from the shell, against the store directly.

kefu need not be running; when it is, both work side by side (WAL mode, a 30 s busy timeout, and
each command is a few short transactions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.errors import KefuError
from bot.privacy.retention import parse_age
from bot.privacy.service import PrivacyService
from bot.privacy.subject import Subject
from bot.store import Store

CLI_ACTOR = "cli"


def add_privacy_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    privacy = commands.add_parser(
        "privacy", parents=[common], help="export or erase a shopper's data, purge old conversations, read the audit log",
        description="Answer GDPR requests: export (access) and erase a conversation or all of a user's conversations "
                    "on a channel, purge conversations idle for too long, and read the audit log.")
    actions = privacy.add_subparsers(dest="privacy_command", metavar="ACTION", required=True)
    export = actions.add_parser("export", parents=[common], help="print everything stored about a shopper as JSON")
    erase = actions.add_parser("erase", parents=[common], help="delete everything stored about a shopper")
    audit = actions.add_parser("audit", parents=[common], help="who exported, erased, purged or worked what")
    for command in (export, erase, audit):
        who = command.add_mutually_exclusive_group(required=command is not audit)
        who.add_argument("--conversation", metavar="CHANNEL/ID", help="one conversation, e.g. webhook/order-123")
        who.add_argument("--user", metavar="CHANNEL:USER", help="every conversation of a user on a channel, "
                                                                 "e.g. telegram:123456789")
    for command in (export, erase):
        command.add_argument("--actor", default=CLI_ACTOR, help="the name the audit log records (default: cli)")
    export.add_argument("--output", "-o", type=Path, metavar="FILE", help="write the JSON here (mode 600) "
                                                                           "instead of standard output")
    erase.add_argument("--export", type=Path, metavar="FILE", dest="export_to",
                       help="first write the export to FILE (answer an access and an erasure request at once)")
    erase.add_argument("--force", action="store_true",
                       help="also erase a conversation that is with an agent, queued for one, or being answered")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation in a terminal")
    purge = actions.add_parser("purge", parents=[common], help="delete conversations idle longer than an age",
                               description="Deletes conversations whose last message is older than the age; never "
                                           "one with a live handoff or an unanswered or undelivered message.")
    purge.add_argument("--older-than", metavar="AGE", help="e.g. 90d, 12w or 36h (default: [privacy] retain_days)")
    purge.add_argument("--dry-run", action="store_true", help="only count what would be purged")
    audit.add_argument("--limit", type=int, default=50, help="how many entries, newest first (default 50)")
    audit.add_argument("--json", action="store_true", help="print JSON instead of a table")


async def privacy_command(config: Config, args: argparse.Namespace) -> int:
    if config.storage.url is None and not config.storage.database.exists():
        raise KefuError(f"no database at {config.storage.database} (storage.database in {config.path})")
    store = Store(config.storage.location, pool_size=2)
    await store.open()
    try:
        service = PrivacyService(store)
        await service.prepare()
        return await _run(service, config, args)
    finally:
        await store.close()


async def _run(service: PrivacyService, config: Config, args: argparse.Namespace) -> int:
    command = args.privacy_command
    if command == "purge":
        age = args.older_than or (f"{config.privacy.retain_days}d" if config.privacy.retain_days else None)
        if age is None:
            raise KefuError(f"give --older-than (e.g. 90d), or set [privacy] retain_days in {config.path}")
        result = await service.purge(parse_age(age), actor=CLI_ACTOR, dry_run=args.dry_run)
        _print(result)
        return 0
    subject = Subject.parse(conversation=args.conversation, user=args.user) if (args.conversation or args.user) \
        else None
    if command == "audit":
        entries = await service.audit(limit=args.limit, subject=subject)
        if args.json:
            _print({"entries": [entry.to_json() for entry in entries]})
            return 0
        for entry in entries:
            counts = " ".join(f"{k}={v}" for k, v in entry.counts.items() if v)
            target = entry.target or (f"{entry.target_kind} {entry.channel or ''} #{(entry.target_ref or '')[:12]}")
            print(f"{entry.at[:19]}  {entry.actor:<16} {entry.action:<8} {target}  {counts}")
        return 0
    assert subject is not None
    if command == "export":
        document = await service.export(subject, actor=args.actor)
        if args.output:
            _write_private(args.output, document)
            print(f"wrote {document['counts']['messages']} messages of {document['counts']['conversations']} "
                  f"conversation(s) to {args.output}", file=sys.stderr)
        else:
            _print(document)
        return 0
    if args.export_to:
        document = await service.export(subject, actor=args.actor)
        _write_private(args.export_to, document)
    if sys.stdin.isatty() and not args.yes:
        answer = input(f"Erase everything stored for {subject.label}? This cannot be undone. Type 'erase': ")
        if answer.strip() != "erase":
            print("kefu: nothing erased", file=sys.stderr)
            return 1
    _print(await service.erase(subject, actor=args.actor, force=args.force))
    return 0


def _write_private(path: Path, document: Any) -> None:
    """The export is personal data: readable by the file's owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))
