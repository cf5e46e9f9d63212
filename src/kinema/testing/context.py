"""`FakeContext`: run an engine outside a worker (tests, notebooks, an engine author's
own checks). Inputs come from a dict by field name or from data: URIs, progress reports
are recorded, and cancellation happens on demand: at once or after N progress reports."""

from __future__ import annotations

import base64
from pathlib import Path

from kinema.engines.base import Context, InputLimits
from kinema.errors import InputError
from kinema.render_request import MediaRef


class FakeContext(Context):
    def __init__(
        self,
        work_dir: Path,
        inputs: dict[str, bytes] | None = None,
        cancel_after: int | None = None,
        output_name: str = "out.mp4",
        limits: InputLimits | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.output_path = work_dir / output_name
        self.inputs = dict(inputs or {})
        self.cancel_after = cancel_after  # cancel once this many progress reports came
        self.limits = limits or InputLimits()
        self.reports: list[float] = []
        self.fetched: list[str] = []
        self.cancel_now = False

    def progress(self, fraction: float) -> None:
        self.reports.append(fraction)

    @property
    def cancelled(self) -> bool:
        if self.cancel_now:
            return True
        return self.cancel_after is not None and len(self.reports) >= self.cancel_after

    def fetch(self, ref: MediaRef) -> bytes:
        self.fetched.append(ref.field)
        if ref.field in self.inputs:
            return self.inputs[ref.field]
        if ref.url.startswith("data:") and "," in ref.url:
            header, payload = ref.url.split(",", 1)
            if header.endswith(";base64"):
                return base64.b64decode(payload)
        raise InputError(ref.field, "the test context has no bytes for this input")
