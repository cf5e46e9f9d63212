"""What Kinema ships for testing code built on it, and for its own tests: a fake engine
`Context`, fixture engines (instant, failing, slow-and-cancellable) and the whole service
in one process (`InProcess`: the app under httpx's ASGITransport plus a worker you step).
Needs the media extras (`kinema[engines]`) for the fixture engines' MP4s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.testing.context import FakeContext
from kinema.testing.engines import FailingEngine, InstantEngine, SlowEngine

if TYPE_CHECKING:
    from kinema.testing.harness import TEST_KEY, InProcess, in_process


def __getattr__(name: str) -> Any:
    # The harness (the whole app: FastAPI, SQLAlchemy...) is imported on first use, so
    # `FakeContext` alone stays light: bench/memory.py measures an engine's own memory.
    if name in ("TEST_KEY", "InProcess", "in_process"):
        from kinema.testing import harness

        return getattr(harness, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TEST_KEY", "FailingEngine", "FakeContext", "InProcess", "InstantEngine", "SlowEngine",
    "in_process",
]  # fmt: skip
