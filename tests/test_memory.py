"""A test's KefuApp is freed once the test ends: the suite builds hundreds and must stay small."""

from __future__ import annotations

import gc
import weakref

from bot.app import KefuApp
from conftest import ask

APPS: list[weakref.ref[KefuApp]] = []


async def test_an_app_that_served_a_request_is_stopped(app: KefuApp):
    reply = await ask(app, "how long does shipping take?")
    assert reply["text"]
    APPS.append(weakref.ref(app))


def test_the_previous_tests_app_is_freed_once_it_ended():
    assert len(APPS) == 1, "runs after the test above"
    gc.collect()
    assert APPS[0]() is None, [type(r).__name__ for r in gc.get_referrers(APPS[0]())]
