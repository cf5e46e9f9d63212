"""Application factory: settings -> store, storage, engines, auth, submission -> dialects.

`create_app(settings, store=..., storage=..., engines=...)` builds the whole API; tests
pass their own parts and drive it in-process (`kinema.testing`)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from kinema import __version__
from kinema.api import admin, events, files, openapi, operations, web
from kinema.api import webhooks as webhook_routes
from kinema.api.auth import Authenticator
from kinema.api.errors import ErrorRenderer, install
from kinema.api.middleware import BodyLimit, RequestIds
from kinema.api.polling import Poller, PollFastPath
from kinema.dialects import Dialect
from kinema.dialects.aimlapi import AimlApiDialect
from kinema.dialects.openai import OpenAIDialect
from kinema.engines import EngineSet
from kinema.jobs.submission import Submitter
from kinema.settings import Settings
from kinema.specs import SPECS
from kinema.storage import BlobStorage, LocalStorage, open_storage
from kinema.store import JobStore, open_store
from kinema.webhooks.dispatcher import lifespan as webhook_dispatch

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
        if fast is not None:
            poll = fast.match(scope)
            if poll is not None:
                await fast(scope, send, *poll)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    store: JobStore | None = None,
    storage: BlobStorage | None = None,
    engines: EngineSet | None = None,
) -> KinemaApp:
    store = store or open_store(settings.resolved_database_url)
    if settings.api_key:
        store.ensure_key(settings.api_key, "KINEMA_API_KEY")
    storage = storage or open_storage(settings)
    engines = engines or EngineSet.configure(settings.engines, settings.engine_options)
    auth = Authenticator(store, settings.auth_cache_seconds)
    submitter = Submitter(settings, store, engines)
    # The first dialect that owns a path answers it; the last is the default envelope.
    dialects: list[Dialect] = [
        OpenAIDialect(auth, submitter, storage),  # /v1/videos
        AimlApiDialect(auth, submitter, storage),
    ]
    render = ErrorRenderer(dialects)

    app = KinemaApp(
        title="Kinema", version=__version__, description=DESCRIPTION,
        lifespan=webhook_dispatch(settings, store, storage),  # sends due webhooks
    )  # fmt: skip
    app.state.settings = settings
    app.state.store = store
    app.state.engines = engines
    install(app, render)
    for dialect in dialects:
        app.include_router(dialect.router())
    app.include_router(events.router(store, auth, dialects[-1], storage, settings))
    app.include_router(operations.router(store))
    app.include_router(admin.router(store, auth, engines))  # /v2/admin: operator keys
    app.include_router(web.router(settings))  # the playground and console at /playground
    if isinstance(storage, LocalStorage):
        app.include_router(files.router(storage))

    @app.get("/v2/models", tags=["Models"], summary="Models, their fields and availability")
    def models() -> dict[str, Any]:
        return {
            "data": [
                {
                    "id": cls.MODEL_IDS[0],
                    "aliases": list(cls.MODEL_IDS[1:]),
                    "route": cls.ROUTE.path,
                    "schema": cls.model_json_schema(),
                    "prices": cls.PRICES,
                }
                for cls in SPECS
            ],
            "capabilities": engines.routes(),
            "disabled_engines": engines.disabled,
        }

    openapi.install(app, dialects)
    webhook_routes.install(app, store, auth, settings)  # routes + documented events
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, render=render)
    app.add_middleware(RequestIds)  # outermost: every response gets the ids
    app.poll_fast_path = PollFastPath(
        Poller(store, auth), dialects, render, storage, settings, inline=store.reads_are_local
    )
    return app
