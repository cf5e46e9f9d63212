"""Wire dialects over the same jobs: each parses its requests into model specs, shapes
its responses and maps Kinema's errors to its own envelope and status codes.
`aimlapi` (the AI/ML API's /v2 routes, legacy routes included) is the default."""

from __future__ import annotations

from kinema.dialects.base import Dialect, Rendered

__all__ = ["Dialect", "Rendered"]
