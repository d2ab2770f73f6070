"""Who may use the web console: password hashes, sessions, the sign-in limit, the [console] config."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from conftest import REPO, write_config

from bot.app import KefuApp
from bot.changes import ChangeFeed
from bot.config import Config, load_config
from bot.console_access import MAX_SESSIONS_PER_USER, ConsoleAccess
from bot.errors import ConfigError
from bot.passwords import hash_password, hash_problem, verify_password
from bot.store import Store

HASH = hash_password("correct horse battery")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_password_hash_verifies_only_its_password_and_is_salted():
    assert verify_password("correct horse battery", HASH)
    assert not verify_password("correct horse batter", HASH)
    assert not verify_password("", HASH)
    assert hash_password("correct horse battery") != HASH  # a fresh salt every time
    assert HASH.startswith("scrypt$16384$8$1$") and hash_problem(HASH) is None
    assert "kefu hash-password" in hash_problem("plaintext-password")
    assert "unusable scrypt parameters" in hash_problem(HASH.replace("$16384$", "$1000$"))
    with pytest.raises(ValueError):
        hash_password("")


def test_hash_password_command_reads_stdin_and_prints_a_config_block():
    result = subprocess.run([sys.executable, "-m", "bot.cli", "hash-password", "--name", "li.na", "--role", "agent",
                             "--role", "merchant"], input="s3cret-enough\n", capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["[[console.users]]", 'name = "li.na"'] and lines[3] == 'roles = ["agent", "merchant"]'
    encoded = lines[2].split('"')[1]
    assert verify_password("s3cret-enough", encoded)
    short = subprocess.run([sys.executable, "-m", "bot.cli", "hash-password"], input="short\n", capture_output=True,
                           text=True, timeout=60, cwd=REPO)
    assert short.returncode == 2 and "at least 8" in short.stderr
    quote = subprocess.run([sys.executable, "-m", "bot.cli", "hash-password", "--name", 'x"y'], input="long-enough\n",
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert quote.returncode == 2 and "name" in quote.stderr


def access(store: Store, clock: Clock, *, idle: float = 3600, attempts: int = 5, window: float = 300
           ) -> ConsoleAccess:
    return ConsoleAccess(store, idle_seconds=idle, attempts=attempts, window_seconds=window, clock=clock)


@pytest.mark.both_engines
async def test_sessions_expire_after_idle_time_and_sign_out_ends_them(store):
    clock = Clock()
    book = access(store, clock, idle=600)
    token, session = await book.open_session("alice")
    assert await book.session(token) == session and await book.session("forged") is None
    assert await book.session(None) is None
    clock.now += 599
    assert await book.session(token) is not None  # activity restarts the idle clock
    clock.now += 599
    assert await book.session(token) is not None
    clock.now += 601
    assert await book.session(token) is None
    token, _ = await book.open_session("alice")
    await book.close_session(token)
    assert await book.session(token) is None
    assert session.csrf_ok(session.csrf_token) and not session.csrf_ok("") and not session.csrf_ok(None)
    stored = await store.read(lambda db: [tuple(row) for row in db.execute("SELECT digest FROM console_sessions")])
    assert token not in repr(stored)  # only the token's SHA-256 is kept


@pytest.mark.both_engines
async def test_a_user_keeps_at_most_a_fixed_number_of_sessions_oldest_out_first(store):
    clock = Clock()
    book = access(store, clock)
    tokens = []
    for _ in range(MAX_SESSIONS_PER_USER + 1):
        clock.now += 1
        tokens.append((await book.open_session("bob"))[0])
    assert await book.session(tokens[0]) is None
    assert all([await book.session(token) is not None for token in tokens[1:]])


@pytest.mark.both_engines
async def test_sign_in_limit_counts_per_address_and_per_name_within_the_window(store):
    clock = Clock()
    limiter = access(store, clock, attempts=3)
    for name in ("a", "b", "c"):
        assert isinstance(await limiter.begin_sign_in("10.0.0.1", name), int)  # counted, then failed: never uncounted
    assert await limiter.begin_sign_in("10.0.0.1", "d") == pytest.approx(300)  # this address guessed too often
    assert await limiter.retry_after("10.0.0.2", "d") == 0
    for address in ("10.0.0.3", "10.0.0.4", "10.0.0.5"):
        await limiter.begin_sign_in(address, "Eve")
    assert await limiter.begin_sign_in("10.0.0.6", "eve") > 0  # this name was guessed too often, from anywhere
    clock.now += 301
    assert await limiter.retry_after("10.0.0.1", "d") == 0 and await limiter.retry_after("10.0.0.6", "eve") == 0
    await limiter.begin_sign_in("10.0.0.7", "zoe")
    await limiter.begin_sign_in("10.0.0.8", "zoe")
    success = await limiter.begin_sign_in("10.0.0.11", "zoe")
    await limiter.sign_in_succeeded(success)
    await limiter.begin_sign_in("10.0.0.9", "zoe")
    assert await limiter.retry_after("10.0.0.10", "zoe") == 0  # a success cleared the name's earlier failures
    # the success is not counted against its address either: three more tries from it are allowed
    assert all([isinstance(await limiter.begin_sign_in("10.0.0.11", name), int) for name in ("x", "y", "w")])
    assert await limiter.retry_after("10.0.0.7", "q") == 0  # the cleared failures still count for their address


@pytest.mark.both_engines
async def test_attempts_in_flight_count_before_their_password_is_checked(store):
    """Concurrent attempts: the limit counts them as they arrive, not when their scrypt check ends."""
    limiter = access(store, Clock())
    started = await asyncio.gather(*(limiter.begin_sign_in("10.0.0.1", "demo") for _ in range(40)))
    assert sum(isinstance(item, int) for item in started) == 5
    assert sum(item > 0 for item in started if isinstance(item, float)) == 35


async def test_a_restart_signs_nobody_out(tmp_path):
    clock = Clock()
    for _ in range(2):
        store = Store(tmp_path / "kefu.db")
        await store.open()
        try:
            if clock.now == 1000.0:
                token, session = await access(store, clock).open_session("alice")
                clock.now += 5
            else:
                assert await access(store, clock).session(token) == session
        finally:
            await store.close()


async def test_sessions_and_the_limit_hold_across_workers(postgres_url):
    """Two workers on one database: a session opened on one is valid on the other, and 40 guesses spread
    over both are still held to the limit."""
    workers = [Store(postgres_url), Store(postgres_url)]
    for worker in workers:
        await worker.open()
    try:
        clock = Clock()
        first, second = access(workers[0], clock), access(workers[1], clock)
        token, session = await first.open_session("alice")
        assert await second.session(token) == session
        await second.close_session(token)
        assert await first.session(token) is None
        started = await asyncio.gather(*((first if n % 2 else second).begin_sign_in("10.0.0.1", "demo")
                                         for n in range(40)))
        assert sum(isinstance(item, int) for item in started) == 5
    finally:
        for worker in workers:
            await worker.close()


async def test_the_change_feed_wakes_waiters_and_times_out_quietly():
    feed = ChangeFeed()
    assert await feed.wait(0, timeout=0.01) == 0
    waiter = asyncio.create_task(feed.wait(0, timeout=5))
    await asyncio.sleep(0)
    feed.bump()
    assert await asyncio.wait_for(waiter, 1) == 1
    feed.bump()
    assert await feed.wait(0, timeout=5) == 2  # already past: no waiting


def console_toml(users: str, extra: str = "") -> str:
    return f"[console]\nenabled = true\n{extra}\n{users}"


@pytest.mark.parametrize(("users", "extra", "key", "words"), [
    ("", "", "console.users", "nobody can sign in"),
    (f'[[console.users]]\nname = "ann"\npassword_hash = "{HASH}"\n[[console.users]]\nname = "ann"\n'
     f'password_hash = "{HASH}"\n', "", "console.users.2.name", "listed twice"),
    ('[[console.users]]\nname = "ann"\npassword_hash = "hunter2"\n', "", "console.users.1.password_hash",
     "kefu hash-password"),
    (f'[[console.users]]\nname = "ann"\npassword_hash = "{HASH}"\nroles = ["admin"]\n', "", "console.users.1.roles",
     "agent, merchant"),
    (f'[[console.users]]\nname = "ann smith"\npassword_hash = "{HASH}"\n', "", "console.users.1.name", "letters"),
    (f'[[console.users]]\nname = "ann"\npassword_hash = "{HASH}"\n', 'timezone = "Mars/Olympus"', "console.timezone",
     "IANA time zone"),
    (f'[[console.users]]\nname = "ann"\npassword_hash = "{HASH}"\npassword = "x"\n', "", "console.users.1.password",
     "unknown key"),
])
def test_console_config_errors_name_the_key_and_line(tmp_path, users, extra, key, words):
    path = write_config(tmp_path, extra=console_toml(users, extra))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert f"key '{key}'" in message and words in message
    line = int(message.split(":")[1])
    text = path.read_text(encoding="utf-8").splitlines()[line - 1]
    assert key.rsplit(".", 1)[-1] in text or text.strip().startswith("[")


def test_console_config_reads_users_roles_and_defaults(tmp_path):
    users = (f'[[console.users]]\nname = "ann"\npassword_hash = "{HASH}"\n'
             f'[[console.users]]\nname = "max"\ndisplay_name = "Max M."\npassword_hash = "{HASH}"\n'
             f'roles = ["merchant", "agent"]\n')
    config = load_config(write_config(tmp_path, extra=console_toml(users, 'timezone = "Asia/Shanghai"')), environ={})
    ann, max_ = config.console.users
    assert (ann.name, ann.roles, ann.display_name) == ("ann", ("agent",), "ann")
    assert (max_.display_name, max_.roles) == ("Max M.", ("merchant", "agent"))
    assert config.console.timezone == "Asia/Shanghai" and config.console.session_hours == 12.0
    off = load_config(write_config(tmp_path), environ={})
    assert not off.console.enabled and off.console.users == ()


def test_the_sample_shops_demo_account_signs_in_with_the_password_the_readme_gives():
    config = load_config(REPO / "examples" / "sample-shop" / "kefu.toml", environ={})
    (demo,) = config.console.users
    assert demo.name == "demo" and set(demo.roles) == {"agent", "merchant"}
    assert verify_password("lantern-demo", demo.password_hash)
    assert "lantern-demo" in (REPO / "README.md").read_text(encoding="utf-8")


class SignInForm:
    """The console's sign-in form as a browser posts it: the form token from the page, then attempts."""

    def __init__(self, http: aiohttp.ClientSession, base: str):
        self.http, self.base, self.token = http, base, ""

    async def load(self) -> SignInForm:
        async with self.http.get(f"{self.base}/console") as page:
            self.token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
        return self

    async def attempt(self, name: str, password: str, **headers: str) -> int:
        form = {"name": name, "password": password, "csrf": self.token}
        async with self.http.post(f"{self.base}/console/sign-in", data=form, allow_redirects=False,
                                  headers={"Cookie": f"kefu_console_sign_in={self.token}", **headers}) as response:
            return response.status


def console_config(tmp_path: Path, password_hash: str, attempts: int, http: str = "") -> Config:
    return load_config(write_config(tmp_path, http=http, extra=f"""
[console]
enabled = true
sign_in_attempts = {attempts}

[[console.users]]
name = "demo"
password_hash = "{password_hash}"
"""), environ={})


async def test_behind_a_proxy_the_sign_in_limit_counts_an_ipv6_guesser_by_their_64(tmp_path):
    """Names sprayed from one IPv6 customer's network: a new address per guess must not reset the count."""
    config = console_config(tmp_path, HASH, attempts=3, http="proxy_hops = 1")
    async with KefuApp(config, channels=["web_console"], serve_http=True) as app, aiohttp.ClientSession() as http:
        form = await SignInForm(http, app.http.base_url).load()
        sprayed = [await form.attempt(f"user{n}", "guess", **{"X-Forwarded-For": f"2001:db8:5:6::{n:x}"})
                   for n in range(1, 6)]
        other = await form.attempt("user9", "guess", **{"X-Forwarded-For": "2001:db8:5:7::1"})
    assert sprayed == [401, 401, 401, 429, 429] and other == 401


async def test_fifty_concurrent_sign_ins_cannot_get_past_the_limit(tmp_path):
    """Finding 1: attempts checked before the slow scrypt and recorded after it let 40 at once all through."""
    password = "the-real-password-7"
    config = console_config(tmp_path, hash_password(password), attempts=5)
    async with KefuApp(config, channels=["web_console"], serve_http=True) as app, aiohttp.ClientSession() as http:
        form = await SignInForm(http, app.http.base_url).load()
        guesses = [f"guess-{number}" for number in range(50)]
        guesses[37] = password  # the 38th, as in the finding
        statuses = await asyncio.gather(*(form.attempt("demo", guess) for guess in guesses))
    assert statuses.count(401) == 5  # five were checked
    assert statuses.count(429) == 45  # the rest were refused before their check
    assert 303 not in statuses  # the right password, sent 38th, did not sign in
