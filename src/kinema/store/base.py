"""The job store's interface, split by who uses it: `KeyStore` (API keys and credits),
`JobQueue` (jobs from submit to finish, their events) and `Telemetry` (workers, metrics).
`JobStore` is all three. One implementation today (`SqlStore`: SQLite or PostgreSQL via
SQLAlchemy); every backend must pass `tests/test_store_contract.py`.

Backends raise only Kinema's own errors (`kinema.errors.StoreUnavailable` when the
database cannot be reached, `CreditsExhausted`), never their database library's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kinema.errors import CreditsExhausted
from kinema.jobs.model import PENDING, Outcome, Status
from kinema.store.admin import AuditEntry, FailureSummary, KeyUsage
from kinema.store.webhooks import (
    ClaimedWebhook,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookResult,
)

QUEUED, GENERATING, COMPLETED, ERROR = (
    Status.QUEUED, Status.GENERATING, Status.COMPLETED, Status.ERROR,
)  # fmt: skip
PROGRESS_EVENT_STEP = 5  # progress events are written each time progress crosses 5 %

__all__ = [
    "COMPLETED",
    "ERROR",
    "GENERATING",
    "PENDING",
    "QUEUED",
    "ApiKey",
    "CancelResult",
    "CreditsExhausted",
    "Idempotency",
    "IdempotencyConflict",
    "Job",
    "JobEvent",
    "JobQueue",
    "JobStatus",
    "JobStore",
    "KeyStore",
    "NewJob",
    "Recovered",
    "Telemetry",
    "WebhookStore",
    "WorkerInfo",
]  # fmt: skip


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    credits: int | None
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True)
class NewJob:
    key_id: str
    route: str
    model: str
    capability: str
    params: dict[str, Any]
    price: int
    max_attempts: int
    priority: int = 1  # 0 low, 1 normal, 2 high: orders one key's own jobs
    start_deadline: float | None = None  # UNIX time; not started by then -> Expired
    run_timeout: float | None = None  # seconds of running before TimedOut
    webhook_url: str | None = None
    backend: str | None = None  # what the submit routed it to
    extras: dict[str, Any] | None = None  # the submitting dialect's own data (see Job)


@dataclass(frozen=True)
class Idempotency:
    """An `Idempotency-Key` and the hash of the request it came with."""

    key: str
    request_hash: str


@dataclass(frozen=True)
class Job:
    seq: int
    id: str
    key_id: str
    route: str
    model: str
    capability: str
    params: dict[str, Any]
    status: Status
    progress: int
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: float | None
    price: int
    credits_used: int | None
    output: dict[str, Any] | None
    error_name: str | None
    error_message: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    priority: int = 1
    start_deadline: float | None = None
    run_timeout: float | None = None
    cancel_requested: bool = False
    webhook_url: str | None = None
    backend: str | None = None
    # The upstream provider's job (backend, its job id, phase): recorded before waiting.
    upstream: dict[str, Any] | None = None
    # What the submitting dialect records beyond the model's parameters (the OpenAI
    # dialect: size and seconds asked for, model alias, the video it remixes or extends).
    extras: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobStatus:
    """What a poll shows of a job: its public state, without its inputs (the hot path
    reads only these columns)."""

    seq: int
    id: str
    model: str
    status: Status
    progress: int
    price: int
    credits_used: int | None
    output: dict[str, Any] | None
    error_name: str | None
    error_message: str | None
    queue_position: int = 0  # queued jobs ahead of this one (0 unless queued)
    created_at: float = 0.0
    finished_at: float | None = None
    backend: str | None = None  # the engine or upstream that rendered it


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    capabilities: list[str]
    started_at: float
    last_seen: float
    current_job: str | None
    jobs_done: int


@dataclass(frozen=True)
class Recovered:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobEvent:
    """One entry of a job's event log: a status change, or progress crossing a step.
    `id` increases monotonically (resume a stream after the last id seen)."""

    id: int
    job_id: str
    kind: str  # "status" | "progress"
    status: Status
    progress: int
    created_at: float


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class CancelResult(StrEnum):
    CANCELLED = "cancelled"  # it was queued: it will never start
    STOPPING = "stopping"  # it is running: its worker stops it and records Cancelled
    FINISHED = "finished"  # already completed or failed: nothing to cancel
    NOT_FOUND = "not_found"


class KeyStore(ABC):
    """API keys and their credits (the API's authentication, `kinema keys`)."""

    @abstractmethod
    def create_key(
        self, name: str, credits: int | None, secret: str | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it and its secret (shown once, stored hashed)."""

    @abstractmethod
    def ensure_key(self, secret: str, name: str) -> ApiKey:
        """Register `secret` with unlimited credits unless it is known (re-enabling it
        if it was revoked): the operator's `KINEMA_API_KEY`."""

    @abstractmethod
    def authenticate(self, secret: str) -> ApiKey | None: ...

    @abstractmethod
    def list_keys(self) -> list[ApiKey]: ...

    @abstractmethod
    def revoke_key(self, id_or_prefix: str) -> ApiKey | None: ...

    @abstractmethod
    def add_credits(self, id_or_prefix: str, credits: int | None) -> ApiKey | None:
        """Add to a key's balance (None = make it unlimited)."""


class JobQueue(ABC):
    """Jobs from submit to finish, and their event log."""

    # True when reads are local and cheap (SQLite): the API may run them on its event loop.
    reads_are_local: bool = False

    @abstractmethod
    def record_upstream(
        self, job_id: str, worker_id: str, backend: str, upstream: dict[str, Any] | None
    ) -> bool:
        """Record the job's backend and upstream state (provider job id, phase) while
        `worker_id` holds its lease; False once it does not (see `store/upstream.py`)."""

    @abstractmethod
    def renew_leases(self, job_ids: list[str], worker_id: str, lease_seconds: float) -> set[str]:
        """Extend the leases of those of `job_ids` that `worker_id` holds, in one
        statement; returns the ids it still holds (the upstream loop's heartbeat)."""

    @abstractmethod
    def cancels_requested(self, job_ids: list[str]) -> set[str]:
        """Those of `job_ids` cancelled by their owner or deleted, in one statement."""

    @abstractmethod
    def create_job(self, job: NewJob) -> Job:
        """Insert a queued job in one atomic statement that also checks the key's balance
        covers its price plus the prices of its pending jobs (CreditsExhausted if not)."""

    @abstractmethod
    def create_job_once(self, job: NewJob, idempotency: Idempotency) -> tuple[Job, bool]:
        """`create_job` under an Idempotency-Key (scoped to the job's API key, 24 h):
        (the new job, False), or (the job the key already made, True) when the same
        request comes again, also concurrently. IdempotencyConflict if the key came
        with a different request."""

    @abstractmethod
    def idempotent_replay(self, key_id: str, idempotency: Idempotency) -> Job | None:
        """The job an Idempotency-Key already made for this request within 24 h, or None;
        IdempotencyConflict if the key came with a different request."""

    @abstractmethod
    def get_job(self, job_id: str, key_id: str | None = None) -> Job | None: ...

    @abstractmethod
    def list_jobs(
        self,
        key_id: str,
        *,
        limit: int,
        before_seq: int | None = None,
        status: Status | None = None,
        model: str | None = None,
    ) -> list[JobStatus]:
        """The key's jobs, newest first, with `seq` below `before_seq` (keyset pages)."""

    @abstractmethod
    def cancel(self, job_id: str, key_id: str) -> CancelResult:
        """Cancel a queued job at once (error Cancelled, never charged) or ask the worker
        running it to stop."""

    @abstractmethod
    def cancel_requested(self, job_id: str) -> bool:
        """True when the running job must stop: cancelled by its owner, or deleted."""

    @abstractmethod
    def delete_job(self, job_id: str, key_id: str | None) -> Job | None:
        """Remove a job with its events and idempotency keys (any state; a running job's
        worker notices and discards its result). Returns the removed row, whose output
        the caller deletes from blob storage. `key_id` None: any key's (retention)."""

    @abstractmethod
    def finished_before(self, cutoff: float, limit: int) -> list[str]:
        """Ids of jobs that finished before `cutoff` (retention), oldest first."""

    @abstractmethod
    def expire_overdue(self, now: float | None = None) -> list[str]:
        """Fail queued jobs whose start deadline passed (error Expired, not charged)."""

    @abstractmethod
    def get_status(self, job_id: str, key_id: str) -> JobStatus | None:
        """The poll's view of one of `key_id`'s jobs, queue position included (None if
        missing or another key's)."""

    @abstractmethod
    def queue_position(self, job: Job | JobStatus) -> int:
        """Queued jobs ahead of this one (0 when it is next or already running)."""

    @abstractmethod
    def pending_count(self, key_id: str) -> int: ...

    # worker side
    @abstractmethod
    def claim(self, worker_id: str, capabilities: list[str], lease_seconds: float) -> Job | None:
        """Atomically move the oldest queued job this worker can run to `generating`."""

    @abstractmethod
    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float, progress: int) -> bool:
        """Extend the lease and store progress (appending a progress event when it crosses
        a PROGRESS_EVENT_STEP boundary); False if this worker no longer owns the job."""

    @abstractmethod
    def finish(self, job_id: str, worker_id: str, outcome: Outcome) -> bool:
        """Record the outcome in one transaction, only if this worker still owns the job:
        the result, the charge (a completed job's credits, exactly once) and the status
        event. False if the job is no longer this worker's."""

    @abstractmethod
    def release(self, job_id: str, worker_id: str) -> bool:
        """Give a job back to the queue (graceful shutdown); the attempt is not counted."""

    @abstractmethod
    def wait_for_work(self, timeout: float) -> bool:
        """Block until a job may have been queued (a wake-up signal where the backend has
        one, else the timeout); True if woken by a signal."""

    @abstractmethod
    def recover_expired(self, now: float | None = None) -> Recovered:
        """Re-queue jobs whose lease expired; fail those out of attempts (WorkerLost)."""

    @abstractmethod
    def events(self, job_id: str, after: int = 0) -> list[JobEvent]:
        """The job's events with an id above `after`, oldest first."""

    @abstractmethod
    def latest_event_ids(self, job_ids: list[str]) -> dict[str, int]:
        """The newest event id of each of these jobs (a job with no events, or deleted,
        is absent): one read for an API process watching many event streams."""


class Telemetry(ABC):
    """Worker presence and the aggregates behind /ready and /metrics."""

    @abstractmethod
    def worker_seen(self, worker: WorkerInfo) -> None:
        """Insert or refresh a worker's row (its heartbeat)."""

    @abstractmethod
    def worker_gone(self, worker_id: str) -> None: ...

    @abstractmethod
    def workers(self, seen_within: float) -> list[WorkerInfo]:
        """Workers whose last heartbeat is at most `seen_within` seconds old."""

    @abstractmethod
    def job_counts(self) -> list[tuple[str, str, int]]:
        """(model, status, count) for every pair present."""

    @abstractmethod
    def failure_counts(self) -> list[tuple[str, int]]:
        """(error name, count) over failed jobs."""

    @abstractmethod
    def timings(self, since: float) -> list[tuple[str, float, float]]:
        """(model, wait seconds, run seconds) of jobs finished after `since`."""


class WebhookStore(ABC):
    """Webhooks: each key's signing secret, its endpoints, and the durable delivery
    outbox (filled inside the job transactions; see kinema.store.webhooks) that any
    process's dispatcher (kinema.webhooks) drains."""

    @abstractmethod
    def webhook_secret(self, key_id: str) -> str:
        """The key's `whsec_` secret that signs its per-request `webhook_url`s (made on
        first use, once even when asked concurrently)."""

    @abstractmethod
    def add_webhook_endpoint(self, key_id: str, url: str, events: list[str]) -> WebhookEndpoint:
        """A default destination for the key's events (`events` empty: the default
        ones), with its own new secret."""

    @abstractmethod
    def webhook_endpoints(self, key_id: str | None = None) -> list[WebhookEndpoint]: ...

    @abstractmethod
    def remove_webhook_endpoint(
        self, endpoint_id: str, key_id: str | None = None
    ) -> WebhookEndpoint | None:
        """Remove an endpoint (of `key_id` when given); None if there is no such one."""

    @abstractmethod
    def claim_webhooks(
        self, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[ClaimedWebhook]:
        """Atomically take up to `limit` due deliveries for one attempt each, leased for
        `lease_seconds`: every attempt is claimed by exactly one caller."""

    @abstractmethod
    def set_webhook_payloads(self, payloads: dict[int, dict[str, Any]]) -> dict[int, Any]:
        """Store rendered payloads of deliveries that have none yet; returns the stored
        payload of each (the first rendering wins)."""

    @abstractmethod
    def record_webhook_attempts(self, results: list[WebhookResult]) -> int:
        """Record attempts and their outcome; a delivery moves on only while the attempt
        is its current claim. Returns how many moved on."""

    @abstractmethod
    def webhook_deliveries(self, job_id: str, key_id: str | None = None) -> list[WebhookDelivery]:
        """A job's deliveries (of `key_id` when given) with their attempts, oldest first."""

    @abstractmethod
    def redeliver_webhooks(self, job_id: str, key_id: str, now: float | None = None) -> int:
        """Make the job's deliveries due again now (same webhook-ids); returns how many."""


class AdminStore(ABC):
    """What the admin API reads and records: admin keys, per-key usage over time, recent
    failures by error name, the audit log (see kinema.store.admin)."""

    @abstractmethod
    def set_admin(self, id_or_prefix: str, admin: bool) -> str | None:
        """Make a key an admin key (or not); its id, or None if no key matches."""

    @abstractmethod
    def is_admin(self, key_id: str) -> bool: ...

    @abstractmethod
    def admin_key_ids(self) -> set[str]: ...

    @abstractmethod
    def key_usage(
        self, since: float, bucket_seconds: int, key_id: str | None = None
    ) -> list[KeyUsage]:
        """Per key and time bucket since `since`: jobs submitted, completed, failed,
        seconds rendered, credits charged (oldest bucket first)."""

    @abstractmethod
    def recent_failures(self, since: float, limit: int = 20) -> list[FailureSummary]:
        """Failed generations finished since `since`, by error name, most frequent first."""

    @abstractmethod
    def backend_outcomes(self, since: float) -> list[tuple[str, int, int]]:
        """(backend, completed, failed) of generations finished since `since`; failures
        of the request rather than the backend (cancelled, expired, bad input) are not
        counted. Backend "" for jobs recorded without one."""

    @abstractmethod
    def record_audit(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any]
    ) -> AuditEntry: ...

    @abstractmethod
    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries first."""


class JobStore(KeyStore, JobQueue, Telemetry, WebhookStore, AdminStore):
    """Everything a backend provides."""

    @abstractmethod
    def close(self) -> None: ...
