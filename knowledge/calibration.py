"""Confidence that means the probability of being right, learnt from the merchant's own FAQ.

The classifiers' raw probabilities spread over all entries, so their scale shrinks as
an FAQ grows: 0.30 is a sure thing among 3,000 entries and a coin toss among 20.
Thresholds on them could not hold for every shop. So at load, the FAQ is quizzed on
itself: its question phrasings are split into folds, each fold is asked of an index
trained without it (and, for a share of the entries, without the entry at all — the
questions an FAQ does not answer), and a small logistic model learns P(top entry is
right) from what the search saw: the best entry's score, its lead over the next
entry, the cosine of its closest phrasing and that cosine's lead. The model is
monotone (no feature may lower confidence as it grows) and is cached per FAQ
version, so a restart does not pay for it again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from knowledge.index_folders import write_atomically
from knowledge.semantic import SemanticIndex

log = logging.getLogger(__name__)

FEATURES = ("score", "lead", "similarity", "similarity_lead")
VERSION = 2  # bump when the features or the quiz change: cached calibrations are then refitted
FOLDS = 4
REMOVED_SHARE = 0.2  # entries left out of a fold entirely: their questions stand for out-of-scope ones
SEED = 20261201
RIDGE = 0.01
# Without a calibration (keyword-only search, or too few phrasings to quiz) the raw score is used.
MIN_EXAMPLES = 8
# Questions scored at once. Each holds every entry's scores until graded: at 10,000 entries a batch of
# 256 peaked 180 MB above one of 64 (571 vs 392 MB in-process, the quiz no faster).
QUIZ_BATCH = 64


@dataclass(frozen=True)
class Calibration:
    """P(right) = sigmoid(weights · features + intercept), and how the quiz went."""

    weights: tuple[float, ...]
    intercept: float
    examples: int  # questions asked in the quiz
    right_share: float  # of them, how many had the right entry first
    probabilities: tuple[float, ...]  # the quiz's calibrated confidences (for `kefu faq check`)
    rights: tuple[bool, ...]  # and whether each top entry was right

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Rows of FEATURES → calibrated probabilities."""
        return 1.0 / (1.0 + np.exp(-(features @ np.asarray(self.weights) + self.intercept)))

    def expected_at(self, answer_threshold: float) -> tuple[float, float | None]:
        """Share of quiz questions answered at this threshold, and the share of those answered right."""
        probabilities = np.asarray(self.probabilities)
        answered = probabilities >= answer_threshold
        if not answered.any():
            return 0.0, None
        return float(answered.mean()), float(np.asarray(self.rights)[answered].mean())


def top_features(mean: np.ndarray, similarity: np.ndarray, top: int) -> np.ndarray:
    """FEATURES of one question's entry `top` from per-entry semantic scores and closest-phrasing cosines."""
    others = np.arange(len(mean)) != top
    next_score = float(mean[others].max()) if others.any() else 0.0
    next_similarity = float(similarity[others].max()) if others.any() else 0.0
    return np.array([mean[top], mean[top] - next_score, similarity[top], similarity[top] - next_similarity])


def semantic_mean(parts: dict[str, np.ndarray]) -> np.ndarray:
    """The semantic evidence the calibration reads: the mean of the votes present."""
    return np.mean(list(parts.values()), axis=0)


def quiz(index: SemanticIndex, *, folds: int = FOLDS, removed_share: float = REMOVED_SHARE,
         seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Blocking: ask every question phrasing of an index trained without it; FEATURES rows and right/wrong."""
    rng = np.random.default_rng(seed)
    questions = [i for i, p in enumerate(index.phrasings) if p.kind == "question"]
    fold_of = np.full(len(index.phrasings), -1)
    fold_of[questions] = spread_folds([index.phrasings[i].entry_id for i in questions], folds, rng)
    rows: list[np.ndarray] = []
    labels: list[bool] = []
    for fold in range(folds):
        asked = [i for i in questions if fold_of[i] == fold]
        if not asked:
            continue
        removed_count = max(1, round(removed_share * len(index.entry_ids))) if len(index.entry_ids) > 2 else 0
        removed = set(rng.choice(index.entry_ids, removed_count, replace=False).tolist()) if removed_count else set()
        keep = [not (fold_of[i] == fold and p.kind == "question") and p.entry_id not in removed
                for i, p in enumerate(index.phrasings)]
        trained = index.restricted(keep)
        for start in range(0, len(asked), QUIZ_BATCH):  # bounded memory on a 10,000-entry FAQ
            batch = asked[start:start + QUIZ_BATCH]
            scores = trained.scores_many([index.phrasings[i].text for i in batch], index.vectors_of(batch),
                                         [True] * len(batch))
            _grade(index, batch, scores, removed, rows, labels)
    return np.array(rows).reshape(-1, len(FEATURES)), np.array(labels, dtype=bool)


def spread_folds(entry_of: Sequence[str], folds: int, rng: np.random.Generator) -> np.ndarray:
    """The fold of each question (given by its entry's id), an entry's questions in consecutive folds.

    A shopper never meets an entry stripped of every question it has. With random folds an entry with
    two phrasings (one question in English, its Chinese translation) lost both in a quarter of the
    rounds, was found only through its answer, and the quiz learnt that a right match looks weak:
    one-phrasing FAQs then answered almost nothing. Spread from a random start, an entry keeps a
    phrasing while one is asked as long as it has at most `folds` of them; an entry with a single
    question is still asked (then only its answer stands for it).
    """
    fold_of = np.zeros(len(entry_of), dtype=np.int64)
    start: dict[str, int] = {}
    seen: dict[str, int] = {}
    for position in rng.permutation(len(entry_of)):
        entry_id = entry_of[position]
        offset = start.setdefault(entry_id, int(rng.integers(0, folds)))
        fold_of[position] = (offset + seen.get(entry_id, 0)) % folds
        seen[entry_id] = seen.get(entry_id, 0) + 1
    return fold_of


def _grade(index: SemanticIndex, asked: Sequence[int], scores, removed: set[str], rows: list[np.ndarray],
           labels: list[bool]) -> None:
    """The FEATURES of each asked question's top entry, and whether that entry is the question's own."""
    for i, score in zip(asked, scores):
        mean = semantic_mean(score.parts)
        top = int(np.argmax(mean))
        rows.append(top_features(mean, score.similarity, top))
        entry_id = index.phrasings[i].entry_id
        labels.append(entry_id not in removed and index.entry_ids[top] == entry_id)


def fit(features: np.ndarray, rights: np.ndarray) -> Calibration | None:
    """Blocking: a logistic model with non-negative weights (more evidence never means less confidence)."""
    from scipy.optimize import minimize

    if len(rights) < MIN_EXAMPLES or rights.all() or not rights.any():
        return None
    design = np.column_stack([features, np.ones(len(features))])
    target = rights.astype(np.float64)

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        z = design @ beta
        # log(1 + e^z) - y z, computed without overflow
        value = float(np.sum(np.logaddexp(0.0, z) - target * z) + RIDGE * np.sum(beta[:-1] ** 2))
        gradient = design.T @ (1.0 / (1.0 + np.exp(-z)) - target)
        gradient[:-1] += 2 * RIDGE * beta[:-1]
        return value, gradient

    bounds = [(0.0, None)] * features.shape[1] + [(None, None)]
    beta = minimize(loss, np.zeros(design.shape[1]), jac=True, bounds=bounds, method="L-BFGS-B").x
    probabilities = 1.0 / (1.0 + np.exp(-(design @ beta)))
    return Calibration(weights=tuple(float(b) for b in beta[:-1]), intercept=float(beta[-1]),
                       examples=len(rights), right_share=float(rights.mean()),
                       probabilities=tuple(round(float(p), 4) for p in probabilities),
                       rights=tuple(bool(r) for r in rights))


def calibrate(index: SemanticIndex, cache_dir: Path, key: str) -> Calibration | None:
    """Blocking: the cached calibration for this FAQ version and these encoders, or a fresh quiz and fit."""
    path = cache_dir / f"v{VERSION}-{key}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Calibration(**{**data, "weights": tuple(data["weights"]),
                                  "probabilities": tuple(data["probabilities"]), "rights": tuple(data["rights"])})
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("calibration.cache_unreadable path=%s (%s): fitting again", path, exc)
    started = time.perf_counter()
    features, rights = quiz(index)
    calibration = fit(features, rights)
    if calibration is None:
        log.info("calibration.skipped questions=%d (too few, or all right or all wrong): raw scores are used",
                 len(rights))
        return None
    log.info("calibration.fitted questions=%d right_share=%.2f weights=%s intercept=%.2f in %.1fs",
             calibration.examples, calibration.right_share,
             ",".join(f"{name}={w:.2f}" for name, w in zip(FEATURES, calibration.weights)),
             calibration.intercept, time.perf_counter() - started)
    write_atomically(path, json.dumps(asdict(calibration)))
    return calibration


def quiz_summary(calibration: Calibration | None, answer_threshold: float, suggest_threshold: float) -> Sequence[str]:
    """Lines for `kefu faq check`: what the quiz predicts at the configured thresholds."""
    if calibration is None:
        return ["calibration: not fitted (too few question phrasings to quiz); confidences are raw scores"]
    answered, precision = calibration.expected_at(answer_threshold)
    suggested, _ = calibration.expected_at(suggest_threshold)
    lines = [f"calibration: {calibration.examples} question phrasings asked of the FAQ trained without them "
             f"(a fifth of the entries left out each round, standing for questions it does not answer); "
             f"the right entry came first for {calibration.right_share:.0%}"]
    if precision is None:
        lines.append(f"  at answer_threshold {answer_threshold:.2f} none of them would be answered")
    else:
        lines.append(f"  at answer_threshold {answer_threshold:.2f}: {answered:.0%} answered, "
                     f"{precision:.0%} of those right; at suggest_threshold {suggest_threshold:.2f}: "
                     f"{suggested - answered:.0%} more get suggestions")
    return lines
