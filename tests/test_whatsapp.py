"""The WhatsApp channel over real HTTP, against a fake Cloud API (tests/fake_whatsapp.py) on 127.0.0.1.

Meta's side is the fake: it posts signed webhook notifications to kefu's endpoint and takes kefu's
sends on its Graph endpoint, checking them as Meta does (button and list limits, templates, the
24-hour window), so an adapter bug shows as Graph's own error.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from conftest import queue_reply, wait_for, write_config
from fake_whatsapp import FakeWhatsApp, button_reply, media_message, status, text_message

from adapters.whatsapp.graph import GraphClient, GraphSettings, choices_message
from bot.app import KefuApp
from bot.config import load_config
from bot.errors import ConfigError, DeliveryError

AGENT_TOKEN = "agent-token-abcdef0123456789"
SHOPPER = "16505551234"


def whatsapp_toml(wa: FakeWhatsApp, extra: str = "") -> str:
    return f"""
[whatsapp]
enabled = true
phone_number_id = "{wa.phone_number_id}"
api_base_url = "{wa.url}"
api_version = "{wa.api_version}"
verify_token = "verify-me-0123456789"
backoff_seconds = 0.05
{extra}
"""


def environ(wa: FakeWhatsApp) -> dict[str, str]:
    return {"KEFU_WHATSAPP_TOKEN": wa.token, "KEFU_WHATSAPP_APP_SECRET": wa.app_secret}


@pytest.fixture
async def wa() -> AsyncIterator[FakeWhatsApp]:
    async with FakeWhatsApp() as server:
        yield server


async def running(tmp_path, wa: FakeWhatsApp, extra: str = "", handoff: str = "enabled = false"):  # noqa: ANN201
    path = write_config(tmp_path, whatsapp_toml(wa, extra), handoff=handoff,
                        webhook=f'agent_token = "{AGENT_TOKEN}"')
    app = KefuApp(load_config(path, environ=environ(wa)), channels=["webhook", "whatsapp"], serve_http=True)
    await app.start()
    wa.webhook_url = f"{app.http.base_url}/whatsapp/webhook"
    return app


@pytest.fixture
async def shop(tmp_path, wa) -> AsyncIterator[KefuApp]:
    app = await running(tmp_path, wa)
    yield app
    await app.stop()


def rows(app: KefuApp, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(app.config.storage.database) as db:
        return db.execute(sql, params).fetchall()


def bodies(sent: list[dict]) -> list[str]:
    return [m["text"]["body"] if m["type"] == "text" else m["interactive"]["body"]["text"] if
            m["type"] == "interactive" else m["template"]["components"][0]["parameters"][0]["text"] for m in sent]


async def agent(app: KefuApp, method: str, path: str, **body: object) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{app.http.base_url}/v1/agent{path}", json=body or None,
                                headers={"Authorization": f"Bearer {AGENT_TOKEN}"}) as response:
            return response.status, await response.json()


# -- the webhook ----------------------------------------------------------------------------------------


async def test_meta_verifies_the_webhook_with_the_verify_token(shop, wa):
    assert await wa.verify(wa.webhook_url, token="verify-me-0123456789", challenge="1158201444") == (200, "1158201444")
    status, body = await wa.verify(wa.webhook_url, token="someone-else")
    assert status == 403 and "verify_token" in body


async def test_a_bad_or_missing_signature_is_401_and_nothing_is_stored(shop, wa):
    payload = wa.envelope(messages=[text_message(SHOPPER, "where is my order?")])
    for signature in ("bad", None):
        status, body = await wa.notify(wa.webhook_url, payload, signature=signature)
        assert status == 401 and "X-Hub-Signature-256" in body
    assert rows(shop, "SELECT COUNT(*) FROM messages") == [(0,)]
    assert wa.sent == []


async def test_a_message_is_answered_and_a_redelivery_only_once(shop, wa):
    payload = wa.envelope(messages=[text_message(SHOPPER, "how long does shipping take?")])
    assert (await wa.notify(wa.webhook_url, payload))[0] == 200  # 200 only once stored
    assert rows(shop, "SELECT direction, text FROM messages WHERE direction = 'in'") == [
        ("in", "how long does shipping take?")]
    [reply] = await wa.wait_for_sent(1)
    assert reply["to"] == f"+{SHOPPER}" and reply["type"] == "text" and "business days" in reply["text"]["body"]
    assert wa.read_marks and wa.read_marks[0]["typing_indicator"] == {"type": "text"}  # read, "typing…"
    assert (await wa.notify(wa.webhook_url, payload))[0] == 200  # Meta sends it again
    await asyncio.sleep(0.5)
    assert len(wa.sent) == 1 and rows(shop, "SELECT COUNT(*) FROM messages WHERE direction = 'in'") == [(1,)]


async def test_a_batch_over_kefus_own_body_limit_is_taken_whole(shop, wa):
    """Meta batches up to 1000 updates (3 MB) in one POST; the shop API's 64 KB limit must not refuse it."""
    messages = [text_message(f"49151{n:08d}", "how long does shipping take? " + "x" * 400) for n in range(200)]
    status, _ = await wa.notify(wa.webhook_url, wa.envelope(messages=messages))
    assert status == 200
    assert rows(shop, "SELECT COUNT(*) FROM messages WHERE direction = 'in'") == [(200,)]


async def test_one_shoppers_broken_emoji_does_not_refuse_everyone_elses_messages_in_the_batch(shop, wa):
    """A lone surrogate ("\\ud83d", half an emoji) is valid JSON but no text: refusing the POST refused the
    whole batch, at every one of Meta's retries. It is stored as U+FFFD and the batch taken."""
    messages = [text_message("4915100000901", "how long does shipping take? \ud83d"),
                text_message("4915100000902", "what payment methods do you accept?")]
    status, _ = await wa.notify(wa.webhook_url, wa.envelope(messages=messages))
    assert status == 200
    assert sorted(rows(shop, "SELECT text FROM messages WHERE direction = 'in'")) == [
        ("how long does shipping take? \ufffd",), ("what payment methods do you accept?",)]
    await wa.wait_for_sent(2)


async def test_a_long_reply_cut_off_by_a_restart_sends_only_the_parts_that_did_not_go(tmp_path, wa):
    """Part 1 of 3 went, then the Graph API failed and kefu stopped: the next start must not send part 1 again."""
    text = "\n\n".join(f"Part {n}. " + "x" * 3000 for n in range(3))
    reply_id = await queue_reply(tmp_path / "data" / "kefu.db", "whatsapp", SHOPPER, text)
    wa.open_window(SHOPPER)
    wa.fail(10**6, after=1)
    app = await running(tmp_path, wa)
    try:
        await wait_for(lambda: rows(app, "SELECT delivery_parts FROM messages WHERE id = ?", reply_id) == [(1,)], 20)
    finally:
        await app.stop()
    wa.stop_failing()
    app = await running(tmp_path, wa)
    try:
        await wa.wait_for_sent(3)
        await wait_for(lambda: rows(app, "SELECT delivery FROM messages WHERE id = ?", reply_id) == [("sent",)], 20)
    finally:
        await app.stop()
    assert [body[:6] for body in bodies(wa.messages_to(SHOPPER))] == ["Part 0", "Part 1", "Part 2"]


async def test_twenty_chats_are_each_answered_in_order(shop, wa):
    questions = ["how long does shipping take?", "what payment methods do you accept?", "how do I return an item?"]
    chats = [f"4915100000{n:03d}" for n in range(20)]

    async def chat(wa_id: str) -> None:
        for question in questions:  # one after another, as a shopper types
            assert (await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(wa_id, question)])))[0] == 200

    await asyncio.gather(*(chat(wa_id) for wa_id in chats))
    await wa.wait_for_sent(60, timeout=60)
    for wa_id in chats:
        stored = [text for (text,) in rows(shop, "SELECT text FROM messages WHERE direction = 'out' AND "
                                                 "conversation_key = ? ORDER BY id", f"whatsapp:{wa_id}")]
        assert bodies(wa.messages_to(f"+{wa_id}")) == stored and len(stored) == 3  # sent as stored, in order
        assert "business days" in stored[0] and "return" in stored[2].lower()


async def test_suggestions_are_reply_buttons_and_a_tap_asks_the_whole_question(shop, wa):
    await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "/start")]))
    [welcome] = await wa.wait_for_sent(1)
    assert welcome["type"] == "interactive" and welcome["interactive"]["type"] == "button"
    buttons = [b["reply"] for b in welcome["interactive"]["action"]["buttons"]]
    assert 1 <= len(buttons) <= 3 and all(len(b["title"]) <= 20 for b in buttons)
    tapped = buttons[0]
    await wa.notify(wa.webhook_url, wa.envelope(messages=[button_reply(SHOPPER, tapped["id"], tapped["title"],
                                                                      context_id=welcome["id"])]))
    await wa.wait_for_sent(2)
    asked = rows(shop, "SELECT text FROM messages WHERE direction = 'in' ORDER BY id")[-1][0]
    assert asked == tapped["id"] and len(asked) >= len(tapped["title"])  # the question, not its cut title


async def test_more_than_three_suggestions_are_a_list_meta_accepts(wa):
    questions = tuple(f"Question number {n} about a rather long topic name" for n in range(1, 6))
    client = GraphClient(GraphSettings(wa.url, wa.api_version, wa.phone_number_id, wa.token))
    wa.open_window(SHOPPER)
    try:
        await client.send(choices_message(f"+{SHOPPER}", "Did you mean one of these?", questions, "Choose a topic"))
    finally:
        await client.close()
    [sent] = wa.sent
    rows_sent = sent["interactive"]["action"]["sections"][0]["rows"]
    assert sent["interactive"]["type"] == "list" and [r["id"] for r in rows_sent] == list(questions)


async def test_a_photo_is_stored_and_answered_politely(shop, wa):
    await wa.notify(wa.webhook_url, wa.envelope(messages=[media_message(SHOPPER, "image")]))
    [reply] = await wa.wait_for_sent(1)
    assert rows(shop, "SELECT media FROM messages WHERE direction = 'in'") == [("photo",)]
    assert "text" in reply["text"]["body"].lower()  # "I can only read text messages…"


async def test_receipts_are_recorded_on_the_reply_and_never_go_back(shop, wa):
    await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "how long does shipping take?")]))
    [reply] = await wa.wait_for_sent(1)
    await wait_for(lambda: rows(shop, "SELECT 1 FROM messages WHERE channel_message_id = ?", reply["id"]), 10)
    await wa.send_statuses(reply["id"], "sent", "read")
    await wa.notify(wa.webhook_url, wa.envelope(statuses=[status(reply["id"], "delivered", SHOPPER)]))  # late
    assert rows(shop, "SELECT receipt FROM messages WHERE channel_message_id = ?", reply["id"]) == [("read",)]
    async with aiohttp.ClientSession() as http:  # the transcript shows it
        async with http.get(f"{shop.http.base_url}/v1/agent/conversations/whatsapp/{SHOPPER}",
                            headers={"Authorization": f"Bearer {AGENT_TOKEN}"}) as response:
            view = await response.json()
    assert view["messages"][-1]["status"] == "read"


# -- sending: errors and the 24-hour window --------------------------------------------------------------


async def test_a_rate_limit_is_waited_out_and_the_reply_delivered(shop, wa):
    wa.rate_limit(1, code=130429)
    await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "how long does shipping take?")]))
    [reply] = await wa.wait_for_sent(1, timeout=20)
    assert "business days" in reply["text"]["body"]


async def test_an_error_retrying_cannot_fix_is_given_up_at_once(shop, wa):
    wa.fail(5, code=131009, http_status=400, details="Parameter value is not valid")
    await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "how long does shipping take?")]))
    await wait_for(lambda: rows(shop, "SELECT 1 FROM messages WHERE direction = 'out' AND delivery = 'failed'"), 20)
    [(delivery, attempts, error)] = rows(shop, "SELECT delivery, delivery_attempts, delivery_error FROM messages "
                                               "WHERE direction = 'out'")
    assert (delivery, attempts) == ("failed", 1) and "131009" in error


async def shopper_wrote_long_ago(app: KefuApp, hours: float = 25) -> None:
    then = (datetime.now(timezone.utc) - timedelta(hours=hours)).isoformat()
    with sqlite3.connect(app.config.storage.database) as db:
        db.execute("UPDATE messages SET created_at = ? WHERE direction = 'in'", [then])


async def handed_over(app: KefuApp, wa: FakeWhatsApp) -> None:
    """The shopper asks for a person, who claims the conversation; the two notices are sent."""
    await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "I want to talk to a human")]))
    await wa.wait_for_sent(1)
    status, _ = await agent(app, "POST", f"/conversations/whatsapp/{SHOPPER}/claim", agent="alice")
    assert status == 200
    await wa.wait_for_sent(2)  # and "alice joined the conversation"


async def test_an_agent_answering_after_24_hours_goes_out_as_the_approved_template(tmp_path, wa):
    wa.templates["agent_reply"] = {"en": 1}
    app = await running(tmp_path, wa, 'template_name = "agent_reply"', handoff="enabled = true")
    try:
        await handed_over(app, wa)
        await shopper_wrote_long_ago(app)
        wa.last_inbound[SHOPPER] = 0.0  # Meta's count too
        status, _ = await agent(app, "POST", f"/conversations/whatsapp/{SHOPPER}/messages", agent="alice",
                                text="Sorry for the wait! Your refund went out today.")
        assert status == 200
        sent = await wa.wait_for_sent(3)
    finally:
        await app.stop()
    late = sent[-1]
    assert late["type"] == "template" and late["template"]["name"] == "agent_reply"
    assert late["template"]["components"][0]["parameters"][0]["text"] == "Sorry for the wait! Your refund went out today."


async def test_without_a_template_a_late_reply_is_held_and_sent_when_the_shopper_writes_again(tmp_path, wa):
    app = await running(tmp_path, wa, handoff="enabled = true")
    try:
        await handed_over(app, wa)
        await shopper_wrote_long_ago(app)
        wa.last_inbound[SHOPPER] = 0.0
        await agent(app, "POST", f"/conversations/whatsapp/{SHOPPER}/messages", agent="alice", text="Found it!")
        await wait_for(lambda: rows(app, "SELECT 1 FROM messages WHERE role = 'agent' AND delivery = 'held'"), 20)
        [(delivery, error)] = rows(app, "SELECT delivery, delivery_error FROM messages WHERE role = 'agent'")
        assert delivery == "held" and "24 hours" in error and len(wa.sent) == 2  # no error loop against Meta
        status, view = await agent(app, "GET", f"/conversations/whatsapp/{SHOPPER}")
        assert view["messages"][-1]["status"] == "held" and "24 hours" in view["messages"][-1]["error"]
        await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "hello? any news?")]))
        sent = await wa.wait_for_sent(3)
    finally:
        await app.stop()
    assert sent[2]["type"] == "text" and sent[2]["text"]["body"] == "Found it!"


async def test_when_meta_says_the_window_closed_the_template_goes_instead(tmp_path, wa):
    wa.templates["agent_reply"] = {"en": 1}
    app = await running(tmp_path, wa, 'template_name = "agent_reply"', handoff="enabled = true")
    try:
        await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "how long does shipping take?")]))
        [first] = await wa.wait_for_sent(1)
        wa.last_inbound[SHOPPER] = 0.0  # Meta counts otherwise than kefu (sync 131047)
        await agent(app, "POST", f"/conversations/whatsapp/{SHOPPER}/claim", agent="alice")
        await agent(app, "POST", f"/conversations/whatsapp/{SHOPPER}/messages", agent="alice", text="One more thing")
        sent = await wa.wait_for_sent(3)
        await wait_for(lambda: rows(app, "SELECT 1 FROM messages WHERE role = 'agent' AND delivery = 'sent'"), 10)
        delivered = rows(app, "SELECT delivery FROM messages WHERE role = 'agent'")
    finally:
        await app.stop()
    assert sent[-1]["type"] == "template" and delivered == [("sent",)]
    # the read mark, the answer; then "alice joined" and the reply: each refused once (131047), then the template
    assert [r.status for r in wa.requests if r.path.endswith("/messages")] == [200, 200, 400, 200, 400, 200]


# -- config ------------------------------------------------------------------------------------------------


def test_whatsapp_needs_its_two_secrets_and_the_number_id(tmp_path):
    path = write_config(tmp_path, '[whatsapp]\nenabled = true\nphone_number_id = "106540352242922"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={"KEFU_WHATSAPP_TOKEN": "t"})
    assert error.value.key == "whatsapp.app_secret_env" and "KEFU_WHATSAPP_APP_SECRET" in str(error.value)
    path = write_config(tmp_path, '[whatsapp]\nenabled = true\nphone_number_id = "+1 555 0100"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={"KEFU_WHATSAPP_TOKEN": "t", "KEFU_WHATSAPP_APP_SECRET": "s"})
    assert error.value.key == "whatsapp.phone_number_id"
    config = load_config(write_config(tmp_path, '[whatsapp]\nenabled = true\nphone_number_id = "106540352242922"\n'),
                         environ={"KEFU_WHATSAPP_TOKEN": "t", "KEFU_WHATSAPP_APP_SECRET": "s"})
    assert config.whatsapp.verify_token and config.whatsapp.verify_token == load_config(
        config.path, environ={"KEFU_WHATSAPP_TOKEN": "t", "KEFU_WHATSAPP_APP_SECRET": "s"}).whatsapp.verify_token


async def test_graph_errors_are_retried_or_given_up_by_their_code(wa):
    client = GraphClient(GraphSettings(wa.url, wa.api_version, wa.phone_number_id, "wrong-token"))
    try:
        with pytest.raises(DeliveryError) as refused:
            await client.send({"messaging_product": "whatsapp", "to": f"+{SHOPPER}", "type": "text",
                               "text": {"body": "hi"}})
    finally:
        await client.close()
    assert refused.value.permanent and "190" in str(refused.value)  # a bad token: retrying cannot help


async def test_a_reply_meta_refuses_later_for_the_window_is_held_until_the_shopper_writes(shop, wa):
    wa.window_errors = "async"  # a 200 with a wamid, then a failed status (131047), as Meta mostly does
    await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "how long does shipping take?")]))
    [first] = await wa.wait_for_sent(1)
    wa.last_inbound[SHOPPER] = 0.0
    await wait_for(lambda: rows(shop, "SELECT 1 FROM messages WHERE channel_message_id = ?", first["id"]), 10)
    await wa.send_statuses(first["id"], wa.status_for(first["id"], "failed", errors=[
        {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
         "error_data": {"details": "Message failed to send because more than 24 hours have passed"}}]))
    [(delivery, receipt, error)] = rows(shop, "SELECT delivery, receipt, receipt_error FROM messages "
                                              "WHERE direction = 'out'")
    assert (delivery, receipt) == ("held", "failed") and error.startswith("131047")
    await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "thanks!")]))
    sent = await wa.wait_for_sent(3)  # the held answer again, then the answer to "thanks!"
    assert bodies(sent)[1] == bodies(sent)[0]


async def test_a_forged_signature_with_odd_characters_is_401_not_a_server_error(shop, wa):
    raw = b'{"object": "whatsapp_business_account", "entry": []}'
    async with aiohttp.ClientSession() as http:
        async with http.post(wa.webhook_url, data=raw, headers={"Content-Type": "application/json",
                                                                "X-Hub-Signature-256": "sha256=\u00e9t\u00e9"}) as response:
            assert response.status == 401


async def test_a_late_refusal_for_the_window_goes_again_as_the_template_when_there_is_one(tmp_path, wa):
    wa.templates["agent_reply"] = {"en": 1}
    app = await running(tmp_path, wa, 'template_name = "agent_reply"')
    try:
        await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "how long does shipping take?")]))
        [first] = await wa.wait_for_sent(1)
        await wait_for(lambda: rows(app, "SELECT 1 FROM messages WHERE channel_message_id = ?", first["id"]), 10)
        await wa.send_statuses(first["id"], wa.status_for(first["id"], "failed", errors=[
            {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}]))
        sent = await wa.wait_for_sent(2)
    finally:
        await app.stop()
    assert sent[1]["type"] == "template"
    assert sent[1]["template"]["components"][0]["parameters"][0]["text"] == " ".join(bodies(sent[:1])[0].split())


async def test_an_outage_meta_reports_late_is_retried(shop, wa):
    await wa.notify(wa.webhook_url, wa.envelope(messages=[text_message(SHOPPER, "how long does shipping take?")]))
    [first] = await wa.wait_for_sent(1)
    await wait_for(lambda: rows(shop, "SELECT 1 FROM messages WHERE channel_message_id = ?", first["id"]), 10)
    await wa.send_statuses(first["id"], wa.status_for(first["id"], "failed", errors=[
        {"code": 131000, "title": "Something went wrong", "message": "Something went wrong"}]))
    sent = await wa.wait_for_sent(2)
    assert bodies(sent)[1] == bodies(sent)[0]
