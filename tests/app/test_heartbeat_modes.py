"""Acceptance: "每分钟向我发送一次心跳" in platform modes 2025, 2026 and 2023, Herald against the
emulator over sockets. The user is told up front how many heartbeats can arrive and how; gets the
ones the platform allows (replies, then interactive recall or proactive messages); gets exactly
one notice that the job stopped, on the last route left; the emulator refuses nothing; and the
job fires again once the user writes."""

from __future__ import annotations

from typing import Any

from pydantic_ai.messages import ModelResponse, TextPart

from tests.app.herald_harness import Harness, Script, harness

USER = "user-hb-modes"
HEARTBEAT = "💓 心跳"


class RelayingScript(Script):
    """Like a model that reads the tool result: it passes the delivery forecast on to the user."""

    def after_tools(self, text: str, results: list[str]) -> ModelResponse:
        if "心跳任务" in text:
            forecast = next(
                (line for r in results for line in r.splitlines() if line.startswith("delivery:")), ""
            )
            return ModelResponse(parts=[TextPart(f"已启用心跳任务，每分钟一次。\n{forecast}")])
        return super().after_tools(text, results)


def route(entry: dict[str, Any]) -> str:
    if entry.get("msg_id") or entry.get("event_id"):
        return "passive"
    return "recall" if entry.get("is_wakeup") else "proactive"


async def minutes(h: Harness, count: int) -> None:
    for _ in range(count):
        await h.advance(60)
        await h.idle()


async def heard(h: Harness) -> list[tuple[str, str]]:
    """(route, kind of message) of everything the user got, in order."""
    got = []
    for entry in await h.delivered("c2c", USER):
        content = entry["content"]
        kind = "heartbeat" if content == HEARTBEAT else "stopped" if "已暂停" in content else content
        got.append((route(entry), kind))
    return got


async def start_heartbeat(h: Harness) -> str:
    await h.user_says(USER, "启用一个心跳任务,每分钟向我发送一次心跳信号")
    entries = await h.wait_delivered("c2c", USER, 1)
    await h.idle()
    return str(entries[0]["content"])


async def resumes_when_the_user_writes(h: Harness, before: int) -> None:
    await h.user_says(USER, "我回来了")
    await h.wait_delivered("c2c", USER, before + 1)
    await h.idle()
    await minutes(h, 1)
    after = await heard(h)
    assert after[before:] == [("passive", "echo: 我回来了"), ("passive", "heartbeat")]


async def test_2025_replies_then_one_recall_notice_then_paused_until_the_user_writes(db_url: str) -> None:
    async with harness(db_url, RelayingScript(), rules={"platform_mode": "2025"}, mode="2025") as h:
        told = await start_heartbeat(h)
        assert "the next 3 firings" in told and "as replies to your message" in told
        assert "a notice that it stopped, as a proactive message (interactive recall)," in told
        assert "proactive messages are not offered in platform mode 2025" in told

        await minutes(h, 8)
        got = await heard(h)
        assert got[1:] == [("passive", "heartbeat")] * 3 + [("recall", "stopped")]
        assert await h.errors() == []

        # What the operator sees (`herald jobs list`, the console) while nobody writes.
        assert h.herald is not None and h.herald.jobs is not None
        [job] = await h.herald.jobs.list_jobs(f"c2c:{USER}")
        assert job.state.startswith("paused (not deliverable until the user writes again")
        assert "this period (same day) is used" in job.state

        # /jobs is a message: the job runs again, and the listing answering it says so.
        await h.user_says(USER, "/jobs")
        await h.wait_delivered("c2c", USER, 6)
        await h.idle()
        listing = (await h.delivered("c2c", USER))[-1]["content"]
        assert "心跳" in listing and "paused" not in listing
        await minutes(h, 1)
        got = await heard(h)
        assert got[6:] == [("passive", "heartbeat")]
        assert await h.errors() == []


async def test_2026_replies_then_proactive_then_recall_notice_when_the_user_turns_proactive_off(
    db_url: str,
) -> None:
    async with harness(db_url, RelayingScript()) as h:
        told = await start_heartbeat(h)
        assert "then the following 57 firings" in told and "as proactive messages" in told

        await minutes(h, 5)
        got = await heard(h)
        assert got[1:] == [("passive", "heartbeat")] * 3 + [("proactive", "heartbeat")] * 2

        await h.call("POST", "/_sim/events", {"t": "C2C_MSG_REJECT", "d": {"openid": USER, "timestamp": 1}})
        await minutes(h, 4)
        got = await heard(h)
        assert got[6:] == [("recall", "stopped")]
        assert await h.errors() == []

        await resumes_when_the_user_writes(h, len(got))
        assert await h.errors() == []


async def test_2023_replies_then_the_monthly_proactive_quota_then_the_notice(db_url: str) -> None:
    async with harness(db_url, RelayingScript(), rules={"platform_mode": "2023"}, mode="2023") as h:
        told = await start_heartbeat(h)
        assert "the next 3 firings" in told and "then the following 3 firings" in told
        assert "a notice that it stopped, as a proactive message," in told

        await minutes(h, 10)
        got = await heard(h)
        assert got[1:] == [("passive", "heartbeat")] * 3 + [("proactive", "heartbeat")] * 3 + [
            ("proactive", "stopped")
        ]
        assert await h.errors() == []

        await resumes_when_the_user_writes(h, len(got))
        assert await h.errors() == []


async def test_a_bot_whose_push_was_withdrawn_learns_it_from_one_refusal_and_says_so(db_url: str) -> None:
    # The operator left platform_mode at 2026, but the platform has withdrawn proactive push
    # from this bot: Herald promises proactive heartbeats, is refused once, learns it, and from
    # then on plans, forecasts and reports with what it learned.
    async with harness(db_url, RelayingScript(), rules={"recall": "off"}, mode="2025") as h:
        told = await start_heartbeat(h)
        assert "as proactive messages" in told

        await minutes(h, 6)
        refused = [e for e in await h.errors() if e.get("code") == 40034105]
        assert len(refused) == 1
        got = await heard(h)
        assert got[1:4] == [("passive", "heartbeat")] * 3

        await h.user_says(USER, "/status")
        status = (await h.wait_delivered("c2c", USER, len(got) + 1))[-1]["content"]
        assert "platform: proactive: refused to this bot since" in status and "40034105" in status

        await h.user_says(USER, "/every 1m 再来一个")
        created = (await h.wait_delivered("c2c", USER, len(got) + 2))[-1]["content"]
        assert "refuses this bot proactive messages" in created
        assert len([e for e in await h.errors() if e.get("code") == 40034105]) == 1
