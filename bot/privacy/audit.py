"""The audit log: who did what to which conversation, with counts and never a shopper's data.

The target is a keyed hash of the conversation (or user), not its id: ids are often personal
(a Telegram chat id is the person's account, a webhook id may be an email), and the log must
outlive an erasure without naming whom it erased. Hashing the id again with the database's
key (`privacy_key`, made by migration 006) finds their rows; a plain hash would not do, since
Telegram ids are numbers anyone could enumerate. While a conversation is still stored, reading
the log resolves the hash back to it for the merchant.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


from bot.messages import utc_now
from bot.privacy.subject import CONVERSATION, USER, Subject
from bot.store.engine import Database

AGENT_ACTIONS = ("claim", "reply", "release", "close")
ACTIONS = (*AGENT_ACTIONS, "export", "erase", "purge")
OLDER_THAN = "older_than"
MAX_ENTRIES = 1000


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target_kind: str  # conversation, user or older_than
    channel: str | None
    target_ref: str | None  # the keyed hash, or for a purge the cutoff
    counts: Mapping[str, int]
    target: str | None = None  # "channel/id" while the conversation (or "channel:user") is still stored

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "target_kind": self.target_kind, "channel": self.channel, "target_ref": self.target_ref,
                "counts": dict(self.counts), "target": self.target}


def _secret(db: Database) -> bytes:
    return db.execute("SELECT secret FROM privacy_key WHERE id = 1").fetchone()[0].encode()


def _ref(secret: bytes, kind: str, channel: str, value: str) -> str:
    return hmac.new(secret, f"{kind}\x00{channel}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]


def subject_ref(db: Database, subject: Subject) -> str:
    return _ref(_secret(db), subject.kind, subject.channel, subject.value)


def record(db: Database, *, actor: str, action: str, target_kind: str, channel: str | None,
           target_ref: str | None, counts: Mapping[str, int] | None = None) -> int:
    """Append one entry (inside the caller's transaction, so it commits with what it reports)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action '{action}'")
    cursor = db.execute(
        "INSERT INTO audit_log (at, actor, action, target_kind, channel, target_ref, counts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [utc_now().isoformat(), actor[:100], action, target_kind, channel, target_ref,
         json.dumps({k: int(v) for k, v in (counts or {}).items()})],
    )
    return int(cursor.fetchone()[0])


def record_subject(db: Database, subject: Subject, *, actor: str, action: str,
                   counts: Mapping[str, int] | None = None) -> int:
    return record(db, actor=actor, action=action, target_kind=subject.kind, channel=subject.channel,
                  target_ref=subject_ref(db, subject), counts=counts)


def record_conversation(db: Database, conversation_key: str, *, actor: str, action: str,
                        counts: Mapping[str, int] | None = None) -> int:
    """An agent's action on a stored conversation (claim, reply, release, close)."""
    row = db.execute("SELECT channel, conversation FROM conversations WHERE key = ?", [conversation_key]).fetchone()
    channel, conversation = (row[0], row[1]) if row else conversation_key.split(":", 1)
    return record_subject(db, Subject(CONVERSATION, channel, conversation), actor=actor, action=action, counts=counts)


def entries(db: Database, *, limit: int, subject: Subject | None = None,
            before: int | None = None) -> list[AuditEntry]:
    """The newest entries first (older pages with `before`), only the subject's when one is given."""
    limit = max(1, min(limit, MAX_ENTRIES))
    where, params = [], []
    if subject is not None:
        where.append("target_ref = ?")
        params.append(subject_ref(db, subject))
    if before is not None:
        where.append("id < ?")
        params.append(before)
    sql = "SELECT * FROM audit_log" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC LIMIT ?"
    rows = db.execute(sql, [*params, limit]).fetchall()
    names = _stored_targets(db) if rows else {}
    return [AuditEntry(id=row["id"], at=row["at"], actor=row["actor"], action=row["action"],
                       target_kind=row["target_kind"], channel=row["channel"], target_ref=row["target_ref"],
                       counts=json.loads(row["counts"] or "{}"), target=names.get(row["target_ref"]))
            for row in rows]


def _stored_targets(db: Database) -> dict[str, str]:
    """Hash → readable target for every conversation and user still stored (one pass over conversations)."""
    secret = _secret(db)
    names: dict[str, str] = {}
    for channel, conversation, user_id in db.execute("SELECT channel, conversation, user_id FROM conversations"):
        names[_ref(secret, CONVERSATION, channel, conversation)] = f"{channel}/{conversation}"
        names[_ref(secret, USER, channel, user_id)] = f"{channel}:{user_id}"
    return names
