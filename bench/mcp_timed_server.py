"""The MCP server `bench/tools.py` calls: one tool that returns how long it ran, in ns.

python bench/mcp_timed_server.py stdio | http PORT
"""

from __future__ import annotations

import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("herald-bench")


@server.tool()
def timed(n: int) -> str:
    """Return n and how long this call took, in ns."""
    started = time.perf_counter_ns()
    return f"{n} {time.perf_counter_ns() - started}"


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
