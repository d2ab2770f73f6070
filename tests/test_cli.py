"""The `kefu` command as a merchant runs it: real processes, real files, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, TOKEN, write_config

from bot.app import KefuApp
from bot.config import load_config
from bot.messages import HandoffState

KEFU = [sys.executable, "-m", "bot.cli"]
SAMPLE_CONFIG = REPO / "examples" / "sample-shop" / "kefu.toml"


def kefu(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*KEFU, *args], input=stdin, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_help_explains_the_commands():
    installed = Path(sys.executable).parent / "kefu"  # the console script pip installed
    result = subprocess.run([str(installed), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("serve", "chat", "faq"):
        assert command in result.stdout


def test_faq_check_summarizes_the_sample_shop(config_path):
    result = kefu("faq", "check", "--config", str(config_path))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^3\d FAQ entries in 10 file\(s\)", result.stdout, re.M)
    assert "zh: " in result.stdout and "OK" in result.stdout
    # The calibration quiz: the FAQ's phrasings asked of an index trained without them.
    quiz = re.search(r"^calibration: (\d+) question phrasings asked .* came first for (\d+)%", result.stdout, re.M)
    assert quiz and int(quiz.group(1)) > 100 and 40 <= int(quiz.group(2)) <= 100, result.stdout
    answered = re.search(r"at answer_threshold 0\.50: (\d+)% answered, (\d+)% of those right", result.stdout)
    assert answered and int(answered.group(2)) >= 80, result.stdout


def test_faq_check_names_file_and_line_of_a_bad_entry(tmp_path):
    faq = tmp_path / "faq"
    faq.mkdir()
    (faq / "shop.yaml").write_text("- id: ok\n  question: Hi?\n  answer: Hello.\n- id: broken\n  question: Where?\n",
                                   encoding="utf-8")
    config = write_config(tmp_path).read_text(encoding="utf-8")
    config = re.sub(r'faq_dir = ".*"', 'faq_dir = "faq"', config).replace('top_topics = ["order-tracking", '
                                                                          '"shipping-time", "returns-policy"]', "")
    (tmp_path / "kefu.toml").write_text(config, encoding="utf-8")
    result = kefu("faq", "check", "-c", str(tmp_path / "kefu.toml"))
    assert result.returncode == 2
    assert f"{faq / 'shop.yaml'}:4: 'answer' is required" in result.stderr


def config_with_faq_dir(tmp_path: Path, faq_dir: str) -> Path:
    """The test config pointing at another FAQ folder (and without the sample shop's top topics)."""
    config = write_config(tmp_path).read_text(encoding="utf-8")
    config = re.sub(r'faq_dir = ".*"', f'faq_dir = "{faq_dir}"', config).replace(
        'top_topics = ["order-tracking", "shipping-time", "returns-policy"]', "")
    (tmp_path / "kefu.toml").write_text(config, encoding="utf-8")
    return tmp_path / "kefu.toml"


BROKEN_FAQ = {
    "a.yaml": "- id: ok\n  question: Hi?\n  answer: Hello.\n- id: listless\n  question: Where?\n"
              "  alternatives: a, b\n  answer: Here.\n- id: broken\n  question: When?\n",
    "b.md": "## Do you gift wrap?\n\n",
    "c.csv": "question,answer,lang\nHow much?,5 EUR.,zh-CN\n",
}


def write_broken_faq(tmp_path: Path) -> Path:
    faq = tmp_path / "faq"
    faq.mkdir()
    for name, text in BROKEN_FAQ.items():
        (faq / name).write_text(text, encoding="utf-8")
    return faq


def test_faq_check_reports_every_problem_of_every_file_in_one_run(tmp_path):
    faq = write_broken_faq(tmp_path)
    result = kefu("faq", "check", "-c", str(config_with_faq_dir(tmp_path, "faq")))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"kefu: error: 4 problems in 3 FAQ file(s) under {faq}:",
        f"  {faq / 'a.yaml'}:6: 'alternatives' must be a list, not the text 'a, b': write each phrasing on its own "
        "line starting with '- ' under 'alternatives:', or alternatives: [a, b]",
        f"  {faq / 'a.yaml'}:8: 'answer' is required",
        f"  {faq / 'b.md'}:1: question 'Do you gift wrap?' has no answer below it",
        f"  {faq / 'c.csv'}:2: language 'zh-CN' of 'how-much' is not an ISO 639-1 code such as 'en' or 'zh'; "
        "write 'zh'",
    ]
    assert result.stdout == ""


def test_faq_check_names_the_config_line_of_a_missing_faq_dir(tmp_path):
    path = config_with_faq_dir(tmp_path, "no-such-folder")
    line = path.read_text(encoding="utf-8").splitlines().index('faq_dir = "no-such-folder"') + 1
    result = kefu("faq", "check", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"kefu: error: {path}:{line}: key 'knowledge.faq_dir': the FAQ folder "
                                     f"{tmp_path / 'no-such-folder'} does not exist; create it or point faq_dir at "
                                     "your FAQ files")


def test_serve_refuses_to_start_with_the_whole_list_of_faq_problems(tmp_path):
    faq = write_broken_faq(tmp_path)
    result = kefu("serve", "-c", str(config_with_faq_dir(tmp_path, "faq")))
    assert result.returncode == 2
    assert f"kefu: error: 4 problems in 3 FAQ file(s) under {faq}:" in result.stderr
    for where in ("a.yaml:6: 'alternatives' must be a list", "a.yaml:8: 'answer' is required", "b.md:1: question",
                  "c.csv:2: language 'zh-CN'"):
        assert f"  {faq}/{where}" in result.stderr
    assert "answering at" not in result.stderr


def test_config_error_names_file_line_and_key(tmp_path):
    path = write_config(tmp_path, "[language]\nmin_confidence = 7\n")
    result = kefu("faq", "check", "-c", str(path))
    assert result.returncode == 2
    line = path.read_text().splitlines().index("min_confidence = 7") + 1
    assert f"{path}:{line}: key 'language.min_confidence': 7.0 is out of range" in result.stderr


def test_faq_ask_json_ranks_and_explains(config_path):
    result = kefu("faq", "ask", "-c", str(config_path), "--json", "运费多少钱？")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["language"]["language"] == "zh"
    assert data["decision"]["kind"] == "answer"
    assert data["hits"][0]["faq_id"] == "shipping-cost"
    assert data["hits"][0]["score"] > data["hits"][1]["score"]
    assert "运费" in data["hits"][0]["why"]
    assert re.fullmatch(re.escape(str(REPO / "examples/sample-shop/faq/shipping.yaml")) + r":\d+",
                        data["hits"][0]["source"])


def test_faq_ask_table_shows_scores_and_why(config_path):
    result = kefu("faq", "ask", "-c", str(config_path), "how long does shipping take?")
    assert result.returncode == 0, result.stderr
    first = re.search(r"^1\. (\S+)\s+score (\d\.\d\d)", result.stdout, re.M)
    assert first and first.group(1) == "shipping-time" and float(first.group(2)) >= 0.6
    assert "keyword match on" in result.stdout


def test_chat_answers_in_the_terminal_and_picks_suggestions_by_number(config_path):
    result = kefu("chat", "-c", str(config_path), "--user", "ana", stdin="refund\n1\n运费多少钱？\n/quit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Did you mean one of these?" in out
    assert "faq refund-status" in out  # suggestion 1 was asked and answered
    assert "4.95 欧元" in out
    assert "faq shipping-cost" in out


def test_chat_continues_a_stored_conversation(config_path):
    kefu("chat", "-c", str(config_path), "--user", "bo", stdin="运费多少钱？\n")
    result = kefu("chat", "-c", str(config_path), "--user", "bo", stdin="ok\n")
    # "ok" alone is too short to detect; the conversation's language (zh) is kept.
    assert "· zh]" in result.stdout


def read_until(stream, pattern: str, timeout: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"'{pattern}' not printed; got:\n{''.join(seen)}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_over_http_and_stops_cleanly_on_signal(config_path, signum):
    process = subprocess.Popen([*KEFU, "serve", "-c", str(config_path)], cwd=REPO, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = read_until(process.stderr, r"answering at (http://\S+)").group(1)
        request = urllib.request.Request(
            url + "/v1/messages",
            data=json.dumps({"conversation_id": "cli", "text": "how long does shipping take?"}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.load(response)["reply"]
        assert reply["faq_ids"] == ["shipping-time"]
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
        read_until(process.stderr, r"app\.stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sample_shop_config_is_valid():
    result = kefu("faq", "check", "-c", str(SAMPLE_CONFIG))
    assert result.returncode == 0, result.stderr


def test_chat_lang_command_chooses_the_reply_language(config_path):
    result = kefu("chat", "-c", str(config_path), "--user", "lang", stdin="/lang zh\nhow long does shipping take?\n")
    assert result.returncode == 0, result.stderr
    assert "bot> 好的，从现在起我会用中文回复您。" in result.stdout  # the core answers /lang
    assert "faq shipping-time · confidence" in result.stdout and "· zh]" in result.stdout


def test_chat_quiet_shows_sources_when_the_merchant_enables_them(tmp_path):
    config_path = write_config(tmp_path, extra="[responder]\nshow_sources = true\n")
    result = kefu("chat", "-c", str(config_path), "--user", "src", "--quiet", stdin="how long does shipping take?\n")
    assert "source: shipping-time" in result.stdout
    assert "why:" not in result.stdout


def test_chat_hands_over_on_human_and_then_stays_quiet(tmp_path):
    config_path = write_config(tmp_path, handoff="enabled = true")
    result = kefu("chat", "-c", str(config_path), "--user", "hh", "--quiet", stdin="/human\nhello?\n")
    assert "A person will reply here shortly." in result.stdout
    assert "passed to a person: the conversation is waiting_agent" in result.stdout


def test_chat_after_a_handoff_says_a_person_answers_and_bot_goes_back_to_the_bot(tmp_path):
    config_path = write_config(tmp_path, handoff="enabled = true\nagent_wait_seconds = 3600")
    first = kefu("chat", "-c", str(config_path), "--user", "lea", stdin="/human\n")
    assert "A person will reply here shortly." in first.stdout
    later = kefu("chat", "-c", str(config_path), "--user", "lea", stdin="/bot\nhow long does shipping take?\n")
    assert later.returncode == 0, later.stderr
    assert "kefu: loading the FAQ in" in later.stderr  # not silent while it loads
    out = later.stdout
    # Said at start, before anything is typed: otherwise every later chat of this login seems dead.
    assert "This conversation ('lea') is waiting for a person from Test Shop's team" in out.split("you> ")[0]
    assert "Type /bot to go back to the bot" in out
    assert "bot> OK, you've left the queue for a person" in out
    assert "faq shipping-time" in out  # the bot answers again
    assert "A person will reply here shortly." not in out  # the first chat's replies are not shown twice


async def read_line(process, pattern: str, seen: list[str], timeout: float = 90) -> str:
    """The next line of the running `kefu chat` that matches (waiting for output, not for a fixed time)."""
    async def scan() -> str:
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"'{pattern}' not printed; got:\n{''.join(seen)}")
            seen.append(line)
            if re.search(pattern, line):
                return line
    try:
        return await asyncio.wait_for(scan(), timeout)
    except TimeoutError:
        raise AssertionError(f"'{pattern}' not printed in {timeout}s; got:\n{''.join(seen)}") from None


async def start_chat(config_path: Path, user: str):
    return await asyncio.create_subprocess_exec(
        *KEFU, "chat", "-c", str(config_path), "--user", user, "--quiet", cwd=REPO, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def say(process, text: str) -> None:
    process.stdin.write(f"{text}\n".encode())
    await process.stdin.drain()


async def test_an_agents_replies_reach_the_terminal_live_and_those_sent_while_it_was_closed_at_start(tmp_path):
    config_path = write_config(tmp_path, handoff="enabled = true\nagent_wait_seconds = 3600")
    config = load_config(config_path, environ={})
    seen: list[str] = []
    chat = await start_chat(config_path, "ana")
    try:
        await say(chat, "/human")
        await read_line(chat, r"A person will reply here shortly\.", seen)
        await say(chat, "/quit")
        assert await asyncio.wait_for(chat.wait(), 60) == 0

        # The agents work in another process (kefu serve's console or agent API); here, a second kefu on the same
        # database. The terminal is closed while the agent claims the conversation and writes.
        async with KefuApp(config, channels=[], serve_http=False) as agents:
            await agents.claim("console", "ana", "alice")
            await agents.agent_reply("console", "ana", "alice", "Hi Ana, your parcel left our warehouse today.")
            later: list[str] = []
            chat = await start_chat(config_path, "ana")
            await read_line(chat, r"This conversation \('ana'\) is with alice from Test Shop's team", later)
            await read_line(chat, r"bot> alice from the Test Shop team is here to help you\.", later)
            await read_line(chat, r"agent> Hi Ana, your parcel left our warehouse today\.", later)
            await agents.agent_reply("console", "ana", "alice", "Anything else I can do?")  # while it runs
            await read_line(chat, r"agent> Anything else I can do\?", later)
            await say(chat, "thanks, that's all")
            await read_line(chat, r"passed to a person", later)
            await say(chat, "/bot")
            await read_line(chat, r"bot> OK, you've left the queue for a person", later)
            await say(chat, "/quit")
            assert await asyncio.wait_for(chat.wait(), 60) == 0
            assert not any("A person will reply here shortly." in line for line in later)  # shown once, not again
            assert [summary.state for summary in await agents.handoffs((HandoffState.WAITING_AGENT,
                                                                        HandoffState.AGENT))] == []
        with sqlite3.connect(config.storage.database) as db:
            undelivered = db.execute("SELECT text, delivery FROM messages WHERE direction = 'out' "
                                     "AND delivery IS NOT 'sent'").fetchall()
        assert undelivered == []  # every reply the terminal printed is marked delivered: a restart shows none again
    finally:
        if chat.returncode is None:
            chat.kill()
            await chat.wait()
