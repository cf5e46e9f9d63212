"""The baseline server for bench.api: a bare Starlette app on exactly the uvicorn config
`kinema serve` uses (see kinema.cli.cmd_serve), so the difference is kinema's own work
per request: middleware, auth, the database, URL signing, the thread-pool hop.

`python -m bench.bare_app --port N`. GET /poll answers the JSON body in BENCH_POLL_BODY
(bench.api passes a real completed poll response, so both send the same bytes);
POST /submit parses the JSON body and answers 201 with a submit-shaped object."""

from __future__ import annotations

import argparse
import json
import os
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

POLL_BODY = json.loads(os.environ.get("BENCH_POLL_BODY", '{"status": "ok"}'))


async def poll(request: Request) -> JSONResponse:
    return JSONResponse(POLL_BODY)


async def submit(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    return JSONResponse(
        {"id": str(uuid.uuid4()), "status": "queued", "model": body.get("model"),
         "meta": {"usage": {"credits_used": 300_000}}},
        status_code=201,
    )  # fmt: skip


app = Starlette(routes=[Route("/poll", poll), Route("/submit", submit, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="info", access_log=False,
        timeout_graceful_shutdown=10,
    )  # fmt: skip
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
