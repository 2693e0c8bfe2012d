"""The embedded model's tool router, without the model: what it lets the model say (the grammar),
how an action line becomes Herald's tool calls, and the reply written from tool results."""

from __future__ import annotations

import re

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from herald.agent import TOOL_DEFINITIONS
from herald.llm.router import (
    EXAMPLES,
    FUTURE_TASK,
    SEND_MESSAGE,
    chat_history,
    grammar_for,
    nearest_examples,
    parse_action,
    phrases,
    prompt_for,
    summarise,
    tool_calls,
)

OFFERED = {tool.name for tool in TOOL_DEFINITIONS}


def test_the_router_calls_the_agents_own_tools() -> None:
    assert {SEND_MESSAGE, FUTURE_TASK} <= OFFERED


def test_texts_are_phrases_of_the_message_and_ids_its_id_like_words() -> None:
    grammar = grammar_for("取消任务 a1b2c3d4 再发条消息")
    id_rule = next(line for line in grammar.splitlines() if line.startswith("id ::="))
    assert id_rule == 'id ::= "a1b2c3d4"'
    text_rule = next(line for line in grammar.splitlines() if line.startswith("text ::="))
    assert '"取消任务"' in text_rule and '"a1b2c3d4"' in text_rule and '"再发条消息"' in text_rule
    assert '"任务 a1b2"' not in text_rule  # phrases never join a CJK run to a word
    assert "cancel" not in grammar_for("你好")  # no id to cancel: no cancel action


def test_a_job_firing_may_only_send_one_phrase_of_its_note() -> None:
    grammar = grammar_for("心跳", send_only=True)
    assert grammar.splitlines()[0] == 'root ::= "send 1 " text'
    assert set(phrases("心跳")) == {"心", "跳", "心跳"}


def test_the_closest_examples_come_last_in_the_prompt() -> None:
    nearest = nearest_examples("每分钟提醒我站起来")
    assert nearest[0] == ("每分钟提醒我站起来", "every * * * * * 站起来")
    prompt = prompt_for("每分钟提醒我站起来")
    assert prompt.endswith("Action: every * * * * * 站起来\n\nMessage: 每分钟提醒我站起来\nAction:")
    assert all(text not in prompt for text, _ in EXAMPLES if text not in dict(nearest))


def test_action_lines_become_tool_calls() -> None:
    sends = tool_calls(parse_action(" send 3 测试消息"), "请向我连续发送3条测试消息", OFFERED)
    assert [(c.tool_name, c.args) for c in sends] == [
        (SEND_MESSAGE, {"text": f"测试消息 {n}"}) for n in (1, 2, 3)
    ]
    (one,) = tool_calls(parse_action("send 1 hello"), "say hello", OFFERED)
    assert one.args == {"text": "hello"}
    (job,) = tool_calls(parse_action("every * * * * * 心跳"), "每分钟向我发送一次心跳", OFFERED)
    assert job.args == {
        "action": "create",
        "cron_expression": "* * * * *",
        "name": "心跳",
        "note": "每分钟向我发送一次心跳",
    }
    (listing,) = tool_calls(parse_action("list"), "我的任务", OFFERED)
    assert listing.args == {"action": "list"}
    (cancel,) = tool_calls(parse_action("cancel a1b2c3d4"), "取消任务 a1b2c3d4", OFFERED)
    assert cancel.args == {"action": "delete", "job_id": "a1b2c3d4"}
    assert tool_calls(parse_action("chat"), "你好", OFFERED) == []
    assert tool_calls(parse_action("send 0 x"), "x", OFFERED) == []  # unreadable → chat
    assert tool_calls(parse_action("send 2 x"), "x", {FUTURE_TASK}) == []  # tool not offered


def test_the_reply_after_the_tools_says_what_happened_in_the_users_language() -> None:
    def result(name: str, content: str, n: int) -> ToolReturnPart:
        return ToolReturnPart(tool_name=name, content=content, tool_call_id=f"c{n}")

    sends = [
        result(SEND_MESSAGE, "delivered (passive)", 1),
        result(SEND_MESSAGE, "not delivered: proactive quota used up (code 22009)", 2),
        result(SEND_MESSAGE, "delivered (proactive)", 3),
    ]
    assert (
        summarise(sends, zh=True) == "已发送 2 条消息。\n第 2 条未送达：proactive quota used up (code 22009)"
    )
    assert summarise(sends[:1], zh=False) == "Sent 1 message."
    created = [result(FUTURE_TASK, "created: a1b2c3d4 '心跳' cron '* * * * *'", 1)]
    assert re.fullmatch(r"created: a1b2c3d4 .*", summarise(created, zh=True))


def test_plain_chat_sees_what_was_said_without_the_tool_rounds() -> None:
    """The embedded server refuses an assistant message without text (a tool-call response)."""
    history: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart("请向我连续发送3条测试消息")]),
        ModelResponse(parts=[ToolCallPart(SEND_MESSAGE, {"text": "测试消息 1"}, tool_call_id="c1")]),
        ModelRequest(parts=[ToolReturnPart(SEND_MESSAGE, "delivered (passive)", tool_call_id="c1")]),
        ModelResponse(parts=[TextPart("已发送 1 条消息。")]),
        ModelRequest(parts=[UserPromptPart("你好")]),
    ]
    plain = chat_history(history)
    assert [type(m).__name__ for m in plain] == ["ModelRequest", "ModelResponse", "ModelRequest"]
    assert [getattr(part, "content", None) for m in plain for part in m.parts] == [
        "请向我连续发送3条测试消息",
        "已发送 1 条消息。",
        "你好",
    ]
