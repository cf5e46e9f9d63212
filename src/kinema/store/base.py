"""The job store interface. One implementation today (`SqlStore`, SQLite or PostgreSQL
through SQLAlchemy); every backend must pass `tests/test_store_contract.py`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

QUEUED, GENERATING, COMPLETED, ERROR = "queued", "generating", "completed", "error"
PENDING = (QUEUED, GENERATING)


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


@dataclass(frozen=True)
class Job:
    seq: int
    id: str
    key_id: str
    route: str
    model: str
    capability: str
    params: dict[str, Any]
    status: str
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


@dataclass(frozen=True)
class JobStatus:
    """What a poll shows of a job: its public state, without its inputs (the hot path
    reads only these columns)."""

    seq: int
    id: str
    model: str
    status: str
    progress: int
    price: int
    credits_used: int | None
    output: dict[str, Any] | None
    error_name: str | None
    error_message: str | None
    queue_position: int = 0  # queued jobs ahead of this one (0 unless queued)


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


class CreditsExhausted(Exception):
    def __init__(self, available: int) -> None:
        super().__init__(available)
        self.available = available


class JobStore(ABC):
    # ---- keys ----------------------------------------------------------------------
    @abstractmethod
    def create_key(
        self, name: str, credits: int | None, secret: str | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it and its secret (shown once, stored hashed)."""

    @abstractmethod
    def authenticate(self, secret: str) -> ApiKey | None: ...

    @abstractmethod
    def list_keys(self) -> list[ApiKey]: ...

    @abstractmethod
    def revoke_key(self, id_or_prefix: str) -> ApiKey | None: ...

    @abstractmethod
    def add_credits(self, id_or_prefix: str, credits: int | None) -> ApiKey | None:
        """Add to a key's balance (None = make it unlimited)."""

    # ---- jobs: API side ------------------------------------------------------------
    @abstractmethod
    def create_job(self, job: NewJob) -> Job:
        """Insert a queued job in one atomic statement that also checks the key's balance
        covers its price plus the prices of its pending jobs (CreditsExhausted if not)."""

    @abstractmethod
    def get_job(self, job_id: str, key_id: str | None = None) -> Job | None: ...

    @abstractmethod
    def get_status(self, job_id: str, key_id: str) -> JobStatus | None:
        """The poll's view of one of `key_id`'s jobs, queue position included (None if
        missing or another key's)."""

    @abstractmethod
    def queue_position(self, job: Job | JobStatus) -> int:
        """Queued jobs ahead of this one (0 when it is next or already running)."""

    @abstractmethod
    def pending_count(self, key_id: str) -> int: ...

    # ---- jobs: worker side ---------------------------------------------------------
    @abstractmethod
    def claim(self, worker_id: str, capabilities: list[str], lease_seconds: float) -> Job | None:
        """Atomically move the oldest queued job this worker can run to `generating`."""

    @abstractmethod
    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float, progress: int) -> bool:
        """Extend the lease and store progress; False if this worker no longer owns it."""

    @abstractmethod
    def complete(
        self, job_id: str, worker_id: str, output: dict[str, Any], credits_used: int
    ) -> bool:
        """Mark completed and charge the key, only if this worker still owns the job."""

    @abstractmethod
    def fail(self, job_id: str, worker_id: str, name: str, message: str) -> bool: ...

    @abstractmethod
    def release(self, job_id: str, worker_id: str) -> bool:
        """Give a job back to the queue (graceful shutdown); the attempt is not counted."""

    @abstractmethod
    def wait_for_work(self, timeout: float) -> bool:
        """Block until a job may have been queued (a wake-up signal where the backend has
        one, else the timeout); True if woken by a signal."""

    @abstractmethod
    def recover_expired(self, now: float | None = None) -> Recovered:
        """Re-queue jobs whose lease expired; fail those out of attempts."""

    # ---- workers and metrics -------------------------------------------------------
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

    @abstractmethod
    def close(self) -> None: ...
