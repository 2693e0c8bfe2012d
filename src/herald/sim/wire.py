"""JSON text as the emulator puts it on the wire (gateway frames, webhook pushes, HTTP answers).

Non-ASCII stays UTF-8, as the platform sends it. A lone surrogate (U+D800-U+DFFF without its
pair) has no UTF-8 encoding, yet it can reach the emulator (a JSON `\\ud800` escape injected through
the control API): it is written as the JSON escape `\\udXXX`, which is valid JSON and plain
ASCII on the wire, so the frame can be sent and a client parses the same lone surrogate back.
A platform whose strings are UTF-16 (Java, JavaScript) serializes such a string the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Outside string literals JSON text is ASCII, so a surrogate here is always inside a string.
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def encode(value: Any) -> bytes:
    return dumps(value).encode()
