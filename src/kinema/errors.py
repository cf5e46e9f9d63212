"""The one error tree of Kinema.

    KinemaError                      anything Kinema raises on purpose
    ├── ApiError                     refused request; `kinema.api.errors` maps each to HTTP
    │   ├── ValidationFailed         400 "Body validation error!" + details
    │   ├── CapabilityMissing        400 the deployment has no engine for this request
    │   ├── Unauthorized             401 missing/invalid/revoked key
    │   ├── OutOfCredits             403 balance cannot cover the job
    │   ├── NotFound                 404 unknown generation / route / file
    │   ├── PayloadTooLarge          413 body over the limit
    │   ├── TooManyRequests          429 too many pending jobs for one key
    │   └── ServiceUnavailable       503 store unreachable, shutting down
    └── JobFailure                   a generation failed; stored as the job's `error`
        ├── InputError               an input could not be fetched/decoded/accepted
        │   └── UnsafeUrl            a media URL points somewhere we refuse to go
        ├── EngineError              the engine could not produce the video
        ├── Cancelled                the worker lost its lease or was told to stop
        └── WorkerLost               the job's workers died `max_attempts` times

`ApiError`s become HTTP error envelopes in exactly one place (`kinema.api.errors`).
`JobFailure`s never become HTTP errors: the worker stores `name` and `message` on the
job, and polls return them with `status: "error"`. An `InputError` found at submit time
(e.g. a malformed data: URI) is re-raised as `ValidationFailed` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class KinemaError(Exception):
    """Base of every deliberate Kinema error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- API errors
class ApiError(KinemaError):
    """A request Kinema refuses; the HTTP status lives in `kinema.api.errors`."""


@dataclass(frozen=True)
class FieldProblem:
    """One line of a 400's `details`: which field, what was expected, what came."""

    field: str
    message: str
    expected: str | None = None
    received: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.received is not None:
            out["received"] = self.received
        return out


class ValidationFailed(ApiError):
    def __init__(self, problems: list[FieldProblem], message: str = "Body validation error!"):
        super().__init__(message)
        self.problems = problems


class CapabilityMissing(ApiError):
    def __init__(self, capability: str, model: str) -> None:
        super().__init__(
            f"This Kinema deployment has no engine for '{capability}', which model "
            f"'{model}' needs for this request. Enabled engines cannot serve it; "
            "see the README's model table for what each engine covers."
        )
        self.capability = capability


class Unauthorized(ApiError):
    def __init__(self) -> None:
        super().__init__(
            "This request requires a valid API key. Create one with "
            "`kinema keys create --name NAME` and send it as 'Authorization: Bearer <key>'."
        )


class OutOfCredits(ApiError):
    def __init__(self, needed: int, available: int) -> None:
        super().__init__(
            f"You've run out of credits: this job needs {needed} credits and the key has "
            f"{available} available. Top up with `kinema keys credit`."
        )


class NotFound(ApiError):
    pass


class PayloadTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body is larger than the {limit} bytes this server accepts.")


class TooManyRequests(ApiError):
    pass


class ServiceUnavailable(ApiError):
    pass


# --------------------------------------------------------------------------- job errors
class JobFailure(KinemaError):
    """A generation failed. `name` and `message` are what the poll response shows."""

    def __init__(self, message: str, name: str = "GenerationError") -> None:
        super().__init__(message)
        self.name = name


class InputError(JobFailure):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}", "InvalidInput")
        self.field_name = field_name
        self.reason = message


class UnsafeUrl(InputError):
    pass


class EngineError(JobFailure):
    def __init__(self, message: str, name: str = "GenerationError") -> None:
        super().__init__(message, name)


class Cancelled(JobFailure):
    def __init__(self, message: str = "The job was cancelled.") -> None:
        super().__init__(message, "Cancelled")


class WorkerLost(JobFailure):
    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"The worker running this job stopped responding {attempts} times; "
            "giving up so it does not run forever.",
            "WorkerLost",
        )
