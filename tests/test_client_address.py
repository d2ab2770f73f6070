"""Whose address a request counts as (bot/client_address): behind trusted proxies, and IPv6 by its /64."""

from __future__ import annotations

import pytest
from conftest import write_config

from bot.client_address import forwarded_client, limit_key
from bot.config import load_config
from bot.errors import ConfigError


@pytest.mark.parametrize(("remote", "forwarded", "hops", "expected"), [
    ("10.0.0.9", None, 0, "10.0.0.9"),  # no proxy: the peer
    ("10.0.0.9", "203.0.113.7", 0, "10.0.0.9"),  # a header nobody trusts is ignored
    ("127.0.0.1", "203.0.113.7", 1, "203.0.113.7"),  # nginx in front: what it saw
    ("127.0.0.1", "198.51.100.1, 203.0.113.7", 1, "203.0.113.7"),  # a forged first entry does not count
    ("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),  # CDN + nginx
    ("127.0.0.1", "203.0.113.7:5123", 1, "203.0.113.7"),  # a proxy that adds the port (Azure)
    ("127.0.0.1", "[2001:db8::7]:443", 1, "2001:db8::7"),
    ("127.0.0.1", "2001:db8::7", 1, "2001:db8::7"),
    ("127.0.0.1", None, 1, "127.0.0.1"),  # the proxy sent nothing: the peer, with a warning
    ("127.0.0.1", "unknown", 1, "127.0.0.1"),  # nor an address: the peer, not a value anyone could vary
    ("127.0.0.1", "<script>, 203.0.113.7", 2, "127.0.0.1"),
])
def test_the_client_is_the_address_the_outermost_trusted_proxy_saw(remote, forwarded, hops, expected):
    assert forwarded_client(remote, forwarded, hops) == expected


@pytest.mark.parametrize(("address", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),  # one IPv6 customer's network
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next customer's
    ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4 on a dual-stack socket is the IPv4 address
    ("fe80::1%eth0", "fe80::/64"),
    ("unknown", "unknown"),
])
def test_a_limit_counts_an_ipv4_address_and_an_ipv6_customers_whole_64(address, key):
    assert limit_key(address) == key


def test_proxy_hops_is_an_http_setting_and_the_old_console_key_says_where_it_went(tmp_path):
    config = load_config(write_config(tmp_path, http="proxy_hops = 2"), environ={})
    assert config.http.proxy_hops == 2
    assert load_config(write_config(tmp_path), environ={}).http.proxy_hops == 0
    with pytest.raises(ConfigError, match=r"kefu.toml:\d+: key .console.proxy_hops.: moved to \[http\] proxy_hops"):
        load_config(write_config(tmp_path, extra="[console]\nproxy_hops = 1\n"), environ={})
    with pytest.raises(ConfigError, match="http.proxy_hops"):
        load_config(write_config(tmp_path, http="proxy_hops = 9"), environ={})
