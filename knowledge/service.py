"""The live knowledge of a running bot: FAQ search built from config, hot-reloaded on file changes.

A change to the FAQ folder is noticed within `reload_interval_seconds`; the new
indexes are built aside (off the event loop) and swapped in atomically, so
requests never wait and never see half an index. A broken file keeps the old
knowledge serving and is logged with its file and line. Each search holds its
index folder until it is closed; sweeps after a start or a reload delete only
folders no process holds (knowledge/index_folders.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.concurrency import run_blocking
from bot.config import Config, require_faq_dir
from bot.errors import KefuError
from knowledge.encoders import EncoderSpec, build_encoders
from knowledge.faq import FAQ_SUFFIXES, FaqBase, load_faq_dir
from knowledge.search import EncoderSet, FaqSearch, SearchSettings

log = logging.getLogger(__name__)

OLD_INDEX_GRACE_SECONDS = 5.0  # searches already running on the old index finish within this


def search_settings(config: Config) -> SearchSettings:
    search = config.search
    return SearchSettings(
        classifier_max_entries=search.classifier_max_entries,
        answer_weight=search.answer_weight,
        keyword_weight=search.keyword_weight,
        batch_window_ms=search.batch_window_ms,
        max_batch=search.max_batch,
    )


def load_encoders(config: Config) -> EncoderSet | None:
    """Blocking: load the configured encoders (None when search is keyword-only)."""
    search = config.search
    if not search.encoders:
        return None
    spec = EncoderSpec(names=search.encoders, transformers_model=search.transformers_model,
                       transformers_prefix=search.transformers_prefix, threads=search.threads)
    return EncoderSet(build_encoders(spec), window_ms=search.batch_window_ms, max_batch=search.max_batch)


def load_faq(config: Config) -> FaqBase:
    """Blocking: read and validate the FAQ folder (a missing folder is the config's mistake, named there)."""
    return load_faq_dir(require_faq_dir(config), default_language=config.shop.default_language,
                        languages=config.shop.languages)


def open_search(config: Config, faq: FaqBase, encoders: EncoderSet | None) -> FaqSearch:
    """Blocking: build (or reuse from disk) the indexes for one version of the FAQ."""
    search = FaqSearch(faq, config.storage.index_dir, config.shop.languages, encoders=encoders,
                       settings=search_settings(config))
    try:
        search.open()
    except BaseException:
        search.close()  # releases the index folder it may already hold
        raise
    return search


def folder_fingerprint(folder: Path) -> tuple:
    """Cheap change detection: names, sizes and modification times of the FAQ files."""
    entries = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in FAQ_SUFFIXES:
            stat = path.stat()
            entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class KnowledgeBase:
    """Holds the current `FaqSearch`; `current` is swapped whole, never mutated."""

    def __init__(self, config: Config):
        self.config = config
        self.encoders: EncoderSet | None = None
        self.current: FaqSearch | None = None
        self.reloads = 0
        self._fingerprint: tuple = ()
        self._task: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._retiring: set[FaqSearch] = set()  # swapped out, closed after the grace or on stop

    async def start(self) -> None:
        self._fingerprint = await run_blocking(folder_fingerprint, self.config.knowledge.faq_dir)
        faq = await run_blocking(load_faq, self.config)
        self.encoders = await run_blocking(load_encoders, self.config)
        self.current = await run_blocking(open_search, self.config, faq, self.encoders)
        await run_blocking(self.current.remove_stale_indexes)
        log.info("knowledge.ready entries=%d encoders=%s newly_encoded=%d", len(faq),
                 ",".join(self.encoders.ids) if self.encoders else "none", self.current.encoded_at_open)
        if self.config.search.reload_interval_seconds > 0:
            self._task = asyncio.create_task(self._watch(), name="kefu-faq-reload")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._retired) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A retiring task cancelled before it ran never closed its search: close it here, so
        # its index folder's hold is released (closing twice is harmless).
        for old in list(self._retiring):
            await run_blocking(old.close)
        self._retiring.clear()
        if self.current is not None:
            await run_blocking(self.current.close)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.search.reload_interval_seconds)
            try:
                await self.reload_if_changed()
            except Exception:  # the watcher must survive anything; the old knowledge keeps serving
                log.exception("knowledge.reload_crashed")

    async def reload_if_changed(self) -> bool:
        """Rebuild and swap when the FAQ folder changed; False when unchanged or broken."""
        folder = self.config.knowledge.faq_dir
        fingerprint = await run_blocking(folder_fingerprint, folder)
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        try:
            faq = await run_blocking(load_faq, self.config)
        except KefuError as exc:
            log.error("knowledge.reload_failed keeping the previous FAQ: %s", exc)
            return False
        old = self.current
        if old is not None and faq.content_hash == old.faq.content_hash:
            return False
        new = await run_blocking(open_search, self.config, faq, self.encoders)
        self.current = new
        self.reloads += 1
        log.info("knowledge.reloaded entries=%d newly_encoded=%d", len(faq), new.encoded_at_open)
        if old is not None:
            self._retiring.add(old)
            task = asyncio.create_task(self._retire(old, new))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
        return True

    async def _retire(self, old: FaqSearch, new: FaqSearch) -> None:
        """Close the swapped-out search after the grace, then sweep the folders nobody holds now."""
        await asyncio.sleep(OLD_INDEX_GRACE_SECONDS)
        await run_blocking(old.close)  # releases its index folder
        self._retiring.discard(old)
        if self.current is new:
            await run_blocking(new.remove_stale_indexes)
