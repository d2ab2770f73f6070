"""FAQ files edited under a running server are picked up within seconds, without dropping a request."""

from __future__ import annotations

import asyncio
import logging
import shutil

import aiohttp
import pytest
from conftest import SAMPLE_FAQ, SHARED_INDEX, TOKEN, write_config

from bot.app import KefuApp
from bot.config import load_config
from knowledge import service
from knowledge.index_folders import remove_if_unheld
from knowledge.service import KnowledgeBase

GIFT_WRAP = """
- id: gift-wrapping
  question: Do you offer gift wrapping?
  alternatives:
    - can you gift wrap my order
    - gift wrap available?
    - is gift packaging possible
  answer: Yes, gift wrapping costs EUR 3 per order; choose it at checkout.
"""


@pytest.fixture
async def live(tmp_path):
    faq = tmp_path / "faq"
    shutil.copytree(SAMPLE_FAQ, faq)
    path = write_config(tmp_path, "[search]\nreload_interval_seconds = 0.2\n")
    text = path.read_text(encoding="utf-8").replace(f'faq_dir = "{SAMPLE_FAQ.as_posix()}"', 'faq_dir = "faq"')
    path.write_text(text, encoding="utf-8")
    async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=True) as app:
        yield app, faq


async def ask(http: aiohttp.ClientSession, app: KefuApp, text: str, conversation: str) -> dict:
    async with http.post(app.http.base_url + "/v1/messages", json={"conversation_id": conversation, "text": text},
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        return (await response.json())["reply"]


async def wait_for_reload(app: KefuApp, count: int, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while app.knowledge.reloads < count:
        assert asyncio.get_running_loop().time() < deadline, "the FAQ was not reloaded in time"
        await asyncio.sleep(0.05)


async def test_a_new_faq_file_is_answered_without_restart_and_no_request_is_dropped(live):
    app, faq = live
    stop = asyncio.Event()
    statuses: list[int] = []

    async def keep_asking(http: aiohttp.ClientSession, n: int) -> None:
        while not stop.is_set():
            await ask(http, app, "how long does shipping take?", f"busy-{n}")
            statuses.append(200)

    async with aiohttp.ClientSession() as http:
        before = await ask(http, app, "Do you offer gift wrapping?", "gift")
        assert "gift-wrapping" not in before["faq_ids"]
        askers = [asyncio.create_task(keep_asking(http, n)) for n in range(4)]
        (faq / "extras.yaml").write_text(GIFT_WRAP, encoding="utf-8")
        await wait_for_reload(app, 1)
        stop.set()
        await asyncio.gather(*askers)  # any non-200 or error inside would raise here
        after = await ask(http, app, "Do you offer gift wrapping?", "gift")
    assert after["faq_ids"] == ["gift-wrapping"]
    assert after["kind"] == "answer"
    assert len(statuses) > 4


async def test_a_broken_file_keeps_the_old_faq_serving_and_logs_file_and_line(live, caplog):
    app, faq = live
    broken = faq / "broken.yaml"
    broken.write_text("- id: oops\n  question: Where?\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="knowledge.service"):
        deadline = asyncio.get_running_loop().time() + 30
        while not any("broken.yaml:1" in r.getMessage() for r in caplog.records):
            assert asyncio.get_running_loop().time() < deadline, "no error logged for the broken file"
            await asyncio.sleep(0.05)
    assert app.knowledge.reloads == 0
    async with aiohttp.ClientSession() as http:
        reply = await ask(http, app, "运费多少钱？", "still-ok")
        assert reply["faq_ids"] == ["shipping-cost"]
        broken.write_text(GIFT_WRAP, encoding="utf-8")  # the merchant fixes the file
        await wait_for_reload(app, 1)
        assert (await ask(http, app, "can you gift wrap my order", "fixed"))["faq_ids"] == ["gift-wrapping"]


async def test_a_removed_entry_is_no_longer_answered(live):
    app, faq = live
    (faq / "extras.yaml").write_text(GIFT_WRAP, encoding="utf-8")
    await wait_for_reload(app, 1)
    (faq / "extras.yaml").unlink()
    await wait_for_reload(app, 2)
    assert "gift-wrapping" not in app.knowledge.current.faq.by_id
    async with aiohttp.ClientSession() as http:
        reply = await ask(http, app, "Do you offer gift wrapping?", "gone")
    assert "gift-wrapping" not in reply["faq_ids"]


# -- the old index's folder after a reload (keyword-only, own index_dir) ------------------


@pytest.fixture
def knowledge(tmp_path, monkeypatch) -> tuple[KnowledgeBase, object]:
    monkeypatch.setattr(service, "OLD_INDEX_GRACE_SECONDS", 0.05)
    faq = tmp_path / "faq"
    shutil.copytree(SAMPLE_FAQ, faq)
    path = write_config(tmp_path, "[search]\nencoders = []\nreload_interval_seconds = 0\n")
    text = path.read_text(encoding="utf-8")
    text = text.replace(f'faq_dir = "{SAMPLE_FAQ.as_posix()}"', 'faq_dir = "faq"')
    text = text.replace(f'index_dir = "{SHARED_INDEX.as_posix()}"', 'index_dir = "index"')
    path.write_text(text, encoding="utf-8")
    return KnowledgeBase(load_config(path, environ={})), faq


async def test_after_a_reload_the_old_index_folder_is_released_and_swept(knowledge):
    kb, faq = knowledge
    await kb.start()
    try:
        old = kb.current.keyword_directory
        (faq / "extras.yaml").write_text(GIFT_WRAP, encoding="utf-8")
        assert await kb.reload_if_changed() is True
        new = kb.current.keyword_directory
        assert new != old and old.is_dir()  # searches still running on it get the grace
        deadline = asyncio.get_running_loop().time() + 30
        while old.exists():
            assert asyncio.get_running_loop().time() < deadline, "the old index folder was never swept"
            await asyncio.sleep(0.02)
        assert sorted(p.name for p in new.parent.iterdir()) == [new.name]
        hits = await kb.current.search("can you gift wrap my order", mode="keyword")
        assert hits[0].entry.id == "gift-wrapping"
    finally:
        await kb.stop()


async def test_stopping_during_the_grace_still_releases_the_old_index(knowledge, monkeypatch):
    kb, faq = knowledge
    monkeypatch.setattr(service, "OLD_INDEX_GRACE_SECONDS", 60.0)
    await kb.start()
    old = kb.current.keyword_directory
    (faq / "extras.yaml").write_text(GIFT_WRAP, encoding="utf-8")
    assert await kb.reload_if_changed() is True
    new = kb.current.keyword_directory
    assert remove_if_unheld(old) is False  # held for the grace
    await kb.stop()
    assert remove_if_unheld(old) is True
    assert remove_if_unheld(new) is True
