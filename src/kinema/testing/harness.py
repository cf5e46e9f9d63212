"""The whole service in one process, for fast and deterministic tests of everything
around the engines: `create_app` over a SQLite file, local storage and the engines you
give, driven through `httpx` (`ASGITransport`) or Starlette's `TestClient`, and a worker
you step by hand (`work()`), so no assertion depends on when a background worker wakes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from kinema.api.app import KinemaApp, create_app
from kinema.engines import Engine, EngineSet
from kinema.settings import Settings
from kinema.storage import BlobStorage, open_storage
from kinema.store import Job, JobStore, open_store
from kinema.worker import Worker

TEST_KEY = "kn-test-key-0123456789abcdefghijklmnopqrstuvwxyz"
BASE_URL = "http://kinema.test"


class InProcess:
    def __init__(
        self, data_dir: Path, engines: list[Engine] | None = None, **settings: Any
    ) -> None:
        defaults: dict[str, Any] = {
            "data_dir": data_dir, "api_key": TEST_KEY, "allow_private_urls": True,
            "workers": 0,
        }  # fmt: skip
        self.settings = Settings(**{**defaults, **settings})
        self.store: JobStore = open_store(self.settings.resolved_database_url, wakeup=False)
        self.storage: BlobStorage = open_storage(self.settings)
        if engines is None:
            self.engines = EngineSet.configure(self.settings.engines, self.settings.engine_options)
        else:
            self.engines = EngineSet.of(engines)
        self.app: KinemaApp = create_app(self.settings, self.store, self.storage, self.engines)
        self.worker = Worker(self.settings, self.store, self.storage, self.engines)
        self.headers = {"Authorization": f"Bearer {TEST_KEY}"}

    def client(self) -> httpx.Client:
        """A synchronous httpx.Client over the same ASGI transport, with the test key."""
        return httpx.Client(
            transport=SyncASGITransport(self.app), base_url=BASE_URL, headers=self.headers
        )

    def async_client(self) -> httpx.AsyncClient:
        """An httpx.AsyncClient over `httpx.ASGITransport`, with the test key."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL, headers=self.headers
        )

    def work(self, limit: int | None = None) -> list[Job]:
        """Run queued jobs on this thread until none is left (or `limit` ran)."""
        done: list[Job] = []
        while limit is None or len(done) < limit:
            job = self.worker.run_once()
            if job is None:
                break
            done.append(job)
        return done

    def close(self) -> None:
        self.store.close()


class SyncASGITransport(httpx.BaseTransport):
    """`httpx.ASGITransport` for synchronous clients: the app runs on an event loop in a
    background thread (one per transport), the way a server would run it."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=body
        )
        return asyncio.run_coroutine_threadsafe(self._send(forwarded), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@contextmanager
def in_process(
    data_dir: Path, engines: list[Engine] | None = None, **settings: Any
) -> Iterator[InProcess]:
    service = InProcess(data_dir, engines, **settings)
    try:
        yield service
    finally:
        service.close()
