"""The in-memory history cache: bounded by the turns it keeps in all, and a conversation it let go
reads the same history back from the database."""

from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart

from herald.agent import TurnStore
from herald.agent.history import HistoryCache, HistoryTurn
from herald.core.clock import SystemClock
from herald.store import Database


def exchange(text: str) -> list[ModelMessage]:
    return [
        ModelRequest(parts=[UserPromptPart(content=text)]),
        ModelResponse(parts=[TextPart(f"echo: {text}")]),
    ]


def turn(turn_id: int) -> HistoryTurn:
    return HistoryTurn.of(turn_id, exchange(str(turn_id)))


def test_the_cache_keeps_at_most_its_turns_letting_go_of_the_conversation_used_longest_ago() -> None:
    cache = HistoryCache(max_turns=5, keep=2)
    cache.put("a", [turn(1), turn(2)])
    cache.put("b", [turn(3), turn(4)])
    assert cache.get("a") is not None  # a is now used after b
    cache.put("c", [turn(5), turn(6)])
    assert cache.peek("b") is None
    assert [t.id for t in cache.get("a") or []] == [1, 2]
    assert cache.turns == 4

    cache.extend("c", 7, exchange("7"))  # a conversation keeps its last `keep`
    assert [t.id for t in cache.get("c") or []] == [6, 7]
    cache.extend("c", 7, exchange("7"))  # not newer: nothing changes
    cache.extend("b", 8, exchange("8"))  # not kept: nothing to extend
    assert cache.peek("b") is None
    assert cache.turns == 4

    cache.put("long", [turn(n) for n in range(10, 20)])  # over the bound alone: kept whole
    assert len(cache) == 1
    assert cache.turns == 10
    cache.drop("long")
    assert (len(cache), cache.turns) == (0, 0)


async def test_a_history_let_go_is_read_back_the_same(db: Database) -> None:
    turns = TurnStore(db, SystemClock(), history_cache_turns=2)
    ids: dict[str, list[int]] = {}
    stored: dict[str, list[list[ModelMessage]]] = {}
    for conversation in ("c2c:ann", "c2c:ben", "c2c:cat"):
        for n in range(2):
            recorded = await turns.record(
                conversation=conversation, source_id=f"{conversation}:{n}", kind="message", content=f"{n}"
            )
            assert recorded is not None
            # Each turn reads its history first, as the runner does, so the cache keeps it.
            await turns.history_turns(conversation, recorded.id, 10)
            recorded.messages = exchange(f"{conversation} {n}")
            stored.setdefault(conversation, []).append(recorded.messages)
            await turns.end(recorded, steps=1)
            ids.setdefault(conversation, []).append(recorded.id)
    # Only the conversation used last is still kept.
    assert turns.known_upto("c2c:cat") == ids["c2c:cat"][-1]
    assert turns.known_upto("c2c:ann") is None
    for conversation in ("c2c:ann", "c2c:cat"):
        history = await turns.history(conversation, before=10**9, limit=10)
        assert history == stored[conversation]
