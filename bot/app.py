"""Builds kefu's services once from config and owns their lifecycle.

Start order: store → FAQ search → pipeline → delivery workers → channels →
recovery of unanswered messages. Stop runs in reverse: channels stop accepting,
in-flight turns finish, workers stop, the database closes last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from bot.admission import Admission
from bot.handoff.agents import Desk, HandoffNotices, policy_from_config
from bot.commands import CommandStage
from bot.changes import ChangeFeed
from bot.concurrency import run_blocking
from bot.config import Config
from bot.console_access import ConsoleAccess
from bot.cues import CueDetector
from bot.delivery import DeliveryWorker
from bot.cluster import Leases, new_worker_id
from bot.cluster.broadcast import Broadcast
from bot.dispatcher import TurnDispatcher
from bot.errors import AdapterError, ConfigError
from bot.handoff.store import HandoffStore
from bot.http import HttpServer
from bot.language.detector import LanguageDetector, known_languages
from bot.metrics import Metrics
from bot.orders.connect import order_source
from bot.orders.stage import OrderStage
from bot.orders.store import OrderLookups
from bot.products.service import CatalogService, catalog_source
from bot.products.stage import ProductStage
from bot.messages import (
    Channel,
    FaqSuggestion,
    HandleResult,
    HandoffState,
    HandoffSummary,
    HandoffView,
    Message,
    Receipt,
    Reply,
    Transcript,
    conversation_key,
)
from bot.handoff.notifier import HttpCallbackNotifier, NotificationWorker
from bot.pipeline import (EncodeStage, HandoffStage, LanguageStage, Pipeline, ResponderStage, RetrievalStage,
                          SentimentStage)
from bot.responder.grounding import SemanticGrounder
from bot.insights import InsightsService, clusters_csv
from bot.privacy import PrivacyService, Subject
from bot.privacy.masking import AtRestMasker
from bot.llm import GenerationBackend, build_generator
from bot.responder.llm import GroundedResponder
from bot.responder.record import RecordWriter
from bot.responder import ExtractiveResponder, Responder
from bot.sentiment.analyzer import SentimentAnalyzer, build_backend
from bot.warmup import warm_up
from bot.store import Store
from bot.store.engine import POSTGRESQL
from bot.texts import Texts
from bot.responder.translation import AnswerTranslator
from commerce.guard import GuardedOrders
from commerce.products import CatalogSource
from commerce.sources.catalog_file import FileCatalog
from knowledge.encoders import Encoder
from knowledge.faq import FaqBase
from knowledge.service import KnowledgeBase

CHANGES = "changes"  # the broadcast topic of committed writes (the console's change feed)
LEADER_PREFIX = "leader:"  # leases naming the one worker doing a job for all (Telegram's polling)

log = logging.getLogger(__name__)

ADAPTER_GROUP = "kefu.adapters"
# Push channels that run in a process of their own: the terminal (`kefu chat`). Replies for them written
# here (an agent's, from the web console, Telegram or the agent API) are queued for delivery, and the
# terminal's own delivery worker shows them, live or at its next start.
DETACHED_PUSH_CHANNELS = ("console",)
AdapterFactory = Callable[..., Channel]


def load_adapter_factory(name: str) -> AdapterFactory:
    """Find a channel adapter by name among installed entry points (the core imports none)."""
    found = {ep.name: ep for ep in entry_points(group=ADAPTER_GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none (is kefu installed? run: pip install -e .)"
        raise AdapterError(f"no channel adapter named '{name}'; installed: {known}")
    return found[name].load()


def enabled_channels(config: Config) -> list[str]:
    """The server channels `kefu serve` starts."""
    channels = ["webhook"] if config.webhook.enabled else []
    channels += ["telegram"] if config.telegram.enabled else []
    channels += ["whatsapp"] if config.whatsapp.enabled else []
    channels += ["web_chat"] if config.web_chat.enabled else []
    return channels + (["web_console"] if config.console.enabled else [])


class KefuApp:
    """The core, as one object: adapters see it only through the `Gateway` methods."""

    def __init__(
        self,
        config: Config,
        *,
        channels: list[str],
        serve_http: bool,
        adapter_options: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.config = config
        self._channel_names = channels
        self._adapter_options = adapter_options or {}
        self.changes = ChangeFeed()
        self.store = Store(config.storage.location, on_commit=self._committed, pool_size=config.storage.pool_size)
        # Several workers share a PostgreSQL store: leases say which one works on what, LISTEN/NOTIFY tells
        # them all what happened. SQLite has one process.
        self.worker_id = new_worker_id()
        shared = self.store.dialect == POSTGRESQL
        self.leases = Leases(self.store, worker=self.worker_id) if shared else None
        self.broadcast = Broadcast(config.storage.url if shared else None, worker=self.worker_id)
        self.broadcast.subscribe(CHANGES, lambda _: self.changes.bump())
        self._console_access = ConsoleAccess(self.store, idle_seconds=config.console.session_hours * 3600,
                                             attempts=config.console.sign_in_attempts,
                                             window_seconds=config.console.sign_in_window_seconds)
        self._cluster_worker = self.worker_id if self.leases is not None else None  # outbox claims name it
        self.http = HttpServer(config.http, self.health) if serve_http else None
        # Metrics are scraped over HTTP: without a server (kefu chat) nobody would read them.
        self.metrics = Metrics(shop=config.shop.name) if config.metrics.enabled and self.http else None
        if self.metrics is not None and self.http is not None:
            self.metrics.mount(self.http.app, path=config.metrics.path, token=config.metrics.token,
                               stats=self.store.stats)
        self.knowledge = KnowledgeBase(config)
        self.records = HandoffStore(self.store)
        self.channels: dict[str, Channel] = {}
        self.desk: Desk | None = None
        self.insights: InsightsService | None = None
        self.privacy = PrivacyService(self.store, retain_days=config.privacy.retain_days,
                                      interval_seconds=config.privacy.purge_interval_minutes * 60)
        self._at_rest = AtRestMasker(mask_stored=config.privacy.mask_stored)  # applied before a message is stored
        self._dispatcher: TurnDispatcher | None = None
        self._workers: dict[str, DeliveryWorker] = {}
        self._notifiers: list[NotificationWorker] = []
        self._generator: GenerationBackend | None = None
        self._orders: GuardedOrders | None = None
        self.catalog: CatalogService | None = None
        self._started_channels: list[Channel] = []
        self._started_at = time.time()
        self._running = False
        self._stopped = False
        self.warming_up: asyncio.Task[float] | None = None  # loading lazy models after start (bot/warmup.py)
        self.analyzer: SentimentAnalyzer | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        texts = Texts.from_config(config)
        factories = {name: load_adapter_factory(name) for name in self._channel_names}
        await self.store.open()
        await self.broadcast.start()
        if self.leases is not None:
            self.leases.start()
            log.info("app.worker id=%s store=%s (leases: several workers may share it)", self.worker_id,
                     self.store.engine.location)
        await self.privacy.prepare()
        catalog = await self._connect_shop_system()
        await self.knowledge.start()
        faq = self.knowledge.current.faq
        for index, topic in enumerate(config.retrieval.top_topics):
            if topic not in faq.by_id:
                raise ConfigError(config.path, "retrieval.top_topics",
                                  f"item {index + 1} '{topic}' is not an FAQ id in {config.knowledge.faq_dir}")
        detector = await run_blocking(LanguageDetector.from_config, config)
        analyzer = self.analyzer = await run_blocking(self._sentiment_analyzer)
        responder, translator, order_writer = await self._responder(texts, detector)
        order_stages = self._order_stages(texts, faq, order_writer)
        product_stages = await self._product_stages(texts, catalog)
        encoder = self._sentence_encoder()
        self.insights = InsightsService(self.store, timezone=ZoneInfo(config.console.timezone),
                                        encode=self._through_queue(encoder),
                                        encoder_id=encoder.id if encoder else None,
                                        similarity=config.console.cluster_similarity,
                                        upset_below=config.sentiment.apology_below, languages=config.shop.languages)
        http_app = self.http.app if self.http else None
        for name, factory in factories.items():
            channel = factory(config=config, gateway=self, http_app=http_app, **self._adapter_options.get(name, {}))
            self.channels[name] = channel
            notifier = getattr(channel, "agent_notifier", None)  # e.g. Telegram's agents' group
            if notifier is not None:
                self._notifiers.append(NotificationWorker(records=self.records, notifier=notifier,
                                                          metrics=self.metrics, worker=self._cluster_worker))
        if config.handoff.notify is not None:
            self._notifiers.append(NotificationWorker(records=self.records,
                                                      notifier=HttpCallbackNotifier(config.handoff.notify),
                                                      metrics=self.metrics, worker=self._cluster_worker))
        if not self._notifiers and config.handoff.enabled and not config.console.enabled:
            log.warning("app.no_agent_notifier reason=handoff.notify.url is empty; handoffs appear only in the "
                        "agent API's queue")
        policy = policy_from_config(config.handoff)
        notices = HandoffNotices(store=self.store, texts=texts, policy=policy,
                                 targets=[w.name for w in self._notifiers], wake=self._wake_notifiers)
        pushes = self._pushes
        pipeline = Pipeline(
            store=self.store,
            records=self.records,
            notices=notices,
            stages=[
                CommandStage(store=self.store, texts=texts, languages=config.shop.languages,
                             default_language=config.shop.default_language, top_topics=config.retrieval.top_topics,
                             max_topics=config.retrieval.max_suggestions, faq=lambda: self.knowledge.current.faq,
                             records=self.records, notices=notices),
                EncodeStage(self.knowledge),
                LanguageStage(detector, self.store),
                RetrievalStage(self.knowledge, self.store, limit=max(5, config.retrieval.max_suggestions),
                               answer_threshold=config.retrieval.answer_threshold,
                               followup_max_words=config.search.followup_max_words),
                SentimentStage(analyzer, self.records),
                *order_stages,
                *product_stages,
                HandoffStage(policy, self.records, notices, answer_threshold=config.retrieval.answer_threshold,
                             ambiguity_ratio=config.retrieval.ambiguity_ratio,
                             asks_for_person=analyzer.cues.human_request),
                ResponderStage(responder, self.store, default_language=config.shop.default_language,
                               upset_below=config.sentiment.apology_below, translator=translator),
            ],
            pushes=pushes,
            texts=texts,
            apology_below=config.sentiment.apology_below,
            metrics=self.metrics,
            kept_vector=encoder.id if encoder else None,  # what the dashboard groups questions with
        )
        self.desk = Desk(store=self.store, records=self.records, notices=notices, pushes=pushes,
                         delivered=self._reply_stored, default_language=config.shop.default_language,
                         metrics=self.metrics, audit=self.privacy.record_action)
        self._dispatcher = TurnDispatcher(
            store=self.store,
            run_turn=pipeline.run,
            fail_turn=pipeline.fail_turn,
            on_reply=self._reply_stored,
            turn_timeout=config.pipeline.turn_timeout_seconds,
            metrics=self.metrics,
            admission=Admission(config.pipeline.max_queued_messages,
                                fallback_seconds=config.pipeline.turn_timeout_seconds),
            leases=self.leases,
        )
        for name, channel in self.channels.items():
            if channel.delivery is not None:
                worker = DeliveryWorker(store=self.store, channel=channel, policy=channel.delivery,
                                        metrics=self.metrics, worker=self._cluster_worker)
                self._workers[name] = worker
        for worker in self._workers.values():
            worker.start()
        for notifier in self._notifiers:
            await notifier.start()
        self.desk.start()
        self.privacy.start()
        for name, channel in self.channels.items():
            await channel.start()
            self._started_channels.append(channel)
            log.info("app.channel_started channel=%s", name)
        if self.http is not None:
            await self.http.start()
        self._running = True
        # Once listening: the warm-up would otherwise compete with the start for the two cores.
        self.warming_up = asyncio.create_task(run_blocking(warm_up, detector, analyzer), name="kefu-warm-up")
        await self._dispatcher.recover()
        self._dispatcher.start_sweeping()

    async def stop(self) -> None:
        """Stop whatever was started, in reverse order; safe to call twice or after a failed start."""
        if self._stopped:
            return
        self._stopped = True
        self._running = False
        if self.http is not None:
            await self.http.stop()
        for channel in reversed(self._started_channels):
            await channel.stop()
            log.info("app.channel_stopped channel=%s", channel.name)
        if self._dispatcher is not None:
            await self._dispatcher.close(self.config.pipeline.shutdown_grace_seconds)
        if self.desk is not None:
            await self.desk.stop()
        await self.privacy.stop()
        for notifier in self._notifiers:
            await notifier.stop()
        for worker in self._workers.values():
            await worker.stop()
        if self._generator is not None:
            await self._generator.stop()
        if self._orders is not None:
            await self._orders.close()
        if self.catalog is not None:
            await self.catalog.stop()
        finished = self.warming_up is None or self.warming_up.done()
        if self.analyzer is not None:  # stops the snownlp worker, also while the warm-up waits for it to load
            await run_blocking(self.analyzer.close)
        if self.warming_up is not None:  # a thread cannot be interrupted: let it finish (seconds at most)
            try:
                await self.warming_up
            except Exception as exc:  # a backend that fails here fails on the first message too, and says so there
                if finished:
                    log.warning("app.warm_up_failed (%s: %s)", type(exc).__name__, exc)
                else:
                    log.info("app.warm_up_cut_short (stopped while it ran: %s)", type(exc).__name__)
        await self.knowledge.stop()
        if self.leases is not None:
            await self.leases.stop()  # what this worker held goes to the others at once
        await self.broadcast.stop()
        await self.store.close()
        log.info("app.stopped")

    async def __aenter__(self) -> KefuApp:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def run_until(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set or a channel ends by itself (the console at end of input)."""
        waits = [asyncio.create_task(channel.wait()) for channel in self.channels.values()]
        waits.append(asyncio.create_task(stop.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def _order_stages(self, texts: Texts, faq: FaqBase, writer: RecordWriter | None) -> list[OrderStage]:
        """The order stage when the shop connected its system; the intents must name FAQ entries that exist."""
        config = self.config
        if not config.orders.enabled:
            return []
        for intent, ids in config.orders.intents.items():
            for index, faq_id in enumerate(ids):
                if faq_id not in faq.by_id:
                    raise ConfigError(config.path, f"orders.intents.{intent}",
                                      f"item {index + 1} '{faq_id}' is not an FAQ id in {config.knowledge.faq_dir}")
        assert self._orders is not None  # connected by _connect_shop_system
        return [OrderStage(self._orders, OrderLookups(self.store), texts, config.orders,
                           answer_threshold=config.retrieval.answer_threshold,
                           ambiguity_ratio=config.retrieval.ambiguity_ratio, writer=writer)]

    async def _connect_shop_system(self) -> CatalogSource | None:
        """The order source and the catalog's, before the FAQ is encoded: a missing or broken orders file, or
        a catalog file that cannot be read, stops the start at once, not after a minute of encoding."""
        config = self.config
        if config.orders.enabled:
            self._orders = order_source(config.orders)  # reads an orders file whole, now
        if not config.catalog.enabled:
            return None
        catalog = catalog_source(config)
        if isinstance(catalog, FileCatalog):
            await run_blocking(catalog.fingerprint)  # read whole once indexed, with the FAQ's encoders
        return catalog

    async def _product_stages(self, texts: Texts, catalog: CatalogSource | None) -> list[ProductStage]:
        """The product stage when the shop connected its catalog, indexed with the FAQ's encoders."""
        config = self.config
        if catalog is None:
            return []
        self.catalog = CatalogService(config, catalog, self.knowledge.encoders)
        await self.catalog.start()
        return [ProductStage(self.catalog, self.store, texts, config.catalog,
                             answer_threshold=config.retrieval.answer_threshold,
                             ambiguity_ratio=config.retrieval.ambiguity_ratio)]

    async def _responder(self, texts: Texts, detector: LanguageDetector
                         ) -> tuple[Responder, AnswerTranslator | None, RecordWriter | None]:
        """The extractive responder, or a generating one that falls back to it; with reply_in = "translate",
        the translator of answers for shoppers in languages the shop did not enable; with `[orders] replies =
        "model"`, the writer of order replies."""
        config = self.config
        extractive = ExtractiveResponder(texts=texts, retrieval=config.retrieval)
        generator = build_generator(config.responder)
        if generator is None:
            return extractive, None, None
        await generator.start()
        self._generator = generator
        encoder = self._sentence_encoder()
        if encoder is None:
            log.warning("app.semantic_grounding_off reason=no sentence encoder (search.encoders is empty); "
                        "only numbers, links and contacts are checked")
        encode = self._through_queue(encoder)
        grounder = (SemanticGrounder(encode, config.responder.min_similarity, encoder.id)
                    if encode and encoder is not None else None)

        translator = None
        if config.shop.reply_in == "translate":
            if grounder is None:
                log.warning("app.translation_off reason=no sentence encoder to check translations against the FAQ")
            else:
                translator = AnswerTranslator(generator=generator, grounder=grounder,
                                              detect_language=detector.language_of, shop=config.shop.name,
                                              deadline_seconds=config.responder.deadline_seconds)
        order_writer = (RecordWriter(generator=generator, grounder=grounder, detect_language=detector.language_of,
                                     shop=config.shop.name, tone=config.responder.tone,
                                     deadline_seconds=config.responder.deadline_seconds)
                        if config.orders.enabled and config.orders.replies == "model" else None)
        return GroundedResponder(generator=generator, fallback=extractive, config=config.responder,
                                 shop=config.shop.name, detect_language=detector.language_of,
                                 grounder=grounder), translator, order_writer

    def _through_queue(self, encoder: Encoder | None) -> Callable[[Sequence[str]], np.ndarray] | None:
        """The encoder as a blocking function for worker threads that goes through its batching queue."""
        if encoder is None or self.knowledge.encoders is None:
            return None
        return self.knowledge.encoders.through_queue(encoder.id)

    def _sentence_encoder(self) -> Encoder | None:
        """The search's multilingual sentence encoder when it has one (grounding and the dashboard share it)."""
        encoders = self.knowledge.encoders.encoders if self.knowledge.encoders else []
        return next((e for e in encoders if e.id.startswith("use")), encoders[0] if encoders else None)

    def _sentiment_analyzer(self) -> SentimentAnalyzer:
        """Blocking: the configured sentiment backend, sharing the search's sentence encoder."""
        config = self.config
        encoders = self.knowledge.encoders.encoders if self.knowledge.encoders else []
        backend = build_backend(config.sentiment.backend, languages=config.shop.languages, encoders=encoders,
                                transformers_model=config.sentiment.transformers_model,
                                threads=config.search.threads, cache_dir=config.storage.index_dir / "sentiment")
        # Requests for a person are heard in every language kefu knows, not only the enabled ones: a
        # shopper writing German to an en+zh shop who asks for a person must reach one.
        return SentimentAnalyzer(backend, CueDetector((*config.shop.languages, *known_languages())))

    def _pushes(self, channel: str) -> bool:
        return channel in self._workers or channel in DETACHED_PUSH_CHANNELS

    def _wake_notifiers(self) -> None:
        for notifier in self._notifiers:
            notifier.wake()

    def _reply_stored(self, reply: Reply) -> None:
        worker = self._workers.get(reply.channel)
        if worker is not None:
            worker.wake()

    # -- Gateway ---------------------------------------------------------------

    async def handle(self, message: Message) -> HandleResult:
        if self._dispatcher is None:
            raise AdapterError("kefu is not started")
        return await self._dispatcher.submit(self._at_rest.message(message))

    async def accept(self, message: Message) -> HandleResult:
        if self._dispatcher is None:
            raise AdapterError("kefu is not started")
        return await self._dispatcher.accept(self._at_rest.message(message))

    async def transcript(self, channel: str, conversation: str) -> Transcript | None:
        return await self.store.transcript(conversation_key(channel, conversation))

    async def last_shopper_message_at(self, channel: str, conversation: str) -> datetime | None:
        return await self.store.last_shopper_message_at(conversation_key(channel, conversation))

    async def record_channel_message_id(self, message_id: int, channel_message_id: str) -> None:
        await self.store.record_channel_message_id(message_id, channel_message_id)

    async def record_parts_sent(self, message_id: int, parts: int) -> None:
        await self.store.record_parts_sent(message_id, parts)

    async def resend_sent_reply(self, channel: str, channel_message_id: str, reason: str, *, hold: bool) -> bool:
        found = await self.store.resend_sent_reply(channel, channel_message_id, reason, hold=hold)
        if found:
            log.warning("delivery.refused_after_sending channel=%s message=%s hold=%s reason=%s", channel,
                        channel_message_id, hold, reason)
            worker = self._workers.get(channel)
            if worker is not None:
                worker.wake()
        return found

    async def release_held(self, channel: str, conversation: str) -> int:
        released = await self.store.release_held_deliveries(conversation_key(channel, conversation))
        worker = self._workers.get(channel)
        if released and worker is not None:
            log.info("delivery.released channel=%s conversation=%s replies=%d", channel, conversation, released)
            worker.wake()
        return released

    async def record_receipt(self, channel: str, channel_message_id: str, receipt: Receipt) -> bool:
        found = await self.store.record_receipt(channel, channel_message_id, receipt)
        if found and receipt.status == "failed":
            log.warning("delivery.failed_after_sending channel=%s message=%s error=%s", channel, channel_message_id,
                        receipt.error)
        return found

    # -- AgentDesk ---------------------------------------------------------------

    def _desk(self) -> Desk:
        if self.desk is None:
            raise AdapterError("kefu is not started")
        return self.desk

    async def handoffs(self, states: tuple[HandoffState, ...]) -> list[HandoffSummary]:
        return await self._desk().handoffs(states)

    async def handoff_view(self, channel: str, conversation: str) -> HandoffView:
        return await self._desk().handoff_view(channel, conversation)

    async def claim(self, channel: str, conversation: str, agent: str) -> HandoffSummary:
        return await self._desk().claim(channel, conversation, agent)

    async def agent_reply(self, channel: str, conversation: str, agent: str, text: str) -> Reply:
        return await self._desk().agent_reply(channel, conversation, agent, text)

    async def release(self, channel: str, conversation: str, agent: str) -> HandoffSummary:
        return await self._desk().release(channel, conversation, agent)

    async def close(self, channel: str, conversation: str, agent: str) -> HandoffSummary:
        return await self._desk().close(channel, conversation, agent)

    # -- ConsoleBackend ------------------------------------------------------------

    async def search_faq(self, query: str, *, language: str | None, limit: int) -> list[FaqSuggestion]:
        search = self.knowledge.current
        if search is None:
            raise AdapterError("kefu is not started")
        suggestions = []
        for hit in await search.search(query, language=language, limit=limit):
            variant = hit.entry.variant(language)
            suggestions.append(FaqSuggestion(faq_id=hit.entry.id, question=variant.questions[0],
                                             answer=variant.answer, language=variant.language,
                                             score=round(hit.score, 3)))
        return suggestions

    def changes_version(self) -> int:
        return self.changes.version

    def console_access(self) -> ConsoleAccess:
        return self._console_access

    def _committed(self) -> None:
        """After every committed write: live views refresh, on every worker."""
        self.broadcast.publish(CHANGES)

    async def wait_to_lead(self, role: str) -> None:
        if self.leases is None:
            return
        name = LEADER_PREFIX + role
        while not await self.leases.acquire(name):
            await asyncio.sleep(self.leases.seconds / 3)
        log.info("app.leading role=%s worker=%s", role, self.worker_id)

    def leads(self, role: str) -> bool:
        return self.leases is None or self.leases.holds(LEADER_PREFIX + role)

    async def shared_secret(self, name: str) -> bytes | None:
        if self.leases is None:
            return None
        return (await self.store.shared_secret(name)).encode()

    def publish(self, topic: str, payload: str) -> None:
        self.broadcast.publish(topic, payload)

    def subscribe(self, topic: str, callback: Callable[[str], None]) -> None:
        self.broadcast.subscribe(topic, callback)

    async def wait_for_change(self, after: int, timeout: float) -> int:
        return await self.changes.wait(after, timeout)

    def _insights(self) -> InsightsService:
        if self.insights is None:
            raise AdapterError("kefu is not started")
        return self.insights

    async def insights_report(self, start: date, end: date) -> Mapping[str, Any]:
        return (await self._insights().report(start, end)).to_json()

    async def unanswered_questions(self, start: date, end: date) -> Mapping[str, Any]:
        return (await self._insights().unanswered(start, end)).to_json()

    async def unanswered_csv(self, start: date, end: date) -> str:
        return clusters_csv(await self._insights().unanswered(start, end))

    # -- PrivacyDesk ---------------------------------------------------------------

    async def privacy_export(self, *, conversation: str | None, user: str | None, actor: str
                             ) -> Mapping[str, Any]:
        return await self.privacy.export(Subject.parse(conversation=conversation, user=user), actor=actor)

    async def privacy_erase(self, *, conversation: str | None, user: str | None, actor: str,
                            force: bool = False) -> Mapping[str, Any]:
        return await self.privacy.erase(Subject.parse(conversation=conversation, user=user), actor=actor,
                                        force=force)

    async def audit_log(self, *, limit: int, conversation: str | None = None, user: str | None = None,
                        before: int | None = None) -> Mapping[str, Any]:
        subject = Subject.parse(conversation=conversation, user=user) if conversation or user else None
        entries = await self.privacy.audit(limit=limit, subject=subject, before=before)
        return {"entries": [entry.to_json() for entry in entries]}

    def health(self) -> Mapping[str, Any]:
        return {
            "status": "ok" if self._running else "starting",
            "shop": self.config.shop.name,
            "faq_entries": len(self.knowledge.current.faq) if self.knowledge.current else 0,
            "faq_reloads": self.knowledge.reloads,
            "languages": list(self.config.shop.languages),
            "channels": sorted(self.channels),
            "uptime_seconds": round(time.time() - self._started_at, 1),
            # The lazy language and mood models loaded (bot/warmup.py): until then a turn shares the cores.
            "warmed_up": self.warming_up is not None and self.warming_up.done(),
        }
