"""The order stage: "where is my order?" answered from the shop's system, after the shopper proves it is theirs.

It runs after retrieval and sentiment, before the handoff stage. It takes the turn when the
message carries an order number in the shop's format, or when the conversation is waiting for
the proof it asked for and the message gives an email or phone number. A confident FAQ match the
merchant marked as an order question (`[orders.intents]`) without a number is answered from the
FAQ as before, with the offer to look the order up after it; with a number but no proof yet, the
FAQ's answer goes out with the request for the email or phone after it. Anything else goes on.

Identity before data: an order is shown only after the message gives the order's email or
phone (or postcode, when the merchant allows it), or when the shop's site sent the logged-in
customer's id signed with the shared secret and the order is that customer's. A wrong detail and an unknown number read
the same to the shopper, failures are limited per conversation and per order number (no
enumeration), and every lookup is recorded without the order's contact data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.config import OrdersConfig
from bot.handoff import HandoffDecision, HandoffReason
from bot.messages import HandoffState, ReplyKind, utc_now
from bot.orders.replies import OrderLines, order_lines
from bot.orders.rules import order_action
from bot.orders.store import Lookup, OrderLookups, OrderSession
from bot.llm import GenerationError
from bot.responder import Draft
from bot.responder.record import RecordFacts, RecordWriter
from bot.scripts import dense_characters
from bot.texts import Texts
from commerce.orders import Order, OrderSource, ShopUnavailable
from commerce.recognize import OrderIntent, OrderNumbers, gives_proof, proof_matches, same_customer, signed_customer
from knowledge.search import is_confident

if TYPE_CHECKING:
    from bot.pipeline import Turn

log = logging.getLogger(__name__)

EARLIER = "earlier"  # the proof kind of an order verified before in the same conversation
ASKED_PROOF_MINUTES = 30.0  # how long a "please give your email" waits for the answer


def _words_besides(text: str, number: str) -> int:
    """Words (or CJK characters, two to a word) left in the message once the order number is taken out."""
    rest = re.sub(re.escape(number), " ", text, flags=re.IGNORECASE)
    return len(re.findall(r"[^\W\d_]{2,}", rest)) + dense_characters(rest) // 2


class OrderStage:
    name = "orders"

    def __init__(self, source: OrderSource, lookups: OrderLookups, texts: Texts, config: OrdersConfig, *,
                 answer_threshold: float, ambiguity_ratio: float, writer: RecordWriter | None = None,
                 clock: Callable[[], datetime] = utc_now):
        self._source = source
        self._lookups = lookups
        self._texts = texts
        self._config = config
        self._numbers = OrderNumbers.of(config.number_pattern)
        self._faq_intents = {faq_id: OrderIntent(intent) for intent, ids in config.intents.items() for faq_id in ids}
        self._answer_threshold = answer_threshold
        self._ambiguity_ratio = ambiguity_ratio
        self._writer = writer  # `[orders] replies = "model"`: the model answers from the order's lines
        self._clock = clock

    async def run(self, turn: Turn) -> None:
        if turn.conversation.handoff in (HandoffState.WAITING_AGENT, HandoffState.AGENT):
            return  # a person handles the conversation: the handoff stage forwards the message
        key = turn.conversation.key
        text = turn.inbound.text
        number = self._numbers.find(text)
        # A message that is little more than the number answers "what's your order number?": the
        # question it answers was asked before (the FAQ's best match for "LL-100004" says nothing).
        intent = self._intent(turn) if number is None or _words_besides(text, number) > 2 else None
        session = await self._lookups.session(key)
        awaiting = self._awaiting_proof(session)
        if number is None and intent is None and not (awaiting and gives_proof(text)):
            return
        number = number or (session.order_number if awaiting or intent else None)
        intent = intent or OrderIntent(session.intent or OrderIntent.STATUS.value)
        language = turn.reply_language or ""
        turn.trace["order"] = {"intent": intent.value, "number": number}
        if number is None:  # the FAQ's answer goes out as usual, with the offer to look the order up after it
            await self._lookups.save_session(key, OrderSession(intent=intent.value))
            turn.postscript, _ = self._texts.get("order_ask_number", language, example=self._config.number_example)
            return
        if self._verified(session, number):
            await self._show(turn, number, intent, session, proof=EARLIER)
            return
        failed_here, failed_order = await self._lookups.failed_proofs(
            key, number, timedelta(minutes=self._config.failure_window_minutes))
        if (failed_here >= self._config.max_failed_per_conversation
                or failed_order >= self._config.max_failed_per_order):
            await self._record(turn, number, "rate_limited")
            log.warning("orders.rate_limited conversation=%s order=%s failed_here=%d failed_for_order=%d",
                        key, number, failed_here, failed_order)
            self._reply(turn, "order_too_many_tries", language,
                        why=f"order {number}: too many details that did not match ({failed_here} here, "
                            f"{failed_order} for the order)")
            return
        customer = signed_customer(turn.inbound.customer_id, turn.inbound.customer_hash, self._config.customer_secret)
        if turn.inbound.customer_id and customer is None:
            log.warning("orders.customer_hash_invalid conversation=%s: the customer id's signature does not match "
                        "(check [orders] customer_secret); asking for the email instead", key)
        if customer is not None:
            found = await self._find(turn, number, language)
            if found is False:
                return
            if isinstance(found, Order) and same_customer(found, customer):
                await self._show(turn, number, intent, session, proof="customer", order=found)
                return
        if not gives_proof(text):
            await self._lookups.save_session(key, OrderSession(order_number=number, intent=intent.value))
            await self._record(turn, number, "asked_proof")
            if self._faq_answers(turn):  # "LL-739201 shipped monday, how do I see where it is": the FAQ's
                # answer first, then the request for proof (nothing about the order is said yet)
                turn.postscript, _ = self._texts.get("order_ask_proof", language, order=number)
                return
            self._reply(turn, "order_ask_proof", language, why=f"order {number}: asked for the order's email or phone")
            return
        order = await self._find(turn, number, language)
        if order is False:
            return
        proof = proof_matches(order, text, self._config.proof) if isinstance(order, Order) else None
        if proof is None:
            await self._record(turn, number, "no_match" if order else "not_found")
            await self._lookups.save_session(key, OrderSession(order_number=number, intent=intent.value))
            self._reply(turn, "order_no_match", language,
                        why=f"order {number}: the details given do not match an order")
            return
        await self._show(turn, number, intent, session, proof=proof, order=order)

    def _faq_answers(self, turn: Turn) -> bool:
        return is_confident(turn.hits, self._answer_threshold, self._ambiguity_ratio)

    def _intent(self, turn: Turn) -> OrderIntent | None:
        """The order question the confident FAQ match stands for, if the merchant marked it as one."""
        if not self._faq_intents or not self._faq_answers(turn):
            return None
        return self._faq_intents.get(turn.hits[0].entry.id)

    def _awaiting_proof(self, session: OrderSession) -> bool:
        return bool(session.order_number and session.updated_at
                    and self._clock() - session.updated_at <= timedelta(minutes=ASKED_PROOF_MINUTES))

    def _verified(self, session: OrderSession, number: str) -> bool:
        return bool(session.verified_number == number and session.verified_at
                    and self._clock() - session.verified_at <= timedelta(minutes=self._config.verified_minutes))

    async def _find(self, turn: Turn, number: str, language: str) -> Order | None | bool:
        """The order (None when the shop has none: told as a mismatch); False when the shop cannot answer."""
        try:
            return await self._source.find(number)
        except ShopUnavailable as exc:
            await self._record(turn, number, "unavailable")
            log.warning("orders.unavailable source=%s order=%s reason=%s", exc.source, number, exc.reason)
            self._reply(turn, "order_unavailable", language,
                        why=f"order {number}: the shop's system did not answer ({exc.reason})")
            return False

    async def _show(self, turn: Turn, number: str, intent: OrderIntent, session: OrderSession, *, proof: str,
                    order: Order | None | bool = None) -> None:
        language = turn.reply_language or ""
        if order is None:
            order = await self._find(turn, number, language)
            if order is False:
                return
            if order is None:  # verified before, gone now (deleted in the shop)
                self._reply(turn, "order_no_match", language, why=f"order {number}: no longer found")
                return
        assert isinstance(order, Order)
        now = self._clock()
        await self._lookups.save_session(turn.conversation.key, OrderSession(
            order_number=number, intent=intent.value, verified_number=number,
            verified_at=session.verified_at if proof == EARLIER else now))
        summary = order.summary()
        await self._record(turn, number, "verified", proof=proof, summary=summary)
        lines = order_lines(order, self._texts, language)
        written_in = lines.language
        turn.trace["order"] = {"intent": intent.value, "number": order.number, "proof": proof, "order": summary}
        action = order_action(order, intent, self._config, now)
        shown = "shown earlier in this conversation" if proof == EARLIER else f"shown by {proof}"
        why = f"order {order.number} from {self._source.name}, identity {shown}"
        if action is None:
            text, trace, how = await self._written(turn, order, lines, asked_before=self._awaiting_proof(session))
            if trace:
                turn.trace["order"]["reply"] = trace
            turn.draft = Draft(text=text, language=written_in, kind=ReplyKind.ANSWER,
                               why=f"{why}; {how}" if how else why)
        else:
            notice, _ = self._texts.get(action.text_key, written_in, order=order.number, **action.values)
            turn.handoff = HandoffDecision(HandoffReason.ORDER, action.detail)
            turn.trace["handoff"] = {"reason": HandoffReason.ORDER.value, "detail": action.detail}
            turn.draft = Draft(text=f"{lines.text}\n\n{notice}", language=written_in, kind=ReplyKind.HANDOFF,
                               why=f"{why}; handed to a person: {action.detail}")
        turn.done = True

    async def _written(self, turn: Turn, order: Order, lines: OrderLines, *, asked_before: bool
                       ) -> tuple[str, dict | None, str]:
        """(text, trace, how it was made): the model's answer to the message when configured and it passes
        every check, with the parcels' lines and links it did not give; else the template reply. A message
        answering "please give your email" is answered with the question it followed."""
        if self._writer is None:
            return lines.text, None, ""
        question = turn.inbound.text
        if asked_before:
            earlier = await self._lookups.previous_question(turn.conversation.key, turn.inbound.id)
            question = f"{earlier}\n{question}" if earlier else question
        facts = RecordFacts(subject=f"order {order.number}",
                            facts=(lines.status, *(p.line for p in lines.parcels), *([lines.items] if lines.items
                                                                                       else [])),
                            contrary=lines.contrary)
        try:
            written = await self._writer.write(question, lines.language, facts)
        except GenerationError as exc:
            log.info("orders.template_reply backend=%s reason=%s", self._writer.name, exc.reason)
            return (lines.text, {"backend": self._writer.name, "used": "template", "fallback": exc.reason},
                    f"the shop's templates (the {self._writer.name} model's reply was not used: {exc.reason})")
        trace = {**written.trace, "used": "llm" if written.text is not None else "template"}
        if written.text is None:
            trace["fallback"] = written.refused
            log.info("orders.template_reply backend=%s reason=%s", self._writer.name, written.refused)
            return (lines.text, trace,
                    f"the shop's templates (the {self._writer.name} model's reply was not used: {written.refused})")
        log.info("orders.written backend=%s latency_ms=%.0f", self._writer.name, trace.get("latency_ms", 0.0))
        text = "\n".join([written.text, *lines.tracking(written.text)])
        return (text, trace, f"written by the {self._writer.name} model from the order's lines, every number and "
                             f"claim checked against them")

    def _reply(self, turn: Turn, key: str, language: str, *, why: str) -> None:
        text, written_in = self._texts.get(key, language, order=turn.trace.get("order", {}).get("number") or "",
                                           example=self._config.number_example)
        turn.draft = Draft(text=text, language=written_in, kind=ReplyKind.ANSWER, why=why)
        turn.done = True

    async def _record(self, turn: Turn, number: str, result: str, *, proof: str | None = None,
                      summary: dict | None = None) -> None:
        await self._lookups.record(Lookup(conversation_key=turn.conversation.key, message_id=turn.inbound.id,
                                          order_number=number, source=self._source.name, result=result, proof=proof,
                                          summary=summary))
        log.info("orders.lookup conversation=%s order=%s result=%s proof=%s", turn.conversation.key, number,
                 result, proof or "-")
