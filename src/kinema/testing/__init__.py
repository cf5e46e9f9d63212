"""What Kinema ships for testing code built on it, and for its own tests: a fake engine
`Context`, fixture engines (instant, failing, slow-and-cancellable) and the whole service
in one process (`InProcess`: the app under httpx's ASGITransport plus a worker you step).
Needs the media extras (`kinema[engines]`) for the fixture engines' MP4s."""

from __future__ import annotations

from kinema.testing.context import FakeContext
from kinema.testing.engines import FailingEngine, InstantEngine, SlowEngine
from kinema.testing.harness import TEST_KEY, InProcess, in_process

__all__ = [
    "TEST_KEY", "FailingEngine", "FakeContext", "InProcess", "InstantEngine", "SlowEngine",
    "in_process",
]  # fmt: skip
