"""`kefu eval replay`'s report as Markdown, self-contained HTML or JSON, for a merchant to read.

Shopper text is hostile input: HTML escapes every text (and the page has no scripts), Markdown
backslash-escapes what a renderer would read as markup or raw HTML, and both keep each text on
one line so a message cannot break the tables.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

from bot.replay.run import Outcome, ReplayedTurn, ReplayReport

FORMATS = ("markdown", "html", "json")
SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".json": "json"}
GROUPS_SHOWN = 30
WHY_CHARS = 240
LABELS = {
    Outcome.AUTOMATED: "automated (confident FAQ answer)",
    Outcome.NOT_SURE: "not sure (asked the shopper to pick)",
    Outcome.NO_MATCH: "no match",
    Outcome.HANDOFF: "handed over to a person",
    Outcome.FORWARDED: "forwarded to agents (after a handoff)",
    Outcome.INFO: "command or unreadable message answered",
    Outcome.ERROR: "errors",
}
SHORT = {Outcome.AUTOMATED: "automated", Outcome.NOT_SURE: "not sure", Outcome.NO_MATCH: "no match",
         Outcome.HANDOFF: "handoff", Outcome.FORWARDED: "forwarded", Outcome.INFO: "info", Outcome.ERROR: "errors"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def choose_format(explicit: str | None, output: Path | None) -> str:
    """--format when given, else by the output file's suffix, else Markdown."""
    if explicit:
        return explicit
    if output is not None:
        return SUFFIXES.get(output.suffix.lower(), "markdown")
    return "markdown"


def render(report: ReplayReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"
    if fmt == "html":
        return render_html(report)
    if fmt == "markdown":
        return render_markdown(report)
    raise ValueError(f"unknown report format {fmt!r}; one of: {', '.join(FORMATS)}")


def _pct(report: ReplayReport, count: int) -> str:
    return f"{100 * report.share(count):.1f} %"


def _ms(value: float | None) -> str:
    return f"{value:.0f} ms" if value is not None else "–"


def _confidence(turn: ReplayedTurn) -> str:
    return f"{turn.confidence:.2f}" if turn.confidence is not None else "–"


def _language_share(counts: dict[str, int]) -> str:
    return f"{100 * counts[Outcome.AUTOMATED.value] / counts['messages']:.0f} %" if counts["messages"] else "–"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _clip(text: str, chars: int = WHY_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else flat[:chars - 1] + "…"


def _summary_lines(report: ReplayReport) -> list[str]:
    """The opening sentences, shared by both formats (plain text; each renderer escapes it)."""
    p50, p95 = report.latency_ms
    lines = [
        f"{_plural(report.messages, 'message')} in {_plural(report.conversations, 'conversation')} from "
        f"{report.source}, replayed "
        f"through the whole pipeline of {report.shop} (responder: {report.responder}) in {report.seconds:.1f} s. "
        "Nothing was sent to anyone: no shopper, agent, helpdesk or channel saw these turns, and the "
        "replay's database was deleted afterwards.",
        f"Reply time p50 {_ms(p50)}, p95 {_ms(p95)} (from starting on a message to storing the reply, "
        "measured while several conversations were replayed at once: one shopper at a time waits less).",
    ]
    if report.empty_rows:
        lines.append(f"{_plural(report.empty_rows, 'row')} with empty text skipped.")
    if report.limited:
        lines.append("Only the first messages were replayed (--limit).")
    return lines


# -- Markdown ----------------------------------------------------------------------


def md(text: str) -> str:
    """One table-safe line of Markdown that shows `text` as written (no markup, no raw HTML)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(report: ReplayReport) -> str:
    out = [f"# Shadow replay: {md(report.shop)}", ""]
    out += [md(line) for line in _summary_lines(report)]
    out += ["", "## What the bot would have done", ""]
    outcomes = report.outcomes
    out += _md_table(("outcome", "messages", "share"),
                     [(LABELS[o], str(outcomes[o.value]), _pct(report, outcomes[o.value])) for o in Outcome])
    if report.handoff_reasons:
        out += ["", "Handoff reasons: " + ", ".join(f"{md(reason)} {count}"
                                                     for reason, count in report.handoff_reasons.items()) + "."]
    out += ["", "## Per language", "", "The language detected for each message.", ""]
    out += _md_table(("language", "messages", "automated share", *(SHORT[o] for o in Outcome)),
                     [(md(language), str(counts["messages"]), _language_share(counts),
                       *(str(counts[o.value]) for o in Outcome)) for language, counts in report.languages.items()])
    out += ["", "## Questions without an answer", ""]
    groups = report.groups
    if not groups:
        out.append("None: every question was answered or handed over at the shopper's request.")
    else:
        out += [f"{groups.questions} questions the bot could not answer (no match, not sure, or handed over "
                f"for another reason than the shopper asking for a person), in {groups.clusters_total} groups "
                "of the same meaning, most asked first. Each is a candidate for a new FAQ entry or phrasing.", ""]
        out += _md_table(("#", "asked", "question", "also asked as", "languages"), [
            (str(rank), str(group.count), md(group.representative),
             md(" / ".join(e for e in group.examples if e != group.representative)) or "–",
             md(", ".join(f"{lang} {n}" for lang, n in group.languages.items())))
            for rank, group in enumerate(list(groups)[:GROUPS_SHOWN], start=1)])
        if len(groups) > GROUPS_SHOWN or groups.capped:
            out += ["", f"Showing {min(len(groups), GROUPS_SHOWN)} of {groups.clusters_total} groups"
                    + (f"; only the most recent {groups.questions} of {groups.questions_in_period} questions "
                       "were grouped" if groups.capped else "") + "."]
    out += ["", f"## The {len(report.least_confident)} least confident answers", "",
            "Answers the bot would have sent with the lowest confidence: check that each FAQ entry really "
            "answers the message.", ""]
    if report.least_confident:
        out += _md_table(("row", "message", "FAQ", "confidence", "why"), [
            (str(turn.row), md(turn.text), md(", ".join(turn.faq_ids)) or "–", _confidence(turn),
             md(_clip(turn.why))) for turn in report.least_confident])
    else:
        out.append("No message was answered with confidence.")
    errors = [turn for turn in report.turns if turn.outcome == Outcome.ERROR]
    if errors:
        out += ["", "## Errors", ""]
        out += _md_table(("row", "message", "what happened"),
                         [(str(turn.row), md(turn.text), md(_clip(turn.why))) for turn in errors[:50]])
    return "\n".join(out) + "\n"


# -- HTML --------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;
color:#1d232a}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d8dde3;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0}th,td{border:1px solid #d8dde3;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f2f4f7}td.n{text-align:right;white-space:nowrap}
.bar{display:inline-block;height:.7rem;background:#3d7bd9;border-radius:2px;margin-right:.4rem}
.note{color:#57606a}.why{color:#57606a;font-size:.9em}
""".strip()


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[tuple[str, bool]]]) -> str:
    """Cells are (already escaped HTML, numeric?)."""
    head = "".join(f"<th>{_h(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{cell}</td>' if numeric else f"<td>{cell}</td>"
                                    for cell, numeric in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: ReplayReport) -> str:
    parts = [f"<h1>Shadow replay: {_h(report.shop)}</h1>"]
    parts += [f"<p>{_h(line)}</p>" for line in _summary_lines(report)]
    outcomes = report.outcomes
    parts.append("<h2>What the bot would have done</h2>")
    parts.append(_html_table(("outcome", "messages", "share"), [
        ((_h(LABELS[o]), False), (_h(outcomes[o.value]), True),
         (f'<span class="bar" style="width:{round(300 * report.share(outcomes[o.value]))}px"></span>'
          f"{_h(_pct(report, outcomes[o.value]))}", False)) for o in Outcome]))
    if report.handoff_reasons:
        parts.append("<p>Handoff reasons: " + _h(", ".join(f"{reason} {count}" for reason, count
                                                           in report.handoff_reasons.items())) + ".</p>")
    parts.append('<h2>Per language</h2><p class="note">The language detected for each message.</p>')
    parts.append(_html_table(("language", "messages", "automated share", *(SHORT[o] for o in Outcome)), [
        ((_h(language), False), (_h(counts["messages"]), True), (_h(_language_share(counts)), True),
         *((_h(counts[o.value]), True) for o in Outcome)) for language, counts in report.languages.items()]))
    parts.append("<h2>Questions without an answer</h2>")
    groups = report.groups
    if not groups:
        parts.append("<p>None: every question was answered or handed over at the shopper's request.</p>")
    else:
        parts.append(f'<p class="note">{_h(groups.questions)} questions the bot could not answer (no match, not '
                     "sure, or handed over for another reason than the shopper asking for a person), in "
                     f"{_h(groups.clusters_total)} groups of the same meaning, most asked first.</p>")
        parts.append(_html_table(("#", "asked", "question", "also asked as", "languages"), [
            ((_h(rank), True), (_h(group.count), True), (_h(group.representative), False),
             ("<br>".join(_h(e) for e in group.examples if e != group.representative) or "–", False),
             (_h(", ".join(f"{lang} {n}" for lang, n in group.languages.items())), False))
            for rank, group in enumerate(list(groups)[:GROUPS_SHOWN], start=1)]))
    parts.append(f"<h2>The {len(report.least_confident)} least confident answers</h2>")
    if report.least_confident:
        parts.append(_html_table(("row", "message", "FAQ", "confidence", "why"), [
            ((_h(turn.row), True), (_h(turn.text), False), (_h(", ".join(turn.faq_ids)) or "–", False),
             (_h(_confidence(turn)), True), (f'<span class="why">{_h(_clip(turn.why))}</span>', False))
            for turn in report.least_confident]))
    else:
        parts.append("<p>No message was answered with confidence.</p>")
    errors = [turn for turn in report.turns if turn.outcome == Outcome.ERROR]
    if errors:
        parts.append("<h2>Errors</h2>")
        parts.append(_html_table(("row", "message", "what happened"), [
            ((_h(turn.row), True), (_h(turn.text), False), (_h(_clip(turn.why)), False)) for turn in errors[:50]]))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Shadow replay: {_h(report.shop)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
