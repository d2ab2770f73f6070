"""Shoppers' data on request and on a schedule: export, erase, retention, masking and the audit log.

Design, in one place:

- **Subject**: a request names one conversation (`channel/id`) or one user of a channel
  (`channel:user_id`, every conversation of theirs on that channel). `subject.py` parses both.
- **Export** (`export.py`) reads everything stored for the subject in one read: the conversation,
  every message and reply with its trace (`meta`), sentiment and media reference, the handoff events
  and the agents' notifications (whose payloads quote the shopper).
- **Erase** (`erase.py`) deletes, in one write transaction, the subject's rows from every table that
  has a `conversation_key` column (messages with their traces, handoff events, the notifier outbox,
  pending deliveries, and any table added later) and their `conversations` rows. The writer runs with
  `PRAGMA secure_delete = ON`, so freed pages are zeroed, and a `wal_checkpoint(TRUNCATE)` afterwards
  empties the WAL: the text survives neither in free pages nor in the log file. Nothing else holds
  shopper text on disk (the search index and embedding caches hold FAQ texts only; the dashboard's
  groups and CSV are computed per request and never cached).
- **A live conversation** (waiting for or with an agent, or with a message still being answered) is
  not erased: the request is refused with a conflict (HTTP 409) naming its state, unless `force`
  is given; then its handoff goes with it. Retention never touches such a conversation.
- **Retention** (`retention.py`): with `[privacy] retain_days`, a task owned by the app purges
  conversations idle longer than that, in small batches, each one transaction on the store's writer.
- **Masking at rest** (`masking.py`): card numbers (Luhn-valid, grouped like cards) are always
  stored masked; with `mask_stored = true` emails, phone numbers and street addresses too, while
  order numbers stay as written (agents need them). A logging filter masks every log line.
- **Audit log** (`audit.py`): who (an agent's or merchant's name, "cli", "retention") did what
  (claim, reply, release, close, export, erase, purge) to which target, and how many rows. It holds
  no personal data: the target is a keyed hash (HMAC-SHA256 with a random per-database key) of the
  conversation or user, so the log names nobody once they are erased, yet "what was done to this
  shopper?" is answered by hashing their id again. While a conversation is stored the log shows it.
"""

from __future__ import annotations

from bot.privacy.service import PrivacyService
from bot.privacy.subject import Subject

__all__ = ["PrivacyService", "Subject"]
