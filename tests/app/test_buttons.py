"""Buttons end to end over the emulator: the agent sends a keyboard the emulator accepts, a click
becomes a turn (answered with code 0), and where buttons are refused they arrive as numbered
choices that `/choose N` answers like a click."""

from __future__ import annotations

from typing import Any

from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

from herald.plugin import Button, ButtonKind, CommandCall, Plugin, Reply
from tests.app.herald_harness import Harness, Script, harness, wait_for

USER = "button-user"
BUTTONS = [
    {"label": "Red", "data": "red"},
    {"label": "Blue", "data": "blue"},
    {"label": "Docs", "kind": "link", "data": "https://example.com/docs"},
]


class ButtonScript(Script):
    def first(self, text: str) -> ModelResponse:
        if text == "pick a colour":
            return ModelResponse(
                parts=[ToolCallPart("send_message_to_user", {"text": "Which colour?", "buttons": BUTTONS})]
            )
        return super().first(text)

    def after_tools(self, text: str, results: list[str]) -> ModelResponse:
        if text == "pick a colour":
            return ModelResponse(parts=[TextPart("")])
        return super().after_tools(text, results)


async def sent_with_buttons(h: Harness) -> dict[str, Any]:
    entries = await wait_for(
        lambda: h.delivered("c2c", USER), lambda got: any(e.get("keyboard") for e in got)
    )
    return next(e for e in entries if e.get("keyboard"))


async def test_the_agents_buttons_arrive_as_a_keyboard_and_a_click_is_a_new_turn(db_url: str) -> None:
    async with harness(db_url, ButtonScript()) as h:
        await h.user_says(USER, "pick a colour")
        sent = await sent_with_buttons(h)
        assert sent["msg_type"] == 2 and sent["keyboard_shown"] is True and sent["content"] == "Which colour?"
        buttons = [b for row in sent["keyboard"]["content"]["rows"] for b in row["buttons"]]
        assert [
            (b["id"], b["render_data"]["label"], b["action"]["type"], b["action"]["data"]) for b in buttons
        ] == [
            ("1", "Red", 1, "red"),
            ("2", "Blue", 1, "blue"),
            ("3", "Docs", 0, "https://example.com/docs"),
        ]
        assert not await h.errors()

        clicked = await h.call("POST", "/_sim/interactions", {"message_id": sent["id"], "button_id": "2"})
        reply = "echo: [clicked the button 'Blue' (data: blue)]"
        entries = await wait_for(
            lambda: h.delivered("c2c", USER), lambda got: any(e["content"] == reply for e in got)
        )
        answer = next(e for e in entries if e["content"] == reply)
        assert answer["event_id"] == clicked["event_id"]  # the click's event anchors the reply
        state = await h.call("GET", f"/_sim/interactions/{clicked['interaction_id']}")
        assert state["code"] == 0


async def test_refused_buttons_become_numbered_choices_answered_with_choose(db_url: str) -> None:
    async with harness(db_url, ButtonScript(), custom_keyboard_allowed=False) as h:
        await h.user_says(USER, "pick a colour")
        await h.wait_for_request_code(304057)
        entries = await wait_for(
            lambda: h.delivered("c2c", USER), lambda got: any("/choose" in str(e["content"]) for e in got)
        )
        choices = next(e for e in entries if "/choose" in str(e["content"]))
        assert "keyboard" not in choices
        assert choices["content"].startswith("Which colour?")
        assert "1. Red" in choices["content"] and "3. Docs: https://example.com/docs" in choices["content"]

        await h.user_says(USER, "/choose 1")
        reply = "echo: [chose 1: the button 'Red' (data: red)]"
        await wait_for(lambda: h.delivered("c2c", USER), lambda got: any(e["content"] == reply for e in got))
        await h.user_says(USER, "/choose 3")
        link = "Docs: https://example.com/docs"
        await wait_for(lambda: h.delivered("c2c", USER), lambda got: any(e["content"] == link for e in got))
        await h.user_says(USER, "/choose 9")
        await wait_for(
            lambda: h.delivered("c2c", USER),
            lambda got: any("/choose 1 到 3" in str(e["content"]) for e in got),
        )

        # 304057 is the bot's permission, not this user's: learned, kept across a restart, and
        # another user's buttons go as choices at once, with no second refusal.
        await h.restart()
        assert h.herald is not None and h.herald.platform is not None
        assert "keyboard" in [learned.capability for learned in h.herald.platform.learned()]
        await h.user_says("other-user", "pick a colour")
        got = await wait_for(
            lambda: h.delivered("c2c", "other-user"),
            lambda got: any("/choose" in str(e["content"]) for e in got),
        )
        assert got[0]["content"].startswith("Which colour?")
        assert len([r for r in await h.errors() if r["code"] == 304057]) == 1


async def test_a_plugin_command_replies_with_buttons_and_a_click_reaches_the_agent(db_url: str) -> None:
    menu = Plugin("menu", "A menu")

    @menu.command("menu", "/menu — pick a dish")
    async def show(call: CommandCall) -> Reply:
        return Reply("Today:", (Button("Noodles", ButtonKind.CALLBACK, "noodles"),))

    async with harness(db_url, plugins=[menu]) as h:
        await h.user_says(USER, "/menu")
        sent = await sent_with_buttons(h)
        assert sent["content"] == "Today:" and sent["keyboard_shown"] is True
        await h.call("POST", "/_sim/interactions", {"message_id": sent["id"], "button_id": "1"})
        reply = "echo: [clicked the button 'Noodles' (data: noodles)]"
        await wait_for(lambda: h.delivered("c2c", USER), lambda got: any(e["content"] == reply for e in got))
