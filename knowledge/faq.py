"""Merchant FAQ files (YAML, Markdown, CSV) → validated entries that remember file and line.

Files are read from one directory (recursively). Parts written in different files
or languages under the same `id` merge into one entry with several language
variants; the same id and language written twice is an error naming both places.

Every mistake in every file is collected and raised once at the end (`FaqProblems`),
so a merchant fixes the whole list in one round instead of one error per run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.errors import FaqError
from knowledge.faq_source import FaqPart, FaqProblem, FaqProblems, ProblemList, SourceLocation, did_you_mean
from knowledge.faq_yaml import read_yaml

__all__ = ["FAQ_SUFFIXES", "FaqBase", "FaqEntry", "FaqProblem", "FaqProblems", "LocalizedText", "SourceLocation",
           "load_faq_dir", "slugify"]

FAQ_SUFFIXES = (".yaml", ".yml", ".md", ".markdown", ".csv")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")
LANG_PATTERN = re.compile(r"^[a-z]{2,3}$")  # as shop.languages in the config
_LANGUAGE_LIKE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")  # zh, ZH, zh-CN, pt_BR


@dataclass(frozen=True)
class LocalizedText:
    """One language's version of an entry: its phrasings (first = canonical) and answer."""

    language: str
    questions: tuple[str, ...]
    answer: str
    source: SourceLocation


@dataclass(frozen=True)
class FaqEntry:
    id: str
    default_language: str
    variants: Mapping[str, LocalizedText]
    tags: tuple[str, ...] = ()
    handoff: bool = False  # a confident match hands the shopper to a person (legal threats, damage claims)
    # Reviewed phrasings from `extends` items, as (language, text): search learns from them, replies never
    # show them, and the language need not be one the entry has an answer in.
    more_questions: tuple[tuple[str, str], ...] = ()

    @property
    def question(self) -> str:
        return self.variants[self.default_language].questions[0]

    @property
    def source(self) -> SourceLocation:
        return self.variants[self.default_language].source

    def variant(self, language: str | None) -> LocalizedText:
        """The shopper's language when the merchant wrote it, else the entry's default."""
        if language and language in self.variants:
            return self.variants[language]
        return self.variants[self.default_language]

    def all_questions(self) -> Iterator[tuple[str, str]]:
        """(language, text) of every question phrasing: the merchant's own, then the reviewed extensions."""
        for language, variant in self.variants.items():
            for question in variant.questions:
                yield language, question
        yield from self.more_questions


@dataclass(frozen=True)
class FaqBase:
    """All entries of a shop plus a hash of the files they came from."""

    entries: tuple[FaqEntry, ...]
    content_hash: str
    files: tuple[str, ...] = ()
    by_id: Mapping[str, FaqEntry] = field(default_factory=dict)
    unreviewed: int = 0  # phrasings in `extends` items not yet marked reviewed (not used)

    def __len__(self) -> int:
        return len(self.entries)


def load_faq_dir(directory: Path, *, default_language: str, languages: Iterable[str]) -> FaqBase:
    """Read every FAQ file under `directory`; raise FaqProblems listing every mistake with file and line."""
    if not directory.is_dir():
        raise FaqError(directory, None, "FAQ directory does not exist")
    enabled = tuple(languages)
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in FAQ_SUFFIXES)
    digest = hashlib.sha256()
    problems = ProblemList()
    parts: list[FaqPart] = []
    for path in paths:
        raw = path.read_bytes()
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + raw + b"\0")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problems.add(path, raw[:exc.start].count(b"\n") + 1,
                         f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8")
            continue
        parts.extend(parse_faq_text(path, text, default_language, problems))
    entries = _merge([p for p in parts if not p.extends], default_language, enabled, problems)
    entries, unreviewed = _extend(entries, [p for p in parts if p.extends], problems)
    if problems.found:
        raise FaqProblems(directory, problems.found)
    if not entries:
        raise FaqError(directory, None, f"no FAQ entries found (looked for {', '.join(FAQ_SUFFIXES)} files)")
    return FaqBase(
        entries=entries,
        content_hash=digest.hexdigest(),
        files=tuple(str(p) for p in paths),
        by_id={entry.id: entry for entry in entries},
        unreviewed=unreviewed,
    )


def parse_faq_text(path: Path, text: str, default_language: str, problems: ProblemList) -> list[FaqPart]:
    """The parts one file holds; its mistakes go to `problems`."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return read_yaml(path, text, default_language, problems)
    if suffix in (".md", ".markdown"):
        return _parse_markdown(path, text, _language_from_name(path, problems) or default_language, problems)
    if suffix == ".csv":
        return _parse_csv(path, text, default_language, problems)
    problems.add(path, None, f"unsupported FAQ file type '{suffix}'")
    return []


def _language_from_name(path: Path, problems: ProblemList) -> str | None:
    """`faq.zh.md` is Chinese; `faq.zh-CN.md` is a mistake to name, not a file in the default language."""
    inner = Path(path.stem).suffix.lstrip(".")
    if LANG_PATTERN.match(inner):
        return inner
    if _LANGUAGE_LIKE.match(inner):
        code = re.split(r"[-_]", inner)[0].lower()
        problems.add(path, None, f"the language '{inner}' in the file name is not an ISO 639-1 code; "
                                 f"name the file {Path(path.stem).stem}.{code}{path.suffix}")
    return None


def _iso_language(part: FaqPart, problems: ProblemList) -> bool:
    if LANG_PATTERN.match(part.language):
        return True
    problems.add(part.source.path, part.source.line, f"language '{part.language}' of '{part.id}' is not an ISO "
                                                     f"639-1 code such as 'en' or 'zh'{_code_hint(part.language)}")
    return False


def _code_hint(language: str) -> str:
    code = re.split(r"[-_]", language)[0].lower()
    return f"; write '{code}'" if LANG_PATTERN.match(code) and code != language else ""


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].strip("-")
    if len(slug) >= 3:
        return slug
    return "q-" + hashlib.sha1(text.encode()).hexdigest()[:10]


# -- Markdown -------------------------------------------------------------------

_MD_META = re.compile(r"^\s*<!--(.*?)-->\s*$")
_MD_META_KEYS = {"id", "tags", "lang", "also", "handoff"}


def _parse_markdown(path: Path, text: str, language: str, problems: ProblemList) -> list[FaqPart]:
    lines = text.splitlines()
    in_fence = False
    current: dict | None = None
    found: list[FaqPart | None] = []
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            if current:
                found.append(_markdown_part(path, current, language, problems))
            current = {"question": line[3:].strip(), "line": number, "body": [], "meta": {}, "meta_allowed": True}
            continue
        if current is None:
            continue
        meta = _MD_META.match(line) if current["meta_allowed"] else None
        current["meta_allowed"] = False
        if meta:
            current["meta"] = _markdown_meta(path, number, meta.group(1), problems)
            continue
        current["body"].append(line)
    if current:
        found.append(_markdown_part(path, current, language, problems))
    return [part for part in found if part is not None]


def _markdown_meta(path: Path, line: int, raw: str, problems: ProblemList) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in filter(None, (piece.strip() for piece in raw.split(";"))):
        key, sep, value = item.partition(":")
        key = key.strip().lower()
        if not sep or key not in _MD_META_KEYS:
            problems.add(path, line, f"bad metadata '{item}'; write e.g. <!-- id: returns; tags: a, b; also: q1 | q2 -->")
        elif key in meta:
            problems.add(path, line, f"metadata '{key}' is written twice; keep one")
        else:
            meta[key] = value.strip()
    return meta


def _markdown_part(path: Path, current: dict, language: str, problems: ProblemList) -> FaqPart | None:
    line = current["line"]
    question = current["question"]
    answer = "\n".join(current["body"]).strip()
    meta = current["meta"]
    handoff = _flag(path, line, meta.get("handoff", ""), problems)
    if not question:
        problems.add(path, line, "a '## ' heading must hold the question")
        return None
    if not answer:
        problems.add(path, line, f"question '{question}' has no answer below it")
        return None
    alternatives = [q.strip() for q in meta.get("also", "").split("|") if q.strip()]
    tags = [t.strip() for t in meta.get("tags", "").split(",") if t.strip()]
    return FaqPart(
        id=meta.get("id") or slugify(question),
        language=meta.get("lang") or language,
        questions=[question, *alternatives],
        answer=answer,
        tags=tags,
        source=SourceLocation(str(path), line),
        handoff=handoff,
    )


_TRUE = {"true", "yes", "1"}
_FALSE = {"", "false", "no", "0"}


def _flag(path: Path, line: int, value: str, problems: ProblemList) -> bool:
    """A yes/no cell or metadata value; anything else is a mistake worth naming."""
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() not in _FALSE:
        problems.add(path, line, f"'handoff' must be true or false, got '{value}'")
    return False


# -- CSV ------------------------------------------------------------------------

_CSV_COLUMNS = {"id", "question", "answer", "tags", "lang", "handoff"}


def _parse_csv(path: Path, text: str, default_language: str, problems: ProblemList) -> list[FaqPart]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return []
    except csv.Error as exc:
        problems.add(path, 1, f"invalid CSV: {exc}")
        return []
    if not _csv_header_ok(path, header, problems):
        return []  # rows cannot be read without knowing their columns
    grouped: dict[tuple[str, str], FaqPart] = {}
    start_line = reader.line_num + 1
    try:
        for row in reader:
            line, start_line = start_line, reader.line_num + 1
            if any(cell.strip() for cell in row):
                _csv_row(path, line, header, row, default_language, grouped, problems)
    except csv.Error as exc:  # a broken quote: the rest of the file cannot be split into rows
        problems.add(path, reader.line_num, f"invalid CSV: {exc}")
    return list(grouped.values())


def _csv_header_ok(path: Path, header: list[str], problems: ProblemList) -> bool:
    before = len(problems.found)
    for column in header:
        if column not in _CSV_COLUMNS:
            problems.add(path, 1, f"unknown column '{column}'{did_you_mean(column, _CSV_COLUMNS)}; columns: "
                                  "question, answer and optional id, tags, lang, handoff")
    for column in sorted({c for c in header if header.count(c) > 1}):
        problems.add(path, 1, f"column '{column}' is named twice; keep one")
    if "question" not in header or "answer" not in header:
        problems.add(path, 1, "the header must name at least 'question' and 'answer'")
    return len(problems.found) == before


def _csv_row(path: Path, line: int, header: list[str], row: list[str], default_language: str,
             grouped: dict[tuple[str, str], FaqPart], problems: ProblemList) -> None:
    """One row: a new part, or another phrasing of the part whose id it shares."""
    if len(row) != len(header):
        problems.add(path, line, f"expected {len(header)} fields, found {len(row)}")
        return
    record = {key: value.strip() for key, value in zip(header, row)}
    question, answer = record["question"], record["answer"]
    language = record.get("lang") or default_language
    handoff = _flag(path, line, record.get("handoff", ""), problems)
    if not question:
        problems.add(path, line, "'question' is empty")
        return
    entry_id = record.get("id") or ""
    key = (entry_id or slugify(question), language)
    part = grouped.get(key) if entry_id else None
    tags = [t.strip() for t in re.split(r"[;|]", record.get("tags", "")) if t.strip()]
    if part is None:
        if key in grouped:
            problems.add(path, line, f"question '{question}' appears twice; give rows an 'id' to group them")
        elif not answer:
            problems.add(path, line, f"the first row of '{key[0]}' ({language}) needs an answer")
        else:
            grouped[key] = FaqPart(key[0], language, [question], answer, tags, SourceLocation(str(path), line),
                                 handoff=handoff)
        return
    if answer and answer != part.answer:
        problems.add(path, line, f"'{entry_id}' ({language}) already has a different answer at line "
                                 f"{part.source.line}; leave 'answer' empty on alternative-phrasing rows")
        return
    part.questions.append(question)
    part.tags.extend(t for t in tags if t not in part.tags)
    part.handoff = part.handoff or handoff


# -- merging --------------------------------------------------------------------


def _merge(parts: list[FaqPart], default_language: str, enabled: tuple[str, ...],
           problems: ProblemList) -> tuple[FaqEntry, ...]:
    by_id: dict[str, dict[str, FaqPart]] = {}
    for part in parts:
        where = part.source
        if not ID_PATTERN.match(part.id):
            problems.add(where.path, where.line, f"id '{part.id}' must be letters, digits, '.', '_' or '-'")
            continue
        if not _iso_language(part, problems):
            continue
        if part.language not in enabled:
            problems.add(where.path, where.line, f"language '{part.language}' of '{part.id}' is not enabled in "
                                                 f"shop.languages ({', '.join(enabled)})")
            continue
        variants = by_id.setdefault(part.id, {})
        if part.language in variants:
            first = variants[part.language].source
            problems.add(where.path, where.line, f"id '{part.id}' ({part.language}) is already defined at {first}")
            continue
        seen: set[str] = set()
        part.questions = [q for q in part.questions if not (q.casefold() in seen or seen.add(q.casefold()))]
        variants[part.language] = part
    entries = []
    for entry_id, variants in by_id.items():
        first = next(iter(variants.values()))
        default = default_language if default_language in variants else first.language
        ordered = {default: variants[default], **variants}
        tags: list[str] = []
        for part in ordered.values():
            tags.extend(t for t in part.tags if t not in tags)
        entries.append(
            FaqEntry(
                id=entry_id,
                default_language=default,
                variants={
                    lang: LocalizedText(lang, tuple(p.questions), p.answer, p.source) for lang, p in ordered.items()
                },
                tags=tuple(tags),
                handoff=any(part.handoff for part in variants.values()),
            )
        )
    return tuple(entries)


def _extend(entries: tuple[FaqEntry, ...], extensions: list[FaqPart],
            problems: ProblemList) -> tuple[tuple[FaqEntry, ...], int]:
    """Add the reviewed `extends` phrasings to their entries; count the ones still awaiting review."""
    by_id = {entry.id: entry for entry in entries}
    more: dict[str, list[tuple[str, str]]] = {}
    unreviewed = 0
    for part in extensions:
        where = part.source
        if not _iso_language(part, problems):
            continue
        if part.id not in by_id:
            problems.add(where.path, where.line, f"'extends: {part.id}' names no FAQ entry"
                                                 f"{did_you_mean(part.id, by_id)}")
            continue
        if not part.reviewed:
            unreviewed += len(part.questions)
            continue
        known = {text.casefold() for _, text in (*by_id[part.id].all_questions(), *more.get(part.id, ()))}
        for question in part.questions:
            if question.casefold() not in known:
                known.add(question.casefold())
                more.setdefault(part.id, []).append((part.language, question))
    extended = tuple(replace(entry, more_questions=tuple(more[entry.id])) if entry.id in more else entry
                     for entry in entries)
    return extended, unreviewed
