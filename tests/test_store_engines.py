"""The store on both engines: one schema, SQL that means the same on each, several writers on one
PostgreSQL, and a shop's history moved from SQLite to PostgreSQL (and back) with `kefu store copy`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, rows, write_config

from bot.config import load_config
from bot.errors import ConfigError
from bot.handoff import Action
from bot.handoff.store import HandoffStore
from bot.messages import HandoffState, Message, Reply, ReplyKind
from bot.privacy import PrivacyService, Subject
from bot.store import Store
from bot.store.schema import column_names, table_names
from bot.store.migrations import MIGRATIONS
from bot.store.postgres import translate


def kefu(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args, "-c", str(config)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_placeholders_become_psycopgs_outside_quoted_text():
    assert translate("SELECT '?' , \"a?\" FROM t WHERE x = ? AND y LIKE '%z%'") == \
        "SELECT '?' , \"a?\" FROM t WHERE x = %s AND y LIKE '%%z%%'"
    assert translate("SELECT :since, id::text FROM t WHERE at < :until") == \
        "SELECT %(since)s, id::text FROM t WHERE at < %(until)s"
    assert translate("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


async def test_both_engines_build_the_same_tables_and_columns(tmp_path, postgres_url):
    shapes = {}
    for location in (tmp_path / "kefu.db", postgres_url):
        store = Store(location)
        await store.open()
        shapes[store.dialect] = await store.read(
            lambda db: {table: column_names(db, table) for table in table_names(db)})
        await store.close()
    assert shapes["sqlite"] == shapes["postgresql"]
    assert {"conversations", "messages", "handoff_transitions", "notifications", "audit_log"} <= set(shapes["sqlite"])


async def test_sql_functions_mean_the_same_on_both_engines(tmp_path, postgres_url):
    """The few SQLite functions the store uses (bot/store/migrations.py POSTGRES_FUNCTIONS) answer alike."""
    sql = ("SELECT json_valid(?) AS good, json_valid(?) AS bad, json_extract(?, '$.retrieval[1].faq_id') AS hit, "
           "json_extract(?, '$.language.detected') AS lang, ROUND(julianday(?) - 2440587.5, 4) AS days, "
           "ROUND(2.34567, 2) AS rounded")
    doc = '{"retrieval": [{"faq_id": "a"}, {"faq_id": "b"}], "language": {"detected": "zh"}}'
    answers = []
    for location in (tmp_path / "kefu.db", postgres_url):
        store = Store(location)
        await store.open()
        row = await store.read(lambda db: tuple(db.execute(
            sql, [doc, "{not json", doc, doc, "1970-01-02T12:00:00+00:00"]).fetchone()))
        answers.append((bool(row[0]), bool(row[1]), *row[2:]))
        await store.close()
    assert answers[0] == answers[1] == (True, False, "b", "zh", 1.5, 2.35)


async def test_workers_racing_on_one_postgresql_store_one_message_and_one_reply(postgres_url):
    """Two stores on one database (two workers): a redelivery arriving at both at once is stored once,
    and both answering the same message leave one reply (SERIALIZABLE, retried on conflict)."""
    workers = [Store(postgres_url), Store(postgres_url)]
    for worker in workers:
        await worker.open()
    try:
        for n in range(20):
            message = Message(channel="webhook", conversation=f"race-{n}", user_id="u", text="where is my parcel?",
                              external_id=f"m-{n}")
            records = await asyncio.gather(*(worker.record_inbound(message) for worker in workers))
            assert sorted(record.duplicate for record in records) == [False, True]
            assert records[0].message.id == records[1].message.id
            inbound = records[0].message
            replies = await asyncio.gather(*(
                worker.record_reply(inbound.id, Reply(channel="webhook", conversation=inbound.conversation,
                                                      user_id="u", text=f"from worker {i}", language="en",
                                                      kind=ReplyKind.ANSWER, in_reply_to=inbound.id),
                                    latency_ms=1.0, deliver=False, meta={})
                for i, worker in enumerate(workers)))
            assert replies[0].message_id == replies[1].message_id and replies[0].text == replies[1].text
        assert rows(postgres_url, "SELECT COUNT(*) FROM messages WHERE direction = 'in'") == [(20,)]
        assert rows(postgres_url, "SELECT COUNT(*) FROM messages WHERE direction = 'out'") == [(20,)]
        # Two agents claiming one conversation from two workers: exactly one gets it.
        await HandoffStore(workers[0]).apply("webhook:race-0", Action.HANDOFF, actor="bot", reason="explicit_request")
        results = await asyncio.gather(*(HandoffStore(worker).apply("webhook:race-0", Action.CLAIM, actor=name,
                                                                    reason="claimed")
                                         for worker, name in zip(workers, ("ana", "ben"), strict=True)),
                                       return_exceptions=True)
        assert sum(not isinstance(result, Exception) for result in results) == 1
        state = await workers[1].conversation("webhook:race-0")
        assert state is not None and state.handoff == HandoffState.AGENT and state.agent in ("ana", "ben")
    finally:
        for worker in workers:
            await worker.close()


def test_kefu_migrate_from_several_processes_at_once_applies_each_migration_once(tmp_path, postgres_url):
    with_password = postgres_url.replace("kefu@", "kefu:hunter2@")  # the test server trusts; a real one checks it
    config = write_config(tmp_path, storage=with_password)
    started = [subprocess.Popen([sys.executable, "-m", "bot.cli", "migrate", "-c", str(config)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [process.communicate(timeout=120) for process in started]
    assert [process.returncode for process in started] == [0, 0, 0], outputs
    assert all(f"({len(MIGRATIONS)} of {len(MIGRATIONS)} migrations)" in out for out, _ in outputs)
    assert "hunter2" not in outputs[0][0] and "kefu:***@127.0.0.1" in outputs[0][0]
    assert rows(postgres_url, "SELECT COUNT(*), COUNT(DISTINCT name) FROM _kefu_migrations") == \
        [(len(MIGRATIONS), len(MIGRATIONS))]


async def test_store_copy_moves_a_shops_history_to_postgresql_and_back(tmp_path, postgres_url):
    config = write_config(tmp_path)
    sqlite_file = load_config(config, environ={}).storage.database
    store = Store(sqlite_file)
    await store.open()
    record = await store.record_inbound(Message(channel="webhook", conversation="li-na", user_id="li-na",
                                                text="我的退款呢", external_id="m1"))
    await store.record_reply(record.message.id, Reply(channel="webhook", conversation="li-na", user_id="li-na",
                                                      text="退款会在5个工作日内到账。", language="zh",
                                                      kind=ReplyKind.ANSWER, in_reply_to=record.message.id),
                             latency_ms=12.5, deliver=True, meta={"retrieval": [{"faq_id": "refunds", "score": 0.9}]})
    await HandoffStore(store).apply("webhook:li-na", Action.HANDOFF, actor="bot", reason="explicit_request")
    await PrivacyService(store).record_action("ana", "claim", "webhook:li-na")
    before = await store.transcript("webhook:li-na")
    await store.close()

    copied = kefu("store", "copy", "--from", f"sqlite://{sqlite_file}", "--to", postgres_url, config=config)
    assert copied.returncode == 0, copied.stderr
    assert "messages" in copied.stdout and "copied" in copied.stdout

    moved = Store(postgres_url)
    await moved.open()
    try:
        assert await moved.transcript("webhook:li-na") == before
        audit = await PrivacyService(moved).audit(subject=Subject.parse(conversation="webhook/li-na"))
        assert [entry.action for entry in audit] == ["claim"]  # the privacy key came along: its hashes still match
        again = await moved.record_inbound(Message(channel="webhook", conversation="li-na", user_id="li-na",
                                                   text="还有吗", external_id="m2"))
        assert again.duplicate is False and again.message.id > record.message.id + 1  # past the copied ids
        duplicate = await moved.record_inbound(Message(channel="webhook", conversation="li-na", user_id="li-na",
                                                       text="我的退款呢", external_id="m1"))
        assert duplicate.duplicate is True and duplicate.reply is not None
    finally:
        await moved.close()

    refused = kefu("store", "copy", "--from", f"sqlite://{sqlite_file}", "--to", postgres_url, config=config)
    assert refused.returncode == 2 and "already holds data" in refused.stderr

    back = tmp_path / "back.db"
    returned = kefu("store", "copy", "--from", postgres_url, "--to", f"sqlite://{back}", config=config)
    assert returned.returncode == 0, returned.stderr
    assert rows(back, "SELECT COUNT(*) FROM messages") == rows(postgres_url, "SELECT COUNT(*) FROM messages") == [(3,)]


@pytest.mark.parametrize(("storage", "problem"), [
    ('url = "postgresql://kefu@db/kefu"\ndatabase = "x.db"', "not both"),
    ('url = "mysql://kefu@db/kefu"', "must be a PostgreSQL URL"),
    ('url_env = "KEFU_TEST_NO_SUCH_VARIABLE"', "is not set"),
])
def test_a_storage_url_mistake_names_the_key(tmp_path, storage, problem):
    path = tmp_path / "kefu.toml"
    path.write_text(f'[shop]\ndefault_language = "en"\nlanguages = ["en"]\n\n[storage]\n{storage}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert problem in str(raised.value) and "storage.url" in str(raised.value) and "kefu.toml" in str(raised.value)


def test_the_url_may_come_from_the_environment(tmp_path):
    path = tmp_path / "kefu.toml"
    path.write_text('[shop]\ndefault_language = "en"\nlanguages = ["en"]\n\n[storage]\nurl_env = "DB"\npool_size = 3\n',
                    encoding="utf-8")
    storage = load_config(path, environ={"DB": "postgresql://kefu:s3cret@db.internal/kefu"}).storage
    assert storage.location == "postgresql://kefu:s3cret@db.internal/kefu" and storage.pool_size == 3
