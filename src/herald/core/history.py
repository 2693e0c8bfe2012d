"""The conversation history the agent keeps, as the commands see it: `/reset` forgets it, `/status`
counts it. `agent/` keeps it (the turn store); `app` hands it to the commands."""

from __future__ import annotations

from typing import Protocol


class ConversationHistory(Protocol):
    async def reset(self, conversation: str) -> int:
        """Take the conversation's finished turns out of the model's view; returns how many."""
        ...

    async def count_history(self, conversation: str) -> int:
        """How many finished turns the model sees in the conversation."""
        ...
