"""The tools as the model sees and uses them: schemas, argument errors fed back to the model,
future_task list/edit/delete scoped to the conversation and its creator, images and markdown."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

from herald.agent import TOOL_DEFINITIONS
from tests.app.herald_harness import WAIT_S, Script, harness


def test_the_model_sees_both_tools_with_their_parameters() -> None:
    tools = {tool.name: tool for tool in TOOL_DEFINITIONS}
    send = tools["send_message_to_user"].parameters_json_schema
    assert set(send["properties"]) == {"text", "image_url", "markdown", "media", "buttons"}
    assert "required" not in send  # a message may be only media, or only text
    media = send["$defs"]["MediaArg"]
    assert set(media["properties"]) == {"kind", "url", "path", "name"}
    assert media["properties"]["kind"]["enum"] == ["image", "video", "voice", "file"]
    button = send["$defs"]["ButtonArgs"]["properties"]
    assert button["kind"]["enum"] == ["callback", "link", "command"]
    task = tools["future_task"].parameters_json_schema
    assert set(task["properties"]) == {"action", "name", "cron_expression", "run_at", "note", "job_id"}
    assert task["properties"]["action"]["enum"] == ["create", "list", "edit", "delete"]
    assert all(tool.description for tool in TOOL_DEFINITIONS)


class Calls(Script):
    """Makes the tool calls queued for a turn text, one response per step."""

    def __init__(self, steps: dict[str, list[list[tuple[str, dict[str, Any]]]]]) -> None:
        super().__init__()
        self.steps = steps
        self.position: dict[str, int] = {}

    def _next(self, text: str) -> ModelResponse:
        text = re.sub(r"^\[[^\]]+\] ", "", text)  # a group message says who wrote it: "[m1] make"
        index = self.position.get(text, 0)
        self.position[text] = index + 1
        plan = self.steps.get(text, [])
        if index < len(plan):
            return ModelResponse(parts=[ToolCallPart(name, args) for name, args in plan[index]])
        return ModelResponse(parts=[TextPart(f"ok {text}")])

    def first(self, text: str) -> ModelResponse:
        return self._next(text)

    def after_tools(self, text: str, results: list[str]) -> ModelResponse:
        return self._next(text)


async def test_bad_arguments_go_back_to_the_model_which_can_correct_them(db_url: str) -> None:
    script = Calls(
        {
            "go": [
                [("send_message_to_user", {"txt": "typo"}), ("no_such_tool", {})],
                [("send_message_to_user", {"text": "fixed"})],
            ]
        }
    )
    async with harness(db_url, script) as h:
        await h.user_says("kim", "go")
        entries = await h.wait_delivered("c2c", "kim", 2)
        assert [e["content"] for e in entries] == ["fixed", "ok go"]
        assert "txt" in script.results[0] and "unknown tool" in script.results[1]


async def test_future_task_is_scoped_to_the_conversation_and_its_creator(db_url: str) -> None:
    create = (
        "future_task",
        {"action": "create", "name": "morning", "cron_expression": "0 9 * * *", "note": "greet"},
    )
    script = Calls({"make": [[create]], "list": [[("future_task", {"action": "list"})]]})
    async with harness(db_url, script) as h:
        await h.member_says("grp", "m1", "make")
        await h.wait_delivered("group", "grp", 1)
        await h.idle()
        assert script.results[0].startswith("created: [")
        job_id = script.results[0].split("[", 1)[1].split("]", 1)[0]

        script.steps["others"] = [[("future_task", {"action": "delete", "job_id": job_id})]]
        await h.member_says("grp", "m2", "others")
        await h.wait_delivered("group", "grp", 2)
        await h.idle()
        assert "belongs to someone else" in script.results[-1]

        await h.user_says("lee", "list")  # another conversation sees none of the group's tasks
        await h.wait_delivered("c2c", "lee", 1)
        await h.idle()
        assert script.results[-1] == "no scheduled tasks in this conversation"

        script.steps["retime"] = [
            [("future_task", {"action": "edit", "job_id": job_id, "cron_expression": "30 8 * * *"})],
            [("future_task", {"action": "delete", "job_id": job_id})],
        ]
        await h.member_says("grp", "m1", "retime")
        await h.wait_delivered("group", "grp", 3)
        await h.idle()
        assert "30 8 * * *" in script.results[-2] and script.results[-1].startswith("deleted task")


async def test_future_task_refuses_bad_schedules_with_the_reason(db_url: str) -> None:
    script = Calls(
        {
            "bad": [
                [
                    ("future_task", {"action": "create", "note": "x", "cron_expression": "every minute"}),
                    ("future_task", {"action": "create", "note": "x", "run_at": "2001-01-01T00:00:00"}),
                    ("future_task", {"action": "create", "note": "x"}),
                ]
            ]
        }
    )
    async with harness(db_url, script) as h:
        await h.user_says("max", "bad")
        await h.wait_delivered("c2c", "max", 1)
        await h.idle()
        assert "cron" in script.results[0]
        assert "in the past" in script.results[1]
        assert "exactly one of" in script.results[2]


async def test_markdown_and_image_sends(db_url: str) -> None:
    image = "http://127.0.0.1:1/cat.png"
    script = Calls(
        {"pic": [[("send_message_to_user", {"text": "**bold**", "markdown": True, "image_url": image})]]}
    )
    async with harness(db_url, script, assume_fetchable=["http://127.0.0.1:1/"]) as h:
        await h.user_says("ned", "pic")
        await h.wait_delivered("c2c", "ned", 2)
        await h.idle()
        assert script.results[0].startswith("delivered"), script.results


async def test_a_round_interrupted_midway_resumes_only_the_calls_without_a_result(db_url: str) -> None:
    create = ("future_task", {"action": "create", "name": "tmp", "cron_expression": "0 9 * * *", "note": "x"})
    script = Calls({"make": [[create]]})
    async with harness(db_url, script) as h:
        await h.user_says("rex", "make")
        await h.wait_delivered("c2c", "rex", 1)
        await h.idle()
        job_id = script.results[0].split("[", 1)[1].split("]", 1)[0]

        # One round: delete the job (done at once) and send a message the platform refuses for now.
        script.steps["both"] = [
            [
                ("future_task", {"action": "delete", "job_id": job_id}),
                ("send_message_to_user", {"text": "later"}),
            ]
        ]
        await h.call(
            "POST", "/_sim/faults", {"kind": "fail_next", "count": 1, "status": 500, "code": 50055001}
        )
        await h.user_says("rex", "both")
        assert h.herald is not None and h.herald.turns is not None
        turns = h.herald.turns

        async def stored_results() -> int:
            pending = await turns.pending()
            if not pending or len(pending[0].messages) < 3:
                return 0
            return len(pending[0].messages[-1].parts)

        async with asyncio.timeout(WAIT_S):
            while await stored_results() < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await h.stop()  # the send is still waiting for its retry; the delete's result is stored

        await h.start()
        await h.advance(5)  # the outbox retries the send
        entries = await h.wait_delivered("c2c", "rex", 3)
        await h.idle()
        assert [e["content"] for e in entries][1:] == ["later", "ok both"]
        deletes = [r for r in script.results if r.startswith("deleted task")]
        assert len(deletes) == 1 and not [r for r in script.results if "no active job" in r]


async def test_a_cron_that_never_runs_goes_back_to_the_model_and_the_turn_ends(db_url: str) -> None:
    never = ("future_task", {"action": "create", "note": "x", "cron_expression": "0 0 31 2 *"})
    script = Calls({"feb": [[never]]})
    async with harness(db_url, script) as h:
        await h.user_says("ivy", "feb")
        entries = await h.wait_delivered("c2c", "ivy", 1)
        await h.idle()
        assert entries[0]["content"] == "ok feb"
        assert "never matches a date" in script.results[0]
        assert h.herald is not None and h.herald.turns is not None
        assert await h.herald.turns.pending() == []


async def test_thirty_creates_in_one_response_stop_at_the_cap(db_url: str) -> None:
    creates = [
        ("future_task", {"action": "create", "name": f"t{i}", "cron_expression": "0 9 * * *", "note": "x"})
        for i in range(30)
    ]
    script = Calls({"many": [creates, [("future_task", {"action": "list"})]]})
    async with harness(db_url, script) as h:
        await h.user_says("joy", "many")
        await h.wait_delivered("c2c", "joy", 1)
        await h.idle()
        created = [r for r in script.results[:30] if r.startswith("created: ")]
        refused = [r for r in script.results[:30] if "limit 20" in r]
        assert (len(created), len(refused)) == (20, 10)
        assert len(script.results[30].splitlines()) == 20


async def test_a_tool_the_operator_disabled_is_neither_offered_nor_run(db_url: str) -> None:
    script = Calls({"go": [[("send_message_to_user", {"text": "should not be sent"})]]})
    async with harness(db_url, script) as h:
        assert h.herald is not None and h.herald.agent_settings is not None
        known = [tool.name for tool in TOOL_DEFINITIONS]
        await h.herald.agent_settings.set_enabled_tools(["future_task"], known, "console 127.0.0.1")
        await h.user_says("kim", "go")  # the model calls it anyway, as if it remembered it
        entries = await h.wait_delivered("c2c", "kim", 1)
        assert [e["content"] for e in entries] == ["ok go"]
        assert "send_message_to_user" not in script.offered[0] and "future_task" in script.offered[0]
        assert "disabled by the operator" in script.results[0]
