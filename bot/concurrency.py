"""The one route for blocking work (whoosh, langdetect, later torch) off the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def run_blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `func` in the loop's default thread pool, keeping context variables."""
    return await start_blocking(func, *args, **kwargs)


def start_blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
    """`run_blocking`, handed to the thread pool now rather than at the caller's next await.

    The pool's threads start their jobs in the order they were handed over: work that must
    not queue behind a later job (a turn's encoding, before its language detection) is
    started with this.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return loop.run_in_executor(None, call)


class SerialExecutor:
    """One dedicated thread: for resources that must only be touched from one thread.

    SQLite connections are bound to the thread that made them; giving each
    connection its own thread makes every write go through a single writer.
    """

    def __init__(self, name: str):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
