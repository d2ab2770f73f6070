"""Load at start what would otherwise load on a shopper's first message.

lingua loads its language models and snownlp its classifier (~4 s) on first use, so the
first Chinese message used to wait 18 s. The warm-up runs in the background once the app
has started, so the server is listening meanwhile; a message arriving during it waits only
for what it needs. Neither load may stall the event loop: lingua's models are loaded one
language per native call (each holds the GIL), snownlp loads in its own worker process.
"""

from __future__ import annotations

import logging
import time

from bot.language.detector import LanguageDetector
from bot.sentiment.analyzer import SentimentAnalyzer

log = logging.getLogger(__name__)

# One message per script kefu's shops see most, and the languages with their own sentiment backend.
WARM_UP_TEXTS = ("where is my order?", "我的退款什么时候到账？", "Wo ist mein Paket?", "¿Dónde está mi pedido?",
                 "注文をキャンセルしたい", "Где мой заказ?", "주문 취소하고 싶어요")


def warm_up(detector: LanguageDetector, analyzer: SentimentAnalyzer) -> float:
    """Blocking: detect and score the warm-up texts; the seconds it took."""
    started = time.perf_counter()
    detector.preload()
    for text in WARM_UP_TEXTS:
        analyzer.analyze(text, detector.detect(text).language)
    seconds = time.perf_counter() - started
    log.info("app.warmed_up texts=%d seconds=%.1f", len(WARM_UP_TEXTS), seconds)
    return seconds
