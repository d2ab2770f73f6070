"""The transformers responder backend with a tiny causal LM built here (random weights, a locally trained
tokenizer), saved to a folder and loaded back through the same `from_pretrained` code as a real model."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import TOKEN, write_config

from bot.app import KefuApp
from bot.config import TransformersLMConfig, load_config
from bot.llm import GenerationError, Sampling, TransformersBackend
from bot.responder.prompt import ChatMessage

pytest.importorskip("transformers")
from tiny_lm import build_tiny_model  # noqa: E402  (needs transformers)

@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-chat-lm"), chat_template=True)


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-plain-lm"), chat_template=False)


MESSAGES = [ChatMessage("system", "Answer from the FAQ."),
            ChatMessage("user", "<shopper_message>\nhow long does shipping take?\n</shopper_message>")]


async def started(folder: Path, max_waiting: int = 4) -> TransformersBackend:
    backend = TransformersBackend(TransformersLMConfig(str(folder), "float32", 1), max_waiting)
    await backend.start()
    return backend


async def test_chat_models_get_their_template_and_plain_models_a_transcript(chat_model, plain_model):
    chat, plain = await started(chat_model), await started(plain_model)
    try:
        chat_text = chat._tokenizer.decode(chat.prompt_ids(MESSAGES)[0])
        plain_text = plain._tokenizer.decode(plain.prompt_ids(MESSAGES)[0])
    finally:
        await chat.stop()
        await plain.stop()
    assert chat_text.startswith("<|system|>Answer from the FAQ.") and chat_text.endswith("<|assistant|>")
    assert plain_text.startswith("### Instructions:\nAnswer from the FAQ.") and plain_text.endswith("### Assistant:\n")


async def test_generation_runs_off_the_event_loop(chat_model):
    backend = await started(chat_model)
    lags: list[float] = []

    async def tick() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    ticker = asyncio.create_task(tick())
    try:
        generation = await backend.generate(MESSAGES, Sampling(300, 0.0, 1.0), time.monotonic() + 30)
    finally:
        ticker.cancel()
        await backend.stop()
    assert generation.completion_tokens and generation.completion_tokens > 0
    assert len(lags) >= 5
    assert max(lags) < 0.25, f"the event loop stalled for {max(lags):.3f}s (median {statistics.median(lags):.4f}s)"


async def test_the_deadline_stops_generation(chat_model):
    backend = await started(chat_model)
    try:
        with pytest.raises(GenerationError, match="deadline"):
            await backend.generate(MESSAGES, Sampling(100_000, 0.0, 1.0), time.monotonic() + 0.3)
    finally:
        await backend.stop()


async def test_turns_beyond_the_waiting_limit_fall_back_at_once(chat_model):
    backend = await started(chat_model, max_waiting=0)
    try:
        slow = asyncio.create_task(backend.generate(MESSAGES, Sampling(400, 0.0, 1.0), time.monotonic() + 30))
        await asyncio.sleep(0.05)
        with pytest.raises(GenerationError, match="busy"):
            await backend.generate(MESSAGES, Sampling(5, 0.0, 1.0), time.monotonic() + 30)
        await slow
    finally:
        await backend.stop()


async def test_a_random_model_never_reaches_the_shopper(tmp_path, chat_model):
    """The tiny model writes noise: the checks refuse it and the FAQ's own answer is sent."""
    path = write_config(tmp_path, extra=f"""
[responder]
backend = "transformers"
max_new_tokens = 40
[responder.transformers]
model = "{chat_model.as_posix()}"
dtype = "float32"
threads = 1
""")
    async with KefuApp(load_config(path, environ={}), channels=["webhook"], serve_http=True) as app:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{app.http.base_url}/v1/messages",
                                    json={"conversation_id": "t1", "text": "how long does shipping take?"},
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                reply = (await response.json())["reply"]
    assert reply["text"].startswith("All orders ship from our warehouse")
    assert "the transformers model's reply was not used" in reply["why"]


def test_kefu_chat_runs_with_a_transformers_model_from_the_command_line(tmp_path, chat_model):
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "-c", str(write_config(tmp_path)), "--user", "cli",
         "--responder", "transformers", "--model", str(chat_model)],
        input="how long does shipping take?\n", capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "All orders ship from our warehouse" in result.stdout
    assert "the transformers model's reply was not used" in result.stdout


def test_model_without_responder_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run([sys.executable, "-m", "bot.cli", "chat", "-c", str(write_config(tmp_path)),
                             "--model", "x"], input="", capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2 and "--model needs --responder" in result.stderr
