"""What an order question is about, and the order number and proof of identity in a message.

The intent comes from the FAQ match, not from a keyword list per language: the merchant names
which FAQ entries are order questions (`[orders.intents]`), and the multilingual search already
finds "我的快递到哪了" and "wo bleibt mein Paket" for the tracking entry. A message that carries an
order number in the shop's format is an order question by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from commerce.orders import Order, normalise_number


class OrderIntent(StrEnum):
    STATUS = "status"  # where is it, when will it arrive
    NOT_ARRIVED = "not_arrived"  # late, or marked delivered but not received
    CANCEL = "cancel"
    CHANGE_ADDRESS = "change_address"
    RETURN_STATUS = "return_status"


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(r"\+?\d[\d\s().-]{5,}\d")


_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"
CJK_EDGE = re.compile(rf"(?<=[{_CJK}])(?=[#A-Za-z0-9])|(?<=[A-Za-z0-9])(?=[{_CJK}])")


@dataclass(frozen=True)
class OrderNumbers:
    """Finds order numbers in the shop's format (`[orders] number_pattern`, a regular expression)."""

    pattern: re.Pattern[str]

    @classmethod
    def of(cls, pattern: str) -> OrderNumbers:
        return cls(re.compile(pattern, re.IGNORECASE))

    def find(self, text: str) -> str | None:
        """The first order number in the text, upper-cased and without a leading "#".

        Emails are taken out first, and a match lying inside a longer phone number is not one
        ("0151 2345678" holds "0151" for a pattern of 4+ digits). Chinese and Japanese run numbers
        straight into the words around them ("订单号100123，邮箱…"), and to a pattern's \\b a CJK
        character is a letter like any other: a space is put between them first, and full-width
        digits and "＃" are read as ASCII ones.
        """
        text = CJK_EDGE.sub(" ", unicodedata.normalize("NFKC", text))
        text = EMAIL.sub(lambda m: " " * len(m.group(0)), text)
        phones = [m.span() for m in PHONE.finditer(text)]
        for match in self.pattern.finditer(text):
            start, end = match.span()
            if any(a <= start and end <= b and (b - a) > (end - start) for a, b in phones):
                continue
            return normalise_number(match.group(0))
        return None


def proof_matches(order: Order, text: str, accepted: tuple[str, ...]) -> str | None:
    """Which of the order's contact details the message gives ("email", "phone", "postcode"), if any.

    Emails compare case-insensitively; phones by their last 8 digits (country codes and
    spacing vary: "+49 151 2345678" and "0151 2345678"); postcodes without spaces or case.
    """
    if "email" in accepted and order.email:
        if any(found.casefold() == order.email.casefold() for found in EMAIL.findall(text)):
            return "email"
    if "phone" in accepted and _digits(order.phone):
        want = _digits(order.phone)[-8:]
        if len(want) >= 7 and any(_digits(found)[-8:] == want for found in PHONE.findall(EMAIL.sub(" ", text))):
            return "phone"
    if "postcode" in accepted and order.postcode:
        want = re.sub(r"\s+", "", order.postcode).casefold()
        words = re.findall(r"[A-Za-z0-9]+", text.casefold())
        joined = {*words, *(a + b for a, b in zip(words, words[1:]))}
        if len(want) >= 3 and want in joined:
            return "postcode"
    return None


def signed_customer(customer_id: str | None, customer_hash: str | None, secret: str) -> str | None:
    """The shop's customer id when the shop signed it (hex HMAC-SHA256 of the id with the shared secret),
    else None: an id anyone could type proves nothing."""
    if not (customer_id and customer_hash and secret):
        return None
    expected = hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest().encode()
    given = customer_hash.strip().lower().encode("utf-8", "surrogateescape")  # bytes: a non-ASCII str would raise
    return customer_id if hmac.compare_digest(expected, given) else None


def same_customer(order: Order, customer_id: str) -> bool:
    """Whether the order is this customer's; Shopify's "gid://shopify/Customer/7001" matches "7001"."""
    return bool(order.customer_id) and order.customer_id.rsplit("/", 1)[-1] == customer_id.rsplit("/", 1)[-1]


def gives_proof(text: str) -> bool:
    """The message offers an email or phone number (what the shopper sends when asked for proof)."""
    return bool(EMAIL.search(text) or PHONE.search(text))


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)
