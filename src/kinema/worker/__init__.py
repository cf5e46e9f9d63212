"""Workers: claim a job -> run its engine -> finish(job, outcome).

`loop` (the Worker and `kinema worker`), `context` (what an engine sees of its job),
`finish` (the one place a job's outcome is recorded), `supervisor` (`kinema serve`'s
embedded worker processes)."""

from __future__ import annotations

from kinema.worker.loop import Worker, serve_forever

__all__ = ["Worker", "serve_forever"]
