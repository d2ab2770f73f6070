"""A separate kefu process using a shared `index_dir`, driven line by line by tests/test_index_sharing.py.

    python tests/index_user.py INDEX_DIR FAQ_DIR

Prints `ready` once imported, then answers each command read from stdin with one JSON line:

    open             open (or build) the keyword search  -> {"folder": str, "built": bool}
    search TEXT      keyword search                      -> {"ids": [str, ...]}
    sweep            remove_stale_indexes()              -> {"removed": [str, ...]}
    stage NAME       a held staging folder, half filled  -> {"staging": str}
    embed N PREFIX   N cache saves of new texts          -> {"saved": N}
    quit             close everything and exit           -> {"closed": true}

An error is answered as {"error": "..."} and the process keeps going, so a test sees it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knowledge.embeddings import EmbeddingCache
from knowledge.faq import load_faq_dir
from knowledge.index_folders import FolderHold, stage
from knowledge.search import FaqSearch

LANGUAGES = ("en", "zh")


class HashEncoder:
    """A deterministic stand-in encoder: a text's vector comes from its hash, so anyone can check it."""

    id = "hash-test-encoder"
    dim = 8
    parallel = 1
    cost = 1.0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([hash_vector(text) for text in texts]) if texts else np.zeros((0, self.dim), np.float32)


def hash_vector(text: str) -> np.ndarray:
    digest = hashlib.sha256(text.encode("utf-8")).digest()[:HashEncoder.dim]
    return np.frombuffer(digest, dtype=np.uint8).astype(np.float32)


def main(index_dir: Path, faq_dir: Path) -> None:
    search: FaqSearch | None = None
    staged: list[FolderHold] = []
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.rstrip("\n").partition(" ")
        try:
            if command == "open":
                faq = load_faq_dir(faq_dir, default_language="en", languages=LANGUAGES)
                search = FaqSearch(faq, index_dir, LANGUAGES)
                built = search.open()
                answer: dict = {"folder": str(search.keyword_directory), "built": built}
            elif command == "search":
                assert search is not None, "open first"
                answer = {"ids": [hit.entry.id for hit in search.search_blocking(argument, mode="keyword")]}
            elif command == "sweep":
                assert search is not None, "open first"
                answer = {"removed": [str(path) for path in search.remove_stale_indexes()]}
            elif command == "stage":
                held = stage(index_dir / "keyword", argument)
                (held.folder / "bm25.npz").write_bytes(b"half an index")
                staged.append(held)
                answer = {"staging": str(held.folder)}
            elif command == "embed":
                count, prefix = argument.split(" ", 1)
                for i in range(int(count)):
                    EmbeddingCache(index_dir / "embeddings", HashEncoder()).embed([f"{prefix} {i}"])
                answer = {"saved": int(count)}
            elif command == "quit":
                if search is not None:
                    search.close()
                print(json.dumps({"closed": True}), flush=True)
                return
            else:
                answer = {"error": f"unknown command {command!r}"}
        except Exception as exc:  # reported to the test, which fails on it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
