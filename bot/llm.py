"""Text generation backends for the LLM responder: transformers, an OpenAI-compatible server, llama.cpp.

Each one turns chat messages into a `Generation` before a deadline or raises
`GenerationError` with a reason; the responder then falls back to the extractive
answer. Local models generate on one worker thread (never on the event loop), with
a limit on how many turns may wait for it: a turn beyond the limit falls back at once
instead of queueing behind a slow model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from bot.config import LlamaCppConfig, OpenAIConfig, ResponderConfig, TransformersLMConfig
from bot.errors import KefuError
from bot.responder.prompt import ChatMessage, plain_prompt

log = logging.getLogger(__name__)


class GenerationError(KefuError):
    """The model produced nothing usable in time; `reason` is recorded with the fallback."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Generation:
    text: str
    backend: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float
    top_p: float

    @classmethod
    def from_config(cls, config: ResponderConfig) -> Sampling:
        return cls(config.max_new_tokens, config.temperature, config.top_p)


class GenerationBackend(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def generate(self, messages: Sequence[ChatMessage], sampling: Sampling, deadline: float) -> Generation:
        """`deadline` is a `time.monotonic()` value; raise GenerationError when it cannot be met."""


# -- OpenAI-compatible servers ---------------------------------------------------

RETRY_STATUSES = (408, 409, 425, 429, 500, 502, 503, 504)


class OpenAIBackend:
    """POST {base_url}/chat/completions; retries 429/5xx with backoff while the deadline allows."""

    name = "openai"

    def __init__(self, config: OpenAIConfig):
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def generate(self, messages: Sequence[ChatMessage], sampling: Sampling, deadline: float) -> Generation:
        assert self._session is not None, "start() the backend first"
        config = self._config
        body = {
            "model": config.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stream": False,
        }
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        url = f"{config.base_url}/chat/completions"
        last = "no attempt"
        for attempt in range(config.max_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GenerationError(f"deadline passed after {attempt} attempt(s); last: {last}")
            timeout = aiohttp.ClientTimeout(total=min(config.timeout_seconds, remaining))
            try:
                async with self._session.post(url, json=body, headers=headers, timeout=timeout) as response:
                    if response.status == 200:
                        return _parse_completion(await response.json(content_type=None))
                    last = f"{url} answered {response.status}: {(await response.text())[:200]}"
                    if response.status not in RETRY_STATUSES:
                        raise GenerationError(last)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{url} unreachable: {type(exc).__name__} {exc}"
            pause = config.backoff_seconds * 2 ** attempt
            if time.monotonic() + pause >= deadline or attempt == config.max_retries:
                break
            log.warning("llm.retry backend=openai attempt=%d reason=%s", attempt + 1, last)
            await asyncio.sleep(pause)
        raise GenerationError(last)


def _parse_completion(data: Any) -> Generation:
    try:
        text = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise GenerationError(f"the server's answer has no choices[0].message.content: {exc!r}") from exc
    if not isinstance(text, str):
        raise GenerationError("the server's message content is not text")
    usage = data.get("usage") or {}
    return Generation(text, "openai", usage.get("prompt_tokens"), usage.get("completion_tokens"))


# -- local models on a worker thread ------------------------------------------------


class LocalWorker:
    """One thread runs one generation at a time; at most `max_waiting` more may wait for it."""

    def __init__(self, name: str, max_waiting: int):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kefu-{name}")
        self._slots = asyncio.Semaphore(max_waiting + 1)
        self._max_waiting = max_waiting

    async def run(self, func: Callable[..., Generation], *args: Any) -> Generation:
        if self._slots.locked():
            raise GenerationError(f"the model is busy ({self._max_waiting} turns already waiting)")
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class TransformersBackend:
    """A Hugging Face causal LM (hub id or folder): chat template when the tokenizer has one, else a plain prompt."""

    name = "transformers"

    def __init__(self, config: TransformersLMConfig, max_waiting: int):
        self._config = config
        self._worker = LocalWorker("transformers-lm", max_waiting)
        self._model: Any = None
        self._tokenizer: Any = None

    async def start(self) -> None:
        await self._worker.run(self._load)

    def _load(self) -> Generation:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise KefuError("responder backend 'transformers' needs: pip install 'kefu[transformers]'") from exc
        torch.set_num_threads(self._config.threads)
        dtype = "auto" if self._config.dtype == "auto" else getattr(torch, self._config.dtype)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self._config.model)
            self._model = AutoModelForCausalLM.from_pretrained(self._config.model, dtype=dtype)
        except OSError as exc:
            raise KefuError(f"cannot load the language model '{self._config.model}': {exc}") from exc
        self._model.eval()
        log.info("llm.loaded backend=transformers model=%s chat_template=%s", self._config.model,
                 bool(getattr(self._tokenizer, "chat_template", None)))
        return Generation("", self.name)

    async def stop(self) -> None:
        self._worker.shutdown()

    async def generate(self, messages: Sequence[ChatMessage], sampling: Sampling, deadline: float) -> Generation:
        return await self._worker.run(self._generate, list(messages), sampling, deadline)

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> Any:
        """The prompt as a (1, n) tensor of token ids."""
        tokenizer = self._tokenizer
        if getattr(tokenizer, "chat_template", None):
            encoded = tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                                    add_generation_prompt=True, return_tensors="pt")
        else:
            encoded = tokenizer(plain_prompt(messages), return_tensors="pt")
        # Recent transformers return a BatchEncoding from both; older ones a bare tensor from the template.
        return encoded["input_ids"] if hasattr(encoded, "keys") else encoded

    def _generate(self, messages: list[ChatMessage], sampling: Sampling, deadline: float) -> Generation:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Deadline(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return time.monotonic() >= deadline

        if time.monotonic() >= deadline:
            raise GenerationError("deadline passed while waiting for the model")
        input_ids = self.prompt_ids(messages)
        sample = sampling.temperature > 0
        options: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "do_sample": sample,
                                   "stopping_criteria": StoppingCriteriaList([Deadline()]),
                                   "pad_token_id": self._tokenizer.pad_token_id or self._tokenizer.eos_token_id}
        if sample:
            options.update(temperature=sampling.temperature, top_p=sampling.top_p)
        with torch.inference_mode():
            output = self._model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **options)
        if time.monotonic() >= deadline:
            raise GenerationError("the model did not finish before the deadline")
        new = output[0][input_ids.shape[1]:]
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        if "### " in text:  # a plain-prompt model going on to write the next turn itself
            text = text.split("### ", 1)[0]
        return Generation(text.strip(), self.name, int(input_ids.shape[1]), int(len(new)))


class LlamaCppBackend:
    """A GGUF model through llama-cpp-python (optional: pip install llama-cpp-python), streamed so
    that the deadline stops it between tokens."""

    name = "llama-cpp"

    def __init__(self, config: LlamaCppConfig, max_waiting: int):
        self._config = config
        self._worker = LocalWorker("llama-cpp", max_waiting)
        self._llama: Any = None

    async def start(self) -> None:
        await self._worker.run(self._load)

    def _load(self) -> Generation:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise KefuError("responder backend 'llama-cpp' needs llama-cpp-python; see README "
                            "'LLM responder' for the build flags") from exc
        try:
            self._llama = Llama(model_path=self._config.model_path, n_ctx=self._config.context_tokens,
                                n_threads=self._config.threads, verbose=False)
        except (ValueError, OSError) as exc:
            raise KefuError(f"cannot load the GGUF model '{self._config.model_path}': {exc}") from exc
        return Generation("", self.name)

    async def stop(self) -> None:
        self._worker.shutdown()

    async def generate(self, messages: Sequence[ChatMessage], sampling: Sampling, deadline: float) -> Generation:
        return await self._worker.run(self._generate, list(messages), sampling, deadline)

    def _generate(self, messages: list[ChatMessage], sampling: Sampling, deadline: float) -> Generation:
        if time.monotonic() >= deadline:
            raise GenerationError("deadline passed while waiting for the model")
        pieces: list[str] = []
        stream = self._llama.create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in messages], max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature, top_p=sampling.top_p, stream=True)
        for chunk in stream:
            pieces.append(chunk["choices"][0]["delta"].get("content") or "")
            if time.monotonic() >= deadline:
                raise GenerationError("the model did not finish before the deadline")
        return Generation("".join(pieces).strip(), self.name, None, len(pieces))


def build_generator(config: ResponderConfig) -> GenerationBackend | None:
    """The configured backend, not started; None for the extractive responder."""
    if config.backend == "openai":
        return OpenAIBackend(config.openai)
    if config.backend == "transformers":
        return TransformersBackend(config.transformers, config.max_waiting)
    if config.backend == "llama-cpp":
        return LlamaCppBackend(config.llama_cpp, config.max_waiting)
    return None
