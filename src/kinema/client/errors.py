"""The SDK's one error tree. Everything the client raises on purpose is a `KinemaClientError`:

    KinemaClientError
    ├── APIConnectionError           no usable answer: refused, reset, dropped mid-response
    │   └── APITimeoutError          one request ran past the client's `timeout`
    ├── DeadlineExceeded             `wait`/`generate` ran past its overall deadline
    ├── APIStatusError               the server answered with an error envelope
    │   ├── BadRequestError          400 (body validation, missing engine)
    │   │   └── LocalValidationError the same check, made before any network call
    │   ├── AuthenticationError      401 missing / invalid / revoked key
    │   ├── PermissionDeniedError    403 out of credits
    │   ├── NotFoundError            404 unknown generation (or another key's)
    │   ├── ConflictError            409 Idempotency-Key reused for another body, cancel
    │   │                            of a finished generation
    │   ├── PayloadTooLargeError     413
    │   ├── RateLimitError           429 (carries `retry_after`)
    │   └── InternalServerError      5xx (503: store unreachable)
    └── GenerationFailed             the job ended with `status: "error"`

`DeadlineExceeded` and `APITimeoutError` are also builtin `TimeoutError`s, so callers that
only care about "took too long" can catch the builtin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kinema.client.models import GenerationBase

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DeadlineExceeded",
    "GenerationFailed",
    "InternalServerError",
    "KinemaClientError",
    "LocalValidationError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "status_error_class",
]


class KinemaClientError(Exception):
    """Base of every error the SDK raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(KinemaClientError):
    """The server could not be reached, or the connection broke before a full answer."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class APITimeoutError(APIConnectionError, TimeoutError):
    """One HTTP request took longer than the client's per-request `timeout`."""


class DeadlineExceeded(KinemaClientError, TimeoutError):
    """The overall deadline of `wait` / `generate` passed. The job itself keeps running on
    the server: `generation_id` (None if the submit itself did not finish) and `last` (the
    last status seen) let the caller resume later."""

    def __init__(
        self, message: str, *, generation_id: str | None, last: GenerationBase | None = None
    ) -> None:
        super().__init__(message)
        self.generation_id = generation_id
        self.last = last


class APIStatusError(KinemaClientError):
    """The server answered with an HTTP error and (usually) the AI/ML API envelope
    `{"message", "path", "requestId", "statusCode", "timestamp", "details"?}`."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        path: str | None = None,
        details: list[dict[str, Any]] | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.path = path
        self.details = details or []
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = f"{self.status_code}: {self.message}"
        problems = "; ".join(f"{d.get('field', '?')}: {d.get('message', '')}" for d in self.details)
        return f"{text} ({problems})" if problems else text


class BadRequestError(APIStatusError):
    status_code = 400


class LocalValidationError(BadRequestError):
    """The request failed the model's spec on this machine; nothing was sent. `details`
    has the same shape as the server's 400 (`field`, `message`, `expected`, `received`)."""

    def __init__(self, details: list[dict[str, Any]], message: str = "Body validation error!"):
        super().__init__(message, status_code=400, details=details)


class AuthenticationError(APIStatusError):
    status_code = 401


class PermissionDeniedError(APIStatusError):
    status_code = 403


class NotFoundError(APIStatusError):
    status_code = 404


class ConflictError(APIStatusError):
    """409: the request conflicts with the generation's state (cancelling one that has
    finished) or with an earlier request (an Idempotency-Key reused for another body)."""

    status_code = 409


class PayloadTooLargeError(APIStatusError):
    status_code = 413


class RateLimitError(APIStatusError):
    status_code = 429


class InternalServerError(APIStatusError):
    status_code = 500


class GenerationFailed(KinemaClientError):
    """The job finished with `status: "error"`: `error_name` / `error_message` are the
    server's `error.name` / `error.message` (e.g. `InvalidInput`, "Could not detect a face
    in image_url"), `generation` the final poll."""

    def __init__(self, generation: GenerationBase) -> None:
        name = generation.error.name if generation.error else "Error"
        detail = generation.error.message if generation.error else ""
        super().__init__(f"generation {generation.id} failed: {name}: {detail}".rstrip(": "))
        self.generation = generation
        self.generation_id = generation.id
        self.error_name = name
        self.error_message = detail


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InternalServerError if status >= 500 else APIStatusError
