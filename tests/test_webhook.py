"""The HTTP webhook API, end to end: a real server on 127.0.0.1, a real client, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import aiohttp
import pytest
from conftest import TOKEN, write_config

from bot.app import KefuApp
from bot.config import load_config
from bot.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


def db_rows(app: KefuApp, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(app.config.storage.database) as conn:
        return conn.execute(sql, params).fetchall()


async def post(http, url, auth, **body):
    async with http.post(url("/v1/messages"), json=body, headers=auth) as response:
        return response.status, await response.json()


async def test_english_question_gets_the_faq_answer_and_both_messages_are_stored(app, http, url, auth):
    status, data = await post(http, url, auth, conversation_id="c1", text="how long does shipping take?",
                              message_id="m1")
    assert status == 200
    reply = data["reply"]
    assert reply["kind"] == "answer"
    assert reply["faq_ids"] == ["shipping-time"]
    assert reply["language"] == "en"
    assert "3-5 business days" in reply["text"]
    assert data["duplicate"] is False
    rows = db_rows(app, "SELECT direction, text, status, reply_to FROM messages ORDER BY id")
    assert rows == [
        ("in", "how long does shipping take?", "answered", None),
        ("out", reply["text"], None, data["inbound_id"]),
    ]


async def test_chinese_question_gets_the_chinese_answer(app, http, url, auth):
    status, data = await post(http, url, auth, conversation_id="c-zh", text="运费多少钱？")
    assert status == 200
    assert data["reply"]["faq_ids"] == ["shipping-cost"]
    assert data["reply"]["language"] == "zh"
    assert "4.95 欧元" in data["reply"]["text"]


async def test_unknown_question_offers_top_topics_in_the_shoppers_language(app, http, url, auth):
    status, data = await post(http, url, auth, conversation_id="c-x", text="推荐一部电影")
    assert status == 200
    reply = data["reply"]
    assert reply["kind"] == "no_match"
    assert reply["language"] == "zh"
    assert len(reply["quick_replies"]) == 3
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in q) for q in reply["quick_replies"])


async def test_ambiguous_question_asks_which_entry_was_meant(app, http, url, auth):
    status, data = await post(http, url, auth, conversation_id="c-amb", text="refund")
    # refund-status and refund-timing both fit a bare "refund": the bot asks rather than guessing.
    assert status == 200
    assert data["reply"]["kind"] == "not_sure"
    assert {"refund-status", "refund-timing"} <= set(data["reply"]["faq_ids"])
    assert len(data["reply"]["quick_replies"]) >= 2


async def test_redelivered_message_is_answered_once_and_returns_the_stored_reply(app, http, url, auth):
    first = await post(http, url, auth, conversation_id="c2", text="where is my order??", message_id="42")
    again = await post(http, url, auth, conversation_id="c2", text="where is my order??", message_id="42")
    assert first[0] == again[0] == 200
    assert again[1]["duplicate"] is True
    assert again[1]["reply"]["message_id"] == first[1]["reply"]["message_id"]
    assert db_rows(app, "SELECT direction, COUNT(*) FROM messages GROUP BY direction ORDER BY direction") == [
        ("in", 1), ("out", 1)
    ]


async def test_concurrent_redeliveries_are_answered_once(app, http, url, auth):
    results = await asyncio.gather(*[
        post(http, url, auth, conversation_id="c3", text="运费多少钱？", message_id="same") for _ in range(10)
    ])
    assert {status for status, _ in results} == {200}
    assert len({data["reply"]["message_id"] for _, data in results}) == 1
    assert db_rows(app, "SELECT COUNT(*) FROM messages WHERE direction = 'out'") == [(1,)]


async def test_same_message_id_in_another_conversation_is_a_new_message(app, http, url, auth):
    await post(http, url, auth, conversation_id="a", text="hi", message_id="1")
    _, data = await post(http, url, auth, conversation_id="b", text="hi", message_id="1")
    assert data["duplicate"] is False


async def test_turns_are_ordered_per_conversation_under_concurrent_posts(app, http, url, auth):
    questions = ["how long does shipping take?", "运费多少钱？", "where is my order??", "我的退款呢", "hi"]
    posts = [
        post(http, url, auth, conversation_id=f"conv-{n % 5}", text=questions[(n // 5) % 5], message_id=f"m{n}")
        for n in range(50)
    ]
    results = await asyncio.gather(*posts)
    assert [status for status, _ in results] == [200] * 50
    for conv in range(5):
        key = (f"webhook:conv-{conv}",)
        inbound = db_rows(app, "SELECT id, status FROM messages WHERE direction = 'in' AND conversation_key = ? "
                          "ORDER BY id", key)
        replies = db_rows(app, "SELECT reply_to FROM messages WHERE direction = 'out' AND conversation_key = ? "
                          "ORDER BY id", key)
        assert len(inbound) == len(replies) == 10
        assert {status for _, status in inbound} == {"answered"}
        # Replies were made one after another, in the order the messages were stored.
        assert [reply_to for (reply_to,) in replies] == [inbound_id for inbound_id, _ in inbound]


async def test_transcript_lists_the_conversation_in_order(app, http, url, auth):
    await post(http, url, auth, conversation_id="t1", text="hi", message_id="a")
    await post(http, url, auth, conversation_id="t1", text="运费多少钱？", message_id="b")
    async with http.get(url("/v1/conversations/t1"), headers=auth) as response:
        assert response.status == 200
        data = await response.json()
    assert [(m["direction"], m["role"]) for m in data["messages"]] == [
        ("in", "shopper"), ("out", "bot"), ("in", "shopper"), ("out", "bot")
    ]
    assert data["messages"][3]["faq_ids"] == ["shipping-cost"]
    assert data["language"] == "zh"


async def test_unknown_conversation_is_404_json(app, http, url, auth):
    async with http.get(url("/v1/conversations/nope"), headers=auth) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"


async def test_healthz_needs_no_auth(app, http, url):
    async with http.get(url("/healthz")) as response:
        assert response.status == 200
        data = await response.json()
    assert data["status"] == "ok"
    assert data["faq_entries"] >= 30


async def test_healthz_says_when_the_lazy_models_are_loaded(app, http, url):
    assert app.warming_up is not None
    await app.warming_up
    async with http.get(url("/healthz")) as response:
        assert (await response.json())["warmed_up"] is True


BAD_REQUESTS = [
    # (name, headers, body, status, error)
    ("no auth", {}, b'{"conversation_id": "c", "text": "hi"}', 401, "unauthorized"),
    ("wrong token", {"Authorization": "Bearer wrong-token-0000000"}, b'{"conversation_id": "c", "text": "hi"}',
     401, "unauthorized"),
    ("malformed json", None, b'{"conversation_id": "c", "text": ', 400, "invalid_json"),
    ("json not an object", None, b'["hi"]', 400, "invalid_json"),
    ("missing text", None, b'{"conversation_id": "c"}', 400, "missing_field"),
    ("blank text", None, b'{"conversation_id": "c", "text": "   "}', 400, "missing_field"),
    ("missing conversation", None, b'{"text": "hi"}', 400, "missing_field"),
    ("conversation not a string", None, b'{"conversation_id": [1], "text": "hi"}', 400, "invalid_field"),
    ("unknown field", None, b'{"conversation_id": "c", "text": "hi", "mesage_id": "1"}', 400, "unknown_field"),
    ("text too long", None, json.dumps({"conversation_id": "c", "text": "a" * 501}).encode(), 413, "text_too_long"),
    ("body too large", None, json.dumps({"conversation_id": "c", "text": "a" * 5000}).encode(), 413,
     "payload_too_large"),
]


@pytest.mark.parametrize(("name", "headers", "body", "status", "error"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
async def test_bad_requests_get_a_4xx_json_reason_and_store_nothing(app, http, url, auth, name, headers, body,
                                                                    status, error):
    sent_headers = {"Content-Type": "application/json", **(auth if headers is None else headers)}
    async with http.post(url("/v1/messages"), data=body, headers=sent_headers) as response:
        assert response.status == status
        assert response.content_type == "application/json"
        data = await response.json()
    assert data["error"] == error
    assert data["detail"]
    assert db_rows(app, "SELECT COUNT(*) FROM messages") == [(0,)]


async def test_wrong_content_type_is_415(app, http, url, auth):
    async with http.post(url("/v1/messages"), data="hi", headers={**auth, "Content-Type": "text/plain"}) as response:
        assert response.status == 415
        assert (await response.json())["error"] == "unsupported_media_type"


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/nowhere", 404), ("GET", "/v1/messages", 405)])
async def test_routing_errors_are_json(app, http, url, method, path, status):
    async with http.request(method, url(path)) as response:
        assert response.status == status
        assert response.content_type == "application/json"
        assert (await response.json())["error"] in ("not_found", "method_not_allowed")


async def test_store_stays_consistent_after_bad_requests(app, http, url, auth):
    await post(http, url, auth, conversation_id="ok", text="hi", message_id="1")
    async with http.post(url("/v1/messages"), data=b"{oops", headers={**auth, "Content-Type": "application/json"}):
        pass
    status, data = await post(http, url, auth, conversation_id="ok", text="运费多少钱？", message_id="2")
    assert status == 200
    assert db_rows(app, "SELECT status FROM messages WHERE direction = 'in' ORDER BY id") == [
        ("answered",), ("answered",)
    ]


@pytest.fixture
async def hmac_app(tmp_path):
    config = load_config(write_config(tmp_path, webhook='auth = "hmac"\nsignature_tolerance_seconds = 60'), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        yield app


def signed(body: bytes, timestamp: float | None = None, secret: str = TOKEN, *, method: str = "POST",
           target: str = "/v1/messages", version: int = 2, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(timestamp if timestamp is not None else time.time()))
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(secret, stamp, body, method=method, target=target, version=version)}


async def test_hmac_signed_request_is_accepted(hmac_app, http):
    body = json.dumps({"conversation_id": "h", "text": "运费多少钱？"}).encode()
    async with http.post(hmac_app.http.base_url + "/v1/messages", data=body, headers=signed(body)) as response:
        assert response.status == 200
        assert (await response.json())["reply"]["faq_ids"] == ["shipping-cost"]


@pytest.mark.parametrize("case", ["wrong secret", "stale timestamp", "body changed", "bearer instead",
                                  "nan timestamp", "infinite timestamp", "signed for another path",
                                  "signed for another method", "legacy body-only signature"])
async def test_hmac_rejects_bad_signatures(hmac_app, http, case):
    body = json.dumps({"conversation_id": "h", "text": "hi"}).encode()
    headers = {
        "wrong secret": signed(body, secret="another-secret-123456"),
        "stale timestamp": signed(body, timestamp=time.time() - 3600),
        "body changed": signed(body.replace(b"hi", b"ho")),
        "bearer instead": {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        "nan timestamp": signed(body, stamp="nan"),
        "infinite timestamp": signed(body, stamp="inf"),
        "signed for another path": signed(body, target="/v1/messages?x=1"),
        "signed for another method": signed(body, method="PUT"),
        "legacy body-only signature": signed(body, version=1),
    }[case]
    async with http.post(hmac_app.http.base_url + "/v1/messages", data=body, headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"


async def test_a_captured_signature_does_not_read_another_conversation(hmac_app, http):
    """The signature covers method and path: one for GET /v1/conversations/A is useless for B."""
    base = hmac_app.http.base_url
    for conversation in ("A", "B"):
        body = json.dumps({"conversation_id": conversation, "text": "hi"}).encode()
        async with http.post(base + "/v1/messages", data=body, headers=signed(body)) as response:
            assert response.status == 200
    captured = signed(b"", method="GET", target="/v1/conversations/A")
    async with http.get(base + "/v1/conversations/A", headers=captured) as response:
        assert response.status == 200
        assert (await response.json())["conversation"] == "A"
    async with http.get(base + "/v1/conversations/B", headers=captured) as response:
        assert response.status == 401
        assert "does not match" in (await response.json())["detail"]


async def test_the_legacy_signature_is_accepted_only_when_configured(tmp_path, http):
    config = load_config(write_config(tmp_path, webhook='auth = "hmac"\nsignature_version = 1'), environ={})
    async with KefuApp(config, channels=["webhook"], serve_http=True) as app:
        body = json.dumps({"conversation_id": "old", "text": "hi"}).encode()
        for version in (1, 2):
            async with http.post(app.http.base_url + "/v1/messages", data=body,
                                 headers=signed(body, version=version)) as response:
                assert response.status == 200


async def test_client_disconnect_does_not_lose_the_answer(app, http, url, auth):
    """A client that gives up waiting still finds its message answered when it retries."""
    timeout = aiohttp.ClientTimeout(total=0.001)
    with pytest.raises((TimeoutError, aiohttp.ClientError)):
        async with http.post(url("/v1/messages"), json={"conversation_id": "d", "text": "hi", "message_id": "x"},
                             headers=auth, timeout=timeout):
            pass
    status, data = await post(http, url, auth, conversation_id="d", text="hi", message_id="x")
    assert status == 200
    assert data["reply"]["faq_ids"] == ["greeting"]
    assert db_rows(app, "SELECT COUNT(*) FROM messages WHERE direction = 'out'") == [(1,)]


async def test_a_chosen_language_is_kept_for_the_whole_conversation(app, http, url, auth):
    status, data = await post(http, url, auth, conversation_id="lang", text="how long does shipping take?",
                              set_language="zh", message_id="1")
    assert status == 200
    assert (data["reply"]["language"], data["reply"]["faq_ids"]) == ("zh", ["shipping-time"])
    _, later = await post(http, url, auth, conversation_id="lang", text="Which payment methods do you accept?",
                          message_id="2")
    assert later["reply"]["language"] == "zh"
    meta = db_rows(app, "SELECT meta FROM messages WHERE id = ?", (later["reply"]["message_id"],))[0][0]
    assert json.loads(meta)["language"]["reason"] == "chosen by the shopper"
    _, switched = await post(http, url, auth, conversation_id="lang", text="运费多少钱？", set_language="en",
                             message_id="3")
    assert switched["reply"]["language"] == "en"


async def test_a_language_the_shop_does_not_serve_cannot_be_chosen(app, http, url, auth):
    status, data = await post(http, url, auth, conversation_id="fr", text="bonjour", set_language="fr")
    assert status == 400
    assert (data["error"], data["field"]) == ("invalid_field", "set_language")
    assert db_rows(app, "SELECT COUNT(*) FROM messages") == [(0,)]
