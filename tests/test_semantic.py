"""The nearest-neighbour scoring of knowledge/semantic.py against a plain per-entry loop."""

from __future__ import annotations

import numpy as np

from knowledge.semantic import Phrasing, SemanticIndex


def index_with(owners: list[str], entry_ids: list[str], dim: int = 6) -> SemanticIndex:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(len(owners), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    phrasings = [Phrasing(entry_id=o, language="en", text=f"{o} {n}", kind="question" if n % 3 else "answer")
                 for n, o in enumerate(owners)]
    return SemanticIndex(phrasings=phrasings, vectors={"enc": vectors}, entry_ids=entry_ids,
                         train_classifier=False, answer_weight=0.85)


def test_each_entry_gets_its_best_phrasing_and_the_later_one_of_a_tie():
    # Phrasings of an entry are not contiguous, "e3" has none, and there are exact ties.
    owners = ["e1", "e0", "e2", "e1", "e0", "e0", "e2", "e1", "e4", "e0"]
    index = index_with(owners, ["e0", "e1", "e2", "e3", "e4"])
    rng = np.random.default_rng(5)
    values = rng.integers(0, 4, size=(len(owners), 7)).astype(np.float64)  # small integers: many ties
    best, nearest = index._best_per_entry(values)
    np.testing.assert_array_equal(index._entry_best(values), best)
    for entry, entry_id in enumerate(["e0", "e1", "e2", "e3", "e4"]):
        own = [i for i, o in enumerate(owners) if o == entry_id]
        for q in range(values.shape[1]):
            if not own:
                assert (best[entry, q], nearest[entry, q]) == (-1.0, -1)
                continue
            top = max(values[i, q] for i in own)
            assert best[entry, q] == top
            assert nearest[entry, q] == max(i for i in own if values[i, q] == top)


def test_scores_without_classifiers_rank_the_entry_whose_phrasing_is_the_query():
    owners = [f"e{n % 40}" for n in range(120)]
    index = index_with(owners, [f"e{n}" for n in range(40)])
    queries = index._vectors["enc"][[5, 77]]  # phrasing 5 belongs to e5, 77 to e37
    scores = index.scores_many(["a", "b"], {"enc": queries}, [False, False])
    for row, (phrasing, entry) in zip(scores, [(5, 5), (77, 37)]):
        assert int(np.argmax(row.similarity)) == entry
        assert row.nearest[entry] == phrasing
        assert int(np.argmax(row.parts["enc"])) == entry
