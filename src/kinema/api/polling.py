"""Polls of every wire dialect (`GET …?generation_id=` for the AI/ML API): the hot path,
served in front of FastAPI.

Clients poll in loops, so a poll is answered by this small ASGI app before the request
reaches FastAPI's routing, dependency and middleware stack (which costs several times the
work itself). It keeps the same contract as every other route: the dialect's own error
envelope (`kinema.api.errors.ErrorRenderer`), `x-inference-id`, the echoed
`X-Client-Request-Id`. Reads run inline on the event loop when the store says they are
local (SQLite), otherwise in the thread pool.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

from starlette.types import Scope, Send

from kinema.api.auth import Authenticator
from kinema.api.errors import ErrorRenderer
from kinema.api.middleware import client_request_id
from kinema.dialects import Dialect, Rendered
from kinema.errors import FieldProblem, KinemaError, NotFound, ValidationFailed
from kinema.settings import Settings
from kinema.storage import BlobStorage
from kinema.store import JobQueue, JobStatus

POLL_THREADS = 8
ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Poller:
    """The poll itself, HTTP-framework-free: id + Authorization -> the job's status."""

    def __init__(self, store: JobQueue, auth: Authenticator) -> None:
        self.store = store
        self.auth = auth

    def __call__(self, generation_id: str, authorization: str) -> JobStatus:
        if not generation_id or len(generation_id) > 200:
            problem = FieldProblem(
                "generation_id", "Required: the id the submit call returned",
                "string of 1-200 characters", generation_id or None,
            )  # fmt: skip
            raise ValidationFailed([problem])
        key = self.auth.check(authorization)
        # Always the store's word (no cache of finished jobs): a generation deleted through
        # any replica is gone from every replica at once.
        job = self.store.get_status(generation_id, key.id)
        if job is None:
            # Another key's generation is indistinguishable from a missing one.
            raise NotFound(f"Generation '{generation_id}' was not found.")
        return job


class PollFastPath:
    """Answers every dialect's polls at the very front of the ASGI app (see `KinemaApp`)."""

    def __init__(
        self,
        poller: Poller,
        dialects: list[Dialect],
        render: ErrorRenderer,
        storage: BlobStorage,
        settings: Settings,
        inline: bool,
    ) -> None:
        self.poller = poller
        self.dialects = dialects
        self.render = render
        self.storage = storage
        self.public_url = settings.public_url
        self.ttl = settings.url_ttl_seconds
        self.inline = inline
        # Remote stores (PostgreSQL): a few threads, each keeping one read connection, so
        # an API process holds a bounded number of database connections for polls.
        self._executor = None if inline else ThreadPoolExecutor(POLL_THREADS, "kinema-poll")

    def match(self, scope: Scope) -> tuple[Dialect, str] | None:
        """(dialect, generation id) when the request is a poll of one of the dialects."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        for dialect in self.dialects:
            generation_id = dialect.poll_id(scope["path"], scope["query_string"])
            if generation_id is not None:
                return dialect, generation_id
        return None

    def _base_url(self, scope: Scope, host: bytes | None) -> str:
        if self.public_url:
            return self.public_url
        if host is None:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}".encode()
        scheme, root = scope.get("scheme", "http"), scope.get("root_path", "")
        return f"{scheme}://{host.decode('latin-1')}{root}/"

    def _answer(
        self, dialect: Dialect, generation_id: str, authorization: str, base_url: str
    ) -> Rendered:
        job = self.poller(generation_id, authorization)
        return dialect.render_poll(job, self.storage, base_url, self.ttl)

    async def __call__(
        self, scope: Scope, send: Send, dialect: Dialect, generation_id: str
    ) -> None:
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        base_url = self._base_url(scope, headers.get(b"host"))
        args = (dialect, generation_id, authorization, base_url)
        try:
            if self.inline:
                status, body, extra = self._answer(*args)
            else:
                loop = asyncio.get_running_loop()
                status, body, extra = await loop.run_in_executor(
                    self._executor, self._answer, *args
                )
            inference_id = generation_id
        except KinemaError as exc:
            inference_id = str(uuid.uuid4())
            status, body, extra = self.render(exc, scope["path"], inference_id)
        except Exception as exc:
            inference_id = str(uuid.uuid4())
            status, body, extra = self.render.unexpected(exc, "GET", scope["path"], inference_id)
        payload = ENCODE(body).encode()
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-inference-id", inference_id.encode()),
            *((name.encode(), value.encode()) for name, value in extra.items()),
        ]
        echoed = client_request_id(headers.get(b"x-client-request-id"))
        if echoed:
            response_headers.append((b"x-client-request-id", echoed.encode()))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})
