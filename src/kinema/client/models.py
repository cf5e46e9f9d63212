"""What the SDK returns: a `Generation` (one poll or submit answer, parsed defensively) with
its `Video` and `JobError`; a `GenerationEvent` of a live stream; a `Page` of a listing; a
`Quote`. The sync and async clients share `GenerationBase`; the two subclasses only differ
in how `download()` runs (plain call vs. coroutine), as `Page` and `AsyncPage` differ in
how the next page is fetched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kinema.client._core import COMPLETED, ERROR, normalize_status

if TYPE_CHECKING:
    from kinema.client.aio import AsyncClient
    from kinema.client.sync import Client

__all__ = [
    "AsyncGeneration", "AsyncPage", "Generation", "GenerationBase", "GenerationEvent",
    "JobError", "ModelInfo", "Page", "Quote", "Video",
]  # fmt: skip


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Video:
    url: str
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def parse(cls, value: Any) -> Video | None:
        """`video` as an object, a list of them (first wins) or a bare URL string."""
        if isinstance(value, list):
            value = next((v for v in value if v), None)
        if isinstance(value, str) and value:
            return cls(url=value)
        if not isinstance(value, Mapping) or not isinstance(value.get("url"), str):
            return None
        return cls(
            url=value["url"],
            content_type=_str(value.get("content_type")),
            file_name=_str(value.get("file_name")),
            file_size=_int(value.get("file_size")),
            duration=_float(value.get("duration")),
            width=_int(value.get("width")),
            height=_int(value.get("height")),
        )


@dataclass(frozen=True)
class JobError:
    """Why a generation failed: the server's `error.name` and `error.message`."""

    name: str
    message: str

    @classmethod
    def parse(cls, value: Any) -> JobError | None:
        """`error` as `{name, message}`, as FastAPI's `{detail: [...]}`, or as a string."""
        if value is None or value == {} or value == "":
            return None
        if isinstance(value, str):
            return cls("Error", value)
        if isinstance(value, Mapping):
            name = _str(value.get("name")) or _str(value.get("type")) or "Error"
            message = value.get("message")
            detail = value.get("detail")
            if isinstance(message, str):
                return cls(name, message)
            if isinstance(detail, list):
                parts = [
                    str(d.get("msg") or d.get("message") or d) if isinstance(d, Mapping) else str(d)
                    for d in detail
                ]
                return cls(name, "; ".join(parts))
            if isinstance(detail, str):
                return cls(name, detail)
        return cls("Error", str(value))


@dataclass
class GenerationBase:
    """One generation as last seen. `status` is normalised to queued / generating /
    completed / error whatever the server spelled; `raw_status` keeps its spelling."""

    id: str
    status: str
    raw_status: str
    model: str | None
    video: Video | None
    error: JobError | None
    progress: float | None
    queue_position: int | None
    credits_used: int | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.status in (COMPLETED, ERROR)

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def failed(self) -> bool:
        return self.status == ERROR

    @staticmethod
    def fields_from(body: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments parsed from a submit or poll answer."""
        raw_status = str(body.get("status") or "")
        status = normalize_status(raw_status)
        error = JobError.parse(body.get("error"))
        if status == ERROR and error is None:
            error = JobError("Error", "the server reported a failure without details")
        meta = body.get("meta")
        usage: Any = meta.get("usage") if isinstance(meta, Mapping) else None
        if not isinstance(usage, Mapping):
            usage = body.get("usage")
        if not isinstance(usage, Mapping):
            usage = {}
        credits = usage.get("credits_used", usage.get("tokens_used"))
        return {
            "id": str(body.get("id") or body.get("generation_id") or ""),
            "status": status,
            "raw_status": raw_status,
            "model": _str(body.get("model")),
            "video": Video.parse(body.get("video")),
            "error": error,
            "progress": _float(body.get("progress")),
            "queue_position": _int(body.get("queue_position")),
            "credits_used": _int(credits),
            "raw": dict(body),
        }


@dataclass
class Generation(GenerationBase):
    _client: Client | None = field(default=None, repr=False, compare=False)

    def download(self, path: str | Path | None = None) -> Path:
        """Stream the video to `path` (a file, or a directory for the server's file name;
        default: the file name in the current directory). Resumes a cut transfer with
        Range, also from a `.part` file a previous run left. Returns the path written."""
        if self._client is None:
            raise RuntimeError("this Generation is not bound to a client")
        return self._client.videos.download(self, path)


@dataclass
class AsyncGeneration(GenerationBase):
    _client: AsyncClient | None = field(default=None, repr=False, compare=False)

    async def download(self, path: str | Path | None = None) -> Path:
        """Async twin of `Generation.download` (same resumable transfer)."""
        if self._client is None:
            raise RuntimeError("this AsyncGeneration is not bound to a client")
        return await self._client.videos.download(self, path)


@dataclass(frozen=True)
class ModelInfo:
    """One entry of `GET /v2/models`: a model id, its route and its request fields."""

    id: str
    aliases: list[str]
    route: str
    required: list[str]
    fields: dict[str, dict[str, Any]]  # field name -> its JSON Schema
    prices: dict[str, int]

    @classmethod
    def parse(cls, entry: Mapping[str, Any]) -> ModelInfo:
        schema = entry.get("schema")
        if not isinstance(schema, Mapping):
            schema = {}
        properties = schema.get("properties")
        prices = entry.get("prices")
        return cls(
            id=str(entry.get("id", "")),
            aliases=[str(a) for a in entry.get("aliases") or []],
            route=str(entry.get("route", "")),
            required=[str(r) for r in schema.get("required") or []],
            fields=dict(properties) if isinstance(properties, Mapping) else {},
            prices=dict(prices) if isinstance(prices, Mapping) else {},
        )


G = TypeVar("G", bound=GenerationBase)


@dataclass(frozen=True)
class GenerationEvent(Generic[G]):
    """One event of a generation's live stream (`videos.stream`): `id` its sequence number
    (what `last_event_id=` resumes after), `event` its kind (`status`: the status changed;
    `progress`: a progress step) and `generation` the job as it was at that event."""

    id: int | None
    event: str
    generation: G

    @property
    def done(self) -> bool:
        """The terminal event (completed or error): the last one of the stream."""
        return self.generation.done


@dataclass(frozen=True)
class Quote:
    """What a submit would cost (`videos.quote`, a dry run: nothing created or charged):
    `credits_used` the price, `backend` / `capability` what would render it."""

    model: str | None
    credits_used: int | None
    backend: str | None
    capability: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Quote:
        meta = body.get("meta")
        usage: Any = meta.get("usage") if isinstance(meta, Mapping) else None
        credits = usage.get("credits_used") if isinstance(usage, Mapping) else None
        return cls(
            model=_str(body.get("model")), credits_used=_int(credits),
            backend=_str(body.get("backend")), capability=_str(body.get("capability")),
            raw=dict(body),
        )  # fmt: skip


@dataclass
class PageBase(Generic[G]):
    """One page of `videos.list`, newest first: `data` and the cursor of the next page
    (`next`, None on the last page)."""

    data: list[G]
    next: str | None

    @property
    def has_more(self) -> bool:
        return self.next is not None


@dataclass
class Page(PageBase[G]):
    """Iterating a page walks every generation of this page and the following ones
    (fetched as needed); `next_page()` / `iter_pages()` go page by page."""

    _fetch: Callable[[str], Page[G]] = field(repr=False, compare=False, kw_only=True)

    def next_page(self) -> Page[G] | None:
        return self._fetch(self.next) if self.next is not None else None

    def iter_pages(self) -> Iterator[Page[G]]:
        page: Page[G] | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[G]:
        for page in self.iter_pages():
            yield from page.data


@dataclass
class AsyncPage(PageBase[G]):
    """`Page` of the async client: `async for` walks this page and the following ones."""

    _fetch: Callable[[str], Awaitable[AsyncPage[G]]] = field(
        repr=False, compare=False, kw_only=True
    )

    async def next_page(self) -> AsyncPage[G] | None:
        return await self._fetch(self.next) if self.next is not None else None

    async def iter_pages(self) -> AsyncIterator[AsyncPage[G]]:
        page: AsyncPage[G] | None = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[G]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item
