"""A real MCP server for the tests, written with the `mcp` package.

    python mcp_server.py stdio
    python mcp_server.py http PORT

Tools: `lucky_number` (read-only), `append_note` (not idempotent: appends to $NOTES_FILE, then
waits $NOTE_DELAY_S seconds), `crash` (the process exits mid-call), `hang` (never answers),
`get.weather` (a name model APIs refuse as is), `raw` (returns text with a NUL byte).
With $PID_FILE the process writes its pid there; with $STARTUP_DELAY_S it waits before serving.
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("herald-test")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lucky_number(seed: int) -> str:
    """The lucky number for a seed."""
    return f"lucky {seed * 7 + 3} from pid {os.getpid()}"


@server.tool()
def append_note(text: str) -> str:
    """Append a note (not safe to repeat)."""
    with open(os.environ["NOTES_FILE"], "a", encoding="utf-8") as notes:
        notes.write(text + "\n")
    time.sleep(float(os.environ.get("NOTE_DELAY_S", "0")))
    return f"noted: {text}"


@server.tool()
def crash() -> str:
    """Exit the server process in the middle of the call."""
    os._exit(3)


@server.tool()
def hang() -> str:
    """Never answer."""
    time.sleep(3600)
    return "unreachable"


@server.tool(name="get.weather", annotations=ToolAnnotations(idempotent_hint=True))
def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def raw() -> str:
    """Text as some programs print it, NUL byte included."""
    return "before\x00after"


if __name__ == "__main__":
    if "PID_FILE" in os.environ:
        with open(os.environ["PID_FILE"], "a", encoding="utf-8") as pids:
            pids.write(f"{os.getpid()}\n")
    time.sleep(float(os.environ.get("STARTUP_DELAY_S", "0")))
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
