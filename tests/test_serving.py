"""`herald.serving`: the endpoints platforms ask for, served by the app; a port that cannot be had
is an error at start that names the setting to change."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from herald.core.platform import Endpoint
from herald.serving import PortUnavailable, serve
from tests.sim_control import free_port


async def hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", hello)])


async def test_an_endpoint_is_served_and_told_its_port() -> None:
    ports: list[int] = []
    async with serve([Endpoint(APP, "127.0.0.1", 0, "[onebot] port", bound=ports.append)]):
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{ports[0]}/") as response:
            assert await response.text() == "hello"
    with pytest.raises(aiohttp.ClientConnectionError):  # stopped with the block
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{ports[0]}/"):
            pass


async def test_a_taken_port_names_the_setting() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortUnavailable) as raised:
            async with serve([Endpoint(APP, "127.0.0.1", port, "[qq] webhook_port")]):
                pass
    assert f"[qq] webhook_port: cannot listen on 127.0.0.1:{port}" in str(raised.value)


async def test_two_endpoints_on_one_port_name_both_settings() -> None:
    port = free_port()
    endpoints = [
        Endpoint(APP, "127.0.0.1", port, "[qq] webhook_port"),
        Endpoint(APP, "127.0.0.1", port, "[onebot] port"),
    ]
    with pytest.raises(PortUnavailable) as raised:
        async with serve(endpoints):
            pass
    assert "[onebot] port and [qq] webhook_port both ask for" in str(raised.value)
