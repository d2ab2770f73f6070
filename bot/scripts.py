"""What a character says, by script: why a word count means something else in Chinese than in English.

Two different facts, kept apart on purpose: Chinese, Japanese and Korean characters each carry
about half a word (`dense_characters`), while only Thai, Japanese and Chinese are written without
spaces between words (`SPACELESS`: a phrase there matches as a substring, not as whole words).
Korean is dense but spaced.
"""

from __future__ import annotations

import re

DENSE = re.compile(r"[\u3040-\u9fff\uac00-\ud7af]")  # kana, CJK ideographs, Hangul syllables
SPACELESS = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")  # Thai, kana, CJK ideographs


def dense_characters(text: str) -> int:
    """How many characters of `text` carry about half a word each."""
    return len(DENSE.findall(text))
