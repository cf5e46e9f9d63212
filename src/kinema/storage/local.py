"""Local-disk storage under the data dir; the API serves the files at signed URLs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

from kinema.storage.base import BlobStorage
from kinema.storage.signing import UrlSigner

FILES_ROUTE = "/v2/files"


class LocalStorage(BlobStorage):
    def __init__(self, root: Path, signer: UrlSigner) -> None:
        self.root = root
        self.signer = signer
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file for `key`; refuses keys that would escape the root."""
        candidate = (self.root / key).resolve()
        if self.root.resolve() not in candidate.parents:
            raise ValueError(f"invalid storage key {key!r}")
        return candidate

    def put(self, key: str, source: Path, content_type: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)  # readers never see a half-written file

    def url(self, key: str, ttl_seconds: int, base_url: str) -> str:
        expires, signature = self.signer.sign(key, ttl_seconds)
        return (
            f"{base_url.rstrip('/')}{FILES_ROUTE}/{quote(key)}"
            f"?expires={expires}&signature={signature}"
        )

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
