"""The sentence vector stored with a shopper's message, written with its reply.

The turn encodes the message once (knowledge.search.EncoderSet); keeping the multilingual
encoder's vector lets the dashboard group unanswered questions without encoding them
again. float16 halves the row (1 KB for USE's 512 dimensions) and moves a cosine by less
than 0.001, far below the grouping threshold's steps. The vector lives in the message's
own row, so erasing or purging the message erases it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StoredVector:
    encoder: str  # the encoder's id (with its version): a vector of another encoder is not comparable
    values: np.ndarray  # float32, L2-normalised

    def to_blob(self) -> bytes:
        return self.values.astype(np.float16).tobytes()

    @classmethod
    def from_blob(cls, encoder: str, blob: bytes) -> StoredVector:
        return cls(encoder, np.frombuffer(blob, dtype=np.float16).astype(np.float32))

    @classmethod
    def of(cls, vectors: dict[str, np.ndarray] | None, encoder: str | None) -> StoredVector | None:
        """The turn's vector by `encoder`, when the turn was encoded by it."""
        if vectors is None or encoder is None or encoder not in vectors:
            return None
        return cls(encoder, np.asarray(vectors[encoder], dtype=np.float32))
