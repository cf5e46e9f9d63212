"""Credits per job: a per-second price for each model (and resolution) times the video's
length. $1 = 2,000,000 credits, as on the AI/ML API. Defaults live on each spec class
(`PRICES`); `KINEMA_PRICES` overrides any entry, keyed "model", "model@resolution", and
per backend (the local engine or upstream that renders the job) "model@backend" or
"model@resolution@backend". The most specific key wins:
model@resolution@backend, model@backend, model@resolution, model, the spec's default.

Passthrough models (any AI/ML API model an `aimlapi` upstream passes through) have no
default: their price is the operator's, keyed "model@backend" or "model", else the
wildcards "*@backend" or "*" (which apply to passthrough models only). A passthrough
request with no price configured is refused at submit (400 naming `model`): Kinema never
renders a paid upstream model for free by accident."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from kinema.errors import FieldProblem, ValidationFailed
from kinema.specs import ModelSpec

CREDITS_PER_USD = 2_000_000

log = logging.getLogger("kinema.pricing")


class PriceMissing(KeyError):
    """No price applies to a passthrough model (the operator has set none)."""


def per_second(spec: ModelSpec, overrides: Mapping[str, int], backend: str | None = None) -> int:
    if not spec.MODEL_IDS:  # a passthrough model: the operator's prices only
        return _passthrough(spec.model, overrides, backend)
    key = spec.price_key()
    model = spec.MODEL_IDS[0]
    candidates = [f"{model}@{key}", model]
    if backend:
        candidates[:0] = [f"{model}@{key}@{backend}", f"{model}@{backend}"]
    for candidate in candidates:
        if candidate in overrides:
            return int(overrides[candidate])
    return spec.PRICES[key]


def _passthrough(model: str, overrides: Mapping[str, int], backend: str | None) -> int:
    candidates = [model, "*"]
    if backend:
        candidates = [f"{model}@{backend}", model, f"*@{backend}", "*"]
    for candidate in candidates:
        if candidate in overrides:
            return int(overrides[candidate])
    raise PriceMissing(model)


def estimate(spec: ModelSpec, overrides: Mapping[str, int], backend: str | None = None) -> int:
    """Credits reserved at submit: the requested length, or the longest an audio-driven
    job can be (the exact length is billed at completion). A passthrough model without a
    price is a 400 naming `model`."""
    try:
        rate = per_second(spec, overrides, backend)
    except PriceMissing:
        where = f"@{backend}" if backend else ""
        message = (
            f"Model '{spec.model}' is passed through to an upstream provider, but this "
            "deployment has no price for it; the operator sets one in KINEMA_PRICES "
            f"(keys '{spec.model}{where}', '{spec.model}', '*{where}' or '*', credits per "
            "second of video)."
        )
        raise ValidationFailed([FieldProblem("model", message, None, spec.model)]) from None
    return round(rate * spec.billed_seconds())


def charge(
    spec: ModelSpec, overrides: Mapping[str, int], seconds: float, backend: str | None = None
) -> int:
    """Credits charged for a completed video of `seconds`."""
    try:
        return round(per_second(spec, overrides, backend) * seconds)
    except PriceMissing:  # its price was removed while it rendered: nothing to charge by
        log.error("no price for passthrough model %s (backend %s); charged 0", spec.model, backend)
        return 0
