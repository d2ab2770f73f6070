"""Embeddings of FAQ phrasings, computed once and cached on disk per encoder.

The cache is keyed by the encoder's id and a hash of each (normalized) text, so
editing one entry re-encodes only that entry's texts, and a restart encodes
nothing. Numbers are normalized before encoding: an order number says nothing
about what a shopper wants, but a model happily matches on it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.cues import is_shouting
from knowledge.encoders import Encoder, encode_chunks

log = logging.getLogger(__name__)

_NUMBERS = re.compile(r"\d+")
ENCODE_CHUNK = 64  # per call; the encoder's parallel workers each take one
PRUNE_ABOVE = 20_000  # cached texts kept beyond the current FAQ's before pruning


def normalize_text(text: str) -> str:
    """What the encoders and character n-grams see: numbers collapsed, spaces tidied, shouting lowercased.

    The encoders are trained on ordinary casing and read capitals as other words: "WHY IS MY REFUND
    TAKING SO LONG???" matched its FAQ entry at confidence 0.24, the same words lowercased at 0.81. On
    bench/data/shoppers.csv written in capitals, top-1 0.74 -> 0.91 (sample FAQ) and 0.59 -> 0.79 (one
    phrasing per entry); as written, unchanged. The shouting itself is read from the shopper's own text
    (bot/cues.py), not from this.
    """
    text = " ".join(_NUMBERS.sub("0", text).split())
    return text.lower() if is_shouting(text) else text


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class Progress:
    """A progress bar on a terminal, a log line every 10 % otherwise."""

    def __init__(self, label: str, total: int, stream=None):
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._tty = hasattr(self._stream, "isatty") and self._stream.isatty()
        self._last_decile = -1
        self._started = time.perf_counter()

    def advance(self, count: int) -> None:
        self.done += count
        fraction = self.done / self.total if self.total else 1.0
        if self._tty:
            filled = int(fraction * 30)
            self._stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
            if self.done >= self.total:
                self._stream.write("\n")
            self._stream.flush()
            return
        decile = int(fraction * 10)
        if decile != self._last_decile:
            self._last_decile = decile
            log.info("progress %s %d/%d (%.0f%%) %.1fs", self.label, self.done, self.total, fraction * 100,
                     time.perf_counter() - self._started)


class EmbeddingCache:
    """Vectors of one encoder, stored as `<dir>/<encoder id>.npz` (keys + matrix)."""

    def __init__(self, directory: Path, encoder: Encoder):
        self.encoder = encoder
        safe_id = re.sub(r"[^A-Za-z0-9._+-]", "_", encoder.id)
        self.path = directory / f"{safe_id}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        self.encoded_last = 0  # how many texts the last `embed` had to encode (0 = all cached)
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    def embed(self, texts: Sequence[str], *, progress_label: str | None = None) -> np.ndarray:
        """Blocking: vectors for already-normalized texts, encoding only those not cached."""
        keys = [text_key(text) for text in texts]
        missing = list(dict.fromkeys(text for text, key in zip(texts, keys) if key not in self._vectors))
        self.encoded_last = len(missing)
        if missing:
            progress = Progress(progress_label or f"encoding ({self.encoder.id})", len(missing))
            chunks = [missing[start:start + ENCODE_CHUNK] for start in range(0, len(missing), ENCODE_CHUNK)]
            for chunk, vectors in zip(chunks, encode_chunks(self.encoder, chunks)):
                for text, vector in zip(chunk, vectors):
                    self._vectors[text_key(text)] = vector
                progress.advance(len(chunk))
            self._save(set(keys))
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.vstack([self._vectors[key] for key in keys]).astype(np.float32)

    def _save(self, current: set[str]) -> None:
        # Old texts stay (an edit undone costs nothing) until the cache is much larger than
        # the FAQ; then only what the current FAQ uses is kept.
        if len(self._vectors) > max(4 * len(current), PRUNE_ABOVE):
            self._vectors = {key: vec for key, vec in self._vectors.items() if key in current}
        keys = np.array(sorted(self._vectors), dtype="U40")
        matrix = np.vstack([self._vectors[k] for k in keys]) if len(keys) else np.zeros((0, self.encoder.dim))
        self._write_atomically(keys, matrix.astype(np.float32))

    def _write_atomically(self, keys: np.ndarray, matrix: np.ndarray) -> None:
        """Write a temporary file of this process's own, then rename it over the cache.

        Other processes (another shop, `kefu faq ask`, the sentiment examples) may share the
        folder: a reader sees the old file or the new one, never half of one, and two writers
        never write into the same temporary file. The last writer wins; vectors only the other
        writer added are encoded again by whoever misses them.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.stem}-{os.getpid()}-{secrets.token_hex(4)}.npz.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)  # umask applies
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, keys=keys, vectors=matrix)
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
