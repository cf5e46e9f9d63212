"""Credits per job: a per-second price for each model (and resolution) times the video's
length. $1 = 2,000,000 credits, as on the AI/ML API. Defaults live on each spec class
(`PRICES`); `KINEMA_PRICES` overrides any entry, keyed "model" or "model@resolution"."""

from __future__ import annotations

from collections.abc import Mapping

from kinema.specs import ModelSpec

CREDITS_PER_USD = 2_000_000


def per_second(spec: ModelSpec, overrides: Mapping[str, int]) -> int:
    key = spec.price_key()
    model = spec.MODEL_IDS[0]
    for candidate in (f"{model}@{key}", model):
        if candidate in overrides:
            return int(overrides[candidate])
    return spec.PRICES[key]


def estimate(spec: ModelSpec, overrides: Mapping[str, int]) -> int:
    """Credits reserved at submit: the requested length, or the longest an audio-driven
    job can be (the exact length is billed at completion)."""
    return round(per_second(spec, overrides) * spec.billed_seconds())


def charge(spec: ModelSpec, overrides: Mapping[str, int], seconds: float) -> int:
    """Credits charged for a completed video of `seconds`."""
    return round(per_second(spec, overrides) * seconds)
