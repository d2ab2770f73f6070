"""Personal data out of prompts and logs: mask it before a model sees a message, restore it after.

Emails, phone numbers, card-like numbers and street addresses become
placeholders such as `[EMAIL_1]`. A reply gets the original back only for placeholders
the shopper's own message produced, so a model can repeat the shopper's email to them
but can never surface anybody else's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# An address's letters are any alphabet's but not Chinese, Japanese, Korean or Thai ones: those texts
# run straight into an address ("请发邮件至help@shop.example说明"), which ends where they begin.
_ADDRESS_LETTER = r"[^\W\u0e00-\u0e7f\u3040-\u9fff\uac00-\ud7af\uf900-\ufaff]"
EMAIL = re.compile(rf"(?:{_ADDRESS_LETTER}|[.+-])+@(?:{_ADDRESS_LETTER}|-)+(?:\.(?:{_ADDRESS_LETTER}|-)+)+")
# Boundaries are ASCII letters and digits: Chinese text runs straight into numbers ("电话13812345678").
# A card: 13-19 digits, optionally grouped by spaces or dashes.
CARD = re.compile(r"(?<![A-Za-z0-9])(?:\d[ -]?){12,18}\d(?![A-Za-z0-9])")
# A phone: "+" and 8-15 digits, or 9-15 digits written with separators/brackets, or 10-15 in a row.
PHONE = re.compile(
    r"(?<![A-Za-z0-9+])(?:\+\d[\d ()./-]{6,18}\d|\(?\d{2,4}\)?[ ./-]\d{2,4}[ ./-]\d{2,5}(?:[ ./-]\d{2,5})?|\d{10,15})"
    r"(?![A-Za-z0-9])"
)
DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
STREET_WORDS = (r"street|st\.?|road|rd\.?|avenue|ave\.?|boulevard|blvd\.?|lane|ln\.?|drive|dr\.?|way|court|ct\.?|"
                r"place|pl\.?|square|sq\.?|straße|strasse|str\.?|weg|platz|gasse|allee|rue|avenue|calle|via|viale|"
                r"rua|avenida|laan|straat|gracht")
ADDRESS = re.compile(
    rf"(?i)(?<!\w)(?:\d{{1,5}}[a-z]?,?\s+(?:[\w'-]+\s+){{0,3}}(?:{STREET_WORDS})(?!\w)"
    rf"|(?:[\w'-]+\s+){{0,2}}(?:{STREET_WORDS})\s+\d{{1,5}}[a-z]?(?!\w))"
    r"|(?<!\w)[\w-]*(?:straße|strasse|str\.|weg|platz|gasse|allee)\s+\d{1,5}[a-z]?(?!\w)"
    r"|[\u4e00-\u9fff]{1,12}(?:路|街|道|巷|大道)\d{1,5}号(?:[\u4e00-\u9fff\d]{0,10}(?:室|楼|栋|单元))?"
)


@dataclass
class Masked:
    """A text with personal data replaced, and what each placeholder stands for."""

    text: str
    values: dict[str, str] = field(default_factory=dict)


class PiiMasker:
    """Numbers placeholders per kind across the texts of one turn (`[EMAIL_1]`, `[PHONE_2]`…)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._by_value: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def _placeholder(self, kind: str, value: str) -> str:
        if value in self._by_value:
            return self._by_value[value]
        self._counts[kind] = self._counts.get(kind, 0) + 1
        placeholder = f"[{kind}_{self._counts[kind]}]"
        self._values[placeholder] = value
        self._by_value[value] = placeholder
        return placeholder

    def mask(self, text: str) -> Masked:
        found: dict[str, str] = {}

        def replace(kind: str):
            def swap(match: re.Match[str]) -> str:
                value = match.group(0)
                if kind == "PHONE" and DATE.fullmatch(value):
                    return value  # "2024-05-01" is a date the answer may need
                placeholder = self._placeholder(kind, value)
                found[placeholder] = value
                return placeholder
            return swap

        masked = EMAIL.sub(replace("EMAIL"), text)
        masked = CARD.sub(replace("CARD"), masked)
        masked = PHONE.sub(replace("PHONE"), masked)
        masked = ADDRESS.sub(replace("ADDRESS"), masked)
        return Masked(masked, found)


def mask_pii(text: str) -> Masked:
    return PiiMasker().mask(text)


def restore(text: str, values: dict[str, str]) -> str:
    """Put back the originals of `values`' placeholders; any other placeholder stays masked."""
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text
