"""snownlp in a worker process of its own, so that loading it never stalls the server.

Importing snownlp unmarshals its 13 MB word-segmentation model in one C call that holds
the GIL: measured here, the event loop of a just-started server could not answer for
2.4 s (/healthz took 3.1 s; a shopper's message arriving then waited as long). In a child
process the load runs beside the server on the other core, and asking it costs a pipe
round trip (~0.1 ms for a message).

The child exits when its stdin closes, so a parent killed with -9 leaves nothing behind.
A child that dies is started again once per call; a second failure is the caller's error.
Protocol: one JSON line each way; the child's first line says it is ready (or why not).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import IO

from bot.errors import KefuError

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0


class SnowNlpError(KefuError):
    """snownlp cannot be loaded or failed on a text."""


class SnowNlpWorker:
    """snownlp's sentiment (0..1, 1 = positive) of texts, computed in a child process.

    The child starts loading at construction; the first call waits until it is ready.
    One call at a time (one pipe).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._finalizer: weakref.finalize | None = None
        self._ready = False
        self._closed = False
        self._start()

    def sentiments(self, texts: Sequence[str]) -> list[float]:
        """Blocking: snownlp's P(positive) of each text."""
        if not texts:
            return []
        with self._lock:
            try:
                return self._ask(list(texts))
            except (OSError, EOFError) as exc:
                if self._closed:
                    raise SnowNlpError("the snownlp worker was closed") from exc
                log.warning("snownlp_worker.restart (%s: %s): starting it again", type(exc).__name__, exc)
                self._stop_child()
                self._start()
                return self._ask(list(texts))

    def wait_ready(self) -> None:
        """Blocking: until the child has loaded snownlp (the warm-up calls it)."""
        with self._lock:
            self._handshake()

    def close(self) -> None:
        """Stop the child at once, also while a call waits for it (that call then fails)."""
        self._closed = True
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()  # without the lock: a call blocked reading the pipe gets EOF and lets go of it
        with self._lock:
            self._stop_child()

    @property
    def ready(self) -> bool:
        """Whether the child has said it loaded snownlp (a call has waited for it)."""
        return self._ready

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None and self._child.poll() is None else None

    def _start(self) -> None:
        self._child = subprocess.Popen([sys.executable, "-m", "bot.sentiment.snownlp_worker"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)
        self._finalizer = weakref.finalize(self, _stop, self._child)
        self._ready = False

    def _handshake(self) -> None:
        if self._ready:
            return
        if self._closed:
            raise SnowNlpError("the snownlp worker was closed")
        line = self._stdout.readline()
        if not line:
            code = self._child.wait() if self._child is not None else None
            raise SnowNlpError(f"the snownlp worker process exited (code {code}) before it was ready; "
                               "its error is in the log above")
        ready = json.loads(line)
        if "error" in ready:
            self._stop_child()
            raise SnowNlpError(f"Chinese sentiment needs snownlp (pip install snownlp): {ready['error']}")
        self._ready = True

    @property
    def _stdout(self) -> IO[str]:
        assert self._child is not None and self._child.stdout is not None
        return self._child.stdout

    def _ask(self, texts: list[str]) -> list[float]:
        self._handshake()
        assert self._child is not None and self._child.stdin is not None
        self._child.stdin.write(json.dumps(texts, ensure_ascii=False) + "\n")
        self._child.stdin.flush()
        line = self._stdout.readline()
        if not line:
            raise EOFError("the snownlp worker closed its pipe")
        answer = json.loads(line)
        if isinstance(answer, dict):
            raise SnowNlpError(f"snownlp failed: {answer['error']}")
        if len(answer) != len(texts):
            raise SnowNlpError(f"the snownlp worker answered {len(answer)} scores for {len(texts)} texts")
        return [float(score) for score in answer]

    def _stop_child(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs _stop once; later calls (and garbage collection) do nothing
        self._child = None
        self._ready = False


def _stop(child: subprocess.Popen[str]) -> None:
    """Close the child's stdin (it exits at EOF); kill it if it has not gone in STOP_SECONDS."""
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass  # a child that died first leaves a broken pipe: nothing left to close
    try:
        child.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        log.warning("snownlp_worker.kill pid=%d (did not exit %.0f s after its stdin closed)", child.pid,
                    STOP_SECONDS)
        child.kill()
        child.wait()


def serve(requests: IO[str], answers: IO[str]) -> None:
    """The child's loop: load snownlp, say so, then score each line of texts until EOF."""
    try:
        from snownlp import SnowNLP
    except ImportError as exc:
        answers.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        answers.flush()
        return
    SnowNLP("预热").sentiments  # the first call builds the classifier's tables
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in requests:
        texts = json.loads(line)
        try:
            scores: object = [SnowNLP(text).sentiments for text in texts]
        except (ValueError, KeyError, ZeroDivisionError) as exc:
            scores = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(scores) + "\n")
        answers.flush()


def main() -> None:
    # The parent decides when this process stops (Ctrl-C in a terminal reaches the whole process group).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.reconfigure(encoding="utf-8")
    # Answers go to a private copy of stdout; anything a library prints lands on stderr instead.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        serve(sys.stdin, answers)
    except BrokenPipeError:
        pass  # the parent went away mid-answer: nothing to answer to


if __name__ == "__main__":
    main()
