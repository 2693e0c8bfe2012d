"""The client-side send window: a (re)started process assumes the last window was full."""

from __future__ import annotations

import asyncio
import time

from herald.core.clock import VirtualClock
from herald.qq.adapter import SlidingWindow


async def test_a_primed_window_waits_one_window_then_admits_up_to_the_limit() -> None:
    clock = VirtualClock()
    window = SlidingWindow(clock, 2, 1.0, primed=True)
    first = asyncio.ensure_future(window.acquire())
    await clock.advance(0.5)
    assert not first.done()  # the previous run may have used this window up
    await clock.advance(0.6)
    assert first.done()
    await window.acquire()  # the second of two
    third = asyncio.ensure_future(window.acquire())
    await clock.advance(0)
    assert not third.done()
    window.release()
    await clock.advance(1.1)
    assert third.done()


def test_priming_a_huge_limit_costs_nothing() -> None:
    # A benchmark or an unlimited config sets qps to 1e9; priming must not allocate per request.
    start = time.perf_counter()
    SlidingWindow(VirtualClock(), 10**9, 1.0, primed=True)
    assert time.perf_counter() - start < 0.1
