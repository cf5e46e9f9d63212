"""The HTTP API. `create_app(settings)` builds it; nothing here reads the environment."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the dialects import `kinema.api.auth`, and the app imports
    # the dialects, so this package must not import the app eagerly.
    if name == "create_app":
        from kinema.api.app import create_app

        return create_app
    raise AttributeError(name)
