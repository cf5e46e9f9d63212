"""Failover: a backend that fails *before it accepted the job* hands it to the next one.

The submit picks the first backend of the model's route (`KINEMA_ROUTES`) that serves
the request's capability. When that backend is an upstream and it could not be reached
or refused the job before accepting it (refused connection, 429 or 500/503 after the
retries: `UpstreamUnavailable`), the job goes to the next backend of the route that
serves the same capability, an upstream or a local engine alike. Once a provider has
accepted a job (its id is recorded, phase `accepted`), the job is never sent elsewhere:
that could make the operator pay twice.

A failover records the new backend (and the backends already tried) on the job row and
hands the job back to the queue, where it is claimed again like any job: an upstream
job by a worker's asyncio loop, a local engine's job by a worker slot of a worker that
runs that engine. So the job row always names the backend that renders it (the poll's
`meta.backend`, the price charged, the per-backend metrics), whichever path runs it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kinema.errors import Cancelled, ConfigError, JobFailure
from kinema.providers import choose_backend, offered, route_of
from kinema.providers.base import ACCEPTED, Hooks, Provider, UpstreamError
from kinema.specs.passthrough import PASSTHROUGH
from kinema.store import Job

if TYPE_CHECKING:
    from kinema.worker.loop import Worker

log = logging.getLogger("kinema.providers")

ROUTED = "routed"  # the phase of a job handed to its next backend, not yet submitted


class HandedOver(Cancelled):
    """The job was handed to another backend and goes back to the queue. A `Cancelled`,
    so a worker running it on its own thread releases it to the queue (the attempt is
    not counted); the asyncio loop releases it explicitly."""

    def __init__(self, backend: str) -> None:
        super().__init__(f"The job was handed over to backend '{backend}'.")
        self.backend = backend


def tried_before(job: Job) -> list[str]:
    """The backends a job already failed over from (recorded on its row)."""
    raw: Any = job.upstream
    if isinstance(raw, str | bytes):
        raw = json.loads(raw)
    tried = raw.get("tried") if isinstance(raw, dict) else None
    return [name for name in tried if isinstance(name, str)] if isinstance(tried, list) else []


def local_offers(worker: Worker, names: list[str]) -> dict[str, frozenset[str]]:
    """Capabilities of the local engines named in a route: this worker's own where it runs
    them, else the engine class's (another worker may run it); none for an engine this
    worker had to disable."""
    from kinema.engines.registry import engine_class

    offers: dict[str, frozenset[str]] = {}
    for name in names:
        if name in worker.engine_set.engines:
            offers[name] = worker.engine_set.offers[name]
            continue
        if name in worker.engine_set.disabled:  # cannot run here: likely nowhere else either
            continue
        try:
            offers[name] = engine_class(name).capabilities
        except ConfigError:
            log.warning("route names '%s', which is no engine installed here", name)
    return offers


def route_for(worker: Worker, providers: Mapping[str, Provider], model: str, cap: str) -> list[str]:
    """The backends a job of `model` may go to: its route; for a passthrough model without
    one, every upstream that passes models through, in configuration order."""
    route = route_of(worker.settings, model)
    if route or cap != PASSTHROUGH:
        return route
    return [name for name, provider in providers.items() if PASSTHROUGH in offered(provider)]


def next_backend(
    worker: Worker, providers: Mapping[str, Provider], job: Job, tried: list[str]
) -> str | None:
    """The first backend of the job's route not tried yet that serves its capability."""
    rest = [
        name
        for name in route_for(worker, providers, job.model, job.capability)
        if name not in tried
    ]
    upstream = {name: offered(providers[name]) for name in rest if name in providers}
    local = local_offers(worker, [name for name in rest if name not in providers])
    found = choose_backend(rest, job.capability, None, local, upstream)
    return found[0] if found else None


async def hand_over(
    worker: Worker,
    providers: Mapping[str, Provider],
    job: Job,
    hooks: Hooks,
    backend: str,
    failure: JobFailure,
) -> None:
    """After `backend` failed with `failure`: raise HandedOver (the job row now names the
    next backend) when the failure allows a failover and a backend is left; else re-raise
    `failure`."""
    state = hooks.state or {}
    accepted = state.get("backend") == backend and state.get("phase") == ACCEPTED
    if not isinstance(failure, UpstreamError) or failure.name != "UpstreamUnavailable":
        raise failure
    if accepted:  # never resubmitted elsewhere once a provider took it
        raise failure
    tried = [*tried_before(job), backend]
    following = next_backend(worker, providers, job, tried)
    if following is None:
        if len(tried) > 1:
            raise UpstreamError(
                f"{failure.message} No backend of the route is left to try "
                f"(tried: {', '.join(tried)}).",
                failure.name,
            ) from None
        raise failure
    log.warning(
        "job %s: backend %s failed before accepting it (%s); handing it to %s",
        job.id, backend, failure.message, following,
    )  # fmt: skip
    await hooks.record({"backend": following, "phase": ROUTED, "tried": tried})
    raise HandedOver(following)
