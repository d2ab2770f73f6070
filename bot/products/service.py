"""The live catalog of a running bot: read at start, refreshed in the background, swapped whole.

A file catalog is re-read when it changes (checked like the FAQ folder); a shop system is
asked for the products changed since the last read every `refresh_minutes` and for the whole
catalog every `full_refresh_hours` (so deleted products go). Each new version is indexed aside,
off the event loop, and replaces the old one in one assignment: a turn searching meanwhile
keeps the version it started with. A failed read keeps the last good catalog and says why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from bot.concurrency import run_blocking
from bot.config import Config
from bot.errors import KefuError
from commerce.products import CatalogSource, CatalogUnavailable, Product
from commerce.sources.catalog_file import FileCatalog
from commerce.sources.shopify_auth import ShopifyAccess
from commerce.sources.shopify_products import ShopifyCatalog
from commerce.sources.woocommerce_products import WooCommerceCatalog
from knowledge.catalog import ProductSearch
from knowledge.search import EncoderSet
from knowledge.service import search_settings

log = logging.getLogger(__name__)

OLD_VERSION_GRACE_SECONDS = 30.0  # a turn that started with the old version finishes with it
RETRY_AFTER_FAILURE_SECONDS = 60.0


def catalog_source(config: Config) -> CatalogSource:
    catalog = config.catalog
    if catalog.source == "file":
        assert catalog.file is not None
        return FileCatalog(catalog.file)
    if catalog.source == "shopify":
        access = ShopifyAccess(shop_url=catalog.shop_url, token=catalog.token, client_id=catalog.client_id,
                               client_secret=catalog.client_secret)
        return ShopifyCatalog(shop_url=catalog.shop_url, access=access, api_version=catalog.api_version)
    if catalog.source == "woocommerce":
        return WooCommerceCatalog(base_url=catalog.base_url, consumer_key=catalog.consumer_key,
                                  consumer_secret=catalog.consumer_secret)
    raise ValueError(f"no catalog source for '{catalog.source}'")


class CatalogService:
    """Holds the current `ProductSearch`; `current` is replaced, never changed."""

    def __init__(self, config: Config, source: CatalogSource, encoders: EncoderSet | None):
        self._config = config
        self._source = source
        self._encoders = encoders
        self.current: ProductSearch | None = None
        self.versions = 0
        self._products: dict[str, Product] = {}
        self._file_seen: tuple[int, int] | None = None
        self._read_started: datetime | None = None
        self._full_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Read and index the catalog; a broken catalog file stops the start, a shop system that is down
        does not (kefu serves the FAQ and tries again in a minute)."""
        try:
            await self._full_read()
        except CatalogUnavailable as exc:
            log.error("catalog.unavailable source=%s reason=%s; products are not answered until it is back",
                      exc.source, exc.reason)
        self._task = asyncio.create_task(self._watch(), name="kefu-catalog-refresh")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._retiring) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.current is not None:
            await run_blocking(self.current.close)
        await self._source.close()

    async def _full_read(self) -> None:
        started = datetime.now(timezone.utc)
        if isinstance(self._source, FileCatalog):
            self._file_seen = await run_blocking(self._source.fingerprint)
        products = await self._source.products()
        self._products = {product.id: product for product in products}
        self._read_started, self._full_at = started, time.monotonic()
        await self._publish()

    async def _changed_read(self) -> None:
        started = datetime.now(timezone.utc)
        changed = await self._source.products(changed_since=self._read_started)
        self._read_started = started
        if changed:
            self._products.update({product.id: product for product in changed})
            await self._publish()

    async def _publish(self) -> None:
        config = self._config
        new = ProductSearch(list(self._products.values()), config.storage.index_dir / "catalog", config.shop.languages,
                            encoders=self._encoders, settings=search_settings(config), source=self._source.name)
        await run_blocking(new.open)
        old, self.current = self.current, new
        self.versions += 1
        log.info("catalog.ready source=%s products=%d version=%d", self._source.name, len(self._products),
                 self.versions)
        if old is not None:
            task = asyncio.create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, old: ProductSearch) -> None:
        await asyncio.sleep(OLD_VERSION_GRACE_SECONDS)
        await run_blocking(old.close)
        if self.current is not None:
            await run_blocking(self.current.remove_stale_indexes)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval())
            try:
                await self.refresh()
            except (CatalogUnavailable, KefuError) as exc:
                log.error("catalog.refresh_failed keeping the last good catalog: %s", exc)
                await asyncio.sleep(RETRY_AFTER_FAILURE_SECONDS)
            except Exception:  # the watcher must survive anything; the last good catalog keeps serving
                log.exception("catalog.refresh_crashed")

    def _interval(self) -> float:
        if isinstance(self._source, FileCatalog):
            return max(0.2, self._config.search.reload_interval_seconds or 2.0)
        return self._config.catalog.refresh_minutes * 60

    async def refresh(self) -> bool:
        """Read what changed (the whole file, or the changed products); True when a new version went live."""
        before = self.versions
        if isinstance(self._source, FileCatalog):
            seen = await run_blocking(self._source.fingerprint)
            if seen != self._file_seen:
                await self._full_read()
        elif self.current is None or time.monotonic() - self._full_at >= self._config.catalog.full_refresh_hours * 3600:
            await self._full_read()
        else:
            await self._changed_read()
        return self.versions != before
