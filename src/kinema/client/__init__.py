"""Python SDK for Kinema and the hosted AI/ML API (one wire contract; `base_url` decides).

    from pathlib import Path
    import kinema

    client = kinema.Client()  # KINEMA_BASE_URL / KINEMA_API_KEY (or AIMLAPI_KEY)
    video = client.videos.generate(model="veed/fabric-1.0", image=Path("face.png"),
                                   audio=Path("hello.mp3"), resolution="480p")
    print(video.download("out.mp4"))

    job = client.videos.create("video-01", image=Path("a.png"), prompt="pan left")
    for event in client.videos.stream(job):  # live: status changes and progress steps
        print(event.event, event.generation.status, event.generation.progress)
    client.videos.cancel(job)  # or delete(job); list(status=...) walks every page
    print(client.videos.quote("video-01", image=Path("a.png"), prompt="pan").credits_used)

`kinema.AsyncClient` has the same surface, awaited. Errors: `kinema.client.errors`.
Receiving webhooks: `kinema.client.verify_webhook` (`kinema.client.webhooks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.client.aio import AsyncClient
from kinema.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeadlineExceeded,
    GenerationFailed,
    InternalServerError,
    KinemaClientError,
    LocalValidationError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
)
from kinema.client.models import (
    AsyncGeneration,
    AsyncPage,
    Generation,
    GenerationEvent,
    JobError,
    ModelInfo,
    Page,
    Quote,
    Video,
)
from kinema.client.sync import Client

if TYPE_CHECKING:
    from kinema.client.webhooks import WebhookVerificationFailed, verify_webhook

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncGeneration",
    "AsyncPage",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "DeadlineExceeded",
    "Generation",
    "GenerationEvent",
    "GenerationFailed",
    "InternalServerError",
    "JobError",
    "KinemaClientError",
    "LocalValidationError",
    "ModelInfo",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Quote",
    "RateLimitError",
    "Video",
    "WebhookVerificationFailed",
    "verify_webhook",
]

_WEBHOOKS = ("WebhookVerificationFailed", "verify_webhook")


def __getattr__(name: str) -> Any:
    # Loaded on first use: the verifier's dependencies are not needed to call the API.
    if name in _WEBHOOKS:
        from kinema.client import webhooks

        return getattr(webhooks, name)
    raise AttributeError(f"module 'kinema.client' has no attribute {name!r}")
