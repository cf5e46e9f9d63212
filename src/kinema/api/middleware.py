"""Pure-ASGI middleware (cheap on the poll hot path): request/inference ids and the body
size limit."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kinema.dialects.base import Rendered
from kinema.errors import KinemaError, PayloadTooLarge

CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def client_request_id(value: bytes | None) -> str | None:
    """The `X-Client-Request-Id` to echo: 1-128 of `A-Z a-z 0-9 . _ : -`, else none."""
    if value is None:
        return None
    text = value.decode("latin-1")
    return text if CLIENT_REQUEST_ID.match(text) else None


class RequestIds:
    """Every response carries `x-inference-id` (the generation id on async routes, set by
    the handler through `request.state.inference_id`) and echoes a valid
    `X-Client-Request-Id`; invalid values are dropped silently, as upstream does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["inference_id"] = str(uuid.uuid4())
        client_id = client_request_id(
            next((v for n, v in scope["headers"] if n == b"x-client-request-id"), None)
        )

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-inference-id", str(state["inference_id"]).encode()))
                if client_id:
                    headers.append((b"x-client-request-id", client_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_ids)


class BodyLimit:
    """413 before reading a body whose Content-Length is too large; for chunked bodies the
    count is enforced while the endpoint reads (PayloadTooLarge -> 413 via the handler)."""

    def __init__(
        self, app: ASGIApp, limit: int, render: Callable[[KinemaError, str, str], Rendered]
    ) -> None:
        self.render = render
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await self._refuse(scope, send)
                    return
                break
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(self.limit)
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLarge(self.limit)
        request_id = str(scope.get("state", {}).get("inference_id", ""))
        status, content, _ = self.render(error, scope["path"], request_id)
        body = json.dumps(content).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
