"""Bearer-key authentication with a short in-process cache (the poll hot path would
otherwise pay a key lookup per request). A revoked key stops working within
`KINEMA_AUTH_CACHE_SECONDS`."""

from __future__ import annotations

import threading
import time

from fastapi import Request

from kinema.errors import Unauthorized
from kinema.store import ApiKey, JobStore


class Authenticator:
    def __init__(self, store: JobStore, cache_seconds: float) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> ApiKey:
        return self.check(request.headers.get("authorization", ""))

    def check(self, header: str) -> ApiKey:
        """The key for an `Authorization` header value, or Unauthorized."""
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or len(secret) > 512:
            raise Unauthorized()
        now = time.monotonic()
        cached = self._cache.get(secret)
        if cached and cached[1] > now:
            return cached[0]
        key = self.store.authenticate(secret)
        if key is None:
            raise Unauthorized()
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[secret] = (key, now + self.cache_seconds)
        return key
