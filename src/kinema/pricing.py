"""Credits per job: a per-second price for each model (and resolution) times the video's
length. $1 = 2,000,000 credits, as on the AI/ML API. Defaults live on each spec class
(`PRICES`); `KINEMA_PRICES` overrides any entry, keyed "model", "model@resolution", and
per backend (the local engine or upstream that renders the job) "model@backend" or
"model@resolution@backend". The most specific key wins:
model@resolution@backend, model@backend, model@resolution, model, the spec's default."""

from __future__ import annotations

from collections.abc import Mapping

from kinema.specs import ModelSpec

CREDITS_PER_USD = 2_000_000


def per_second(spec: ModelSpec, overrides: Mapping[str, int], backend: str | None = None) -> int:
    key = spec.price_key()
    model = spec.MODEL_IDS[0]
    candidates = [f"{model}@{key}", model]
    if backend:
        candidates[:0] = [f"{model}@{key}@{backend}", f"{model}@{backend}"]
    for candidate in candidates:
        if candidate in overrides:
            return int(overrides[candidate])
    return spec.PRICES[key]


def estimate(spec: ModelSpec, overrides: Mapping[str, int], backend: str | None = None) -> int:
    """Credits reserved at submit: the requested length, or the longest an audio-driven
    job can be (the exact length is billed at completion)."""
    return round(per_second(spec, overrides, backend) * spec.billed_seconds())


def charge(
    spec: ModelSpec, overrides: Mapping[str, int], seconds: float, backend: str | None = None
) -> int:
    """Credits charged for a completed video of `seconds`."""
    return round(per_second(spec, overrides, backend) * seconds)
