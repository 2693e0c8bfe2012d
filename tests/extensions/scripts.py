"""A scripted model that calls the tool named in the user's text: `call <tool> <json args>`."""

from __future__ import annotations

import json
import re

from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

from tests.app.herald_harness import Script


class CallsTools(Script):
    """`call a {"x":1} ; call b {}` → those tool calls in one response; then `got: <results>`."""

    def first(self, text: str) -> ModelResponse:
        text = re.sub(r"^\[[^\]]+\] ", "", text)  # a group message says who wrote it: "[m1] call …"
        if not text.startswith("call "):
            return super().first(text)
        parts: list[ToolCallPart | TextPart] = []
        for clause in text.split(";"):
            _, name, *args = clause.strip().split(" ", 2)
            parts.append(ToolCallPart(name, json.loads(args[0]) if args else {}))
        return ModelResponse(parts=list(parts))

    def after_tools(self, text: str, results: list[str]) -> ModelResponse:
        return ModelResponse(parts=[TextPart("got: " + " | ".join(results))])
