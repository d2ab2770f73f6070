"""`kefu eval replay`: past shopper messages through the real pipeline, nothing sent, a report to read.

One replay of the sample shop (real FAQ, encoders, SQLite) is shared by the module's report tests;
the CSV reading tests need no app, and one test runs the command as a merchant would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from aiohttp import web
from conftest import REPO, loopback_server, write_config

from bot.config import load_config
from bot.replay.run import (
    Outcome,
    ReplayReport,
    concurrency_for,
    group_conversations,
    replay,
    replay_config,
    turn_language,
)
from bot.replay.reading import ReplayDataError, read_messages, sniff_delimiter
from bot.replay.report import choose_format, md, render, render_html, render_markdown

# (conversation, text, expected outcome or None when either "not sure" or "no match" is fair)
MESSAGES = [
    ("s1", "How long does shipping take?", Outcome.AUTOMATED),
    ("s2", "运费多少钱？", Outcome.AUTOMATED),
    ("s3", "How do I reset my password?", Outcome.AUTOMATED),
    ("s4", "What payment methods do you accept?", Outcome.AUTOMATED),
    ("s5", "支持哪些支付方式？", Outcome.AUTOMATED),
    ("s6", "Is there a discount code?", Outcome.AUTOMATED),
    ("s7", "Do you sell car tyres?", Outcome.NO_MATCH),
    ("s8", "Do you sell tyres for cars?", Outcome.NO_MATCH),
    ("s9", "What is the weather in Paris tomorrow?", Outcome.NO_MATCH),
    ("h1", "can I talk to a human please", Outcome.HANDOFF),
    ("h1", "where is my order?", Outcome.FORWARDED),  # after the handoff: the agents' now
    ("h2", "我要找人工客服", Outcome.HANDOFF),
    ("s10", "refund", Outcome.NOT_SURE),
    ("s11", "<script>alert(1)</script> hello", None),
    ("s12", "   ", None),  # empty text: skipped
    ("s13", "where is my order?", Outcome.AUTOMATED),
]
ANSWERED_FAQ = {2: "shipping-time", 3: "shipping-cost", 4: "password-reset", 5: "payment-methods",
                6: "payment-methods", 7: "discount-codes", 17: "order-tracking"}  # spreadsheet row → FAQ id


def write_messages(path: Path, *, delimiter: str = ";", bom: bool = True) -> Path:
    """The test shop's history as a merchant's export: a header, one message per row (row 2 is the first)."""
    lines = [f"conversation{delimiter}message"] + [f"{conversation}{delimiter}{text}"
                                                  for conversation, text, _ in MESSAGES]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def expected_outcomes() -> dict[int, Outcome | None]:
    return {row: outcome for row, (_, text, outcome) in enumerate(MESSAGES, start=2) if text.strip()}


# -- one replay shared by the report tests ------------------------------------------


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> tuple[ReplayReport, Path, list[str], set[Path]]:
    """Replay the semicolon/BOM export with handoff on and both outbound callbacks pointing at a recorder."""
    directory = tmp_path_factory.mktemp("replay")
    live_db = directory / "data" / "kefu.db"
    live_db.parent.mkdir()
    live_db.write_bytes(b"the shop's live database: must not be opened")
    csv_path = write_messages(directory / "history.csv")
    received: list[str] = []

    async def record(request: web.Request) -> web.Response:
        received.append(request.path)
        return web.json_response({})

    async def run() -> ReplayReport:
        async with loopback_server({"/notify": record, "/outgoing": record}) as base:
            config = load_config(write_config(directory, handoff="enabled = true", extra=f"""
[handoff.notify]
url = "{base}/notify"
secret = "notify-secret-0123456789"

[webhook.outgoing]
url = "{base}/outgoing"
secret = "outgoing-secret-0123456789"
"""), environ={})
            messages = read_messages(csv_path, conversation_col="conversation")
            report = await replay(config, messages, concurrency=4)
            await asyncio.sleep(0.5)  # a notification sent in the background would have arrived by now
            return report

    before = set(Path(tempfile.gettempdir()).glob("kefu-replay-*"))
    report = asyncio.run(run())
    left = set(Path(tempfile.gettempdir()).glob("kefu-replay-*")) - before
    return report, directory, received, left


def test_each_message_gets_the_outcome_the_pipeline_gives_it(replayed):
    report, *_ = replayed
    outcomes = {turn.row: turn.outcome for turn in report.turns}
    assert set(outcomes) == set(expected_outcomes())  # every non-empty row, the empty one skipped
    for row, expected in expected_outcomes().items():
        if expected is None:
            assert outcomes[row] in (Outcome.NOT_SURE, Outcome.NO_MATCH), row
        else:
            assert outcomes[row] == expected, (row, report.turns)
    assert report.empty_rows == 1
    assert report.conversations == 14


def test_shares_count_every_message_once(replayed):
    report, *_ = replayed
    outcomes = report.outcomes
    assert report.messages == 15 and sum(outcomes.values()) == 15
    assert outcomes["automated"] == 7
    assert outcomes["handoff"] == 2 and outcomes["forwarded"] == 1
    assert outcomes["not_sure"] + outcomes["no_match"] == 5
    assert outcomes["error"] == 0
    assert report.share(outcomes["automated"]) == pytest.approx(7 / 15)
    assert report.handoff_reasons == {"explicit_request": 2}


def test_languages_are_the_detected_ones(replayed):
    report, *_ = replayed
    zh = report.languages["zh"]
    assert zh["messages"] == 3 and zh["automated"] == 2 and zh["handoff"] == 1
    assert report.languages["en"]["no_match"] == 3
    assert sum(counts["messages"] for counts in report.languages.values()) == 15
    for language, counts in report.languages.items():
        assert counts["messages"] == sum(turn.language == language for turn in report.turns)


def test_the_language_is_the_detected_one_when_the_trace_has_it():
    assert turn_language({"language": {"language": "en", "detected": "de"}}, "en") == "de"
    assert turn_language({"language": {"language": "zh", "confidence": 0.9}}, "en") == "zh"
    assert turn_language({}, "en") == "en" and turn_language({}, None) == "unknown"


def test_unanswered_groups_put_paraphrases_together_and_leave_out_requests_for_a_person(replayed):
    report, *_ = replayed
    groups = report.groups
    assert groups.questions == 5  # the no-match and not-sure ones; "a human please" is not a missing FAQ entry
    assert groups[0].count == 2
    assert set(groups[0].examples) == {"Do you sell car tyres?", "Do you sell tyres for cars?"}
    texts = {example for group in groups for example in group.examples}
    assert "refund" in texts and "What is the weather in Paris tomorrow?" in texts
    assert not any("human" in text or "人工" in text for text in texts)


def test_least_confident_answers_are_the_automated_ones_lowest_first(replayed):
    report, *_ = replayed
    least = report.least_confident
    assert {turn.row: turn.faq_ids[0] for turn in least} == ANSWERED_FAQ
    confidences = [turn.confidence for turn in least]
    assert confidences == sorted(confidences) and all(0 < c <= 1 for c in confidences)
    assert all(turn.why.startswith("answered with FAQ") for turn in least)


def test_latency_is_measured_on_the_bots_replies(replayed):
    report, *_ = replayed
    p50, p95 = report.latency_ms
    assert p50 is not None and p95 is not None and 0 < p50 <= p95
    assert sum(turn.latency_ms is not None for turn in report.turns) == 14  # all but the forwarded one


def test_nothing_reaches_the_live_database_or_the_network(replayed):
    report, directory, received, left = replayed
    assert (directory / "data" / "kefu.db").read_bytes() == b"the shop's live database: must not be opened"
    assert sorted(p.name for p in (directory / "data").iterdir()) == ["kefu.db"]  # no -wal, no -shm
    assert received == []  # two handoffs, yet no helpdesk notification and no outgoing webhook
    assert left == set()  # the replay's own database is deleted


def test_replay_config_redirects_storage_and_turns_off_everything_outbound(tmp_path):
    config = load_config(write_config(tmp_path, handoff="enabled = true", extra="""
[handoff.notify]
url = "http://127.0.0.1:9/notify"
secret = "notify-secret-0123456789"
"""), environ={})
    shadow = replay_config(config, tmp_path / "shadow")
    assert shadow.storage.database == tmp_path / "shadow" / "replay.db"
    assert shadow.storage.index_dir == config.storage.index_dir
    assert shadow.handoff.notify is None and shadow.handoff.enabled
    assert not shadow.webhook.enabled and shadow.webhook.outgoing is None
    assert not shadow.telegram.enabled and not shadow.metrics.enabled
    assert shadow.responder == config.responder
    assert config.handoff.notify is not None  # the merchant's config itself is unchanged


def test_a_local_model_is_not_given_more_conversations_than_it_lets_wait(tmp_path):
    config = load_config(write_config(tmp_path), environ={})
    assert concurrency_for(config, 8) == 8  # extractive: no model queue
    local = dataclasses.replace(config, responder=dataclasses.replace(config.responder, backend="llama-cpp",
                                                                      max_waiting=2))
    assert concurrency_for(local, 8) == 3 and concurrency_for(local, 1) == 1


# -- the report ----------------------------------------------------------------------


def test_markdown_report_shows_shares_groups_and_least_confident(replayed):
    report, *_ = replayed
    text = render_markdown(report)
    assert "| automated (confident FAQ answer) | 7 | 46.7 % |" in text
    assert "| forwarded to agents (after a handoff) | 1 | 6.7 % |" in text
    assert "| 1 | 2 | Do you sell" in text
    assert "Nothing was sent to anyone" in text
    assert "| 17 | where is my order? | order-tracking |" in text
    assert "<script>" not in text and r"\<script\>" in text


def test_html_report_escapes_shopper_text_and_has_no_script(replayed):
    report, *_ = replayed
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hello" in page
    assert "运费多少钱？" in page


def test_json_report_has_shares_and_every_turn(replayed):
    report, *_ = replayed
    data = json.loads(render(report, "json"))
    assert data["outcomes"]["automated"] == 7 and data["shares"]["automated"] == pytest.approx(7 / 15, abs=1e-4)
    assert [turn["row"] for turn in data["turns"]] == sorted(expected_outcomes())
    assert data["unanswered_groups"]["clusters"][0]["count"] == 2


def test_markdown_cells_cannot_break_the_table_or_inject_html():
    assert md("a|b\nc <b>x</b> *y*") == r"a\|b c \<b\>x\</b\> \*y\*"


@pytest.mark.parametrize(("explicit", "output", "expected"), [
    (None, None, "markdown"), (None, Path("r.html"), "html"), (None, Path("r.JSON"), "json"),
    (None, Path("r.txt"), "markdown"), ("json", Path("r.html"), "json"),
])
def test_format_follows_the_option_then_the_suffix(explicit, output, expected):
    assert choose_format(explicit, output) == expected


# -- reading the CSV -------------------------------------------------------------------


def test_comma_semicolon_and_tab_exports_read_the_same(tmp_path):
    variants = [read_messages(write_messages(tmp_path / f"{name}.csv", delimiter=delimiter, bom=bom),
                              conversation_col="conversation")
                for name, delimiter, bom in (("comma", ",", False), ("semicolon", ";", True), ("tab", "\t", True))]
    assert [v.delimiter for v in variants] == [",", ";", "\t"]
    assert variants[0].rows == variants[1].rows == variants[2].rows
    first = variants[1].rows[0]
    assert (first.row, first.line, first.text, first.conversation) == (2, 2, "How long does shipping take?", "s1")
    assert variants[1].text_column == "message"  # found by name (after the BOM), no --text-col needed
    assert variants[1].empty_rows == 1 and len(variants[1].rows) == 15


def test_quoted_commas_and_line_breaks_stay_in_the_text(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('id,text\n1,"Hi, where is my order?"\n2,"line one\nline two"\n3,refund\n', encoding="utf-8")
    messages = read_messages(path)
    assert sniff_delimiter(path.read_text(encoding="utf-8")) == ","
    assert [r.text for r in messages.rows] == ["Hi, where is my order?", "line one\nline two", "refund"]
    assert [(r.row, r.line) for r in messages.rows] == [(2, 2), (3, 3), (4, 5)]


def test_text_column_by_number_and_the_only_column(tmp_path):
    two = tmp_path / "two.csv"
    two.write_text("who;what\nann;hello\n", encoding="utf-8")
    assert read_messages(two, text_col="2").rows[0].text == "hello"
    one = tmp_path / "one.csv"
    one.write_text("Kundennachricht\nWo ist mein Paket?\n", encoding="utf-8")
    assert read_messages(one).rows[0].text == "Wo ist mein Paket?"


def test_rows_without_a_conversation_are_conversations_of_their_own(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("conv,text\nA,one\n,two\nA,three\n,four\n", encoding="utf-8")
    grouped = group_conversations(read_messages(path, conversation_col="conv").rows)
    assert [[r.text for r in rows] for _, rows in grouped] == [["one", "three"], ["two"], ["four"]]


def test_limit_keeps_the_first_messages(tmp_path):
    messages = read_messages(write_messages(tmp_path / "m.csv"), conversation_col="conversation", limit=3)
    assert [r.row for r in messages.rows] == [2, 3, 4] and messages.limited


def test_a_missing_column_is_named_with_the_file_and_the_columns(tmp_path):
    path = write_messages(tmp_path / "m.csv")
    with pytest.raises(ReplayDataError) as error:
        read_messages(path, text_col="question")
    assert str(error.value) == f"{path}:1: no column 'question' (--text-col); columns: 'conversation', 'message'"
    with pytest.raises(ReplayDataError, match=r"no column 'thread' \(--conversation-col\)"):
        read_messages(path, conversation_col="thread")
    with pytest.raises(ReplayDataError, match="--text-col 3: the header has 2 column"):
        read_messages(path, text_col="3")


def test_without_a_text_column_name_it_asks_for_one(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ReplayDataError, match=r"m\.csv:1: no column named text, message, body; name the"):
        read_messages(path)


def test_a_short_row_names_its_line_row_and_column(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("conversation;message\na;hello\nb\n", encoding="utf-8")
    with pytest.raises(ReplayDataError) as error:
        read_messages(path, conversation_col="conversation")
    assert str(error.value).startswith(f"{path}:3: row 3 has 1 field(s), so no column 'message' (column 2)")


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "the file is empty"),
    (b"\xef\xbb\xbf\n \n", "the file is empty"),
    (b"text\n\n  \n", "no shopper messages in column 'text' (2 empty rows skipped)"),
])
def test_an_empty_file_is_an_error(tmp_path, content, problem):
    path = tmp_path / "m.csv"
    path.write_bytes(content)
    with pytest.raises(ReplayDataError, match=re.escape(problem)) as error:
        read_messages(path)
    assert str(error.value).startswith(str(path))


def test_bad_encoding_names_the_line_and_column(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text\nhello\nwhere is my Bestellung, schöne Grüße\n".encode("latin-1"))
    with pytest.raises(ReplayDataError) as error:
        read_messages(path)
    assert str(error.value).startswith(f"{path}:3:28: not UTF-8 (byte 0xf6)")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ReplayDataError, match="missing.csv: cannot read the messages file"):
        read_messages(tmp_path / "missing.csv")


# -- the command ----------------------------------------------------------------------


def kefu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO)


def test_the_command_reports_an_unknown_column_and_exits_2(tmp_path):
    config = write_config(tmp_path)
    messages = write_messages(tmp_path / "m.csv")
    done = kefu("eval", "replay", "-c", str(config), "--messages", str(messages), "--text-col", "question")
    assert done.returncode == 2
    assert f"kefu: error: {messages}:1: no column 'question' (--text-col)" in done.stderr
    assert not (tmp_path / "data").exists()


def test_the_command_writes_an_html_report_and_shows_progress(tmp_path):
    config = write_config(tmp_path)
    messages = tmp_path / "few.csv"
    messages.write_text("text\nHow long does shipping take?\n<script>alert(1)</script>\n运费多少钱？\n",
                        encoding="utf-8")
    output = tmp_path / "report.html"
    done = kefu("eval", "replay", "-c", str(config), "--messages", str(messages), "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert "nothing is sent" in done.stderr and "replayed 3/3 messages…" in done.stderr
    assert " INFO " not in done.stderr  # no log line per turn (shopper text stays out of the terminal's log)
    page = output.read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "3 messages in 3 conversations from few.csv" in page
    assert done.stdout == ""
    assert not (tmp_path / "data").exists()  # the config's database was never created
