"""Chinese sentiment runs snownlp in a worker process: the server's own process never loads it."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys

import pytest

from bot.sentiment.analyzer import SnowNlpBackend
from bot.sentiment.snownlp_worker import SnowNlpWorker

TEXTS = ["很好，很满意", "太差了，非常失望", "请问可以开发票吗", "快递三天就到了，包装完好"]


@pytest.fixture(scope="module")
def worker():
    worker = SnowNlpWorker()
    yield worker
    worker.close()


def test_the_worker_scores_as_snownlp_does_in_process(worker):
    from snownlp import SnowNLP

    assert worker.sentiments(TEXTS) == pytest.approx([SnowNLP(text).sentiments for text in TEXTS], abs=1e-12)
    assert worker.sentiments([]) == []


def test_a_worker_that_died_is_started_again_and_answers(worker):
    before = worker.sentiments(TEXTS[:2])
    os.kill(worker.pid, signal.SIGKILL)

    assert worker.sentiments(TEXTS[:2]) == before
    assert worker.pid is not None


def test_closing_stops_the_process():
    worker = SnowNlpWorker()
    worker.wait_ready()
    pid = worker.pid
    assert pid is not None
    worker.close()
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_backend_keeps_snownlp_out_of_the_callers_process():
    """Loading snownlp holds the GIL for seconds; the server's process must not pay that."""
    code = ("import sys; from bot.sentiment.analyzer import SnowNlpBackend; backend = SnowNlpBackend(); "
            "print(backend.polarity(['太差了，非常失望', '   ', '很好，很满意'], ['zh'] * 3)); "
            "backend.close(); print('snownlp' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    scores, loaded = result.stdout.strip().splitlines()
    negative, blank, positive = ast.literal_eval(scores)
    assert negative < -0.5 < 0.5 < positive and blank == 0.0
    assert loaded == "False"


def test_the_backend_maps_snownlp_to_minus_one_to_one():
    backend = SnowNlpBackend()
    try:
        negative, positive = backend.polarity(["太差了，非常失望", "很好，很满意"], ["zh", "zh"])
    finally:
        backend.close()
    assert -1.0 <= negative < 0 < positive <= 1.0


def test_closing_while_a_call_waits_for_the_load_ends_that_call_and_starts_nothing_again():
    """An app stopping right after start must not wait seconds for snownlp to finish loading."""
    import threading

    from bot.sentiment.snownlp_worker import SnowNlpError

    worker = SnowNlpWorker()
    errors: list[Exception] = []

    def call() -> None:
        try:
            worker.sentiments(["很好"])
        except SnowNlpError as exc:
            errors.append(exc)

    waiting = threading.Thread(target=call)
    waiting.start()
    worker.close()
    waiting.join(timeout=30)
    assert not waiting.is_alive() and len(errors) == 1
    with pytest.raises(SnowNlpError, match="closed"):
        worker.sentiments(["很好"])
    assert worker.pid is None
