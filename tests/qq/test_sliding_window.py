"""The client-side send window: a (re)started process assumes the last window was full."""

from __future__ import annotations

import asyncio
import sys
import time

from herald.core.clock import SystemClock, VirtualClock
from herald.qq.ratelimit import SlidingWindow, previous_run_ended


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


async def test_a_window_primed_since_the_previous_run_waits_only_the_rest_of_its_window() -> None:
    clock = VirtualClock()
    long_ago = SlidingWindow(clock, 2, 1.0, primed=True, since=clock.monotonic() - 5)
    await asyncio.wait_for(long_ago.acquire(), timeout=1)  # the previous run's window is over
    recent = SlidingWindow(clock, 2, 1.0, primed=True, since=clock.monotonic() - 0.5)
    waiting = asyncio.ensure_future(recent.acquire())
    await clock.advance(0.4)
    assert not waiting.done()  # the previous run's last second is not over yet
    await clock.advance(0.2)
    assert waiting.done()


async def test_the_previous_run_ended_no_later_than_this_process_started_or_last_sent() -> None:
    started = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "from herald.qq import ratelimit as a; print(a.previous_run_ended(), a._IMPORTED)",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await child.communicate()
    ended, imported = map(float, out.split())
    # A new process's previous run is one in another process: over when this one started (the
    # kernel counts start in clock ticks, hence the tick's slack), before its imports.
    assert started - 0.02 <= ended <= imported

    window = SlidingWindow(SystemClock(), 2, 1.0)
    await window.acquire()
    answered = time.monotonic()
    window.release()
    assert previous_run_ended() >= answered  # a restart inside this process counts this request


async def test_a_shared_window_admits_its_share_and_the_shares_never_sum_above_the_limit() -> None:
    clock = VirtualClock()
    window = SlidingWindow(clock, 10, 1.0)
    window.share(3)
    assert window.limit == 3  # three processes at 3 a second: 9, never 11
    for _ in range(3):
        await window.acquire()
    fourth = asyncio.ensure_future(window.acquire())
    await clock.advance(0)
    assert not fourth.done()
    window.share(1)  # the others are gone: the whole limit again, at the waiter's next look
    await clock.advance(0.4)
    assert fourth.done()
    window.share(50)
    assert window.limit == 1  # more processes than requests per window: one each, not none
