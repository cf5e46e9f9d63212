"""The HTTP API. `create_app(settings)` builds it; nothing here reads the environment."""

from __future__ import annotations

from kinema.api.app import create_app

__all__ = ["create_app"]
