"""Everything kefu stores about a subject, as one JSON document (a GDPR access request's answer)."""

from __future__ import annotations

import json
from typing import Any


from bot.errors import ConversationNotFoundError
from bot.messages import utc_now
from bot.privacy.subject import Subject
from bot.store.engine import Database

EXPORT_FORMAT = 2  # 2: order lookups and the order in progress; the shop's customer id, links and receipts
# Every table that keeps rows of a conversation (erase deletes them all): a new one must be exported too.
EXPORTED_TABLES = frozenset({"messages", "handoff_transitions", "notifications", "order_lookups", "order_sessions"})
_MESSAGE_FIELDS = ("id", "direction", "role", "text", "created_at", "language", "language_hint", "sentiment",
                   "media", "kind", "confidence", "why", "reply_to", "external_id", "status", "delivery",
                   "customer_id", "receipt", "receipt_at")
_JSON_LISTS = ("faq_ids", "quick_replies", "links")


def export_subject(db: Database, subject: Subject) -> dict[str, Any]:
    """Blocking, on the reader: the subject's conversations with messages, handoff events, notifications and
    order lookups."""
    keys = subject.keys(db)
    if not keys:
        raise ConversationNotFoundError(f"nothing is stored for {subject.label}")
    conversations = [_conversation(db, key) for key in keys]
    return {
        "kefu_export": EXPORT_FORMAT,
        "exported_at": utc_now().isoformat(),
        "subject": {"kind": subject.kind, "channel": subject.channel, "id": subject.value},
        "conversations": conversations,
        "counts": {
            "conversations": len(conversations),
            "messages": sum(len(c["messages"]) for c in conversations),
            "handoff_events": sum(len(c["handoff_events"]) for c in conversations),
            "notifications": sum(len(c["notifications"]) for c in conversations),
            "order_lookups": sum(len(c["order_lookups"]) for c in conversations),
        },
    }


def _conversation(db: Database, key: str) -> dict[str, Any]:
    row = db.execute("SELECT * FROM conversations WHERE key = ?", [key]).fetchone()
    messages = [_message(m) for m in db.execute(
        "SELECT * FROM messages WHERE conversation_key = ? ORDER BY id", [key]).fetchall()]
    events = [{"from": t["from_state"], "to": t["to_state"], "reason": t["reason"], "detail": t["detail"],
               "actor": t["actor"], "message_id": t["message_id"], "created_at": t["created_at"]}
              for t in db.execute("SELECT * FROM handoff_transitions WHERE conversation_key = ? ORDER BY id",
                                  [key]).fetchall()]
    notifications = [{"event": n["event"], "target": n["target"], "status": n["status"],
                      "created_at": n["created_at"], "payload": _parsed(n["payload"])}
                     for n in db.execute("SELECT * FROM notifications WHERE conversation_key = ? ORDER BY id",
                                         [key]).fetchall()]
    lookups = [{"at": o["at"], "message_id": o["message_id"], "order_number": o["order_number"],
                "source": o["source"], "result": o["result"], "proof": o["proof"], "summary": _parsed(o["summary"])}
               for o in db.execute("SELECT * FROM order_lookups WHERE conversation_key = ? ORDER BY id",
                                   [key]).fetchall()]
    session = db.execute("SELECT * FROM order_sessions WHERE conversation_key = ?", [key]).fetchone()
    return {
        "channel": row["channel"], "conversation_id": row["conversation"], "user_id": row["user_id"],
        "display_name": row["display_name"], "language": row["language"], "created_at": row["created_at"],
        "last_activity": row["updated_at"], "handoff_state": row["handoff_state"], "agent": row["agent"],
        "mood": row["mood"], "messages": messages, "handoff_events": events, "notifications": notifications,
        "order_lookups": lookups,
        "order_in_progress": {name: session[name] for name in ("order_number", "intent", "verified_number",
                                                               "verified_at", "updated_at")} if session else None,
    }


def _message(row: Any) -> dict[str, Any]:
    data = {name: row[name] for name in _MESSAGE_FIELDS}
    for name in _JSON_LISTS:
        data[name] = _parsed(row[name]) or []
    data["trace"] = _parsed(row["meta"])  # how the bot decided: language, ranked FAQ entries, responder
    return data


def _parsed(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
