"""Chunked upload of a large local file to the emulator: throughput, and how much the uploading
process's resident memory grows (the goal: at most 32 MB for a 100 MB file).

Starts `herald sim` as a subprocess on a free port, sets its `upload_config.concurrency` and block
size through the control API, writes a file of `--size-mb` MB, and uploads it as Herald does
(one hashing pass, then the parts read from the file with that many in flight, each PUT then
`upload_part_finish`, then the merge). Peak RSS is the kernel's high-water mark (VmHWM), reset
just before the upload (`/proc/self/clear_refs`), minus the RSS before it.

    .venv/bin/python bench/upload.py [--size-mb 100] [--concurrency 4] [--block-mb 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import aiohttp

from herald.core.target import Scene
from herald.qq.api import FileHashes, FileSource, FileType, QQApi
from herald.qq.auth import TokenManager

APP_ID = "102000001"
SECRET = "herald-sim-secret-0123456789abcd"
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


@contextlib.contextmanager
def sim_process(port: int) -> Iterator[str]:
    command = [sys.executable, "-c", "from herald.cli import main; main()", "sim", "--port", str(port)]
    command += ["--app-id", APP_ID, "--secret", SECRET]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("herald sim did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def write_file(path: str, size: int) -> None:
    block = os.urandom(MB)
    with open(path, "wb") as out:
        for i in range(size // MB):
            out.write(bytes([i % 251]) + block[1:])
        out.write(block[: size % MB])


async def run(base: str, path: str, concurrency: int, block: int) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(
            f"{base}/_sim/settings", json={"upload_concurrency": concurrency, "upload_block_size": block}
        ) as resp:
            assert resp.status == 200, await resp.text()
        tokens = TokenManager(http, APP_ID, SECRET, f"{base}/app/getAppAccessToken")
        api = QQApi(http, tokens, base, timeout_s=60)
        # Warm up every code path (token, prepare, PUT, part_finish, merge) with a small upload.
        await api.upload_chunked(Scene.C2C, "bench", FileType.FILE, os.urandom(block + 1), "warm.bin")
        source = FileSource(path)
        try:
            before = rss_kb("VmRSS")
            exact = reset_peak()
            started = time.perf_counter()
            hashes = await asyncio.to_thread(FileHashes.of_source, source)
            hashed = time.perf_counter()
            answer = await api.upload_chunked(
                Scene.C2C, "bench", FileType.FILE, source, "big.bin", hashes=hashes
            )
            done = time.perf_counter()
            peak = rss_kb("VmHWM")
        finally:
            source.close()
    assert answer.get("file_info"), answer
    size_mb = source.size / MB
    print(f"file: {size_mb:.0f} MB, block {block / MB:g} MB, concurrency {concurrency}")
    print(f"hashing (md5, sha1, md5_10m, one pass): {hashed - started:.2f} s")
    print(f"upload (prepare, parts, merge): {done - hashed:.2f} s, {size_mb / (done - hashed):.1f} MB/s")
    print(f"total: {done - started:.2f} s, {size_mb / (done - started):.1f} MB/s")
    growth = (peak - before) / 1024
    how = "VmHWM after reset" if exact else "VmHWM (not reset: lifetime peak)"
    print(f"RSS before {before / 1024:.1f} MB, peak {peak / 1024:.1f} MB ({how}): grew {growth:.1f} MB")
    print(f"goal: RSS grows <= 32 MB: {'met' if growth <= 32 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--block-mb", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "big.bin")
        write_file(path, args.size_mb * MB)
        with sim_process(free_port()) as base:
            asyncio.run(run(base, path, args.concurrency, int(args.block_mb * MB)))


if __name__ == "__main__":
    main()
