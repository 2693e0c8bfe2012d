"""The conversation history the model sees: the last N finished turns, oldest dropped first until
the estimated token count fits the budget. A turn is kept or dropped whole, so a tool call is
never separated from its result."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

# Turns past the history budget wait until this many have gathered, then one request folds them
# into the conversation's summary.
SUMMARY_BATCH = 5


def history_window(history_turns: int) -> int:
    """The finished turns a turn reads for a history of `history_turns`: those, and the two
    batches that may be waiting to be folded into the summary."""
    return history_turns + 2 * SUMMARY_BATCH


def estimate_tokens(text: str) -> int:
    """Rough and cheap: ~4 ASCII characters per token, one token per other character (CJK)."""
    ascii_chars = len(text.encode("ascii", "ignore"))  # in C: counting in Python cost 0.2 ms a turn
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


def message_tokens(message: ModelMessage) -> int:
    total = 4
    if isinstance(message, ModelRequest):
        for part in message.parts:
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                total += estimate_tokens(part.content)
            elif isinstance(part, ToolReturnPart):
                total += estimate_tokens(part.model_response_str())
            else:
                total += 8
    elif isinstance(message, ModelResponse):
        for response_part in message.parts:
            if isinstance(response_part, TextPart):
                total += estimate_tokens(response_part.content)
            elif isinstance(response_part, ToolCallPart):
                total += estimate_tokens(response_part.tool_name + response_part.args_as_json_str())
    return total


@dataclass(frozen=True, slots=True)
class HistoryTurn:
    """A finished turn as the history keeps it: its messages, and their estimated tokens, counted
    once (the history is fitted to its budget on every turn)."""

    id: int
    messages: list[ModelMessage]
    tokens: int

    @classmethod
    def of(cls, turn_id: int, messages: list[ModelMessage]) -> HistoryTurn:
        return cls(turn_id, messages, sum(message_tokens(message) for message in messages))


class HistoryCache:
    """Conversations' latest finished turns, parsed, kept in memory so a turn need not read and
    parse its history from the database; the conversations used longest ago are let go first.

    Bounded by turns kept in all, not by conversations: a parsed turn costs a few kB (2.7 kB for
    a one-line exchange), so a bound on conversations alone lets a few thousand long histories take
    hundreds of MB. The conversation used last is kept whole, whatever its length.
    """

    def __init__(self, max_turns: int, keep: int) -> None:
        """`max_turns`: kept in all; `keep`: a conversation's latest turns kept."""
        self.max_turns = max_turns
        self.keep = keep
        self._conversations: OrderedDict[str, list[HistoryTurn]] = OrderedDict()
        self.turns = 0  # kept in all

    def __len__(self) -> int:
        return len(self._conversations)

    def get(self, conversation: str) -> list[HistoryTurn] | None:
        """The conversation's kept turns, oldest first (None: nothing kept); it becomes the one
        used last."""
        kept = self._conversations.get(conversation)
        if kept is not None:
            self._conversations.move_to_end(conversation)
        return kept

    def peek(self, conversation: str) -> list[HistoryTurn] | None:
        """As `get`, leaving the order of use alone."""
        return self._conversations.get(conversation)

    def put(self, conversation: str, turns: list[HistoryTurn]) -> None:
        """Keep `turns` as the conversation's history, the one used last."""
        self.turns += len(turns) - len(self._conversations.get(conversation, ()))
        self._conversations[conversation] = turns
        self._conversations.move_to_end(conversation)
        self._shrink()

    def extend(self, conversation: str, turn_id: int, messages: list[ModelMessage]) -> None:
        """Add a newly finished turn to a kept history (newer than what it has), then keep its
        last `keep`; nothing (not even counting its tokens) when the conversation is not kept."""
        kept = self._conversations.get(conversation)
        if kept is None or (kept and kept[-1].id >= turn_id):
            return
        kept.append(HistoryTurn.of(turn_id, messages))
        self.turns += 1
        if len(kept) > self.keep:
            self.turns -= len(kept) - self.keep
            del kept[: -self.keep]
        self._shrink()

    def drop(self, conversation: str) -> None:
        self.turns -= len(self._conversations.pop(conversation, ()))

    def _shrink(self) -> None:
        while self.turns > self.max_turns and len(self._conversations) > 1:
            _, gone = self._conversations.popitem(last=False)
            self.turns -= len(gone)


def split_history(
    turns: list[HistoryTurn], max_turns: int, max_tokens: int
) -> tuple[list[ModelMessage], list[HistoryTurn]]:
    """(the newest turns that fit both budgets, flattened; the older turns, which do not)."""
    kept = used = 0
    for turn in reversed(turns[-max_turns:] if max_turns > 0 else []):
        if used + turn.tokens > max_tokens:
            break
        kept += 1
        used += turn.tokens
    cut = len(turns) - kept
    return [message for turn in turns[cut:] for message in turn.messages], turns[:cut]


def transcript_lines(messages: list[ModelMessage]) -> list[str]:
    """A turn as plain lines for a summary: what the user wrote and what the assistant answered
    (tool calls and results left out)."""
    lines: list[str] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                lines.append(f"User: {part.content}")
            elif isinstance(part, TextPart) and part.content.strip():
                lines.append(f"Assistant: {part.content.strip()}")
    return lines
