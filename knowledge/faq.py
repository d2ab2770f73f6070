"""Merchant FAQ files (YAML, Markdown, CSV) → validated entries that remember file and line.

Files are read from one directory (recursively). Parts written in different files
or languages under the same `id` merge into one entry with several language
variants; the same id and language written twice is an error naming both places.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.errors import FaqError

FAQ_SUFFIXES = (".yaml", ".yml", ".md", ".markdown", ".csv")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")
LANG_PATTERN = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class SourceLocation:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


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


@dataclass(frozen=True)
class FaqBase:
    """All entries of a shop plus a hash of the files they came from."""

    entries: tuple[FaqEntry, ...]
    content_hash: str
    files: tuple[str, ...] = ()
    by_id: Mapping[str, FaqEntry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class _Part:
    """An entry's variant as read from one place, before merging."""

    id: str
    language: str
    questions: list[str]
    answer: str
    tags: list[str]
    source: SourceLocation
    handoff: bool = False


def load_faq_dir(directory: Path, *, default_language: str, languages: Iterable[str]) -> FaqBase:
    """Read every FAQ file under `directory`; raise FaqError naming file and line."""
    if not directory.is_dir():
        raise FaqError(directory, None, "FAQ directory does not exist")
    enabled = tuple(languages)
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in FAQ_SUFFIXES)
    digest = hashlib.sha256()
    parts: list[_Part] = []
    for path in paths:
        raw = path.read_bytes()
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + raw + b"\0")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FaqError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        parts.extend(parse_faq_text(path, text, default_language))
    if not parts:
        raise FaqError(directory, None, f"no FAQ entries found (looked for {', '.join(FAQ_SUFFIXES)} files)")
    entries = _merge(parts, default_language, enabled)
    return FaqBase(
        entries=entries,
        content_hash=digest.hexdigest(),
        files=tuple(str(p) for p in paths),
        by_id={entry.id: entry for entry in entries},
    )


def parse_faq_text(path: Path, text: str, default_language: str) -> list[_Part]:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return list(_parse_yaml(path, text, default_language))
    if suffix in (".md", ".markdown"):
        return list(_parse_markdown(path, text, _language_from_name(path) or default_language))
    if suffix == ".csv":
        return list(_parse_csv(path, text, default_language))
    raise FaqError(path, None, f"unsupported FAQ file type '{suffix}'")


def _language_from_name(path: Path) -> str | None:
    """`faq.zh.md` is Chinese."""
    inner = Path(path.stem).suffix.lstrip(".")
    return inner if LANG_PATTERN.match(inner) else None


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].strip("-")
    if len(slug) >= 3:
        return slug
    return "q-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def _clean(text: str) -> str:
    return text.strip()


# -- YAML -----------------------------------------------------------------------

_YAML_KEYS = {"id", "question", "alternatives", "answer", "tags", "lang", "translations", "handoff"}
_YAML_VARIANT_KEYS = {"question", "alternatives", "answer"}


def _parse_yaml(path: Path, text: str, default_language: str) -> Iterator[_Part]:
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise FaqError(path, mark.line + 1 if mark else None, f"invalid YAML: {exc}") from exc
    if data is None:
        return
    if not isinstance(data, list):
        raise FaqError(path, 1, "a YAML FAQ file must be a list of entries (each starting with '- id: ...')")
    for item, node in zip(data, root.value):
        line = node.start_mark.line + 1
        if not isinstance(item, dict):
            raise FaqError(path, line, f"an entry must be a mapping with id, question and answer, got {item!r}")
        key_lines = {key.value: key.start_mark.line + 1 for key, _ in node.value}
        unknown = set(item) - _YAML_KEYS
        if unknown:
            bad = sorted(unknown)[0]
            raise FaqError(path, key_lines.get(bad, line),
                           f"unknown key '{bad}'; allowed: {', '.join(sorted(_YAML_KEYS))}")
        entry_id = _yaml_str(path, key_lines.get("id", line), item, "id", required=True)
        language = _yaml_str(path, key_lines.get("lang", line), item, "lang") or default_language
        tags = _yaml_str_list(path, key_lines.get("tags", line), item, "tags")
        handoff = item.get("handoff", False)
        if not isinstance(handoff, bool):
            raise FaqError(path, key_lines.get("handoff", line), f"'handoff' must be true or false, got {handoff!r}")
        first = _yaml_variant(path, line, key_lines, item, entry_id, language, tags)
        first.handoff = handoff
        yield first
        translations = item.get("translations") or {}
        if not isinstance(translations, dict):
            raise FaqError(path, key_lines.get("translations", line),
                           "'translations' must map a language code to question/alternatives/answer")
        trans_node = dict((k.value, v) for k, v in node.value).get("translations")
        trans_lines = {k.value: k.start_mark.line + 1 for k, _ in trans_node.value} if translations else {}
        for lang, variant in translations.items():
            vline = trans_lines.get(lang, line)
            if not isinstance(variant, dict):
                raise FaqError(path, vline, f"translation '{lang}' must be a mapping with question and answer")
            unknown = set(variant) - _YAML_VARIANT_KEYS
            if unknown:
                raise FaqError(path, vline, f"unknown key '{sorted(unknown)[0]}' in translation '{lang}'")
            vnode = dict((k.value, v) for k, v in trans_node.value)[lang]
            vkey_lines = {k.value: k.start_mark.line + 1 for k, _ in vnode.value}
            yield _yaml_variant(path, vline, vkey_lines, variant, entry_id, str(lang), tags)


def _yaml_variant(
    path: Path, line: int, key_lines: dict[str, int], item: dict, entry_id: str, language: str, tags: list[str]
) -> _Part:
    question = _yaml_str(path, key_lines.get("question", line), item, "question", required=True)
    answer = _yaml_str(path, key_lines.get("answer", line), item, "answer", required=True)
    alternatives = _yaml_str_list(path, key_lines.get("alternatives", line), item, "alternatives")
    return _Part(entry_id, language, [question, *alternatives], answer, tags, SourceLocation(str(path), line))


def _yaml_str(path: Path, line: int, item: dict, key: str, *, required: bool = False) -> str:
    value = item.get(key)
    if value is None or value == "":
        if required:
            raise FaqError(path, line, f"'{key}' is required")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "id":
        value = str(value)
    if not isinstance(value, str):
        raise FaqError(path, line, f"'{key}' must be text, got {value!r}")
    return _clean(value)


def _yaml_str_list(path: Path, line: int, item: dict, key: str) -> list[str]:
    value = item.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FaqError(path, line, f"'{key}' must be a list of texts, got {value!r}")
    return [_clean(v) for v in value if _clean(v)]


# -- Markdown -------------------------------------------------------------------

_MD_META = re.compile(r"^\s*<!--(.*?)-->\s*$")
_MD_META_KEYS = {"id", "tags", "lang", "also", "handoff"}


def _parse_markdown(path: Path, text: str, language: str) -> Iterator[_Part]:
    lines = text.splitlines()
    in_fence = False
    current: dict | None = None
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            if current:
                yield _markdown_part(path, current, language)
            current = {"question": line[3:].strip(), "line": number, "body": [], "meta": {}, "meta_allowed": True}
            continue
        if current is None:
            continue
        meta = _MD_META.match(line) if current["meta_allowed"] else None
        current["meta_allowed"] = False
        if meta:
            current["meta"] = _markdown_meta(path, number, meta.group(1))
            continue
        current["body"].append(line)
    if current:
        yield _markdown_part(path, current, language)


def _markdown_meta(path: Path, line: int, raw: str) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in filter(None, (piece.strip() for piece in raw.split(";"))):
        key, sep, value = item.partition(":")
        key = key.strip().lower()
        if not sep or key not in _MD_META_KEYS:
            raise FaqError(path, line, f"bad metadata '{item}'; write e.g. <!-- id: returns; tags: a, b; also: q1 | q2 -->")
        meta[key] = value.strip()
    return meta


def _markdown_part(path: Path, current: dict, language: str) -> _Part:
    line = current["line"]
    question = current["question"]
    if not question:
        raise FaqError(path, line, "a '## ' heading must hold the question")
    answer = "\n".join(current["body"]).strip()
    if not answer:
        raise FaqError(path, line, f"question '{question}' has no answer below it")
    meta = current["meta"]
    alternatives = [q.strip() for q in meta.get("also", "").split("|") if q.strip()]
    tags = [t.strip() for t in meta.get("tags", "").split(",") if t.strip()]
    return _Part(
        id=meta.get("id") or slugify(question),
        language=meta.get("lang") or language,
        questions=[question, *alternatives],
        answer=answer,
        tags=tags,
        source=SourceLocation(str(path), line),
        handoff=_flag(path, line, meta.get("handoff", "")),
    )


_TRUE = {"true", "yes", "1"}
_FALSE = {"", "false", "no", "0"}


def _flag(path: Path, line: int, value: str) -> bool:
    """A yes/no cell or metadata value; anything else is a mistake worth naming."""
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise FaqError(path, line, f"'handoff' must be true or false, got '{value}'")


# -- CSV ------------------------------------------------------------------------

_CSV_COLUMNS = {"id", "question", "answer", "tags", "lang", "handoff"}


def _parse_csv(path: Path, text: str, default_language: str) -> Iterator[_Part]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise FaqError(path, 1, f"invalid CSV: {exc}") from exc
    unknown = [h for h in header if h not in _CSV_COLUMNS]
    if unknown:
        raise FaqError(path, 1, f"unknown column '{unknown[0]}'; columns: question, answer and optional id, tags, lang, handoff")
    if "question" not in header or "answer" not in header:
        raise FaqError(path, 1, "the header must name at least 'question' and 'answer'")
    grouped: dict[tuple[str, str], _Part] = {}
    start_line = reader.line_num + 1
    try:
        for row in reader:
            line, start_line = start_line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise FaqError(path, line, f"expected {len(header)} fields, found {len(row)}")
            record = {key: value.strip() for key, value in zip(header, row)}
            question, answer = record["question"], record["answer"]
            language = record.get("lang") or default_language
            if not question:
                raise FaqError(path, line, "'question' is empty")
            entry_id = record.get("id") or ""
            key = (entry_id or slugify(question), language)
            part = grouped.get(key) if entry_id else None
            tags = [t.strip() for t in re.split(r"[;|]", record.get("tags", "")) if t.strip()]
            if part is None:
                if key in grouped:
                    raise FaqError(path, line, f"question '{question}' appears twice; give rows an 'id' to group them")
                if not answer:
                    raise FaqError(path, line, f"the first row of '{key[0]}' ({language}) needs an answer")
                grouped[key] = _Part(key[0], language, [question], answer, tags, SourceLocation(str(path), line),
                                     handoff=_flag(path, line, record.get("handoff", "")))
                continue
            if answer and answer != part.answer:
                raise FaqError(path, line, f"'{entry_id}' ({language}) already has a different answer at line "
                               f"{part.source.line}; leave 'answer' empty on alternative-phrasing rows")
            part.questions.append(question)
            part.tags.extend(t for t in tags if t not in part.tags)
            part.handoff = part.handoff or _flag(path, line, record.get("handoff", ""))
    except csv.Error as exc:
        raise FaqError(path, reader.line_num, f"invalid CSV: {exc}") from exc
    yield from grouped.values()


# -- merging --------------------------------------------------------------------


def _merge(parts: list[_Part], default_language: str, enabled: tuple[str, ...]) -> tuple[FaqEntry, ...]:
    by_id: dict[str, dict[str, _Part]] = {}
    for part in parts:
        where = part.source
        if not ID_PATTERN.match(part.id):
            raise FaqError(where.path, where.line, f"id '{part.id}' must be letters, digits, '.', '_' or '-'")
        if part.language not in enabled:
            raise FaqError(where.path, where.line, f"language '{part.language}' of '{part.id}' is not enabled in "
                           f"shop.languages ({', '.join(enabled)})")
        variants = by_id.setdefault(part.id, {})
        if part.language in variants:
            first = variants[part.language].source
            raise FaqError(where.path, where.line, f"id '{part.id}' ({part.language}) is already defined at {first}")
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
