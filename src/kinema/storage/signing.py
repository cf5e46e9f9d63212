"""HMAC-signed, expiring download links for storage backends that the API serves itself."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

EXPIRY_STEP = 60


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """The signing key: configured, or generated once and kept in the data dir so every
    process sharing it (API, workers, restarts) signs and verifies alike."""
    if configured:
        return configured.encode()
    path = data_dir / "secret.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        value = secrets.token_urlsafe(32).encode()
        handle.write(value)
    return value


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _digest(self, key: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def sign(self, key: str, ttl_seconds: int) -> tuple[int, str]:
        # Expiry rounded up to the minute: a client polling in a loop gets the same URL
        # (cached below) instead of one HMAC per poll; the link lives ttl..ttl+60 s.
        expires = -(-(int(time.time()) + ttl_seconds) // EXPIRY_STEP) * EXPIRY_STEP
        return expires, self._cached_digest(key, expires)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one signer per process, lives forever
    def _cached_digest(self, key: str, expires: int) -> str:
        return self._digest(key, expires)

    def verify(self, key: str, expires: int, signature: str) -> bool:
        if expires < time.time():
            return False
        return hmac.compare_digest(self._digest(key, expires), signature)
