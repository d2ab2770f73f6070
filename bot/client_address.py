"""Who sent a request, as the rate limits must count it: the person's address, not a proxy's or a host's.

Two facts decide it. Behind reverse proxies (TLS in nginx or Caddy, a load balancer, a CDN) every
request comes from the proxy, so the person's address is in X-Forwarded-For; but only the entries the
trusted proxies appended can be believed, the rest the client may have written. And an IPv6 customer
is given a whole /64 by their provider, so counting single IPv6 addresses lets anyone rotate past a
limit; the limits count the /64, as an IPv4 address counts one household.
"""

from __future__ import annotations

import ipaddress
import logging

log = logging.getLogger(__name__)

IPV6_PREFIX = 64  # what one ISP customer (a home, a phone) is given: one counter for all of it


def forwarded_client(remote: str | None, forwarded_for: str | None, proxy_hops: int) -> str:
    """The peer, or behind `proxy_hops` trusted proxies the address the outermost of them saw.

    Each proxy appends the address it received from, so only the last `proxy_hops` entries were written
    by proxies we trust. A missing or malformed entry there means a proxy that does not send the header
    (a misconfiguration): the peer is used, with a warning, rather than a value the client chose.
    """
    peer = remote or "unknown"
    if not proxy_hops:
        return peer
    hops = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
    if len(hops) < proxy_hops:
        log.warning("http.forwarded_for_missing remote=%s expected_hops=%d got=%d", peer, proxy_hops, len(hops))
        return peer
    candidate = _without_port(hops[-proxy_hops])
    if _ip(candidate) is None:
        log.warning("http.forwarded_for_invalid remote=%s entry=%.60r", peer, candidate)
        return peer
    return candidate


def limit_key(address: str) -> str:
    """The counter an address belongs to: an IPv4 address itself, an IPv6 address's /64 network
    (an IPv4-mapped IPv6 address is its IPv4 address); anything else (a Unix socket peer) as it is."""
    ip = _ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def _without_port(entry: str) -> str:
    """Some proxies (Azure's, IIS) write "203.0.113.7:5123" or "[2001:db8::1]:443"; the port is not the person."""
    if entry.startswith("["):
        return entry[1:].split("]", 1)[0]
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # a link-local zone (fe80::1%eth0) is not part of it
    except ValueError:
        return None
