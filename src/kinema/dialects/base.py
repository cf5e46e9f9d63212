"""What a wire dialect provides: its routes, its response and error shapes, the polls it
serves on the fast path, and its part of `/openapi.json`. Each dialect maps Kinema's one
error tree to HTTP in exactly one place (`render_error`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from fastapi import APIRouter

from kinema.errors import KinemaError
from kinema.storage import BlobStorage
from kinema.store import JobStatus

# (HTTP status, JSON body, extra headers)
Rendered = tuple[int, dict[str, Any], dict[str, str]]


class Dialect(ABC):
    name: str

    @abstractmethod
    def owns(self, path: str) -> bool:
        """True for the request paths this dialect answers (errors use its envelope)."""

    @abstractmethod
    def router(self) -> APIRouter:
        """The dialect's routes (submits and anything not on the poll fast path)."""

    @abstractmethod
    def render_error(self, error: KinemaError, path: str, request_id: str) -> Rendered:
        """An error as this dialect's HTTP answer."""

    @abstractmethod
    def render_status(self, status: int, message: str, path: str, request_id: str) -> Rendered:
        """A plain HTTP error (405, a bare 500 for a bug...) in this dialect's envelope."""

    # The poll fast path (kinema.api.polling): GETs answered ahead of FastAPI.
    @abstractmethod
    def poll_id(self, path: str, query_string: bytes) -> str | None:
        """For a GET of one of this dialect's polls, the generation id asked for ("" when
        the request names none); None for any other path."""

    @abstractmethod
    def render_poll(
        self, job: JobStatus, storage: BlobStorage, base_url: str, ttl: int
    ) -> Rendered:
        """The poll answer for `job` (its video URL signed now, never stored)."""

    def document(self, schema: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Complete the generated OpenAPI document (bodies FastAPI cannot infer)."""
