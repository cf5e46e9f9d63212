"""The request and answer bodies of the admin API (`api/admin.py`), as documented in
`/openapi.json`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_CREDITS = 10**15  # a balance's ceiling ($500,000,000): far inside a 64-bit column


class UsageTotals(BaseModel):
    jobs: int = Field(description="Generations submitted.")
    completed: int
    failed: int = Field(description="Finished with an error (cancelled ones included).")
    seconds_rendered: float = Field(description="Seconds of video delivered.")
    credits_used: int = Field(description="Credits charged.")


class AdminKey(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The secret's first 10 characters (not a secret).")
    admin: bool
    credits: int | None = Field(description="Balance; null = unlimited.")
    created_at: datetime
    revoked_at: datetime | None
    usage: UsageTotals = Field(description="Over the window the listing asked for.")


class KeyList(BaseModel):
    data: list[AdminKey]
    days: int = Field(description="The usage window, in days.")


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    credits: int | None = Field(
        default=None, ge=0, le=MAX_CREDITS, description="Balance; null = unlimited."
    )
    admin: bool = Field(default=False, description="An operator key (this API, the console).")


class CreatedKey(AdminKey):
    secret: str = Field(description="The key itself: shown in this answer only, stored hashed.")


class AddCredits(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    add: int = Field(
        ge=-MAX_CREDITS, le=MAX_CREDITS,
        description="Credits to add (negative: take back; the balance stays >= 0).",
    )  # fmt: skip


class MakeUnlimited(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    unlimited: Literal[True] = Field(description="Make the balance unlimited.")


CreditChange = AddCredits | MakeUnlimited


class UsagePoint(BaseModel):
    key_id: str
    start: datetime = Field(description="Start of the bucket.")
    jobs: int
    completed: int
    failed: int
    seconds_rendered: float
    credits_used: int


class UsageSeries(BaseModel):
    since: datetime
    bucket_seconds: int
    data: list[UsagePoint] = Field(description="Per key and bucket, oldest first; empty "
                                   "buckets are left out.")  # fmt: skip


class QueueDepth(BaseModel):
    model: str
    queued: int
    generating: int


class QueueReport(BaseModel):
    data: list[QueueDepth]
    queued: int = Field(description="All queued generations.")
    generating: int = Field(description="All generations being rendered.")


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    capabilities: list[str]
    engines: list[str] = Field(description="Engines that offer those capabilities here.")
    devices: list[str] = Field(description="Devices of those engines (cpu, cuda:0, upstream…).")
    current_job: str | None
    jobs_done: int
    started_at: datetime
    last_seen: datetime


class WorkerList(BaseModel):
    data: list[WorkerOut]
    live_seconds: float = Field(description="Workers seen within this many seconds.")


class EngineHealth(BaseModel):
    name: str
    status: Literal["ok", "degraded", "no_worker", "disabled"] = Field(
        description="ok: enabled and a live worker serves it; degraded: most of its jobs of "
        "the last hour failed; no_worker: enabled but no live worker offers what it "
        "serves; disabled: it cannot run here (see reason)."
    )
    kind: Literal["local", "gpu", "upstream"]
    device: str | None
    capabilities: list[str]
    routes: list[str] = Field(description="Capabilities this engine is the first choice for.")
    workers: int = Field(description="Live workers offering any of its capabilities.")
    completed: int = Field(description="Generations it completed in the last hour.")
    failed: int = Field(
        description="... and failed, not counting failures of the request itself "
        "(cancelled, expired, invalid input, no face found)."
    )
    reason: str | None = Field(description="Why it is disabled or degraded.")


class EngineList(BaseModel):
    data: list[EngineHealth]
    routes: dict[str, str] = Field(description="capability -> the engine that serves it.")


class FailureOut(BaseModel):
    name: str
    count: int
    last_at: datetime
    last_message: str
    last_model: str


class FailureList(BaseModel):
    since: datetime
    data: list[FailureOut] = Field(description="By error name, most frequent first.")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="The admin key that acted.")
    action: str
    target: str | None
    detail: dict[str, Any]


class AuditList(BaseModel):
    data: list[AuditOut] = Field(description="Newest first.")
