"""`GET …?generation_id=` polls: the hot path, served in front of FastAPI.

Clients poll in loops, so a poll is answered by this small ASGI app before the request
reaches FastAPI's routing, dependency and middleware stack (which costs several times the
work itself). It keeps the same contract as every other route: AI/ML API error envelopes
via `kinema.api.errors.render`, `x-inference-id`, the echoed `X-Client-Request-Id`. Reads
run inline on the event loop when the store says they are local (SQLite), otherwise in
the thread pool.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import Scope, Send

from kinema.api.auth import Authenticator
from kinema.api.errors import render, render_unexpected
from kinema.api.middleware import client_request_id
from kinema.errors import ApiError, FieldProblem, NotFound, ValidationFailed
from kinema.settings import Settings
from kinema.storage import BlobStorage
from kinema.store import COMPLETED, ERROR, PENDING, JobStatus, JobStore

Result = tuple[int, dict[str, Any], dict[str, str]]
POLL_THREADS = 8
ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def generation_id_of(query_string: bytes) -> str:
    """`generation_id` from a query string (the first one, percent-decoded)."""
    for part in query_string.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"generation_id":
            return unquote_plus(value.decode("latin-1"))
    return ""


def job_view(
    job: JobStatus, storage: BlobStorage, base_url: str, ttl: int, position: int
) -> dict[str, Any]:
    """The poll response body for `job`; its video URL is signed when polled (never stored)."""
    credits = job.credits_used if job.credits_used is not None else job.price
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "model": job.model,
        "video": None,
        "error": None,
        "meta": {"usage": {"credits_used": credits}},
    }
    if job.status == COMPLETED and job.output:
        out = job.output
        body["video"] = {
            "url": storage.url(out["key"], ttl, base_url),
            "content_type": out["content_type"],
            "file_name": out["file_name"],
            "file_size": out["file_size"],
            "duration": out["duration"],
            "width": out["width"],
            "height": out["height"],
        }
    elif job.status == ERROR:
        body["error"] = {"name": job.error_name or "Error", "message": job.error_message or ""}
    if job.status in PENDING:
        body["progress"] = job.progress
        body["queue_position"] = position
    return body


class FinishedJobs:
    """A bounded cache of jobs in a final state (`completed`, `error`). Those rows never
    change again, so a client polling a finished job (the last poll of every loop, and
    every poll of a client that keeps asking) costs no database read."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._jobs: OrderedDict[str, tuple[str, JobStatus]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: str, key_id: str) -> JobStatus | None:
        hit = self._jobs.get(job_id)
        return hit[1] if hit is not None and hit[0] == key_id else None

    def add(self, key_id: str, job: JobStatus) -> None:
        with self._lock:
            self._jobs[job.id] = (key_id, job)
            if len(self._jobs) > self.capacity:
                self._jobs.popitem(last=False)


class Poller:
    """The poll itself, HTTP-framework-free: id + Authorization -> status, body, headers."""

    def __init__(
        self, settings: Settings, store: JobStore, storage: BlobStorage, auth: Authenticator
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.auth = auth
        self.finished = FinishedJobs()

    def __call__(self, generation_id: str, authorization: str, base_url: str) -> Result:
        if not generation_id or len(generation_id) > 200:
            problem = FieldProblem(
                "generation_id", "Required: the id the submit call returned",
                "string of 1-200 characters", generation_id or None,
            )  # fmt: skip
            raise ValidationFailed([problem])
        key = self.auth.check(authorization)
        job = self.finished.get(generation_id, key.id)
        if job is None:
            job = self.store.get_status(generation_id, key.id)
            if job is None:
                # Another key's generation is indistinguishable from a missing one.
                raise NotFound(f"Generation '{generation_id}' was not found.")
            if job.status in (COMPLETED, ERROR):
                self.finished.add(key.id, job)
        ttl = self.settings.url_ttl_seconds
        body = job_view(job, self.storage, base_url, ttl, job.queue_position)
        credits = str(body["meta"]["usage"]["credits_used"])
        return 200, body, {"x-aimlapi-credits-used": credits}


class PollFastPath:
    """Answers polls at the very front of the ASGI app (see `KinemaApp`)."""

    def __init__(
        self, poller: Poller, paths: set[str], public_url: str | None, inline: bool
    ) -> None:
        self.poller = poller
        self.paths = paths
        self.public_url = public_url
        self.inline = inline
        # Remote stores (PostgreSQL): a few threads, each keeping one read connection, so
        # an API process holds a bounded number of database connections for polls.
        self._executor = None if inline else ThreadPoolExecutor(POLL_THREADS, "kinema-poll")

    def matches(self, scope: Scope) -> bool:
        return bool(
            scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in self.paths
        )

    def _base_url(self, scope: Scope, host: bytes | None) -> str:
        if self.public_url:
            return self.public_url
        if host is None:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}".encode()
        scheme, root = scope.get("scheme", "http"), scope.get("root_path", "")
        return f"{scheme}://{host.decode('latin-1')}{root}/"

    async def __call__(self, scope: Scope, send: Send) -> None:
        headers = dict(scope["headers"])
        generation_id = generation_id_of(scope["query_string"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        base_url = self._base_url(scope, headers.get(b"host"))
        try:
            if self.inline:
                status, body, extra = self.poller(generation_id, authorization, base_url)
            else:
                status, body, extra = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.poller, generation_id, authorization, base_url
                )
            inference_id = generation_id
        except ApiError as exc:
            inference_id = str(uuid.uuid4())
            status, body, extra = render(exc, scope["path"], inference_id)
        except Exception as exc:
            inference_id = str(uuid.uuid4())
            status, body, extra = render_unexpected(exc, "GET", scope["path"], inference_id)
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
