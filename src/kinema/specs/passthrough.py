"""Passthrough: any other AI/ML API video model, forwarded as-is to an `aimlapi` upstream
whose operator allowed it (`"passthrough": true` in `KINEMA_UPSTREAMS`).

Kinema does not know these models, so it validates only what it needs itself: the body
is a JSON object of bounded size whose `model` is a model id. Every other field goes to
the upstream unchanged, and the upstream validates them: its refusal comes back as the
job's `UpstreamRejected` error naming the field. Not listed in `SPECS` (no schema, no
catalogue entry); jobs are stored under their own route name, `passthrough`, so a
stored job finds this class again (`spec_class`).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import ConfigDict

from kinema.render_request import RenderRequest
from kinema.specs.base import ModelSpec, Route

# The capability only `aimlapi` upstreams with `passthrough = true` serve.
PASSTHROUGH = "passthrough"
ROUTE = Route("passthrough", "/v2/video/generations", "Any AI/ML API video model, passed through")
# The AI/ML API's model ids: "google/veo-3.1-t2v", "kling-video/v1.6/pro/text-to-video"...
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
# Reserved at submit when the body names no duration (the real length is charged).
RESERVE_SECONDS = 10.0
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")


def seconds_of(value: Any) -> float | None:
    """A duration as the AI/ML API's models spell it: 5, 5.0, "5", "5s"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if 0 < value <= 3600 else None
    if isinstance(value, str) and (found := _SECONDS.match(value)):
        seconds = float(found.group(1))
        return seconds if 0 < seconds <= 3600 else None
    return None


class Passthrough(ModelSpec):
    """A body for a model Kinema does not know, forwarded unchanged."""

    model_config = ConfigDict(extra="allow")

    MODEL_IDS: ClassVar[tuple[str, ...]] = ()  # any id the upstream knows
    ROUTE: ClassVar[Route] = ROUTE
    PRICES: ClassVar[dict[str, int]] = {}  # the operator's KINEMA_PRICES only

    model: str

    def body(self) -> dict[str, Any]:
        """The request body exactly as the client sent it."""
        return self.model_dump(mode="json")

    def render(self) -> RenderRequest:
        extra = self.model_extra or {}
        prompt = extra.get("prompt")
        return RenderRequest(
            model=self.model,
            capability=PASSTHROUGH,
            prompt=prompt if isinstance(prompt, str) else "",
            duration=seconds_of(extra.get("duration")),
        )

    def billed_seconds(self) -> float:
        seconds = seconds_of((self.model_extra or {}).get("duration"))
        return seconds if seconds is not None else RESERVE_SECONDS
