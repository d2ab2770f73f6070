"""The conversation store: every message in and out, and what became of each.

- `sqlite.py`: the store on SQLite (one writer thread, WAL reads beside it) and the row
  helpers the handoff store's transactions share;
- `migrations.py`: the schema, created and upgraded in order, recorded in the database;
- `vectors.py`: the sentence vector kept with a shopper's message for the dashboard.
"""

from bot.store.sqlite import (
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
    StoreClosedError,
    StoredInbound,
    answer_inbound,
    conversation_from_row,
    first_reply,
    insert_outbound,
    reply_from_row,
    verified_orders,
)

__all__ = [
    "ANSWERED", "FAILED", "FORWARDED", "PENDING", "SENT", "SETTLED", "ConversationState", "InboundRecord",
    "PendingDelivery", "Store", "StoreClosedError", "StoredInbound", "answer_inbound", "conversation_from_row",
    "first_reply", "insert_outbound", "reply_from_row", "verified_orders",
]
