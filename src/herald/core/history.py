"""The conversation history the agent keeps, as the commands see it: `/reset` forgets it, `/status`
counts it. `agent/` keeps it (the turn store); `app` hands it to the commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Model tokens used, and by which model (the one that answered last)."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_name: str | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """The model's summary of a conversation's turns that left its window, and how many it covers."""

    text: str
    turns: int


class ConversationHistory(Protocol):
    async def token_usage(self, conversation: str, since: datetime) -> tuple[TokenUsage, TokenUsage]:
        """The latest model turn's usage, and the total of the turns created since `since`."""
        ...

    async def reset(self, conversation: str) -> int:
        """Take the conversation's finished turns out of the model's view; returns how many."""
        ...

    async def count_history(self, conversation: str) -> int:
        """How many finished turns the model sees in the conversation."""
        ...

    async def summary(self, conversation: str) -> Summary | None:
        """The summary the model sees of the turns that left its window, if there is one."""
        ...
