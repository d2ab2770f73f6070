"""YAML FAQ files → parts, read node by node so that every value keeps its line.

A YAML mistake that PyYAML would let pass (a text where a list belongs, a key written
twice, `no:` read as false, a number where text belongs) is noted with file, line and key.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowledge.faq_source import FaqPart, ProblemList, SourceLocation, did_you_mean

_YAML_KEYS = {"id", "question", "alternatives", "answer", "tags", "lang", "translations", "handoff"}
_YAML_VARIANT_KEYS = {"question", "alternatives", "answer"}
_YAML_EXTENSION_KEYS = {"extends", "lang", "alternatives", "reviewed"}
_YAML_NULL = "tag:yaml.org,2002:null"
_YAML_MERGE = "tag:yaml.org,2002:merge"
_LIST_NOUNS = {"alternatives": "phrasing", "tags": "tag"}


@dataclass
class _YamlMapping:
    """A YAML mapping built key by key from its nodes, with each key's line.

    Built by hand rather than by `safe_load` so that a key written twice (YAML silently keeps
    the last) and a key YAML reads as something else (`no:` is false) are named, not lost.
    """

    line: int
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, yaml.Node] = field(default_factory=dict)

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


def read_yaml(path: Path, text: str, default_language: str, problems: ProblemList) -> list[FaqPart]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None or root.tag == _YAML_NULL:
            return []
        if not isinstance(root, yaml.SequenceNode):
            problems.add(path, root.start_mark.line + 1,
                         "a YAML FAQ file must be a list of entries (each starting with '- id: ...')")
            return []
        parts: list[FaqPart] = []
        for node in root.value:
            parts.extend(_yaml_entry(loader, path, node, default_language, problems))
        return parts
    except yaml.YAMLError as exc:  # syntax: nothing after it can be trusted, so the rest of this file is skipped
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)  # one line: a list of problems stays readable
        context = getattr(exc, "context", None)
        column = f" (column {mark.column + 1})" if mark else ""
        problems.add(path, mark.line + 1 if mark else None,
                     f"invalid YAML: {problem}{f' {context}' if context else ''}{column}")
        return []
    finally:
        loader.dispose()


def _yaml_mapping(loader: yaml.SafeLoader, path: Path, node: yaml.Node, problems: ProblemList,
                  expected: str) -> _YamlMapping | None:
    """The mapping at `node`, or None (and a problem saying `expected`) when it is something else."""
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        problems.add(path, line, f"{expected}, got {_describe(loader.construct_object(node, deep=True))}")
        return None
    own = sum(key.tag != _YAML_MERGE for key, _ in node.value)
    loader.flatten_mapping(node)  # `<<: *defaults`: inherited keys come first and own keys override them
    inherited = len(node.value) - own
    mapping = _YamlMapping(line)
    for index, (key_node, value_node) in enumerate(node.value):
        key_line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            written = key_node.value if isinstance(key_node, yaml.ScalarNode) else "…"
            problems.add(path, key_line, f"key '{written}' is read by YAML as {_describe(key)}, not as text; "
                                         f"put it in quotes: \"{written}\":")
            continue
        if key in mapping.lines:
            problems.add(path, key_line, f"'{key}' is written twice (also at line {mapping.lines[key]}); keep one")
            continue
        if index >= inherited:  # an inherited key has no line of its own here
            mapping.lines[key] = key_line
        mapping.values[key] = loader.construct_object(value_node, deep=True)
        mapping.nodes[key] = value_node
    return mapping


def _yaml_entry(loader: yaml.SafeLoader, path: Path, node: yaml.Node, default_language: str,
                problems: ProblemList) -> list[FaqPart]:
    entry = _yaml_mapping(loader, path, node, problems, "an entry must be a mapping with id, question and answer")
    if entry is None:
        return []
    if "extends" in entry.values:
        return _yaml_extension(path, entry, default_language, problems)
    _unknown_keys(path, entry, _YAML_KEYS, "", problems)
    entry_id = _yaml_text(path, entry, "id", problems, required=True)
    language = _yaml_text(path, entry, "lang", problems) or default_language
    tags = _yaml_text_list(path, entry, "tags", problems)
    handoff = _yaml_flag(path, entry, "handoff", problems)
    parts: list[FaqPart] = []
    first = _yaml_variant(path, entry, entry_id, language, tags, problems)
    if first is not None:
        first.handoff = handoff
        parts.append(first)
    if entry.values.get("translations") is None:
        return parts
    translations = _yaml_mapping(loader, path, entry.nodes["translations"], problems,
                                 "'translations' must map a language code to question/alternatives/answer")
    for lang, vnode in (translations.nodes.items() if translations else ()):
        variant = _yaml_mapping(loader, path, vnode, problems,
                                f"translation '{lang}' must be a mapping with question and answer")
        if variant is None:
            continue
        variant.line = translations.line_of(lang)  # the translation starts at its language key
        _unknown_keys(path, variant, _YAML_VARIANT_KEYS, f" in translation '{lang}'", problems)
        part = _yaml_variant(path, variant, entry_id, lang, tags, problems)
        if part is not None:
            parts.append(part)
    return parts


def _yaml_extension(path: Path, entry: _YamlMapping, default_language: str, problems: ProblemList) -> list[FaqPart]:
    """More phrasings for an entry written elsewhere (what `kefu faq suggest` proposes): used once reviewed."""
    _unknown_keys(path, entry, _YAML_EXTENSION_KEYS, " in an 'extends' item", problems)
    entry_id = _yaml_text(path, entry, "extends", problems, required=True)
    language = _yaml_text(path, entry, "lang", problems) or default_language
    alternatives = _yaml_text_list(path, entry, "alternatives", problems)
    reviewed = _yaml_flag(path, entry, "reviewed", problems)
    if not entry_id or not alternatives:
        return []
    return [FaqPart(entry_id, language, alternatives, "", [], SourceLocation(str(path), entry.line),
                    extends=True, reviewed=reviewed)]


def _yaml_variant(path: Path, mapping: _YamlMapping, entry_id: str, language: str, tags: list[str],
                  problems: ProblemList) -> FaqPart | None:
    question = _yaml_text(path, mapping, "question", problems, required=True)
    answer = _yaml_text(path, mapping, "answer", problems, required=True)
    alternatives = _yaml_text_list(path, mapping, "alternatives", problems)
    if not (entry_id and question and answer):
        return None
    return FaqPart(entry_id, language, [question, *alternatives], answer, tags, SourceLocation(str(path), mapping.line))


def _unknown_keys(path: Path, mapping: _YamlMapping, allowed: set[str], where: str, problems: ProblemList) -> None:
    for key in sorted(mapping.values.keys() - allowed, key=mapping.line_of):
        problems.add(path, mapping.line_of(key), f"unknown key '{key}'{where}{did_you_mean(key, allowed)}; "
                                                  f"allowed: {', '.join(sorted(allowed))}")


def _yaml_flag(path: Path, mapping: _YamlMapping, key: str, problems: ProblemList) -> bool:
    """A true/false value (false when absent); anything else is named, never guessed."""
    value = mapping.values.get(key, False)
    if not isinstance(value, bool):
        problems.add(path, mapping.line_of(key), f"'{key}' must be true or false, got {_describe(value)}")
        return False
    return value


def _yaml_text(path: Path, mapping: _YamlMapping, key: str, problems: ProblemList, *, required: bool = False) -> str:
    """A text value; a number, a yes/no or a list where text belongs is named, never converted."""
    value = mapping.values.get(key)
    line = mapping.line_of(key)
    if value is None:
        if required:
            problems.add(path, line, f"'{key}' is required")
        return ""
    if key == "id" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # `id: 42` is a fine id
    if not isinstance(value, str):
        hint = "; put other phrasings under 'alternatives'" if isinstance(value, list) and key == "question" else ""
        problems.add(path, line, f"'{key}' must be text, got {_describe(value)}{hint or _quote_hint(value)}")
        return ""
    if not value.strip() and key in ("id", "question", "answer"):
        problems.add(path, line, f"'{key}' is empty; write the {key} or remove the entry")
    return value.strip()


def _yaml_text_list(path: Path, mapping: _YamlMapping, key: str, problems: ProblemList) -> list[str]:
    """A list of texts; one text where the list belongs (`alternatives: a, b`) is a mistake, not one item."""
    value = mapping.values.get(key)
    if value is None:
        return []
    line = mapping.line_of(key)
    noun = _LIST_NOUNS.get(key, "item")
    if isinstance(value, str):
        problems.add(path, line, f"'{key}' must be a list, not the text {value!r}: write each {noun} on its own "
                                 f"line starting with '- ' under '{key}:', or {key}: [{value.strip()}]")
        return []
    if not isinstance(value, list):
        problems.add(path, line, f"'{key}' must be a list of texts, got {_describe(value)}")
        return []
    texts = []
    for number, (item, node) in enumerate(zip(value, mapping.nodes[key].value), start=1):
        item_line = node.start_mark.line + 1
        if not isinstance(item, str):
            problems.add(path, item_line, f"{noun} {number} of '{key}' must be text, got {_describe(item)}"
                                          f"{_quote_hint(item)}")
        elif not item.strip():
            problems.add(path, item_line, f"{noun} {number} of '{key}' is empty; remove it or write it")
        else:
            texts.append(item.strip())
    return texts


def _describe(value: Any) -> str:
    """How YAML read a value, in a merchant's words."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (YAML reads yes, no, on, off, true and false as true or false)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"the date {value.isoformat()}"
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return f"a list {value!r}"
    if isinstance(value, dict):
        return "a mapping (a 'key: value' part)"
    return repr(value)


def _quote_hint(value: Any) -> str:
    scalar = isinstance(value, (bool, int, float, datetime.date)) and value is not None
    return "; put it in quotes to keep it as text" if scalar else ""
