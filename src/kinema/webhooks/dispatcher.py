"""The webhook dispatcher: a thread in every API process and worker that drains the
durable outbox (`webhook_deliveries`, filled by the store in the same transactions that
change jobs).

Each pass claims due deliveries with one atomic UPDATE (see
`kinema.store.webhooks.SqlWebhooks`), so every attempt is sent by exactly one process
however many run; a process that dies holding a claim leaves it to expire
(`webhook_timeout_seconds` + LEASE_MARGIN_SECONDS) and the delivery's next attempt goes
out from whichever process claims it next. The payload is rendered at the first attempt
(the poll body of the generation then) and stored, so every retry sends the same body
under the same `webhook-id`, signed afresh with the attempt's timestamp. A 2xx delivers;
anything else (status, timeout, refused connection) is retried after the next delay of
`webhook_retry_seconds`, and given up after the last. A destination the SSRF policy
refuses, or an endpoint removed since, is given up at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kinema.dialects.aimlapi import poll_body
from kinema.errors import UnsafeUrl
from kinema.inputs import FetchPolicy
from kinema.settings import Settings
from kinema.storage import BlobStorage
from kinema.store import JobStore
from kinema.store.webhooks import ClaimedWebhook, WebhookResult
from kinema.webhooks.sender import DeliveryError, post
from kinema.webhooks.signing import encode, signed_headers

log = logging.getLogger("kinema.webhooks")

LEASE_MARGIN_SECONDS = 30.0  # a claim outlives the attempt's timeout by this much
STORE_RETRY_SECONDS = 1.0
STOP_SECONDS = 15.0  # how long stop() waits for the attempts in flight
FLUSH_SECONDS = 0.25  # the longest a busy dispatcher keeps outcomes unrecorded


def base_url_of(settings: Settings) -> str:
    """The base of download URLs in payloads: the public URL, else this deployment's."""
    scheme = "https" if settings.ssl_certfile else "http"  # `kinema serve` over TLS
    return settings.public_url or f"{scheme}://{settings.host}:{settings.port}/"


def iso_time(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


class Dispatcher:
    """Claims, renders, signs, sends and records webhook deliveries. `start()` runs it as
    a daemon thread; `run_once()` does one pass on the caller's thread (tests, tools)."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        storage: BlobStorage,
        base_url: str | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.base_url = settings.public_url or base_url or base_url_of(settings)
        self.ttl = settings.url_ttl_seconds
        self.schedule = [float(delay) for delay in settings.webhook_retry_seconds]
        timeout = settings.webhook_timeout_seconds
        self.policy = replace(
            FetchPolicy.from_settings(settings), timeout=timeout, connect_timeout=min(5.0, timeout)
        )
        self.lease_seconds = timeout + LEASE_MARGIN_SECONDS
        self.concurrency = max(1, settings.webhook_concurrency)
        self.poll_seconds = settings.webhook_poll_seconds
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="kinema-webhook")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._done: list[WebhookResult] = []
        self._in_flight = 0
        self._thread: threading.Thread | None = None

    # ---- one attempt -------------------------------------------------------------------
    def attempt(self, delivery: ClaimedWebhook) -> WebhookResult:
        """Send one claimed delivery and say what came of it (never raises)."""
        at = time.time()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        final = False  # no retry can help
        if delivery.secret is None:
            error, final = "its endpoint was removed", True
        elif delivery.payload is None:
            error, final = "the generation was deleted before its event was sent", True
        else:
            body = encode(delivery.payload)
            headers = signed_headers(delivery.secret, delivery.webhook_id, int(at), body)
            try:
                status = post(delivery.url, body.encode(), headers, self.policy)
            except UnsafeUrl as exc:
                error, final = exc.reason, True
            except DeliveryError as exc:
                error = str(exc)
            except Exception:
                log.exception("webhook %s: unexpected error while sending", delivery.webhook_id)
                error = "internal error while sending"
        latency_ms = (time.monotonic() - started) * 1000
        delivered = status is not None and 200 <= status < 300
        next_at = None
        if not delivered and not final and delivery.attempt <= len(self.schedule):
            next_at = time.time() + self.schedule[delivery.attempt - 1]
        return WebhookResult(
            delivery_id=delivery.id, attempt=delivery.attempt, status_code=status, error=error,
            latency_ms=latency_ms, at=at, delivered=delivered, next_attempt_at=next_at,
        )  # fmt: skip

    def prepare(self, claimed: list[ClaimedWebhook]) -> list[ClaimedWebhook]:
        """Render the payload of first attempts (the generation as a poll shows it now)
        and store it, so that every retry sends the same body."""
        rendered: dict[int, dict[str, Any]] = {}
        for delivery in claimed:
            if delivery.payload is not None:
                continue
            job = self.store.get_status(delivery.job_id, delivery.key_id)
            if job is None:
                continue  # deleted: the attempt records why nothing was sent
            rendered[delivery.id] = {
                "type": delivery.event,
                "timestamp": iso_time(delivery.created_at),
                "data": poll_body(job, self.storage, self.base_url, self.ttl),
            }
        stored = self.store.set_webhook_payloads(rendered) if rendered else {}
        return [
            replace(d, payload=stored[d.id]) if stored.get(d.id) is not None else d for d in claimed
        ]

    # ---- passes ------------------------------------------------------------------------
    def claim(self, limit: int) -> list[ClaimedWebhook]:
        return self.prepare(self.store.claim_webhooks(limit, self.lease_seconds))

    def run_once(self, limit: int | None = None) -> int:
        """Claim what is due (up to `limit`), send it all, record the outcomes; returns
        how many attempts were made."""
        claimed = self.claim(limit or self.concurrency)
        results = list(self._pool.map(self.attempt, claimed))
        self.store.record_webhook_attempts(results)
        return len(results)

    # ---- the background thread ---------------------------------------------------------
    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._serve, name="kinema-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop claiming, let attempts in flight finish (bounded by their timeout), and
        record them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(STOP_SECONDS + self.policy.timeout)
        self._pool.shutdown(wait=True)
        self._flush()

    def _sent(self, result: WebhookResult) -> None:
        with self._lock:
            self._done.append(result)
            self._in_flight -= 1
        self._wake.set()

    def _send(self, delivery: ClaimedWebhook) -> None:
        self._sent(self.attempt(delivery))

    def _flush(self) -> None:
        with self._lock:
            results, self._done = self._done, []
        if not results:
            return
        try:
            self.store.record_webhook_attempts(results)
        except Exception:
            # Kept for the next pass; past its lease another process may send it again
            # (at least once), and the stale record then changes nothing.
            log.warning("webhooks: recording %d attempts failed; retrying", len(results))
            with self._lock:
                self._done = results + self._done

    def _serve(self) -> None:
        # Claims and records go in batches (half the senders at least, while busy), so a
        # busy dispatcher pays a few store round trips per batch, not per delivery.
        batch = max(1, self.concurrency // 2)
        last_flush = time.monotonic()
        while not self._stop.is_set():
            self._wake.clear()  # set again by any attempt that ends from here on
            with self._lock:
                free = self.concurrency - self._in_flight
            if free < batch:
                # Most senders busy: until more attempts end (records kept fresh meanwhile).
                self._wake.wait(self.poll_seconds)
                if time.monotonic() - last_flush >= FLUSH_SECONDS:
                    self._flush()
                    last_flush = time.monotonic()
                continue
            self._flush()
            last_flush = time.monotonic()
            try:
                claimed = self.claim(free)
            except Exception:
                log.warning("webhooks: claiming due deliveries failed", exc_info=True)
                self._stop.wait(STORE_RETRY_SECONDS)
                continue
            for delivery in claimed:
                with self._lock:
                    self._in_flight += 1
                self._pool.submit(self._send, delivery)
            if len(claimed) < free:
                # Nothing more is due: until an attempt ends or the next poll.
                self._wake.wait(self.poll_seconds)


def start_dispatcher(
    settings: Settings, store: JobStore, storage: BlobStorage, base_url: str | None = None
) -> Dispatcher | None:
    """A running dispatcher, or None where `webhook_dispatch` is off."""
    if not settings.webhook_dispatch:
        return None
    return Dispatcher(store, settings, storage, base_url).start()


def lifespan(
    settings: Settings, store: JobStore, storage: BlobStorage
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """An ASGI lifespan that runs a dispatcher for as long as the app serves."""

    @asynccontextmanager
    async def run(_app: Any) -> AsyncIterator[None]:
        dispatcher = start_dispatcher(settings, store, storage)
        try:
            yield
        finally:
            if dispatcher is not None:
                await asyncio.to_thread(dispatcher.stop)

    return run
