"""Reads a merchant's exported shopper messages (CSV) for `kefu eval replay`.

Exports come from many helpdesks and spreadsheets: UTF-8 with or without a BOM, commas,
semicolons or tabs. Everything that can go wrong is reported with the file, the line (as an
editor counts it) and the column, because the merchant fixes the file, not the code.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.errors import KefuError

DELIMITERS = (",", ";", "\t")
TEXT_COLUMNS = ("text", "message", "body")


class _CsvReader(Protocol):
    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...


class ReplayDataError(KefuError):
    """The messages file cannot be read: missing, empty, not UTF-8, or without the named column."""


@dataclass(frozen=True)
class ReplayRow:
    """One shopper message: `row` counts records as a spreadsheet does (the header is row 1)."""

    row: int
    line: int  # the line it starts on, for a merchant's editor
    text: str
    conversation: str | None  # None: the row is a conversation of its own


@dataclass(frozen=True)
class ReplayInput:
    """The messages to replay and what was left out, so the report can say so."""

    path: Path
    rows: tuple[ReplayRow, ...]
    text_column: str
    conversation_column: str | None
    delimiter: str
    empty_rows: int  # rows whose text was empty or blank: skipped
    limited: bool  # --limit stopped reading before the end of the file


def read_messages(path: Path, *, text_col: str | None = None, conversation_col: str | None = None,
                  limit: int | None = None) -> ReplayInput:
    """Blocking: the file's non-empty messages in file order (at most `limit`)."""
    if limit is not None and limit < 1:
        raise ReplayDataError(f"--limit must be at least 1, not {limit}")
    text = _decode(path)
    if not text.strip():
        raise ReplayDataError(f"{path}: the file is empty; expected a header row and one shopper message per row")
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
        text_index = _column(path, header, text_col, "--text-col")
        conversation_index = _column(path, header, conversation_col, "--conversation-col") \
            if conversation_col is not None else None
        rows, empty, limited = _rows(path, reader, header, text_index, conversation_index, limit)
    except csv.Error as exc:
        raise ReplayDataError(f"{path}:{reader.line_num}: not readable as CSV: {exc}") from exc
    if not rows:
        raise ReplayDataError(f"{path}: no shopper messages in column '{header[text_index]}'"
                              + (f" ({empty} empty rows skipped)" if empty else ""))
    return ReplayInput(path=path, rows=tuple(rows), text_column=header[text_index],
                       conversation_column=header[conversation_index] if conversation_index is not None else None,
                       delimiter=delimiter, empty_rows=empty, limited=limited)


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReplayDataError(f"{path}: cannot read the messages file: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ReplayDataError(f"{path}:{line}:{column}: not UTF-8 (byte 0x{data[exc.start]:02x}); "
                              "save the file as UTF-8 (in Excel: CSV UTF-8)") from exc


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header row into the most columns (commas when none splits it).

    Only the header is read (quotes respected), because shopper text is full of commas.
    """
    best, most = ",", 1
    for delimiter in DELIMITERS:
        fields = len(next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), []))
        if fields > most:
            best, most = delimiter, fields
    return best


def _column(path: Path, header: list[str], wanted: str | None, option: str) -> int:
    """The index of a column given by name or 1-based number; by default text/message/body or the only one."""
    columns = ", ".join(f"'{name}'" for name in header)
    if wanted is None:
        lowered = [name.casefold() for name in header]
        for name in TEXT_COLUMNS:
            if name in lowered:
                return lowered.index(name)
        if len(header) == 1:
            return 0
        raise ReplayDataError(f"{path}:1: no column named {', '.join(TEXT_COLUMNS)}; name the shoppers' text "
                              f"with {option} (a name or a number from 1); columns: {columns}")
    if wanted in header:
        return header.index(wanted)
    if wanted.isdigit():
        number = int(wanted)
        if 1 <= number <= len(header):
            return number - 1
        raise ReplayDataError(f"{path}:1: {option} {number}: the header has {len(header)} column(s); "
                              f"columns: {columns}")
    raise ReplayDataError(f"{path}:1: no column '{wanted}' ({option}); columns: {columns}")


def _rows(path: Path, reader: _CsvReader, header: list[str], text_index: int, conversation_index: int | None,
          limit: int | None) -> tuple[list[ReplayRow], int, bool]:
    rows: list[ReplayRow] = []
    empty = 0
    line = reader.line_num + 1
    for record, fields in enumerate(reader, start=2):
        start, line = line, reader.line_num + 1
        if not any(field.strip() for field in fields):
            empty += 1
            continue
        for index in (i for i in (text_index, conversation_index) if i is not None):
            if index >= len(fields):
                raise ReplayDataError(f"{path}:{start}: row {record} has {len(fields)} field(s), so no column "
                                      f"'{header[index]}' (column {index + 1}); is a delimiter missing?")
        text = fields[text_index].strip()
        if not text:
            empty += 1
            continue
        if limit is not None and len(rows) == limit:
            return rows, empty, True
        conversation = fields[conversation_index].strip() if conversation_index is not None else ""
        rows.append(ReplayRow(row=record, line=start, text=text, conversation=conversation or None))
    return rows, empty, False
