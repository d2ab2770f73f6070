"""The conversation store: every message in and out, and what became of each.

- `conversations.py`: the `Store` and its SQL, written once for both engines, and the row
  helpers the handoff store's transactions share;
- `engine.py`: what the store needs of an engine, and which one a location names;
- `sqlite.py`: the default engine, one SQLite file (one writer thread, WAL reads beside it);
- `migrations.py`: the schema, created and upgraded in order, recorded in the database;
- `vectors.py`: the sentence vector kept with a shopper's message for the dashboard.
"""

from bot.store.conversations import (
    ANSWERED,
    FAILED,
    FORWARDED,
    PENDING,
    SENT,
    SETTLED,
    ConversationState,
    InboundRecord,
    PendingDelivery,
    Store,
    StoredInbound,
    answer_inbound,
    conversation_from_row,
    first_reply,
    insert_outbound,
    reply_from_row,
    verified_orders,
)
from bot.store.engine import Database, StoreClosedError

__all__ = [
    "ANSWERED", "FAILED", "FORWARDED", "PENDING", "SENT", "SETTLED", "ConversationState", "Database", "InboundRecord",
    "PendingDelivery", "Store", "StoreClosedError", "StoredInbound", "answer_inbound", "conversation_from_row",
    "first_reply", "insert_outbound", "reply_from_row", "verified_orders",
]
