"""Herald as its own process with the scripted model, for tests that SIGKILL it.

    python -m tests.app.scripted_herald CONFIG.toml CALLS.log     (from the repository's root)
    python -m tests.app.scripted_herald CONFIG.toml               (the config's own [llm] model)

Prints READY once connected; with CALLS.log the model is the scripted one and every model request
is appended to CALLS.log as `<turn text>\t<first|after>`; SIGTERM stops it gracefully.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo

from herald.app import Herald
from herald.config import load_config
from tests.app.herald_harness import Script, last_user_text, tool_results


class RecordingScript(Script):
    def __init__(self, record: Path) -> None:
        super().__init__()
        self.record = record.open("a", buffering=1, encoding="utf-8")

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        phase = "after" if tool_results(messages[-1]) else "first"
        self.record.write(f"{last_user_text(messages)}\t{phase}\n")
        self.record.flush()
        return await super().respond(messages, info)


async def main(config_path: str, record_path: str | None) -> None:
    model = None if record_path is None else RecordingScript(Path(record_path)).choice()
    herald = Herald(load_config(config_path), model=model)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await herald.start()
    await herald.wait_ready()
    print("READY", flush=True)
    await stop.wait()
    await herald.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
