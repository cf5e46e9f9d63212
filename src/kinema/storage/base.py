"""Blob storage interface: where finished videos live and how clients download them.

The job row keeps only the storage key; a download URL is signed fresh on every poll, so
it can expire (and a leaked one stops working) while the video stays put."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path


class BlobStorage(ABC):
    @abstractmethod
    def put(self, key: str, source: Path, content_type: str) -> None:
        """Store the file at `source` under `key` (replacing any earlier object)."""

    @abstractmethod
    def url(self, key: str, ttl_seconds: int, base_url: str) -> str:
        """A time-limited URL that downloads `key` without the API key."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...
