"""A fake OpenAI-compatible model server (POST /v1/chat/completions) for tests, run on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from conftest import loopback_server, write_config

from bot.app import KefuApp
from bot.config import load_config

GROUNDED = ("Standard delivery takes 3-5 business days to the EU and UK. Orders placed before 14:00 CET on a "
            "business day are dispatched the same day.")


@dataclass
class FakeModelServer:
    """Speaks POST /v1/chat/completions; answers from a script of (status, text or delay)."""

    script: list[tuple[int, str | float | tuple[float, str]]] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    base_url: str = ""
    answer: Callable[[dict], str] | None = None  # with no script left: the reply to a request's body

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("Authorization")})
        status, content = self.script.pop(0) if self.script else (200, self.answer(body) if self.answer else GROUNDED)
        if isinstance(content, float):
            await asyncio.sleep(content)
            content = GROUNDED
        if isinstance(content, tuple):  # (seconds to think, then this text)
            await asyncio.sleep(content[0])
            content = content[1]
        if status != 200:
            return web.json_response({"error": {"message": "overloaded"}}, status=status)
        return web.json_response({
            "id": "cmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 321, "completion_tokens": 42, "total_tokens": 363},
        })


@asynccontextmanager
async def serving(server: FakeModelServer) -> AsyncIterator[FakeModelServer]:
    """The server listening on 127.0.0.1, its `base_url` set (…/v1, as OpenAI clients expect)."""
    async with loopback_server({"/v1/chat/completions": server.completions}) as base_url:
        server.base_url = f"{base_url}/v1"
        yield server


def openai_responder_toml(base_url: str, deadline_seconds: float, style: str = "write") -> str:
    """The [responder] tables of a kefu.toml that generate with the fake server at `base_url`
    (in the `write` style unless told: most tests check what the checks do with written drafts)."""
    return f"""
[responder]
backend = "openai"
deadline_seconds = {deadline_seconds}
style = "{style}"

[responder.openai]
base_url = "{base_url}"
model = "qwen2.5:1.5b-instruct"
api_key_env = "TEST_LLM_KEY"
backoff_seconds = 0.05
max_retries = 2
"""


@asynccontextmanager
async def shop_with_model(tmp_path, server: FakeModelServer, style: str = "write"):  # noqa: ANN001 (a Path)
    """A running kefu (webhook over HTTP) that generates with `server`, 2 s deadline."""
    path = write_config(tmp_path, extra=openai_responder_toml(server.base_url, 2.0, style=style))
    async with KefuApp(load_config(path, environ={"TEST_LLM_KEY": "sk-test-123"}), channels=["webhook"],
                       serve_http=True) as running:
        yield running
