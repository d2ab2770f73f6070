"""Privacy at the store: export, erase (down to the bytes of the SQLite files), retention, the audit log, masking."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import REPO, rows, write_config

from bot.config import load_config
from bot.errors import ConversationNotFoundError, HandoffConflictError, InvalidRequestError
from bot.handoff import Action
from bot.handoff.store import HandoffStore, QueuedEvent
from bot.messages import Message, Reply, ReplyKind, utc_now
from bot.privacy import PrivacyService, Subject
from bot.privacy.erase import checkpoint
from bot.privacy.masking import AtRestMasker, PiiLogFilter, luhn_ok, mask_stored_text
from bot.privacy.retention import parse_age
from bot.store import Store
from bot.store.engine import is_postgres_url

SECRET = "Zebrafinch-Passport-7781 我住在月亮街的秘密小屋"  # the erased shopper's words: nobody else writes them
OTHER = "Kingfisher-Ledger-4410 另一位顾客的留言"


pytestmark = pytest.mark.both_engines


@pytest.fixture
async def store(tmp_path: Path, storage: Path | str):
    opened = Store(storage if is_postgres_url(storage) else tmp_path / "data" / "kefu.db")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def privacy(store: Store) -> PrivacyService:
    service = PrivacyService(store, batch=2)
    await service.prepare()
    return service


async def say(store: Store, conversation: str, text: str, *, user: str | None = None, channel: str = "webhook",
              reply: str = "We ship in 2 days.", deliver: bool = False, sentiment: float | None = None,
              media: str | None = None, answer: bool = True) -> int:
    """One stored turn: the shopper's message and, unless `answer` is False, the bot's reply with a trace."""
    record = await store.record_inbound(Message(channel=channel, conversation=conversation,
                                                user_id=user or conversation, text=text, media=media))
    inbound = record.message.id
    if sentiment is not None:
        await HandoffStore(store).record_sentiment(inbound, record.message.conversation_key, sentiment, sentiment)
    if answer:
        await store.record_reply(inbound, Reply(channel=channel, conversation=conversation, user_id=user or conversation,
                                                text=reply, language="en", kind=ReplyKind.ANSWER, in_reply_to=inbound),
                                 latency_ms=3.0, deliver=deliver, meta={"retrieval": [], "question": text})
    return inbound


async def hand_off(store: Store, conversation: str, text: str, *, user: str | None = None) -> None:
    """A message that hands the conversation to a person: transition, notice and the agents' notification."""
    records = HandoffStore(store)
    record = await store.record_inbound(Message(channel="webhook", conversation=conversation,
                                                user_id=user or conversation, text=text))
    notice = Reply(channel="webhook", conversation=conversation, user_id=user or conversation,
                   text="A person will answer you here.", language="en", kind=ReplyKind.HANDOFF)
    event = QueuedEvent(("http",), "handoff.requested", {"last_messages": [{"role": "shopper", "text": text}]})
    await records.start_handoff(record.message.id, notice, reason="keyword", detail=f"matched in “{text}”",
                                latency_ms=2.0, deliver=False, meta={"question": text}, event=event)


def files_containing(root: Path, needle: str) -> list[str]:
    """Every file under `root` (the database, its -wal and -shm, index folders) whose bytes hold the text."""
    patterns = [needle.encode("utf-8"), needle.split()[0].encode(), needle.split()[-1].encode("utf-8")]
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()
                  and any(pattern in path.read_bytes() for pattern in patterns))


def rows_containing(location: Path | str, needle: str) -> list[str]:
    """Every table.column of the database holding the text (SQLite file or PostgreSQL database)."""
    if is_postgres_url(location):
        columns = rows(location, "SELECT table_name, column_name FROM information_schema.columns "
                                 "WHERE table_schema = current_schema()")
    else:
        columns = [(table, column[1]) for (table,) in rows(location, "SELECT name FROM sqlite_master "
                                                                     "WHERE type = 'table'")
                   for column in rows(location, f'PRAGMA table_info("{table}")')]
    return sorted(f"{table}.{column}" for table, column in columns
                  if rows(location, f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE ?',
                          f"%{needle.split()[0]}%")[0][0])


async def filler(store: Store, turns: int) -> None:
    for n in range(turns):
        await say(store, f"filler-{n % 30}", f"filler question number {n} about shipping and returns " * 3)


async def test_erasing_a_user_leaves_their_text_in_no_table_and_no_file(tmp_path, storage, store, privacy):
    # Other shoppers' rows before and after: the erased ones sit inside full pages, whose freed space SQLite
    # would leave as it was (only rebuilt pages lose it), and in the file, not only the WAL.
    await filler(store, 150)
    await say(store, "order-1", SECRET, user="li-na", sentiment=-0.6, deliver=True)
    await hand_off(store, "order-1", f"I want a lawyer. {SECRET}", user="li-na")
    await HandoffStore(store).apply("webhook:order-1", Action.CLOSE, actor="alice", reason="closed")
    await say(store, "order-2", f"again: {SECRET}", user="li-na", answer=False)  # a second conversation, failed
    await store.mark_failed(await store.write(lambda db: db.execute("SELECT MAX(id) FROM messages").fetchone()[0]),
                            "boom")
    await store.write(lambda db: db.execute(  # a table added later: found by its conversation_key column
        "CREATE TABLE IF NOT EXISTS message_search (conversation_key TEXT, body TEXT)"))
    await store.write(lambda db: db.execute("INSERT INTO message_search VALUES ('webhook:order-1', ?)", [SECRET]))
    await say(store, "someone-else", OTHER)
    await filler(store, 150)
    assert await store.maintain(checkpoint)
    sqlite = not is_postgres_url(storage)
    assert rows_containing(store.engine.location, SECRET)  # the scan finds the text before the erasure
    assert files_containing(tmp_path, SECRET) or not sqlite

    report = await privacy.erase(Subject.parse(user="webhook:li-na"), actor="mia")

    erased = report["erased"]
    assert erased["conversations"] == 2 and erased["messages"] == 5 and erased["handoff_transitions"] == 2
    assert erased["notifications"] == 1 and erased["message_search"] == 1 and erased["forced"] == 0
    assert report["wal_truncated"] is True
    assert rows_containing(store.engine.location, SECRET) == []
    assert rows_containing(store.engine.location, OTHER)  # the others' data is still there
    await store.close()
    if sqlite:  # on PostgreSQL the server's files are its own (VACUUM reuses the space; its WAL follows its settings)
        assert files_containing(tmp_path, SECRET) == []
        assert "data/kefu.db" in files_containing(tmp_path, OTHER)
    location = store.engine.location
    assert rows(location, "SELECT COUNT(*) FROM conversations WHERE key LIKE 'webhook:order-%'") == [(0,)]
    assert rows(location, "SELECT COUNT(*) FROM conversations") == [(31,)]


async def test_a_conversation_with_a_person_is_erased_only_with_force(store, privacy):
    await hand_off(store, "queued", "a person please, about my parcel")
    subject = Subject.parse(conversation="webhook/queued")
    with pytest.raises(HandoffConflictError, match="waiting for an agent") as refused:
        await privacy.erase(subject, actor="mia")
    assert refused.value.state == "waiting_agent"
    assert (await store.conversation("webhook:queued")) is not None
    await say(store, "busy", "still being answered", answer=False)
    with pytest.raises(HandoffConflictError, match="still answering"):
        await privacy.erase(Subject.parse(conversation="webhook:busy"), actor="mia")
    report = await privacy.erase(subject, actor="mia", force=True)
    assert report["erased"]["forced"] == 1 and report["erased"]["conversations"] == 1
    assert (await store.conversation("webhook:queued")) is None
    with pytest.raises(ConversationNotFoundError):
        await privacy.erase(subject, actor="mia")


async def test_an_export_holds_messages_replies_handoff_events_sentiment_media_and_traces(store, privacy):
    await say(store, "c-7", "where is my parcel?", user="u-7", sentiment=-0.4, media="photo")
    await hand_off(store, "c-7", "a lawyer will hear of this", user="u-7")
    await say(store, "c-8", "hello again", user="u-7")
    await say(store, "c-9", "not mine", user="u-9")
    document = await privacy.export(Subject.parse(user="webhook:u-7"), actor="cli")
    assert document["subject"] == {"kind": "user", "channel": "webhook", "id": "u-7"}
    assert document["counts"] == {"conversations": 2, "messages": 6, "handoff_events": 1, "notifications": 1,
                                  "order_lookups": 0}
    first = document["conversations"][0]
    assert first["conversation_id"] == "c-7" and first["handoff_state"] == "waiting_agent"
    shopper, bot = first["messages"][0], first["messages"][1]
    assert shopper["text"] == "where is my parcel?" and shopper["sentiment"] == -0.4 and shopper["media"] == "photo"
    assert bot["direction"] == "out" and bot["text"] == "We ship in 2 days." and bot["reply_to"] == shopper["id"]
    assert bot["trace"]["question"] == "where is my parcel?"
    assert first["handoff_events"][0]["to"] == "waiting_agent" and first["handoff_events"][0]["reason"] == "keyword"
    assert first["notifications"][0]["payload"]["last_messages"][0]["text"] == "a lawyer will hear of this"
    json.dumps(document, ensure_ascii=False)  # it is JSON as it stands
    with pytest.raises(ConversationNotFoundError):
        await privacy.export(Subject.parse(conversation="webhook/nobody"), actor="cli")


async def test_an_export_holds_the_order_lookups_and_the_shops_customer_id(store, privacy):
    from bot.orders.store import Lookup, OrderLookups, OrderSession

    record = await store.record_inbound(Message(channel="webhook", conversation="c-5", user_id="u-5",
                                                text="where is LL-100002?", customer_id="cust-42",
                                                customer_hash="ab" * 32))
    lookups = OrderLookups(store)
    await lookups.record(Lookup("webhook:c-5", record.message.id, "LL-100002", "file", "verified", proof="customer",
                                summary={"status": "shipped", "items": ["Wool scarf"]}))
    await lookups.save_session("webhook:c-5", OrderSession(order_number="LL-100002", intent="status",
                                                           verified_number="LL-100002", verified_at=utc_now()))
    document = await privacy.export(Subject.parse(user="webhook:u-5"), actor="cli")
    (conversation,) = document["conversations"]
    assert conversation["messages"][0]["customer_id"] == "cust-42" and document["counts"]["order_lookups"] == 1
    (lookup,) = conversation["order_lookups"]
    assert (lookup["order_number"], lookup["result"], lookup["proof"]) == ("LL-100002", "verified", "customer")
    assert lookup["summary"]["items"] == ["Wool scarf"] and lookup["message_id"] == record.message.id
    assert conversation["order_in_progress"]["verified_number"] == "LL-100002"
    json.dumps(document, ensure_ascii=False)


async def test_every_table_that_keeps_a_conversations_rows_is_exported(store):
    """Erase deletes from every table with a conversation_key; export must hold all of them too."""
    from bot.privacy.erase import tables_with_conversations
    from bot.privacy.export import EXPORTED_TABLES

    tables = await store.read(tables_with_conversations)
    assert set(tables) == EXPORTED_TABLES


async def test_the_audit_log_names_nobody_yet_finds_a_subject_again(store, privacy):
    await say(store, "alice@example.com", "hi, my email is the conversation id")
    subject = Subject.parse(conversation="webhook/alice@example.com")
    await privacy.export(subject, actor="mia")
    await privacy.record_action("bob", "claim", "webhook:alice@example.com")
    stored = await privacy.audit(limit=10)
    assert [(e.actor, e.action, e.target) for e in stored] == [
        ("bob", "claim", "webhook/alice@example.com"), ("mia", "export", "webhook/alice@example.com")]
    await privacy.erase(subject, actor="mia")
    after = await privacy.audit(limit=10, subject=subject)  # hashing the id again finds every entry about it
    assert [e.action for e in after] == ["erase", "claim", "export"]
    assert all(e.target is None and e.channel == "webhook" and len(e.target_ref or "") == 32 for e in after)
    assert after[0].counts["messages"] == 2 and after[0].counts["conversations"] == 1
    audit_rows = [repr(row) for row in rows(store.engine.location, "SELECT * FROM audit_log")]
    assert len(audit_rows) == 3 and not any("alice" in line or "email" in line for line in audit_rows)


async def test_purge_deletes_idle_conversations_in_batches_but_never_live_or_pending_ones(store, privacy):
    for name in ("idle-1", "idle-2", "idle-3", "recent"):
        await say(store, name, f"question from {name}")
    await hand_off(store, "idle-queued", "a person please")
    await say(store, "idle-pending", "unanswered", answer=False)
    await say(store, "idle-undelivered", "reply not yet pushed", deliver=True)
    old = (utc_now() - timedelta(days=100)).isoformat()
    await store.write(lambda db: db.execute("UPDATE conversations SET updated_at = ? WHERE key LIKE 'webhook:idle-%'",
                                            [old]))
    assert (await privacy.purge(parse_age("90d"), actor="cli", dry_run=True))["would_purge"] == 3

    result = await privacy.purge(parse_age("90d"), actor="cli")

    assert result["purged"]["conversations"] == 3 and result["purged"]["messages"] == 6
    left = await store.read(lambda db: [row[0] for row in db.execute("SELECT key FROM conversations ORDER BY key")])
    assert left == ["webhook:idle-pending", "webhook:idle-queued", "webhook:idle-undelivered", "webhook:recent"]
    purges = [e for e in await privacy.audit(limit=10) if e.action == "purge"]
    assert [e.counts["conversations"] for e in purges] == [1, 2]  # batches of 2, each its own transaction
    assert all(e.actor == "cli" and e.target_kind == "older_than" for e in purges)


async def test_the_retention_task_purges_on_its_schedule_while_the_loop_keeps_running(store):
    service = PrivacyService(store, retain_days=30, interval_seconds=0.05, batch=50)
    await service.prepare()
    for n in range(120):
        await say(store, f"old-{n}", f"old question {n}")
    await say(store, "fresh", "a new question")
    old = (utc_now() - timedelta(days=31)).isoformat()
    await store.write(lambda db: db.execute("UPDATE conversations SET updated_at = ? WHERE key LIKE 'webhook:old-%'",
                                            [old]))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    beat = asyncio.create_task(ticker())
    service.start()
    try:
        for _ in range(200):
            if await store.read(lambda db: db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]) == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
        beat.cancel()
    assert (await store.conversation("webhook:fresh")) is not None
    assert await store.read(lambda db: db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]) == 1
    assert ticks > 20  # the loop ran on throughout
    assert {e.actor for e in await service.audit(limit=10)} == {"retention"}


@pytest.mark.parametrize("text, expected", [
    ("conversation=webhook/order-1", ("conversation", "webhook", "order-1")),
    ("conversation=webhook:a/b:c", ("conversation", "webhook", "a/b:c")),
    ("user=telegram:123456789", ("user", "telegram", "123456789")),
])
def test_a_subject_is_a_channel_and_an_id(text, expected):
    kind, value = text.split("=", 1)
    subject = Subject.parse(**{kind: value})
    assert (subject.kind, subject.channel, subject.value) == expected


@pytest.mark.parametrize("arguments", [{}, {"conversation": "a", "user": "b"}, {"conversation": "order-1"},
                                       {"user": "Telegram:1"}, {"user": "webhook:"}, {"conversation": "/x"}])
def test_a_malformed_subject_is_refused(arguments):
    with pytest.raises(InvalidRequestError):
        Subject.parse(**arguments)


def test_card_numbers_are_always_masked_at_rest_and_the_rest_only_with_mask_stored():
    text = "Card 4111 1111 1111 1111 failed for order 123-4567890-1234567; mail li.na@example.com"
    assert AtRestMasker().text(text) == ("Card [CARD …1111] failed for order 123-4567890-1234567; "
                                         "mail li.na@example.com")
    assert AtRestMasker(mask_stored=True).text(text) == ("Card [CARD …1111] failed for order 123-4567890-1234567; "
                                                         "mail [EMAIL]")
    assert AtRestMasker().text("gift card 4111 1111 1111 1112") == "gift card 4111 1111 1111 1112"  # not Luhn-valid
    assert luhn_ok("378282246310005") and not luhn_ok("378282246310006")


@pytest.mark.parametrize("text, expected", [
    ("my order 1234567890 never came, call +49 151 23456789", "my order 1234567890 never came, call [PHONE]"),
    ("订单号 202405011234 没到，电话13812345678", "订单号 202405011234 没到，电话[PHONE]"),
    ("Bestellnummer: 4455667788, ich wohne Hauptstraße 5", "Bestellnummer: 4455667788, ich wohne [ADDRESS]"),
    ("order #9876543210 arrives 2024-05-01", "order #9876543210 arrives 2024-05-01"),
])
def test_mask_stored_keeps_order_numbers_and_dates_agents_need(text, expected):
    assert mask_stored_text(text) == expected


def test_log_lines_are_masked_before_any_handler_writes_them():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PiiLogFilter())
    logger = logging.getLogger("kefu.test.privacy")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("turn.failed from=%s card=%s", "li.na@example.com", "4111 1111 1111 1111")
        try:
            raise ValueError("cannot reach +49 151 23456789")
        except ValueError:
            logger.exception("turn.crashed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "turn.failed from=[EMAIL_1] card=[CARD_1]" in written and "li.na" not in written
    assert "ValueError: cannot reach +[" in written and "23456789" not in written  # the traceback too


def test_the_privacy_commands_answer_a_request_from_the_shell(tmp_path, storage):
    config_path = write_config(tmp_path, storage=storage)

    async def fill() -> None:
        store = Store(load_config(config_path, environ={}).storage.location)
        await store.open()
        await say(store, "order-55", SECRET, user="li-na")
        await say(store, "order-56", OTHER, user="someone")
        await store.close()

    asyncio.run(fill())

    def kefu(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot.cli", "privacy", *args, "-c", str(config_path)],
                              capture_output=True, text=True, timeout=120, cwd=REPO)

    exported = kefu("export", "--conversation", "webhook/order-55")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["conversations"][0]["messages"][0]["text"] == SECRET
    answer = tmp_path / "li-na.json"
    erased = kefu("erase", "--user", "webhook:li-na", "--export", str(answer), "--actor", "owner")
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["erased"]["conversations"] == 1
    assert json.loads(answer.read_text(encoding="utf-8"))["counts"]["messages"] == 2
    assert answer.stat().st_mode & 0o077 == 0  # the export is readable by its owner only
    assert kefu("export", "--user", "webhook:li-na").returncode == 2  # nothing is left to export
    bad = kefu("erase", "--conversation", "order-56")
    assert bad.returncode == 2 and "channel" in bad.stderr
    audit = kefu("audit", "--json")
    assert [e["action"] for e in json.loads(audit.stdout)["entries"]] == ["erase", "export", "export"]
    purge = kefu("purge", "--older-than", "1h")
    assert purge.returncode == 0 and json.loads(purge.stdout)["purged"]["conversations"] == 0
    assert kefu("purge").returncode == 2  # no age given and no retain_days configured
    if not is_postgres_url(storage):
        assert files_containing(tmp_path / "data", SECRET) == []
    assert rows_containing(load_config(config_path, environ={}).storage.location, SECRET) == []
