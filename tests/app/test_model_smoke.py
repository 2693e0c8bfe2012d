"""The embedded model's smoke test names a crashing server's cause and its fix: a real server
process that serves its model list but dies with SIGSEGV on the first prompt, as a
llama-cpp-python built for another CPU's extensions does."""

from __future__ import annotations

import sys
from pathlib import Path

from herald.llm.local import LocalModelServer

CRASHING_SERVER = """
import argparse, json, os, signal
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
args, _ = parser.parse_known_args()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        os.kill(os.getpid(), signal.SIGSEGV)  # what a build for the wrong CPU does in llama_decode

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
"""


async def test_a_server_that_crashes_on_a_prompt_fails_the_smoke_test_with_cause_and_fix(
    tmp_path: Path,
) -> None:
    script = tmp_path / "crashing_server.py"
    script.write_text(CRASHING_SERVER)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    server = LocalModelServer(model, command=[sys.executable, str(script)], startup_timeout_s=30)
    await server.start()
    try:
        problem = await server.check(timeout_s=30)
    finally:
        await server.stop()
    assert problem is not None
    assert "SIGSEGV" in problem and "GGML_NATIVE=OFF" in problem
    assert server.problem == problem
