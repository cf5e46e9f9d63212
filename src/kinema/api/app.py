"""Application factory: wires settings -> store, storage, auth, submission -> routes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from kinema import __version__, engines
from kinema.api import errors, files, generations, openapi, operations
from kinema.api.auth import Authenticator
from kinema.api.middleware import BodyLimit, RequestIds
from kinema.api.polling import Poller, PollFastPath
from kinema.settings import Settings
from kinema.specs import ROUTES
from kinema.storage import LocalStorage, open_storage
from kinema.store import JobStore, SqlStore
from kinema.submission import Submitter

log = logging.getLogger("kinema.api")

DESCRIPTION = (
    "Self-hosted video generation with the AI/ML API wire contract: submit with "
    "`POST /v2/video/generations`, poll with `GET /v2/video/generations?generation_id=…` "
    "until `completed`, then download `video.url`."
)


class KinemaApp(FastAPI):
    """FastAPI, with GET polls answered before its middleware and routing (the hot path:
    clients poll in loops; see kinema.api.polling)."""

    poll_fast_path: PollFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.poll_fast_path
        if fast is not None and fast.matches(scope):
            await fast(scope, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, store: JobStore | None = None) -> FastAPI:
    store = store or SqlStore(settings.resolved_database_url)
    if settings.api_key and isinstance(store, SqlStore):
        store.ensure_key(settings.api_key, "KINEMA_API_KEY")
    storage = open_storage(settings)
    auth = Authenticator(store, settings.auth_cache_seconds)
    submitter = Submitter(settings, store)

    app = KinemaApp(title="Kinema", version=__version__, description=DESCRIPTION)
    app.state.settings = settings
    app.state.store = store
    errors.install(app)
    app.include_router(generations.router(auth, submitter))
    app.include_router(operations.router(store))
    if isinstance(storage, LocalStorage):
        app.include_router(files.router(storage))

    @app.get("/v2/models", tags=["Models"], summary="Models, their fields and availability")
    def models() -> dict[str, Any]:
        available = engines.capabilities(settings.engines)
        return {
            "data": [
                {
                    "id": cls.MODEL_IDS[0],
                    "aliases": list(cls.MODEL_IDS[1:]),
                    "route": generations.PATHS[route],
                    "schema": cls.model_json_schema(),
                    "prices": cls.PRICES,
                }
                for route, classes in ROUTES.items()
                for cls in classes
            ],
            "capabilities": available,
        }

    openapi.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestIds)  # outermost: every response gets the ids
    app.poll_fast_path = PollFastPath(
        Poller(settings, store, storage, auth),
        paths=set(generations.PATHS.values()),
        public_url=settings.public_url,
        inline=bool(getattr(store, "fast_reads", False)),
    )
    return app
