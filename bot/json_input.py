"""What kefu accepts as JSON from the outside: one parser for every channel's request bodies.

Pure functions on bytes and strings (no I/O), so adapters may use them like the
core's data types: the webhook, the agent API, the console and the Telegram
webhook refuse the same hostile bodies with the same reasons.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 32  # kefu's own bodies nest 3 levels; far deeper is an attack on the parser, not a message


class InvalidJson(ValueError):
    """A request body that is not JSON kefu will take; `error` is the machine-readable code."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error, self.detail = error, detail


def loads_json(body: bytes | str) -> Any:
    """Parse a request body, refusing what would break later stages instead of failing there.

    Refused: invalid JSON or UTF-8, nesting deeper than MAX_JSON_DEPTH (Python's parser
    recurses, so a thousand brackets raise RecursionError, a 500 before this check), and
    lone surrogates such as "\\ud800" (valid JSON, but no UTF-8 encoding exists, so SQLite
    could never store the message and a retrying client would fail forever).
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise InvalidJson("invalid_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJson("invalid_json", f"the body is not valid JSON: {exc}") from None
    check_json_value(data)
    return data


def check_json_value(data: Any) -> None:
    """Walk a parsed body without recursion: depth bound and every string (keys too) encodable as UTF-8."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InvalidJson("invalid_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    check_text(key, "a field name")
                pending.append((item, depth + 1))
        elif isinstance(value, str):
            check_text(value, "a string")


def check_text(value: str, what: str) -> None:
    """Refuse text with lone surrogates (it cannot be stored or sent on as UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidJson("invalid_text", f"{what} holds a lone surrogate (U+{ord(value[exc.start]):04X} at "
                          f"character {exc.start}); send text as valid Unicode") from None
