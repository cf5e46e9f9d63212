"""The one error tree of Kinema.

    KinemaError                      anything Kinema raises on purpose
    ├── ConfigError                  settings that cannot work (unknown engine/option...)
    ├── StoreError                   the job store failed; raised only by `kinema.store`
    │   ├── StoreUnavailable         unreachable or dropped connection (503, retried)
    │   └── CreditsExhausted         a key's balance cannot cover a new job
    ├── ApiError                     refused request; `kinema.api.errors` maps each to HTTP
    │   ├── ValidationFailed         400 "Body validation error!" + details
    │   ├── CapabilityMissing        400 the deployment has no engine for this request
    │   ├── Unauthorized             401 missing/invalid/revoked key
    │   ├── OutOfCredits             403 balance cannot cover the job
    │   ├── NotFound                 404 unknown generation / route / file
    │   ├── Conflict                 409 cancel of a finished job, Idempotency-Key reuse
    │   ├── PayloadTooLarge          413 body over the limit
    │   ├── TooManyRequests          429 too many pending jobs for one key
    │   └── ServiceUnavailable       503 store unreachable, shutting down
    └── JobFailure                   a generation failed; stored as the job's `error`
        ├── InputError               an input could not be fetched/decoded/accepted
        │   └── UnsafeUrl            a media URL points somewhere we refuse to go
        ├── EngineError              the engine could not produce the video
        ├── Cancelled                the worker lost its lease or was told to stop
        └── WorkerLost               the job's workers died `max_attempts` times

`ApiError`s (and `StoreUnavailable`, as a 503) become HTTP error envelopes in exactly one
place per wire dialect (`kinema.dialects.<dialect>`).
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


class ConfigError(KinemaError):
    """Settings that cannot work; reported at start-up, before anything runs."""


class StoreError(KinemaError):
    """The job store failed. Only `kinema.store` raises these; callers never see the
    database library's own exceptions."""


class StoreUnavailable(StoreError):
    """The store is unreachable or dropped the connection: retry later; nothing is lost."""

    def __init__(self, message: str = "the job store is unreachable") -> None:
        super().__init__(message)


class CreditsExhausted(StoreError):
    """A new job's price exceeds what the key has left after its pending jobs."""

    def __init__(self, available: int) -> None:
        super().__init__(f"{available} credits available")
        self.available = available


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
    def __init__(
        self, capability: str, model: str, disabled: list[tuple[str, str]] | None = None
    ) -> None:
        if disabled:
            why = "; ".join(f"engine '{name}' is disabled: {reason}" for name, reason in disabled)
            message = (
                f"This Kinema deployment cannot serve '{capability}', which model '{model}' "
                f"needs for this request: {why}."
            )
        else:
            message = (
                f"This Kinema deployment has no engine for '{capability}', which model "
                f"'{model}' needs for this request. Enable an engine that offers it "
                "(KINEMA_ENGINES: e.g. `wan` or `ltx` with local weights, `testcard` for "
                "offline tests) or route the model to an upstream provider (KINEMA_ROUTES); "
                "GET /v2/models lists what each engine serves."
            )
        super().__init__(message)
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


class Conflict(ApiError):
    """409: the request contradicts the resource's state (cancel a finished job, an
    Idempotency-Key reused with another body)."""


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


CANCELLED_BY_OWNER = "The generation was cancelled by its owner."


class Cancelled(JobFailure):
    def __init__(self, message: str = "The job was cancelled.") -> None:
        super().__init__(message, "Cancelled")


class WorkerLost(JobFailure):
    def __init__(self) -> None:
        super().__init__(
            "The worker running this job stopped responding (crashed or was killed) on "
            "every allowed attempt; the job will not be retried again.",
            "WorkerLost",
        )
