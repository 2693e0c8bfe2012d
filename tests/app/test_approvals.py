"""Tools that wait for a person's approval, end to end over the emulator: the approver gets
Approve/Deny buttons (or types /approve ID), the turn waits durably, a timeout denies, a click by
someone else is answered "no permission" (4), a second click "duplicate" (3), and a restart in the
middle of a pending approval loses nothing: approved afterwards, the tool runs once."""

from __future__ import annotations

import re
from typing import Any

from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

from herald.config import HeraldConfig
from herald.plugin import Plugin
from tests.app.herald_harness import Harness, Script, harness, wait_for

USER = "approval-user"
GROUP = "approval-group"


class Ops:
    """A plugin whose tool must not run without approval, counting its runs."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.plugin = Plugin("ops", "Operations")

        @self.plugin.tool(rerun_safe=False)
        def restart(service: str) -> str:
            """Restart a service.

            Args:
                service: the service's name
            """
            self.runs.append(service)
            return f"restarted {service}"


class OpsScript(Script):
    """`restart NAME` (in a group, after the author's name) calls the tool, then reports."""

    def first(self, text: str) -> ModelResponse:
        if match := re.search(r"restart (\w+)$", text):
            return ModelResponse(parts=[ToolCallPart("ops_restart", {"service": match.group(1)})])
        return super().first(text)

    def after_tools(self, text: str, results: list[str]) -> ModelResponse:
        if re.search(r"restart (\w+)$", text):
            return ModelResponse(parts=[TextPart(f"result: {results[-1]}")])
        return super().after_tools(text, results)


def approve_restart(approver: str = "user", timeout_s: float | None = None) -> Any:
    def configure(config: HeraldConfig) -> None:
        config.policy.approve_tools = ["ops_restart"]
        config.policy.approver = approver  # type: ignore[assignment]
        if timeout_s is not None:
            config.policy.approval_timeout_s = timeout_s

    return configure


async def question(h: Harness, scene: str, target: str, count: int = 1) -> dict[str, Any]:
    """The `count`-th approval question delivered to the conversation."""

    def asking(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in got if "herald:approve:" in str(e.get("keyboard"))]

    entries = await wait_for(lambda: h.delivered(scene, target), lambda got: len(asking(got)) >= count)
    return asking(entries)[count - 1]


def approval_id(asked: dict[str, Any]) -> str:
    buttons = [b for row in asked["keyboard"]["content"]["rows"] for b in row["buttons"]]
    data = str(buttons[0]["action"]["data"])
    assert data.startswith("herald:approve:")
    return data.removeprefix("herald:approve:")


async def click(h: Harness, asked: dict[str, Any], button: str, user: str | None = None) -> int | None:
    """Click Approve ("1") or Deny ("2"); the code Herald answered the click with."""
    body: dict[str, Any] = {"message_id": asked["id"], "button_id": button}
    if user is not None:
        body["user"] = user
    clicked = await h.call("POST", "/_sim/interactions", body)
    path = f"/_sim/interactions/{clicked['interaction_id']}"
    state = await wait_for(lambda: _one(h, path), lambda got: got[0]["code"] is not None)
    code: int | None = state[0]["code"]
    return code


async def _one(h: Harness, path: str) -> list[dict[str, Any]]:
    return [await h.call("GET", path)]


async def said(h: Harness, scene: str, target: str, text: str) -> None:
    await wait_for(lambda: h.delivered(scene, target), lambda got: any(e["content"] == text for e in got))


async def test_approved_by_a_click_the_tool_runs_once_and_the_model_is_told(db_url: str) -> None:
    ops = Ops()
    async with harness(db_url, OpsScript(), plugins=[ops.plugin], configure=approve_restart()) as h:
        await h.user_says(USER, "restart web")
        asked = await question(h, "c2c", USER)
        assert asked["msg_type"] == 2 and approval_id(asked) in asked["content"]
        assert "ops_restart" in asked["content"] and '"web"' in asked["content"]
        assert ops.runs == []  # nothing runs before the approver decides

        assert await click(h, asked, "1") == 0
        await said(h, "c2c", USER, "result: restarted web")
        assert ops.runs == ["web"]
        assert await click(h, asked, "1") == 3  # decided already: a duplicate
        await h.idle()
        assert ops.runs == ["web"]


async def test_denied_with_a_typed_command_the_tool_does_not_run(db_url: str) -> None:
    ops = Ops()
    async with harness(db_url, OpsScript(), plugins=[ops.plugin], configure=approve_restart()) as h:
        await h.user_says(USER, "restart db")
        asked = await question(h, "c2c", USER)
        ident = approval_id(asked)
        await h.user_says(USER, f"/deny {ident}")
        await said(h, "c2c", USER, f"已拒绝 (denied): [{ident}] ops_restart")
        await said(h, "c2c", USER, f"result: denied by {USER}: the tool did not run. Tell the user.")
        await h.user_says(USER, f"/approve {ident}")  # too late: decided
        await said(h, "c2c", USER, f"[{ident}] 已经决定 (already decided): denied")
        assert ops.runs == []


async def test_nobody_deciding_before_the_deadline_denies(db_url: str) -> None:
    ops = Ops()
    configure = approve_restart(timeout_s=120)
    async with harness(db_url, OpsScript(), plugins=[ops.plugin], configure=configure) as h:
        await h.user_says(USER, "restart cache")
        asked = await question(h, "c2c", USER)
        await h.advance(121)
        await said(
            h,
            "c2c",
            USER,
            "result: timed out: nobody approved the call before its deadline, so the tool did not run. "
            "Tell the user.",
        )
        assert await click(h, asked, "1") == 3
        assert ops.runs == []


async def test_in_a_group_only_the_requester_decides(db_url: str) -> None:
    ops = Ops()
    async with harness(db_url, OpsScript(), plugins=[ops.plugin], configure=approve_restart()) as h:
        await h.member_says(GROUP, "m1", "restart web")
        asked = await question(h, "group", GROUP)
        assert await click(h, asked, "1", user="m2") == 4  # not the approver: no permission
        await h.member_says(GROUP, "m2", f"/approve {approval_id(asked)}")
        await said(
            h, "group", GROUP, f"只有发起人可以决定 [{approval_id(asked)}] (only the requester may decide)."
        )
        assert ops.runs == []
        assert await click(h, asked, "1", user="m1") == 0
        await said(h, "group", GROUP, "result: restarted web")
        assert ops.runs == ["web"]


async def test_admin_approvals_answer_others_admin_only(db_url: str) -> None:
    ops = Ops()

    def configure(config: HeraldConfig) -> None:
        approve_restart("admin")(config)
        config.access.admins = ["boss"]

    async with harness(db_url, OpsScript(), plugins=[ops.plugin], configure=configure) as h:
        await h.member_says(GROUP, "m1", "restart web")
        asked = await question(h, "group", GROUP)
        assert await click(h, asked, "1", user="m1") == 5  # the requester is not an admin
        assert await click(h, asked, "1", user="boss") == 0
        await said(h, "group", GROUP, "result: restarted web")
        assert ops.runs == ["web"]


async def test_a_restart_during_a_pending_approval_then_approve_runs_the_tool_once(db_url: str) -> None:
    ops = Ops()
    async with harness(db_url, OpsScript(), plugins=[ops.plugin], configure=approve_restart()) as h:
        await h.user_says(USER, "restart web")
        asked = await question(h, "c2c", USER)
        await h.stop()  # Herald goes away with the turn waiting
        await h.start()  # a new Herald on the same database
        assert await click(h, asked, "1") == 0
        await said(h, "c2c", USER, "result: restarted web")
        await h.idle()
        assert ops.runs == ["web"]
        entries = await h.delivered("c2c", USER)
        assert len([e for e in entries if "herald:approve:" in str(e.get("keyboard"))]) == 1  # asked once
        assert [e["content"] for e in entries].count("result: restarted web") == 1


async def test_approved_while_herald_was_down_runs_once_it_is_back(db_url: str) -> None:
    ops = Ops()
    async with harness(db_url, OpsScript(), plugins=[ops.plugin], configure=approve_restart()) as h:
        await h.user_says(USER, "restart web")
        asked = await question(h, "c2c", USER)
        await h.stop()
        await h.user_says(USER, f"/approve {approval_id(asked)}")  # waits on the platform meanwhile
        await h.start()
        await said(h, "c2c", USER, "result: restarted web")
        await h.idle()
        assert ops.runs == ["web"]
