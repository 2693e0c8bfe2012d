"""A bot on `qqbot-agent-sdk`, wired as its README shows: the WebSocket gateway with callbacks, the
event parser, the API client. It echoes every message as a passive reply. Where it connects comes
from the SDK's own environment settings (`QQ_API_BASE`, `QQ_TOKEN_URL`); the credentials from
`APP_ID` and `APP_SECRET`."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
from qqbot_agent_sdk.api_client import QQApiClient
from qqbot_agent_sdk.event_parser import EventParser
from qqbot_agent_sdk.websocket import QQWebSocket, WSCallbacks


async def main() -> None:
    api = QQApiClient(os.environ["APP_ID"], os.environ["APP_SECRET"])
    http = httpx.AsyncClient()
    api.setup(http)
    session: dict[str, Any] = {"id": None, "seq": None}

    async def on_message(event_type: str, data: dict[str, Any]) -> None:
        event = EventParser.parse(event_type, data)
        if event is None:
            return
        await api.send_text(
            event.chat_scope,
            event.chat_id,
            "agent-sdk: " + event.content,
            reply_to=event.message_id,
            markdown=False,
        )

    def set_session(session_id: str | None, seq: int | None) -> None:
        session["id"], session["seq"] = session_id, seq

    ws = QQWebSocket(
        WSCallbacks(
            on_message_event=on_message,
            on_connected=lambda: print("connected", flush=True),
            on_disconnected=lambda: print("disconnected", flush=True),
            on_fatal_error=lambda code, message: print("fatal", code, message, flush=True),
            get_token=api.ensure_token_sync,
            get_session=lambda: (session["id"], session["seq"]),
            set_session=set_session,
            set_heartbeat_interval=lambda seconds: None,
            clear_token=api.clear_token,
            fail_pending=lambda reason: None,
            get_gateway_url=api.get_gateway_url_sync,
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    ws.start(await api.get_gateway_url(), loop)
    await stop.wait()
    await ws.async_stop()
    await http.aclose()


if __name__ == "__main__":
    asyncio.run(main())
