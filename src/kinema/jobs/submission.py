"""From a request body to a queued job: validate against the model spec, refuse what this
deployment cannot run, check every input that can be checked without a fetch, price it,
store it. HTTP-free, so the API and tools share it."""

from __future__ import annotations

import importlib.util
from typing import Any

from kinema import pricing
from kinema.engines import EngineSet
from kinema.errors import (
    CapabilityMissing,
    CreditsExhausted,
    FieldProblem,
    InputError,
    OutOfCredits,
    TooManyRequests,
    ValidationFailed,
)
from kinema.inputs import FetchPolicy, check_url, parse_data_uri
from kinema.settings import Settings
from kinema.specs import RenderRequest, parse_request
from kinema.store import Job, JobQueue, NewJob

# What the deep checks of inline (data: URI) inputs decode with. Without them (a bare
# install serving only upstream or plugin engines) the engine checks the bytes instead.
MEDIA_MODULES = ("av", "PIL", "numpy")


class Submitter:
    def __init__(self, settings: Settings, store: JobQueue, engines: EngineSet) -> None:
        self.settings = settings
        self.store = store
        self.engines = engines
        self.capabilities = engines.routes()
        self.policy = FetchPolicy.from_settings(settings)
        self.inspect_inline = all(importlib.util.find_spec(m) for m in MEDIA_MODULES)

    def submit(self, route: str, body: Any, key_id: str) -> Job:
        spec = parse_request(route, body)
        request = spec.render()
        capability = request.capability
        if capability not in self.capabilities:
            if request.fallback not in self.capabilities:
                disabled = self.engines.why_not(request.capability)
                raise CapabilityMissing(request.capability, spec.model, disabled)
            capability = request.fallback
        if capability == request.capability:
            self.check_speech_fits(request)
        self.check_media(request)
        if self.store.pending_count(key_id) >= self.settings.max_pending_per_key:
            raise TooManyRequests(
                f"Too Many Requests: this key already has {self.settings.max_pending_per_key} "
                "generations queued or running; wait for some to finish."
            )
        price = pricing.estimate(spec, self.settings.prices)
        new = NewJob(
            key_id=key_id,
            route=route,
            model=spec.model,
            capability=capability,
            params=spec.model_dump(mode="json"),
            price=price,
            max_attempts=self.settings.max_attempts,
        )
        try:
            return self.store.create_job(new)
        except CreditsExhausted as exc:
            raise OutOfCredits(price, exc.available) from None

    def check_speech_fits(self, request: RenderRequest) -> None:
        """Text to be spoken must fit the clip: synthesised here (espeak runs ~170x real
        time), so a request that cannot work is refused now rather than failed later."""
        if request.tts_text is None or request.duration is None:
            return
        from kinema.media.speech import speech_seconds

        # The engine trims its lead-in when the speech needs the time, so the whole clip
        # is the room; synthesis stops early once it is past that.
        room = request.duration
        seconds = speech_seconds(request.tts_text, request.tts_speaker or "Auto", limit=room)
        if seconds > room:
            raise ValidationFailed(
                [FieldProblem(
                    request.tts_field or "text",
                    f"the text takes more than {room:g} s to say with this voice, longer than "
                    "the video. Shorten the text or ask for a longer duration.",
                    f"speech of at most {room:g} s", None,
                )]
            )  # fmt: skip

    def check_media(self, request: RenderRequest) -> None:
        """Everything about an input that needs no network: URL shape and safety, and
        for inline data: URIs the full header check (format, size, pixels, length)."""
        problems = []
        for ref in request.media():
            try:
                check_url(ref.url, ref.field, self.policy)
                if ref.url[:5].lower() == "data:":
                    data = parse_data_uri(ref.url, ref.field, self.settings.max_input_bytes)
                    if self.inspect_inline:
                        self._check_inline(ref.field, data, request)
            except InputError as exc:
                problems.append(FieldProblem(ref.field, exc.reason))
        if problems:
            raise ValidationFailed(problems)

    def _check_inline(self, field: str, data: bytes, request: RenderRequest) -> None:
        if request.audio is not None and field == request.audio.field:
            from kinema.media.audio import audio_duration

            seconds = audio_duration(data, field)
            limit = request.max_audio_seconds
            if limit is not None and seconds > limit:
                raise InputError(
                    field, f"audio is {seconds:.1f} s long; this model accepts at most {limit:g} s"
                )
            return
        from kinema.media.images import inspect_image

        inspect_image(
            data,
            field,
            request.image_rules,
            self.settings.max_image_pixels,
            self.settings.max_input_bytes,
        )
