"""From a request body to a queued job: validate against the model spec, refuse what this
deployment cannot run, check every input that can be checked without a fetch, price it,
store it. HTTP-free, so the API and tools share it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from dataclasses import dataclass
from typing import Any

from kinema import pricing
from kinema.engines import EngineSet
from kinema.errors import (
    CapabilityMissing,
    Conflict,
    CreditsExhausted,
    FieldProblem,
    InputError,
    OutOfCredits,
    TooManyRequests,
    ValidationFailed,
)
from kinema.inputs import FetchPolicy, check_url, parse_data_uri
from kinema.providers import check_routes, choose_backend, route_of, upstream_offers
from kinema.settings import Settings
from kinema.specs import ModelSpec, RenderRequest, parse_request, spec_class
from kinema.specs.base import UNIFIED
from kinema.specs.passthrough import MODEL_ID, PASSTHROUGH, Passthrough
from kinema.store import Idempotency, IdempotencyConflict, Job, JobQueue, NewJob

# What the deep checks of inline (data: URI) inputs decode with. Without them (a bare
# install serving only upstream or plugin engines) the engine checks the bytes instead.
MEDIA_MODULES = ("av", "PIL", "numpy")


@dataclass(frozen=True)
class SubmitOptions:
    """What a submit says besides its body (headers and query parameters)."""

    idempotency_key: str | None = None
    start_timeout: float | None = None  # seconds from now; None: the operator's default
    run_timeout: float | None = None
    priority: int = 1  # 0 low, 1 normal, 2 high
    webhook_url: str | None = None
    # Stored on the job beside its parameters: a dialect's own data about it (the OpenAI
    # dialect's size and seconds asked for, remix and extension sources).
    extras: dict[str, Any] | None = None


@dataclass(frozen=True)
class Submitted:
    job: Job
    replayed: bool  # True: an Idempotency-Key replay of an earlier submit


@dataclass(frozen=True)
class Quote:
    spec: ModelSpec
    capability: str
    price: int  # credits reserved at submit
    backend: str  # the engine that would render it


def request_hash(route: str, body: Any, options: SubmitOptions) -> str:
    """What makes two submits "the same request" for an Idempotency-Key."""
    parts = [route, body, options.webhook_url, options.priority, options.start_timeout,
             options.run_timeout]  # fmt: skip
    if options.extras is not None:  # appended only when set: earlier hashes stay valid
        parts.append(options.extras)
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def first_set(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _conflict(key: str, job_id: str) -> Conflict:
    return Conflict(
        f"The Idempotency-Key '{key}' was already used with a different request (it made "
        f"generation '{job_id}'); send a new key for a new request."
    )


class Submitter:
    def __init__(self, settings: Settings, store: JobQueue, engines: EngineSet) -> None:
        self.settings = settings
        self.store = store
        self.engines = engines
        self.capabilities = engines.routes()
        # Per-model routes (KINEMA_ROUTES) over local engines and upstream providers.
        self.upstream_offers = upstream_offers(settings)
        check_routes(settings, list(engines.offers))
        # Upstreams that take any other AI/ML API model id (`"passthrough": true`).
        self.passthrough = [n for n, caps in self.upstream_offers.items() if PASSTHROUGH in caps]
        self.policy = FetchPolicy.from_settings(settings)
        self.inspect_inline = all(importlib.util.find_spec(m) for m in MEDIA_MODULES)

    def submit(
        self, route: str, body: Any, key_id: str, options: SubmitOptions | None = None
    ) -> Submitted:
        """Validate, route, price and queue one request (or replay the job its
        Idempotency-Key already made)."""
        options = options or SubmitOptions()
        idempotency = None
        if options.idempotency_key is not None:
            idempotency = Idempotency(options.idempotency_key, request_hash(route, body, options))
            try:
                replay = self.store.idempotent_replay(key_id, idempotency)
            except IdempotencyConflict as exc:
                raise _conflict(options.idempotency_key, exc.job_id) from None
            if replay is not None:
                return Submitted(replay, replayed=True)
        quote = self.quote(route, body)
        if self.store.pending_count(key_id) >= self.settings.max_pending_per_key:
            raise TooManyRequests(
                f"Too Many Requests: this key already has {self.settings.max_pending_per_key} "
                "generations queued or running; wait for some to finish."
            )
        start_timeout = first_set(options.start_timeout, self.settings.start_timeout_seconds)
        new = NewJob(
            key_id=key_id,
            route=quote.spec.ROUTE.name if isinstance(quote.spec, Passthrough) else route,
            model=quote.spec.model,
            capability=quote.capability,
            params=quote.spec.model_dump(mode="json"),
            price=quote.price,
            max_attempts=self.settings.max_attempts,
            priority=options.priority,
            start_deadline=None if start_timeout is None else time.time() + start_timeout,
            run_timeout=first_set(options.run_timeout, self.settings.run_timeout_seconds),
            webhook_url=options.webhook_url,
            backend=quote.backend,
            extras=options.extras,
        )
        try:
            if idempotency is None:
                return Submitted(self.store.create_job(new), replayed=False)
            job, replayed = self.store.create_job_once(new, idempotency)
            return Submitted(job, replayed)
        except CreditsExhausted as exc:
            raise OutOfCredits(quote.price, exc.available) from None
        except IdempotencyConflict as exc:
            raise _conflict(idempotency.key if idempotency else "", exc.job_id) from None

    def quote(self, route: str, body: Any) -> Quote:
        """Everything a submit checks, and the price and backend, creating nothing."""
        spec = self.parse(route, body)
        request = spec.render()
        capability = request.capability
        backends = route_of(self.settings, spec.model)
        if capability == PASSTHROUGH and not backends:
            backends = self.passthrough
        if backends:
            local = {name: self.engines.offers[name] for name in self.engines.engines}
            chosen = choose_backend(
                backends, capability, request.fallback, local, self.upstream_offers
            )
            if chosen is None:
                disabled = [(n, r) for n, r in self.engines.why_not(capability) if n in backends]
                raise CapabilityMissing(request.capability, spec.model, disabled)
            backend, capability = chosen
        elif capability not in self.capabilities:
            if request.fallback not in self.capabilities:
                disabled = self.engines.why_not(request.capability)
                if request.fallback is not None:
                    disabled += self.engines.why_not(request.fallback)
                raise CapabilityMissing(request.capability, spec.model, disabled)
            capability = request.fallback
        if capability == request.capability:
            self.check_speech_fits(request)
        self.check_media(request)
        if not backends:
            backend = self.capabilities[capability]
        price = pricing.estimate(spec, self.settings.prices, backend)
        return Quote(spec, capability, price, backend)

    def parse(self, route: str, body: Any) -> ModelSpec:
        """The body's spec: its model's class, or for a model Kinema does not know, when an
        upstream passes models through (and only on /v2/video/generations), a Passthrough
        validated no further than Kinema needs (the upstream validates the rest)."""
        model = body.get("model") if isinstance(body, dict) else None
        if not (self.passthrough and route == UNIFIED.name and isinstance(model, str)):
            return parse_request(route, body)
        try:
            spec_class(route, model)
        except KeyError:
            return self.passthrough_spec(model, body)
        return parse_request(route, body)

    def passthrough_spec(self, model: str, body: dict[str, Any]) -> Passthrough:
        if not MODEL_ID.match(model):
            raise ValidationFailed(
                [FieldProblem(
                    "model", "Invalid model id: expected letters, digits and ._:/@+- "
                    "(at most 200 characters).", "a model id", model[:200],
                )]
            )  # fmt: skip
        size = len(json.dumps(body, separators=(",", ":")).encode())
        limit = self.settings.max_input_bytes
        if size > limit:
            raise ValidationFailed(
                [FieldProblem(
                    "body", f"A passed-through request may be at most {limit} bytes of JSON "
                    f"(KINEMA_MAX_INPUT_BYTES); this one is {size}.", f"<= {limit} bytes", None,
                )]
            )  # fmt: skip
        return Passthrough.model_validate(body)

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
        if request.video is not None and field == request.video.field:
            from kinema.media.video_input import inspect_video

            inspect_video(data, field, request.max_video_seconds)
            return
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
