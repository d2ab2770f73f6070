"""What kefu accepts as JSON from the outside: one parser for every channel's request bodies.

Pure functions on bytes and strings (no I/O), so adapters may use them like the
core's data types: the webhook, the agent API, the console and the Telegram
webhook refuse the same hostile bodies with the same reasons.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32  # kefu's own bodies nest 3 levels; far deeper is an attack on the parser, not a message


class InvalidJson(ValueError):
    """A request body that is not JSON kefu will take; `error` is the machine-readable code."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error, self.detail = error, detail


LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # after parsing, a valid pair is one character: these are alone


def loads_json(body: bytes | str, *, repair_text: bool = False) -> Any:
    """Parse a request body, refusing what would break later stages instead of failing there.

    Refused: invalid JSON or UTF-8, nesting deeper than MAX_JSON_DEPTH (Python's parser
    recurses, so a thousand brackets raise RecursionError, a 500 before this check), and
    lone surrogates such as "\\ud800" (valid JSON, but no UTF-8 encoding exists, so SQLite
    could never store the message and a retrying client would fail forever).

    `repair_text` replaces lone surrogates with U+FFFD instead, for a sender whose batch holds
    several people's messages (WhatsApp's): refusing it would refuse all of them, again at each retry.
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise InvalidJson("invalid_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJson("invalid_json", f"the body is not valid JSON: {exc}") from None
    if repair_text:
        check_json_value(data, text=False)
        repaired = [0]
        data = _repaired(data, repaired)
        if repaired[0]:
            log.warning("json.lone_surrogates_replaced strings=%d (shown as U+FFFD)", repaired[0])
    check_json_value(data)
    return data


def _repaired(value: Any, count: list[int]) -> Any:
    """`value` with every string's lone surrogates replaced; recursion is safe, the depth is checked."""
    if isinstance(value, str):
        fixed = LONE_SURROGATE.sub("\ufffd", value)
        count[0] += fixed != value
        return fixed
    if isinstance(value, list):
        return [_repaired(item, count) for item in value]
    if isinstance(value, dict):
        return {_repaired(key, count): _repaired(item, count) for key, item in value.items()}
    return value


def check_json_value(data: Any, *, text: bool = True) -> None:
    """Walk a parsed body without recursion: depth bound and (unless `text` is False) every string, keys too,
    encodable as UTF-8."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InvalidJson("invalid_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if text and isinstance(key, str):
                    check_text(key, "a field name")
                pending.append((item, depth + 1))
        elif text and isinstance(value, str):
            check_text(value, "a string")


def check_text(value: str, what: str) -> None:
    """Refuse text with lone surrogates (it cannot be stored or sent on as UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidJson("invalid_text", f"{what} holds a lone surrogate (U+{ord(value[exc.start]):04X} at "
                          f"character {exc.start}); send text as valid Unicode") from None
