"""Blob storage: the interface and its backends, picked by `KINEMA_STORAGE_URL`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from kinema.settings import Settings
from kinema.storage.base import BlobStorage
from kinema.storage.local import FILES_ROUTE, LocalStorage
from kinema.storage.s3 import S3Storage
from kinema.storage.signing import UrlSigner, load_secret

__all__ = [
    "FILES_ROUTE",
    "BlobStorage",
    "LocalStorage",
    "S3Storage",
    "UrlSigner",
    "open_storage",
]


def open_storage(settings: Settings) -> BlobStorage:
    url = settings.resolved_storage_url
    parsed = urlparse(url)
    if parsed.scheme == "file":
        signer = UrlSigner(load_secret(settings.secret_key, settings.data_dir))
        return LocalStorage(Path(parsed.path), signer)
    if parsed.scheme == "s3":
        # s3://bucket/optional/prefix; S3Storage imports boto3 itself, only when used.
        return S3Storage(parsed.netloc, parsed.path, settings)
    raise ValueError(
        f"KINEMA_STORAGE_URL scheme '{parsed.scheme}' is not supported by this build "
        "(supported: file://, s3://)"
    )
