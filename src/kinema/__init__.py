"""Kinema: a self-hosted video-generation service speaking the AI/ML API wire contract.

`kinema.Client` / `kinema.AsyncClient` (the SDK, `kinema.client`) are imported on first
use, so `import kinema` stays light for the server and workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from kinema.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from kinema import client

        return getattr(client, name)
    raise AttributeError(f"module 'kinema' has no attribute {name!r}")
