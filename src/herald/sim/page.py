"""The emulator's web page: conversations as a QQ client shows them, and a box to type as a user.

The page is static HTML and vanilla JS; everything it shows or does goes through the `/_sim/`
control API, so it never sees more than a test could.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from herald.sim import webhook

STATIC = Path(__file__).with_name("static")


def routes(state: object) -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    return [
        Route("/", index),
        Mount("/_sim/static", app=StaticFiles(directory=STATIC), name="sim-static"),
        # app.py has no slot for webhook routes; the page is where the webhook status is shown.
        *webhook.routes(state),
    ]
