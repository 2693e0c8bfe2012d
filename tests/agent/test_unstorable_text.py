"""Model output no database column takes (NUL bytes, which PostgreSQL refuses in text; lone
surrogates, which no UTF-8 encoder accepts) is cleaned where it enters: the turn, its sends and
its jobs are stored and delivered, with U+FFFD in place of what could not be stored."""

from __future__ import annotations

from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

from herald.agent.clean import storable
from tests.app.herald_harness import Script, harness


def test_storable_replaces_nul_and_lone_surrogates_and_joins_split_pairs() -> None:
    assert storable("plain 文本 😀") == "plain 文本 😀"
    assert storable("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    assert storable("\ud83d\ude00") == "😀"


class Unstorable(Script):
    def first(self, text: str) -> ModelResponse:
        return ModelResponse(
            parts=[
                # As a provider hands them over: JSON text, where both are legal escapes.
                ToolCallPart("send_message_to_user", '{"text": "tool \\u0000 nul"}'),
                ToolCallPart("send_message_to_user", '{"text": "tool \\ud800 surrogate"}'),
                ToolCallPart(
                    "future_task",
                    '{"action": "create", "name": "n\\u0000", "cron_expression": "0 9 * * *", '
                    '"note": "x\\udfff"}',
                ),
            ]
        )

    def after_tools(self, text: str, results: list[str]) -> ModelResponse:
        return ModelResponse(parts=[TextPart("final \x00 \udc00 text")])


async def test_nul_bytes_and_lone_surrogates_from_the_model_are_stored_cleaned(db_url: str) -> None:
    script = Unstorable()
    async with harness(db_url, script) as h:
        await h.user_says("amy", "hi")
        entries = await h.wait_delivered("c2c", "amy", 3)
        await h.idle()
        assert [e["content"] for e in entries] == [
            "tool \ufffd nul",
            "tool \ufffd surrogate",
            "final \ufffd \ufffd text",
        ]
        assert script.results[2].startswith("created: ") and "note: x\ufffd" in script.results[2]
        assert h.herald is not None and h.herald.turns is not None
        assert await h.herald.turns.pending() == []
        turn = await h.herald.turns.get(1)
        assert turn is not None and turn.status == "done"
