"""The configured order source, built once at start-up behind the cache, timeout and circuit breaker."""

from __future__ import annotations

from bot.config import OrdersConfig
from commerce.guard import GuardedOrders, GuardPolicy
from commerce.orders import OrderSource
from commerce.sources.endpoint import EndpointOrders
from commerce.sources.file import FileOrders
from commerce.sources.shopify import ShopifyOrders
from commerce.sources.shopify_auth import ShopifyAccess
from commerce.sources.woocommerce import WooCommerceOrders


def order_source(config: OrdersConfig) -> GuardedOrders:
    """`[orders] source` as an OrderSource; a file source is read now, so a broken file stops the start."""
    inner: OrderSource
    # Each call must end within the guard's timeout; the source's own timeout is a little shorter so
    # its error (refused token, 503) is what gets logged, not a bare timeout.
    timeout = max(0.5, config.timeout_seconds - 0.5)
    if config.source == "file":
        assert config.file is not None
        file_source = FileOrders(config.file)
        file_source.load()
        inner = file_source
    elif config.source == "shopify":
        access = ShopifyAccess(shop_url=config.shop_url, token=config.token, client_id=config.client_id,
                               client_secret=config.client_secret, timeout_seconds=timeout)
        inner = ShopifyOrders(shop_url=config.shop_url, access=access, api_version=config.api_version,
                              timeout_seconds=timeout, max_throttle_wait_seconds=min(2.0, timeout / 2))
    elif config.source == "woocommerce":
        inner = WooCommerceOrders(base_url=config.base_url, consumer_key=config.consumer_key,
                                  consumer_secret=config.consumer_secret, timeout_seconds=timeout)
    elif config.source == "endpoint":
        inner = EndpointOrders(url_template=config.url_template, token=config.token, timeout_seconds=timeout)
    else:
        raise ValueError(f"no order source for '{config.source}'")
    return GuardedOrders(inner, GuardPolicy(cache_seconds=config.cache_seconds, timeout_seconds=config.timeout_seconds,
                                            failures_to_open=config.failures_to_open,
                                            open_seconds=config.open_seconds))
