"""Jobs, independent of storage: `model` (Status, outcomes) and `submission` (request ->
validated, routed, priced job row)."""

from __future__ import annotations

from kinema.jobs.model import PENDING, Completed, Failed, Outcome, Status, VideoOutput

__all__ = ["PENDING", "Completed", "Failed", "Outcome", "Status", "VideoOutput"]
