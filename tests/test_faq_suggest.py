"""More phrasings for an FAQ: `extends` items in FAQ files, and `kefu faq suggest` against a real HTTP model server."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from conftest import REPO, write_config
from fake_llm import FakeModelServer, serving

from bot.errors import FaqError
from bot.faq_suggest import parse_phrasings
from knowledge.faq import load_faq_dir

SAMPLE_FAQ = REPO / "examples" / "sample-shop" / "faq"

FAQ = """\
- id: shipping-time
  question: How long does shipping take?
  answer: Standard delivery takes 3-5 business days.
- id: payment-methods
  question: How can I pay?
  answer: We accept cards and PayPal.
"""


def faq_folder(tmp_path: Path, extension: str) -> Path:
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "faq.yaml").write_text(FAQ, encoding="utf-8")
    (folder / "more.yaml").write_text(extension, encoding="utf-8")
    return folder


def test_parse_phrasings_strips_list_marks_and_quotes():
    text = '1. wie lange dauert der versand\n- "wann kommt mein paket"\n\n2) Versanddauer?\n• 「送货要多久」\n（3）几天到'
    assert parse_phrasings(text) == ["wie lange dauert der versand", "wann kommt mein paket", "Versanddauer?",
                                     "送货要多久", "几天到"]


def test_reviewed_phrasings_extend_their_entry_and_unreviewed_ones_wait(tmp_path):
    folder = faq_folder(tmp_path, """\
- extends: shipping-time
  lang: de
  reviewed: true
  alternatives: [wie lange dauert der versand, Wie lange dauert der Versand, wann kommt mein paket]
- extends: payment-methods
  reviewed: false
  alternatives: [do you take paypal, can i pay by card]
- extends: shipping-time
  alternatives: ["how long does shipping take?", delivery time]
  reviewed: true
""")
    faq = load_faq_dir(folder, default_language="en", languages=["en"])
    shipping = faq.by_id["shipping-time"]
    # German needs no answer of its own, copies (any case) are dropped, the entry's own texts stay as written.
    assert shipping.more_questions == (("de", "wie lange dauert der versand"), ("de", "wann kommt mein paket"),
                                       ("en", "delivery time"))
    assert shipping.variants["en"].questions == ("How long does shipping take?",)
    assert faq.by_id["payment-methods"].more_questions == ()
    assert faq.unreviewed == 2


def test_extends_mistakes_are_named_with_file_and_line(tmp_path):
    folder = faq_folder(tmp_path, """\
- extends: shiping-time
  reviewed: true
  alternatives: [delivery time]
- extends: payment-methods
  reviewed: maybe
  alternatives: [paypal please]
- extends: payment-methods
  answer: Cards.
  alternatives: paypal, cards
""")
    with pytest.raises(FaqError) as caught:
        load_faq_dir(folder, default_language="en", languages=["en"])
    text = str(caught.value)
    more = folder / "more.yaml"
    assert f"{more}:1: 'extends: shiping-time' names no FAQ entry (did you mean 'shipping-time'?)" in text
    assert f"{more}:5: 'reviewed' must be true or false, got 'maybe'" in text
    assert f"{more}:8: unknown key 'answer' in an 'extends' item" in text
    assert f"{more}:9: 'alternatives' must be a list" in text


# -- `kefu faq suggest` end to end ----------------------------------------------------------------

PROPOSALS = {
    "German": "1. wie lange dauert der versand nach deutschland\n2. wann kommt mein paket an\n"
              "3. how long is shipping to germany\n4. wie kann ich bezahlen? nehmt ihr paypal und karte",
    "English": "- when will my parcel arrive\n- how quick is your delivery\n- How long does shipping take?\n"
               "- Standard delivery then takes 3-5 business days to the EU and UK\n- parcel coming when??",
}


def answer_by_language(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    language = re.search(r"chat messages in (\w+)", prompt).group(1)
    return PROPOSALS[language]


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    async with serving(FakeModelServer(answer=answer_by_language)) as server:
        yield server


async def kefu(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", *args, cwd=REPO,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    return process.returncode, out.decode(), err.decode()


async def test_suggest_writes_reviewable_phrasings_that_count_only_once_reviewed(tmp_path, model_server):
    faq = tmp_path / "faq"
    shutil.copytree(SAMPLE_FAQ, faq)
    config = write_config(tmp_path, extra=f"""
[responder.openai]
base_url = "{model_server.base_url}"
model = "fake-model"
""")
    text = re.sub(r'faq_dir = ".*"', 'faq_dir = "faq"', config.read_text(encoding="utf-8"))
    config.write_text(text.replace('languages = ["en", "zh"]', 'languages = ["en", "zh", "de"]'), encoding="utf-8")
    output = tmp_path / "proposals.yaml"
    code, out, err = await kefu("faq", "suggest", "-c", str(config), "--responder", "openai", "--only",
                                "shipping-time", "--languages", "de,en", "--count", "3", "-o", str(output))
    assert code == 0, err
    assert f"-> {output}" in out and "nothing is used" in out
    # One request per language, each with the entry's question and what to write.
    prompts = [r["body"]["messages"][-1]["content"] for r in model_server.requests]
    assert len(prompts) == 2 and all("FAQ question: How long does shipping take?" in p for p in prompts)
    written = output.read_text(encoding="utf-8")
    items = yaml.safe_load(written)
    assert items == [
        {"extends": "shipping-time", "lang": "de", "reviewed": False,
         "alternatives": ["wie lange dauert der versand nach deutschland", "wann kommt mein paket an"]},
        {"extends": "shipping-time", "lang": "en", "reviewed": False,
         "alternatives": ["how quick is your delivery", "parcel coming when??"]},
    ]
    # What kefu dropped is in the file, with why, for the merchant to see.
    assert "dropped: how long is shipping to germany (written in en, not de)" in written
    assert re.search(r"dropped: wie kann ich bezahlen\? nehmt ihr paypal und karte "
                     r"\(FAQ 'payment-methods' already answers it \(confidence \d\.\d\d\)\)", written)
    assert "dropped: How long does shipping take? (already a phrasing of this entry, or proposed twice)" in written
    assert "dropped: when will my parcel arrive (nearly the same as \u201cwhen will my order arrive\u201d)" in written
    assert ("dropped: Standard delivery then takes 3-5 business days to the EU and UK "
            "(restates the answer instead of asking)") in written

    shutil.copy(output, faq / "proposals.yaml")
    code, out, err = await kefu("faq", "check", "-c", str(config))
    assert code == 0, err
    assert "4 suggested phrasings await review ('reviewed: false'): not used yet" in out
    (faq / "proposals.yaml").write_text(written.replace("reviewed: false", "reviewed: true"), encoding="utf-8")
    code, out, err = await kefu("faq", "check", "-c", str(config))
    assert code == 0, err
    assert "and 4 reviewed ones from 'extends' items" in out and "await review" not in out
    # Search learns from them: the closest phrasing is the reviewed German one.
    code, out, err = await kefu("faq", "ask", "-c", str(config), "wann kommt mein paket an", "--limit", "1")
    assert code == 0, err
    assert re.search(r"^1\. shipping-time ", out, re.M), out
    assert "closest de phrasing \u201cwann kommt mein paket an\u201d (similarity 1.00)" in out


async def test_suggest_without_a_model_says_how_to_give_one(tmp_path):
    code, out, err = await kefu("faq", "suggest", "-c", str(write_config(tmp_path)))
    assert code == 2
    assert "kefu faq suggest needs a language model: give --responder and --model" in err
