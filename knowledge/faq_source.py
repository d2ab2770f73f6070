"""Where things are in FAQ files and what is wrong there: locations, parts read, problems found.

Shared by the format readers (knowledge/faq.py, knowledge/faq_yaml.py) so each can note a
mistake and go on; the loader raises all of them at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import FaqError


@dataclass(frozen=True)
class SourceLocation:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class FaqPart:
    """An entry's variant as read from one place, before merging."""

    id: str
    language: str
    questions: list[str]
    answer: str
    tags: list[str]
    source: SourceLocation
    handoff: bool = False
    extends: bool = False  # more phrasings for an entry defined elsewhere (`extends: id`), no answer of its own
    reviewed: bool = True  # an extension counts only once the merchant marked it reviewed


@dataclass(frozen=True)
class FaqProblem:
    """One mistake in an FAQ file: where it is and what to fix."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


class FaqProblems(FaqError):
    """Every mistake found in one read of the FAQ folder, in file and line order.

    `path`, `line` and `problem` are the first mistake's, so a single one reads exactly
    like any FaqError; `problems` holds them all.
    """

    def __init__(self, directory: Path, problems: Sequence[FaqProblem]):
        ordered = sorted(problems, key=lambda p: (p.path, p.line or 0))
        super().__init__(ordered[0].path, ordered[0].line, ordered[0].message)
        self.directory = directory
        self.problems = tuple(ordered)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        files = len({p.path for p in self.problems})
        head = f"{len(self.problems)} problems in {files} FAQ file(s) under {self.directory}:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class ProblemList:
    """Collects mistakes while reading: a reader notes one and goes on with the next field, row or entry."""

    def __init__(self) -> None:
        self.found: list[FaqProblem] = []

    def add(self, path: Path | str, line: int | None, message: str) -> None:
        self.found.append(FaqProblem(str(path), line, message))


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """A hint like " (did you mean 'answer'?)" for a near miss such as 'anwser'; empty when nothing is close."""
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
