"""What the OpenAI Videos routes read and send besides JSON: parameters from JSON or form
fields (the `openai` SDK's bracketed multipart names), uploads as data: URIs, a stored
video's last frame, list pages oldest first, stored objects streamed from S3, and
posters made on first request."""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from kinema.dialects.aimlapi import parse_body
from kinema.dialects.openai_params import data_uri, problem
from kinema.errors import ApiError, NotFound, ServiceUnavailable, StoreUnavailable
from kinema.inputs import parse_data_uri
from kinema.storage import BlobStorage
from kinema.store import JobQueue, JobStatus

if TYPE_CHECKING:
    from kinema.media.poster_store import PosterMaker

log = logging.getLogger("kinema.api")
PAGE_WALK = 100  # rows per read when `order=asc` walks the list from its newest end


def nest(payload: dict[str, Any], key: str, value: Any) -> None:
    """A form field into the JSON shape it stands for: `a[b]` is `{"a": {"b": ...}}`,
    `a[]` appends to a list (the `openai` SDK's multipart encoding)."""
    name, _, rest = key.partition("[")
    if not rest:
        payload[key] = value
        return
    inner = rest.rstrip("]").split("][")
    target: Any = payload
    path = [name, *inner]
    for part, following in itertools.pairwise(path):
        nxt = target.get(part) if isinstance(target, dict) else None
        if nxt is None:
            nxt = [] if following == "" else {}
            target[part] = nxt
        if not isinstance(nxt, dict | list):
            raise problem(name, f"Invalid value: '{key[:60]}' conflicts with '{name}'.")
        target = nxt
    last = path[-1]
    if isinstance(target, list):
        target.append(value)
    else:
        target[last] = value


async def read_payload(
    request: Request, max_part: int
) -> tuple[dict[str, Any], dict[str, UploadFile]]:
    """The request's parameters (JSON, or form fields) and its uploaded files."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=8, max_fields=64, max_part_size=max_part)
        payload: dict[str, Any] = {}
        uploads: dict[str, UploadFile] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads[key.partition("[")[0]] = value
            else:
                nest(payload, key, value)
        return payload, uploads
    body = parse_body(await request.body())
    if body is None:
        return {}, {}
    if not isinstance(body, dict):
        raise problem("body", "Invalid request: expected a JSON object.")
    return body, {}


async def upload(file: UploadFile, param: str, kind: str, limit: int) -> tuple[str, bytes]:
    from kinema.media.sniff import AUDIO_FORMATS, IMAGE_FORMATS, MIME, sniff

    data = await file.read(limit + 1)
    if len(data) > limit:
        raise problem(param, f"Invalid file: larger than the {limit} bytes accepted.")
    found = sniff(data, kind)
    if found is None:
        formats = ", ".join(IMAGE_FORMATS if kind == "image" else AUDIO_FORMATS)
        raise problem(param, f"Invalid file: not a supported {kind} ({formats}).")
    return data_uri(data, MIME[found]), data


def image_size(data: bytes) -> tuple[int, int] | None:
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


def inline_size(url: str, limit: int) -> tuple[int, int] | None:
    """The pixel size of a data: URI image (None for URLs and anything undecodable)."""
    if url[:5].lower() != "data:":
        return None
    try:
        return image_size(parse_data_uri(url, "input_reference", limit))
    except Exception:  # refused properly by the submit's own checks
        return None


def required(payload: dict[str, Any], name: str) -> Any:
    value = payload.get(name)
    if value is None:
        raise problem(name, f"Missing required parameter: '{name}'.")
    return value


def only(payload: dict[str, Any], *names: str) -> None:
    for name in payload:
        if name not in names:
            raise problem(name, f"Unknown parameter: '{str(name)[:60]}'.")


def last_frame_uri(storage: BlobStorage, key: str) -> str:
    """The stored video's last frame as a JPEG data: URI (what an extension starts from)."""
    try:
        from kinema.media.posters import blob_file, jpeg, last_frame
    except ImportError:  # pragma: no cover - a bare install without the media extra
        raise problem("video", "Extensions need the engines extra (PyAV) on the API.") from None
    with tempfile.TemporaryDirectory() as tmp, blob_file(storage, key, Path(tmp)) as path:
        return data_uri(jpeg(last_frame(path)), "image/jpeg")


def ascending(store: JobQueue, key_id: str, limit: int, after: int | None) -> list[JobStatus]:
    """The `limit`+1 oldest of the key's jobs after position `after`, oldest first. The
    store pages newest first, so this walks down from the newest end keeping a window."""
    window: deque[JobStatus] = deque(maxlen=limit + 1)
    before = None
    while True:
        page = store.list_jobs(key_id, limit=PAGE_WALK, before_seq=before)
        for job in page:
            if after is not None and job.seq <= after:
                return list(reversed(window))
            window.append(job)
        if len(page) < PAGE_WALK:
            return list(reversed(window))
        before = page[-1].seq


async def fetched(url: str, request: Request, mime: str) -> Response | None:
    """A stored object streamed from where it lives (S3: a presigned URL), Range passed;
    None where it is not stored (S3 answers 403 or 404)."""
    import httpx

    client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=300.0))
    headers = {"range": request.headers["range"]} if "range" in request.headers else {}
    upstream = await client.send(client.build_request("GET", url, headers=headers), stream=True)
    if upstream.status_code in (403, 404):
        await upstream.aclose()
        await client.aclose()
        return None
    passed = ("content-length", "content-range", "accept-ranges", "etag", "last-modified")
    kept = {name: upstream.headers[name] for name in passed if name in upstream.headers}

    async def body() -> Any:
        try:
            async for chunk in upstream.aiter_bytes(1 << 20):
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    return StreamingResponse(
        body(), status_code=upstream.status_code, headers=kept, media_type=mime
    )


async def ensure_posters(
    maker: PosterMaker, store: JobQueue, video_id: str, output: dict[str, Any], variant: str
) -> None:
    """Make and store the video's poster and spritesheet (the first request for either),
    on a worker thread: the event loop keeps serving while it decodes. Its refusals in
    the dialect's terms: a video gone or undecodable is a 404 naming why, a storage
    failure a 503 (worth a retry); never a 500."""
    from starlette.concurrency import run_in_threadpool

    from kinema.media.poster_store import Undecodable

    def wanted() -> bool:  # a delete meanwhile: the posters must not outlive the video
        return store.get_job(video_id) is not None

    try:
        await run_in_threadpool(
            maker.ensure, output["key"], output["thumbnail_key"], output["spritesheet_key"],
            wanted,
        )  # fmt: skip
    except FileNotFoundError:
        raise NotFound(f"Video '{video_id}' has no content any more.") from None
    except Undecodable as exc:
        raise NotFound(f"Video '{video_id}' has no {variant}: {exc}.") from None
    except (ApiError, StoreUnavailable):
        raise
    except Exception:
        log.warning("video %s: its %s could not be made", video_id, variant, exc_info=True)
        raise ServiceUnavailable(
            f"The {variant} of video '{video_id}' could not be made just now (storage "
            "unavailable); try again shortly."
        ) from None
