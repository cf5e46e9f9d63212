"""Python SDK for Kinema and the hosted AI/ML API (one wire contract; `base_url` decides).

    from pathlib import Path
    import kinema

    client = kinema.Client()  # KINEMA_BASE_URL / KINEMA_API_KEY (or AIMLAPI_KEY)
    video = client.videos.generate(model="veed/fabric-1.0", image=Path("face.png"),
                                   audio=Path("hello.mp3"), resolution="480p")
    print(video.download("out.mp4"))

`kinema.AsyncClient` has the same surface, awaited. Errors: `kinema.client.errors`.
"""

from kinema.client.aio import AsyncClient
from kinema.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
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
from kinema.client.models import AsyncGeneration, Generation, JobError, ModelInfo, Video
from kinema.client.sync import Client

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncGeneration",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "DeadlineExceeded",
    "Generation",
    "GenerationFailed",
    "InternalServerError",
    "JobError",
    "KinemaClientError",
    "LocalValidationError",
    "ModelInfo",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Video",
]
