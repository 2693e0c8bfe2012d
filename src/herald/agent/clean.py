"""Model output made storable, where it enters Herald.

A model (or the provider's JSON) can hand back text no database column takes: NUL bytes, which
PostgreSQL refuses in text, and lone surrogates, which no UTF-8 encoder accepts (SQLite's
included). Everything Herald stores from a model (the turn's messages, tool arguments that become
outbox segments and jobs, the final reply) comes from one `ModelResponse`, so it is cleaned once,
here: both become U+FFFD, visibly, and the log says so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from typing import Any

from pydantic_ai.messages import ModelResponse, TextPart, ThinkingPart, ToolCallPart

log = logging.getLogger(__name__)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` with NUL bytes and lone surrogates replaced by U+FFFD (itself if it has none)."""
    if _UNSTORABLE.search(text) is None:
        return text
    # Through UTF-16: a surrogate pair left split is joined, a lone surrogate becomes U+FFFD.
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return joined.replace("\x00", "\ufffd")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _clean_args(args: Any) -> Any:
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
        except ValueError:
            return storable(args)  # not JSON: the toolbox says so to the model
        cleaned = _clean(parsed)
        return args if cleaned == parsed else json.dumps(cleaned, ensure_ascii=False)
    return _clean(args)


def clean_response(response: ModelResponse) -> ModelResponse:
    """The response with every text, thinking and tool call made storable."""
    parts: list[Any] = []
    for part in response.parts:
        if isinstance(part, TextPart | ThinkingPart):
            part = dataclasses.replace(part, content=storable(part.content))
        elif isinstance(part, ToolCallPart):
            changes: dict[str, Any] = {
                "tool_name": storable(part.tool_name),
                "args": _clean_args(part.args),
                "tool_call_id": storable(part.tool_call_id),
            }
            part = dataclasses.replace(part, **changes)
        parts.append(part)
    if parts == response.parts:
        return response
    log.warning(
        "the model's response held NUL bytes or lone surrogates, which cannot be stored; "
        "they were replaced with U+FFFD"
    )
    return dataclasses.replace(response, parts=parts)
