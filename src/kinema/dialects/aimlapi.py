"""The AI/ML API wire format: `POST` a spec body to a route, `GET` the same path with
`?generation_id=` to poll. Routes come from the specs (`kinema.specs.ROUTE_INFO`); the
response shapes are the pydantic models below; errors use the AI/ML API envelope
`{"message", "path", "requestId", "statusCode", "timestamp"}` (+ `details` on a 400).
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, get_args, get_origin
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from kinema.api.auth import Authenticator
from kinema.dialects.aimlapi_lifecycle import (
    lifecycle_router,
    quote_body,
    submit_flag,
    submit_options,
)
from kinema.dialects.aimlapi_models import (
    ERROR_DESCRIPTIONS,
    ErrorEnvelope,
    Generation,
    GenerationError,
    Meta,
    MinimaxSubmitResponse,
    SubmitResponse,
    Usage,
    Video,
    _error_responses,
)
from kinema.dialects.base import Dialect, Rendered
from kinema.errors import (
    CapabilityMissing,
    Conflict,
    FieldProblem,
    KinemaError,
    NotFound,
    OutOfCredits,
    PayloadTooLarge,
    ServiceUnavailable,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from kinema.jobs.model import PENDING, Status
from kinema.jobs.submission import Submitter
from kinema.specs import ROUTE_INFO, ModelSpec, Route
from kinema.specs.base import MediaUrl
from kinema.storage import BlobStorage
from kinema.store import JobStatus

__all__ = [
    "AimlApiDialect", "ErrorEnvelope", "Generation", "GenerationError", "Meta",
    "MinimaxSubmitResponse", "SubmitResponse", "Usage", "Video", "envelope", "poll_body",
]  # fmt: skip

log = logging.getLogger("kinema.api")

INTERNAL_MESSAGE = "Internal server error"
STATUS: dict[type[KinemaError], int] = {
    ValidationFailed: 400,
    CapabilityMissing: 400,
    Conflict: 409,
    Unauthorized: 401,
    OutOfCredits: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    TooManyRequests: 429,
    ServiceUnavailable: 503,
    StoreUnavailable: 503,
}
STORE_UNAVAILABLE = "Service unavailable: the job store is unreachable; retry shortly."


# ---------------------------------------------------------------------- rendering
def envelope(
    status: int,
    message: str,
    path: str,
    request_id: str,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": message,
        "path": path,
        "requestId": request_id,
        "statusCode": status,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if details is not None:
        body["details"] = details
    return body


def status_of(error: KinemaError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def generation_id_of(query_string: bytes) -> str:
    """`generation_id` from a query string (the first one, percent-decoded)."""
    for part in query_string.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"generation_id":
            return unquote_plus(value.decode("latin-1"))
    return ""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 4300:  # Python's own limit for int(str)
        raise ValueError(f"an integer of {len(text)} digits is out of range")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


# A \uD800-\uDFFF escape: the only way a lone surrogate gets into a decoded string.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _unpaired_surrogate(body: Any) -> bool:
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def parse_body(raw: bytes) -> Any:
    """A request body as JSON (None when empty). Strictly JSON: NaN and Infinity, numbers
    out of float range, integers past Python's 4,300 digits, nesting past the parser's
    depth and unpaired UTF-16 surrogates are refused with a 400 like any malformed body
    (they could never be stored or echoed back)."""
    if not raw:
        return None
    try:
        body = json.loads(
            raw, parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded_int
        )
        if SURROGATE_ESCAPE.search(raw) and _unpaired_surrogate(body):
            raise ValueError("a string holds an unpaired UTF-16 surrogate escape")
    except RecursionError:
        problem = "request body is not valid JSON (nested too deeply)"
        raise ValidationFailed([FieldProblem("body", problem)]) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
        problem = f"request body is not valid JSON ({str(exc)[:200]})"
        raise ValidationFailed([FieldProblem("body", problem)]) from None
    return body


def poll_body(job: JobStatus, storage: BlobStorage, base_url: str, ttl: int) -> dict[str, Any]:
    """The poll response for `job`; its video URL is signed now (never stored)."""
    credits = job.credits_used if job.credits_used is not None else job.price
    video = error = None
    if job.status == Status.COMPLETED and job.output:
        out = job.output
        video = Video(
            url=storage.url(out["key"], ttl, base_url),
            content_type=out["content_type"], file_name=out["file_name"],
            file_size=out["file_size"], duration=out["duration"],
            width=out["width"], height=out["height"],
        )  # fmt: skip
    elif job.status == Status.ERROR:
        error = GenerationError(name=job.error_name or "Error", message=job.error_message or "")
    generation = Generation(
        id=job.id, status=job.status, model=job.model, video=video, error=error,
        meta=Meta(usage=Usage(credits_used=credits), backend=job.backend),
    )  # fmt: skip
    if job.status in PENDING:
        generation.progress = job.progress
        generation.queue_position = job.queue_position
    return generation.model_dump(mode="json", exclude_unset=True)


class AimlApiDialect(Dialect):
    name = "aimlapi"

    def __init__(self, auth: Authenticator, submitter: Submitter, storage: BlobStorage) -> None:
        self.auth = auth
        self.submitter = submitter
        self.storage = storage
        self.ttl = submitter.settings.url_ttl_seconds
        self.routes: dict[str, Route] = {route.path: route for route in ROUTE_INFO.values()}

    def owns(self, path: str) -> bool:
        return True  # the default envelope: every path no other dialect claims

    # ---- errors ---------------------------------------------------------------------
    def render_error(self, error: KinemaError, path: str, request_id: str) -> Rendered:
        status = status_of(error)
        if status == 500:
            return self.render_status(500, INTERNAL_MESSAGE, path, request_id)
        message = STORE_UNAVAILABLE if isinstance(error, StoreUnavailable) else error.message
        details = None
        if isinstance(error, ValidationFailed):
            details = [p.as_dict() for p in error.problems]
        headers = {"Retry-After": "5"} if status in (429, 503) else {}
        return status, envelope(status, message, path, request_id, details), headers

    def render_status(self, status: int, message: str, path: str, request_id: str) -> Rendered:
        return status, envelope(status, message, path, request_id), {}

    # ---- polls ----------------------------------------------------------------------
    def poll_id(self, path: str, query_string: bytes) -> str | None:
        return generation_id_of(query_string) if path in self.routes else None

    def render_poll(
        self, job: JobStatus, storage: BlobStorage, base_url: str, ttl: int
    ) -> Rendered:
        body = poll_body(job, storage, base_url, ttl)
        return 200, body, {"x-aimlapi-credits-used": str(body["meta"]["usage"]["credits_used"])}

    # ---- submits --------------------------------------------------------------------
    def router(self) -> APIRouter:
        api = APIRouter(tags=["Video generations"])
        for route in self.routes.values():
            model = MinimaxSubmitResponse if route.id_field == "generation_id" else SubmitResponse
            api.add_api_route(
                route.path, self._submit_handler(route), methods=["POST"], status_code=201,
                summary=route.summary, name=f"submit_{route.name}", response_model=model,
                responses=_error_responses(400, 401, 403, 413, 429, 503),
            )  # fmt: skip
        api.include_router(lifecycle_router(self))
        return api

    def _submit_handler(self, route: Route) -> Any:
        async def submit(request: Request) -> JSONResponse:
            key = await run_in_threadpool(self.auth, request)
            body = parse_body(await request.body())
            if body is None:
                raise ValidationFailed([FieldProblem("body", "Required: a JSON object")])
            if submit_flag(request, "dry_run"):
                quote = await run_in_threadpool(self.submitter.quote, route.name, body)
                return JSONResponse(quote_body(quote))
            options = submit_options(request, self.submitter.settings)
            made = await run_in_threadpool(self.submitter.submit, route.name, body, key.id, options)
            job = made.job
            request.state.inference_id = job.id
            content = {
                route.id_field: job.id, "status": job.status,
                "meta": {"usage": {"credits_used": job.price}},
            }  # fmt: skip
            headers = {"x-aimlapi-credits-used": str(job.price)}
            if made.replayed:
                headers["Idempotent-Replayed"] = "true"
            return JSONResponse(content, status_code=201, headers=headers)

        return submit

    # ---- OpenAPI --------------------------------------------------------------------
    def document(self, schema: dict[str, Any]) -> None:
        from kinema.specs import ROUTES

        ref = "#/components/schemas/{model}"
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, model in (("Generation", Generation), ("ErrorEnvelope", ErrorEnvelope)):
            definition = model.model_json_schema(ref_template=ref)
            components.update(definition.pop("$defs", {}))
            components[name] = definition
        for path, route in self.routes.items():
            refs, mapping = [], {}
            for cls in ROUTES[route.name]:
                definition = cls.model_json_schema(ref_template=ref)
                document_media_urls(cls, definition)
                components.update(definition.pop("$defs", {}))
                components[cls.__name__] = definition
                refs.append({"$ref": ref.format(model=cls.__name__)})
                mapping.update(
                    {model_id: ref.format(model=cls.__name__) for model_id in cls.MODEL_IDS}
                )
            operations = schema["paths"][path]
            submit = operations["post"]
            submit["security"] = [{"bearer": []}]
            submit["requestBody"] = {
                "required": True,
                "content": {"application/json": {
                    "schema": {
                        "oneOf": refs,
                        "discriminator": {"propertyName": "model", "mapping": mapping},
                    },
                    "examples": {cls.__name__: example_of(cls) for cls in ROUTES[route.name]},
                }},
            }  # fmt: skip
            responses = submit["responses"]
            responses["201"]["links"] = {
                "poll": {
                    "operationId": f"poll_{route.name}",
                    "parameters": {"generation_id": f"$response.body#/{route.id_field}"},
                    "description": "Poll the generation this submit created.",
                }
            }
            responses["400"]["description"] = self._refusals()
            operations["get"] = poll_operation(route)

    def _refusals(self) -> str:
        """The submit 400, with what this deployment serves (a request needing anything
        else is refused on purpose, with a message naming what is missing)."""
        served = ", ".join(
            f"{capability} ({engine})"
            for capability, engine in sorted(self.submitter.capabilities.items())
        )
        return (
            f"{ERROR_DESCRIPTIONS[400]} This deployment serves: {served or 'nothing'}. "
            "What a request needs follows from its model and fields (e.g. `video-01` without "
            "an image needs text-to-video); a need no enabled engine serves is refused with "
            "this 400 and no `details`. Rules the schema cannot state are refused here too, "
            "each named in `details`: combinations of fields a model does not offer "
            "(`field` is `body`, e.g. a duration not available at that resolution), unsafe "
            "or malformed media URLs, data: URIs that do not decode to an accepted image or "
            "audio, text that takes longer to say than the video lasts."
        )


# What `MediaUrl` accepts (kinema.specs.base): an http(s) URL or a data: URI, any case.
MEDIA_URL_PATTERN = "^(?:[Hh][Tt][Tt][Pp][Ss]?://|[Dd][Aa][Tt][Aa]:)"
EXAMPLE_PROMPT = "A red fox trots through fresh snow at dawn, slow camera push-in."


def _is_media_url(annotation: Any, metadata: list[Any]) -> bool:
    marker = get_args(MediaUrl)[1:]
    if any(item in marker for item in metadata):
        return True
    if get_origin(annotation) is Annotated:
        return any(item in marker for item in annotation.__metadata__)
    return any(_is_media_url(arg, []) for arg in get_args(annotation))


def media_fields(cls: type[ModelSpec]) -> list[str]:
    """The request fields of `cls` that take a media URL (`MediaUrl`)."""
    return [
        info.alias or name
        for name, info in cls.model_fields.items()
        if _is_media_url(info.annotation, info.metadata)
    ]


def document_media_urls(cls: type[ModelSpec], definition: dict[str, Any]) -> None:
    """State in the published schema what the media URL fields accept (the validator
    refuses anything else with a 400 naming the field)."""
    properties = definition.get("properties", {})
    for name in media_fields(cls):
        prop = properties.get(name, {})
        for branch in [prop, *prop.get("anyOf", [])]:
            if branch.get("type") == "string":
                branch["pattern"] = MEDIA_URL_PATTERN


def example_of(cls: type[ModelSpec]) -> dict[str, Any]:
    """A request body for `cls`: its model id, a prompt where it takes one, and every
    media field (an image, audio or video URL)."""
    value: dict[str, Any] = {"model": cls.MODEL_IDS[0]}
    if "prompt" in cls.model_fields:
        value["prompt"] = EXAMPLE_PROMPT
    for name in media_fields(cls):
        kind = "speech.mp3" if "audio" in name else "portrait.png"
        kind = "talking.mp4" if "video" in name else kind
        value[name] = f"https://example.com/media/{kind}"
    return {"summary": f"{cls.MODEL_IDS[0]} ({cls.__name__})", "value": value}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def poll_operation(route: Route) -> dict[str, Any]:
    errors = {
        str(code): _json("ErrorEnvelope", ERROR_DESCRIPTIONS[code]) for code in (400, 401, 404, 503)
    }
    return {
        "tags": ["Video generations"],
        "summary": "Poll a generation",
        "operationId": f"poll_{route.name}",
        "security": [{"bearer": []}],
        "parameters": [
            {"name": "generation_id", "in": "query", "required": True,
             "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
        ],
        "responses": {
            "200": _json("Generation", "The generation: status queued|generating|completed|error."),
            **errors,
        },
    }  # fmt: skip
