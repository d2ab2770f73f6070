"""The nearest-neighbour scoring of knowledge/semantic.py against a plain per-entry loop."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.semantic import Phrasing, SemanticIndex


def index_with(owners: list[str], entry_ids: list[str], dim: int = 6) -> SemanticIndex:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(len(owners), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    phrasings = [Phrasing(entry_id=o, language="en", text=f"{o} {n}", kind="question" if n % 3 else "answer")
                 for n, o in enumerate(owners)]
    return SemanticIndex(phrasings=phrasings, vectors={"enc": vectors}, entry_ids=entry_ids,
                         train_classifier=False, answer_weight=0.85)


@pytest.mark.parametrize("layout", ["slots", "segments"])
def test_each_entry_gets_its_best_phrasing_and_the_later_one_of_a_tie(layout):
    # Phrasings of an entry are not contiguous, "e3" has none, and there are exact ties.
    owners = ["e1", "e0", "e2", "e1", "e0", "e0", "e2", "e1", "e4", "e0"]
    index = index_with(owners, ["e0", "e1", "e2", "e3", "e4"])
    assert index._slots is not None  # 4 slots × 4 entries with phrasings, for 10 phrasings
    if layout == "segments":
        index._slots = None
    rng = np.random.default_rng(5)
    values = rng.integers(0, 4, size=(7, len(owners))).astype(np.float64)  # small integers: many ties
    best, nearest = index._best_per_entry(values)  # queries × phrasings → queries × entries
    np.testing.assert_array_equal(index._entry_best(values), best)
    for entry, entry_id in enumerate(["e0", "e1", "e2", "e3", "e4"]):
        own = [i for i, o in enumerate(owners) if o == entry_id]
        for q in range(values.shape[0]):
            if not own:
                assert (best[q, entry], nearest[q, entry]) == (-1.0, -1)
                continue
            top = max(values[q, i] for i in own)
            assert best[q, entry] == top
            assert nearest[q, entry] == max(i for i in own if values[q, i] == top)


def test_scores_without_classifiers_rank_the_entry_whose_phrasing_is_the_query():
    owners = [f"e{n % 40}" for n in range(120)]
    index = index_with(owners, [f"e{n}" for n in range(40)])
    queries = index.vectors_of([5, 77])["enc"]  # phrasing 5 belongs to e5, 77 to e37
    scores = index.scores_many(["a", "b"], {"enc": queries}, [False, False])
    for row, (phrasing, entry) in zip(scores, [(5, 5), (77, 37)]):
        assert int(np.argmax(row.similarity)) == entry
        assert row.nearest[entry] == phrasing
        assert int(np.argmax(row.parts["enc"])) == entry


def test_one_entry_with_far_more_phrasings_than_the_rest_is_not_padded():
    # 8 phrasings (within SLOT_MAX), but 8 slots × 21 entries would be 6× the 28 phrasings.
    owners = ["big"] * 8 + [f"e{n}" for n in range(20)]
    index = index_with(owners, ["big", *(f"e{n}" for n in range(20))])
    assert index._slots is None
    values = np.arange(28, dtype=np.float64)[None, :]
    best, nearest = index._best_per_entry(values)
    assert best[0, 0] == 7 and nearest[0, 0] == 7 and nearest[0, 1:].tolist() == list(range(8, 28))


def test_entries_of_many_phrasings_each_are_not_slotted():
    owners = [f"e{n % 3}" for n in range(30)]  # 10 phrasings an entry: more than SLOT_MAX slots
    index = index_with(owners, ["e0", "e1", "e2"])
    assert index._slots is None
    best, nearest = index._best_per_entry(np.arange(30, dtype=np.float64)[None, :])
    assert best[0].tolist() == [27, 28, 29] and nearest[0].tolist() == [27, 28, 29]
