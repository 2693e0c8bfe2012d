"""Property-based fuzzing of the webhook receiver over a real socket (uvicorn in a thread, requests
from the stdlib client): whatever arrives, it never answers 5xx, never accepts a body that is not
signed by the platform key for exactly that timestamp and body, and never loses a valid push."""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.qq.webhook import Signer, WebhookReceiver

SECRET = "fuzz-secret-0123456789"
SIGNER = Signer(SECRET)
OTHER = Signer("not-the-bot-secret")
WAIT_S = 20.0  # a safety limit against hangs, never a timing assertion


class Seen:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.cond = threading.Condition()

    async def __call__(self, envelope: dict[str, Any]) -> None:
        with self.cond:
            self.ids.append(str(envelope.get("id")))
            self.cond.notify_all()

    def wait_for(self, envelope_id: str) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: envelope_id in self.ids, timeout=WAIT_S)


@contextmanager
def server_thread(receiver: WebhookReceiver) -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(receiver.app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        sock.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
event_types = st.sampled_from(
    ["C2C_MESSAGE_CREATE", "GROUP_AT_MESSAGE_CREATE", "FRIEND_ADD", "NEW_THING", ""]
)
ops = st.sampled_from([0, 0, 0, 13, 12, 1, "0", None])
SIGNING = ["valid", "missing", "random", "other_key", "tampered", "wrong_timestamp", "truncated"]
counter = itertools.count()


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, str, str, bool]:
    """(body, how it is signed, timestamp, is a well-formed op 0 push)."""
    shape = draw(st.sampled_from(["push", "json", "bytes"]))
    well_formed = False
    if shape == "push":
        op = draw(ops)
        envelope: dict[str, Any] = {"op": op, "id": f"E:{next(counter)}", "s": draw(st.integers(0, 10**6))}
        if draw(st.booleans()):
            envelope["t"] = draw(event_types)
        if draw(st.booleans()):
            envelope["d"] = draw(json_values)
        if op == 13 and draw(st.booleans()):
            envelope["d"] = {"plain_token": draw(st.text(max_size=10)), "event_ts": "1"}
        body = json.dumps(envelope).encode()
        well_formed = op == 0 and isinstance(envelope.get("t"), str) and "d" in envelope
    elif shape == "json":
        body = json.dumps(draw(json_values)).encode()
    else:
        body = draw(st.binary(max_size=300))
    signing = draw(st.sampled_from(SIGNING))
    timestamp = draw(st.sampled_from(["now", "now", "old", "garbage"]))
    ts = {"now": str(int(time.time())), "old": str(int(time.time()) - 86400), "garbage": "abc"}[timestamp]
    return body, signing, ts, well_formed


def signed_headers(body: bytes, signing: str, ts: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Signature-Timestamp": ts}
    message = ts.encode() + body
    if signing == "valid":
        headers["X-Signature-Ed25519"] = SIGNER.sign(message)
    elif signing == "random":
        headers["X-Signature-Ed25519"] = (bytes(range(64)) if body else b"\x01" * 64).hex()
    elif signing == "other_key":
        headers["X-Signature-Ed25519"] = OTHER.sign(message)
    elif signing == "tampered":
        headers["X-Signature-Ed25519"] = SIGNER.sign(message + b" ")
    elif signing == "wrong_timestamp":
        headers["X-Signature-Ed25519"] = SIGNER.sign(str(int(ts) + 1 if ts.isdigit() else 7).encode() + body)
    elif signing == "truncated":
        headers["X-Signature-Ed25519"] = SIGNER.sign(message)[:-2]
    return headers


def post(port: int, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_receiver_never_fails_never_accepts_forgeries_never_loses_valid_pushes() -> None:
    seen = Seen()
    receiver = WebhookReceiver("1", SECRET, seen, max_age_s=300, max_body=2048)
    with server_thread(receiver) as port:

        @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(requests())
        def check(request: tuple[bytes, str, str, bool]) -> None:
            body, signing, ts, well_formed = request
            status = post(port, body, signed_headers(body, signing, ts))
            assert status < 500
            authentic = signing == "valid" and ts != "abc" and int(ts) > time.time() - 300
            if not authentic:
                assert status in (401, 413), (signing, ts, status)
            elif len(body) > 2048:
                assert status == 413
            elif well_formed:
                assert status == 200
                envelope_id = json.loads(body)["id"]
                assert seen.wait_for(envelope_id), f"valid push {envelope_id} was lost"
            else:
                assert status in (200, 400)

        check()
    assert len(seen.ids) == len(set(seen.ids))
