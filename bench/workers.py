"""Several workers benchmark: throughput and turn latency with 1, 2 and 4 `kefu serve` workers on one
PostgreSQL, and 1 worker on SQLite, measured side by side in one run, with where the CPU went.

    .venv/bin/python bench/workers.py [--messages 600] [--shoppers 32] [--workers 1,2,4] [--nginx] [--kill]

Each setup starts real `kefu serve` processes on the sample shop (deploy/kefu.toml, with a fresh
database: a throwaway PostgreSQL cluster made by tests/postgres_server.py, or a SQLite file), waits
until each is healthy and has answered one message, then `--shoppers` shoppers write `--messages`
messages in all (each shopper's next message after the previous reply, as in a chat), spread over
the workers round robin, or through nginx with deploy/nginx.conf's settings (`--nginx`, when
nginx is installed). Throughput is answered messages per second of the load; latency is what
the shopper waits per message. CPU seconds per message are read from /proc for the kefu
processes and for PostgreSQL's, which says what limits scaling. With `--kill` one worker of the
largest PostgreSQL setup is killed (-9) a third of the way in and the store is checked after:
messages lost, stored twice, answered twice, answered out of order.

Prints a table and writes bench/results/workers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
# Not bench/ itself first on the path: bench/commerce.py would stand in for the commerce package.
sys.path[:] = [str(REPO), str(REPO / "tests"), *(p for p in sys.path[1:] if p not in (str(REPO),))]

from postgres_server import PostgresServer  # noqa: E402  (the tests' throwaway cluster)
from workers import Balancer, free_port  # noqa: E402  (nginx with deploy/nginx.conf's settings)

TOKEN = "bench-webhook-token-0123456789"
QUESTIONS = (
    "how long does shipping take?", "运费多少钱？", "can I return a lamp?", "do you ship to Iceland?",
    "where is my order??", "what payment methods do you take", "我可以退货吗", "is there a discount code",
    "how do I change my address", "do you gift wrap", "退款多久到账", "do you have the rain jacket in M?",
)
START_SECONDS = 600.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    setup: str
    engine: str
    workers: int
    messages: int
    seconds: float
    per_second: float
    p50_ms: float
    p95_ms: float
    kefu_cpu_ms_per_message: float
    postgres_cpu_ms_per_message: float
    retried: int = 0
    killed: bool = False
    lost: int | None = None
    doubled: int | None = None
    answered_twice: int | None = None
    reordered: int | None = None


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def write_config(folder: Path, port: int, storage: str, index_dir: Path) -> Path:
    text = (REPO / "deploy" / "kefu.toml").read_text(encoding="utf-8")
    text = text.replace('url_env = "KEFU_DATABASE_URL"', storage)
    text = text.replace('index_dir = "/var/lib/kefu/index"', f'index_dir = "{index_dir}"')
    text = text.replace('host = "0.0.0.0"\nport = 8080', f'host = "127.0.0.1"\nport = {port}')
    text = text.replace('"../examples/', f'"{REPO}/examples/')
    path = folder / "kefu.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Worker:
    def __init__(self, folder: Path, storage: str, index_dir: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = write_config(folder, self.port, storage, index_dir)
        self.log = (folder / "kefu.log").open("w")
        env = {**os.environ, "KEFU_WEBHOOK_TOKEN": TOKEN, "KEFU_AGENT_TOKEN": TOKEN + "-agent",
               "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "kefu"), "serve", "-c", str(config)],
                                        cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"kefu serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                async with session.get(f"{self.base}/healthz") as answer:
                    if answer.status == 200:
                        await send(session, self.base, {"conversation_id": f"warm-{self.port}",
                                                        "text": "how long does shipping take?"})
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
        raise SystemExit(f"kefu serve on {self.base} was not ready after {START_SECONDS:.0f}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


async def send(session: aiohttp.ClientSession, base: str, body: dict) -> dict:
    async with session.post(f"{base}/v1/messages", json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        if r.status != 200:
            raise aiohttp.ClientResponseError(r.request_info, (), status=r.status, message=await r.text())
        return await r.json()


async def load(workers: list[Worker], messages: int, shoppers: int, *, entry: str | None,
               kill_at: int | None) -> tuple[list[float], float, int]:
    """Send the messages; returns the latencies (ms), the load's seconds and how many sends were retried."""
    latencies: list[float] = []
    retried = 0
    per_shopper = max(1, messages // shoppers)
    done = 0
    rng = random.Random(5)

    async def shopper(number: int, session: aiohttp.ClientSession) -> None:
        nonlocal retried, done
        for n in range(per_shopper):
            body = {"conversation_id": f"shopper-{number}", "message_id": f"s{number}-m{n}",
                    "text": QUESTIONS[(number * 7 + n) % len(QUESTIONS)]}
            started = time.perf_counter()
            for attempt in range(60):
                live = [w for w in workers if w.process.poll() is None]
                base = entry or live[(number + n + attempt) % len(live)].base
                try:
                    await send(session, base, body)
                    break
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    retried += 1
                    await asyncio.sleep(0.25)
            else:
                raise SystemExit(f"nobody answered {body['message_id']}")
            latencies.append((time.perf_counter() - started) * 1000)
            done += 1
            if kill_at is not None and done == kill_at:
                victim = rng.choice(workers)
                victim.process.send_signal(signal.SIGKILL)
                print(f"    killed worker on port {victim.port} after {done} messages", flush=True)

    timeout = aiohttp.ClientTimeout(total=180)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(shopper(number, session) for number in range(shoppers)))
        return latencies, time.perf_counter() - started, retried


def check_store(rows: list[tuple[str, str, int, int | None]], expected: int) -> dict[str, int]:
    """(conversation, external id, inbound id, reply_to) of every message: what went wrong, counted."""
    inbound = [(key, external, id_) for key, external, id_, reply_to in rows if reply_to is None]
    replies = [(key, reply_to, id_) for key, external, id_, reply_to in rows if reply_to is not None]
    seen = defaultdict(int)
    for key, external, _ in inbound:
        seen[(key, external)] += 1
    answers = defaultdict(int)
    order: dict[str, list[int]] = defaultdict(list)
    for key, reply_to, _ in sorted(replies, key=lambda item: item[2]):
        answers[reply_to] += 1
        order[key].append(reply_to)
    return {"lost": expected - len(seen), "doubled": sum(count - 1 for count in seen.values()),
            "answered_twice": sum(count - 1 for count in answers.values()),
            "reordered": sum(1 for ids in order.values() if ids != sorted(ids))}


def stored_rows(location: str) -> list[tuple]:
    sql = ("SELECT conversation_key, external_id, id, reply_to FROM messages WHERE conversation_key LIKE "
           "'webhook:shopper-%' ORDER BY id")
    if location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location) as conn:
            return conn.execute(sql).fetchall()
    with sqlite3.connect(location) as conn:
        return conn.execute(sql).fetchall()


async def run_setup(name: str, engine: str, count: int, location: str, folder: Path, index_dir: Path,
                    args: argparse.Namespace, *, kill: bool) -> Result:
    storage = f'url = "{location}"' if engine == "postgresql" else f'database = "{location}"'
    print(f"  {name}: starting {count} worker(s) on {engine}", flush=True)
    workers = [Worker(folder / f"{name}-{n}", storage, index_dir) for n in range(count)]
    balancer = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            for worker in workers:  # one at a time: two cold starts on 2 cores only slow each other
                await worker.wait_ready(session)
        entry = None
        if args.nginx:
            balancer = Balancer(folder / f"{name}-nginx", [worker.port for worker in workers])
            entry = balancer.base
        pids = [w.process.pid for w in workers]
        kefu_before, pg_before = cpu_seconds(pids), cpu_seconds(postgres_pids())
        kill_at = args.messages // 3 if kill else None
        latencies, seconds, retried = await load(workers, args.messages, args.shoppers, entry=entry,
                                                 kill_at=kill_at)
        kefu_cpu = cpu_seconds(pids) - kefu_before
        pg_cpu = cpu_seconds(postgres_pids()) - pg_before if engine == "postgresql" else 0.0
    finally:
        if balancer is not None:
            balancer.stop()
        for worker in workers:
            worker.stop()
    answered = len(latencies)
    checked = check_store(stored_rows(location), answered) if kill else {}
    ordered = sorted(latencies)
    return Result(setup=name, engine=engine, workers=count, messages=answered, seconds=round(seconds, 2),
                  per_second=round(answered / seconds, 2), p50_ms=round(statistics.median(ordered), 1),
                  p95_ms=round(ordered[int(0.95 * (len(ordered) - 1))], 1),
                  kefu_cpu_ms_per_message=round(kefu_cpu * 1000 / answered, 1),
                  postgres_cpu_ms_per_message=round(pg_cpu * 1000 / answered, 1), retried=retried,
                  killed=kill, **checked)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--shoppers", type=int, default=32)
    parser.add_argument("--workers", default="1,2,4", help="worker counts on PostgreSQL (default 1,2,4)")
    parser.add_argument("--nginx", action="store_true", help="put nginx (deploy/nginx.conf) in front")
    parser.add_argument("--kill", action="store_true", help="kill -9 one worker of the largest setup mid-load")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "workers.json")
    args = parser.parse_args()
    if args.nginx and shutil.which("nginx") is None:
        raise SystemExit("--nginx needs nginx (apt-get install nginx-light)")
    counts = [int(n) for n in args.workers.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="kefu-bench-workers-"))
    index_dir = folder / "index"  # shared, content-addressed: built once
    results: list[Result] = []
    server = PostgresServer()
    try:
        results.append(await run_setup("sqlite-1", "sqlite", 1, str(folder / "kefu.db"), folder, index_dir, args,
                                       kill=False))
        for count in counts:
            kill = args.kill and count == max(counts) and count > 1
            results.append(await run_setup(f"postgresql-{count}", "postgresql", count, server.new_database(),
                                           folder, index_dir, args, kill=kill))
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(f"{'setup':<15} {'msgs':>5} {'msg/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'kefu CPU ms/msg':>16} "
          f"{'PG CPU ms/msg':>14} {'retried':>8} {'lost/dup/twice/reord':>21}")
    for r in results:
        checked = f"{r.lost}/{r.doubled}/{r.answered_twice}/{r.reordered}" if r.killed else "-"
        print(f"{r.setup:<15} {r.messages:>5} {r.per_second:>7.1f} {r.p50_ms:>8.0f} {r.p95_ms:>8.0f} "
              f"{r.kefu_cpu_ms_per_message:>16.1f} {r.postgres_cpu_ms_per_message:>14.1f} {r.retried:>8} "
              f"{checked:>21}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cores": os.cpu_count(), "messages": args.messages, "shoppers": args.shoppers,
                                     "balancer": "nginx" if args.nginx else "client round robin",
                                     "results": [asdict(r) for r in results]}, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
