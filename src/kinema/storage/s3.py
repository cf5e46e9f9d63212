"""S3 (or S3-compatible: MinIO, Ceph, R2, ...) storage for `KINEMA_STORAGE_URL=s3://bucket/prefix`.

Clients download straight from S3 with presigned GET URLs, so the API serves no file bytes.
boto3 is imported when an `S3Storage` is built, not when `kinema.storage` is imported: a
deployment on local disk needs neither the dependency nor its import time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from kinema.settings import Settings
from kinema.storage.base import BlobStorage

MB = 1024 * 1024
# SigV4 refuses presigned URLs that live longer than a week; past that S3 would reject
# every link we hand out, so the TTL is capped instead.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# S3 refuses multipart parts under 5 MiB (except the last one).
MIN_PART_BYTES = 5 * MB


def _setting(settings: Settings, name: str, default: Any) -> Any:
    # The s3_* fields are declared in Settings separately from this backend; reading them
    # through getattr keeps this module working whichever lands first.
    return getattr(settings, name, default)


def check_key(key: str) -> str:
    """Refuses keys that clients would not fetch verbatim: HTTP clients collapse `.`/`..`
    path segments and empty ones, so a presigned URL for such a key would name (and be
    signed for) a different object than the one stored."""
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class S3Storage(BlobStorage):
    def __init__(self, bucket: str, prefix: str, settings: Settings) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config
        from botocore.exceptions import ClientError

        if not bucket:
            raise ValueError("KINEMA_STORAGE_URL must name a bucket: s3://bucket[/prefix]")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client_error: type[Exception] = ClientError
        self.create_bucket = bool(_setting(settings, "s3_create_bucket", False))
        self.region: str = _setting(settings, "s3_region", None) or "us-east-1"
        endpoint: str | None = _setting(settings, "s3_endpoint_url", None) or None
        public: str | None = _setting(settings, "s3_public_endpoint_url", None) or None

        threshold = max(1, int(_setting(settings, "s3_multipart_threshold_mb", 8))) * MB
        chunk_mb = _setting(settings, "s3_multipart_chunksize_mb", None)
        chunk = max(MIN_PART_BYTES, int(chunk_mb) * MB if chunk_mb else threshold)
        self.transfer_config = TransferConfig(
            multipart_threshold=threshold, multipart_chunksize=chunk
        )

        # A private session (not boto3's module-level default) so that nothing else in the
        # process shares or reconfigures it; credentials None -> boto3's default chain
        # (environment, ~/.aws, container/instance role). The client resolves them now, at
        # construction, so the first poll does not pay for (or wait on) that lookup.
        session = boto3.session.Session(
            aws_access_key_id=_setting(settings, "s3_access_key_id", None) or None,
            aws_secret_access_key=_setting(settings, "s3_secret_access_key", None) or None,
            region_name=self.region,
        )
        self.client: Any = session.client(
            "s3", endpoint_url=endpoint, config=self._config(Config, endpoint)
        )
        if session.get_credentials() is None:
            raise ValueError(
                "S3 storage needs credentials: set KINEMA_S3_ACCESS_KEY_ID and "
                "KINEMA_S3_SECRET_ACCESS_KEY, or configure the AWS default chain"
            )
        # Workers may reach S3 by an internal name (a compose service, a VPC endpoint) that
        # clients cannot resolve; links are then signed for the host clients do use. The
        # signature covers the Host header, so the URL cannot just be rewritten afterwards.
        self.presigner: Any = (
            session.client("s3", endpoint_url=public, config=self._config(Config, public))
            if public
            else self.client
        )
        self._bucket_ready = not self.create_bucket
        self._bucket_lock = threading.Lock()

    def _config(self, config_cls: Any, endpoint: str | None) -> Any:
        # SigV4 for presigning too (botocore may still pick SigV2 for some endpoints, which
        # newer regions and most S3-compatible servers refuse). Custom endpoints get
        # path-style addressing: MinIO/Ceph/moto behind a plain hostname have no wildcard
        # DNS for bucket.host; on AWS itself "auto" picks virtual-hosted style.
        style = "path" if endpoint else "auto"
        return config_cls(
            signature_version="s3v4",
            s3={"addressing_style": style},
            retries={"mode": "standard", "max_attempts": 5},
        )

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _ensure_bucket(self) -> None:
        # Only on the write path (the API process never writes): an API start-up must not
        # depend on S3 being up, and only s3_create_bucket deployments pay the round trip.
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except self._client_error as exc:
                if _status(exc) != 404:
                    raise
                params: dict[str, Any] = {"Bucket": self.bucket}
                if self.region != "us-east-1":  # S3 rejects the default region spelled out
                    params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                try:
                    self.client.create_bucket(**params)
                except self._client_error as race:
                    # Another worker created it between our HEAD and CREATE. (A bucket
                    # owned by someone else, BucketAlreadyExists, is a real error.)
                    if _code(race) != "BucketAlreadyOwnedByYou":
                        raise
            self._bucket_ready = True

    def put(self, key: str, source: Path, content_type: str) -> None:
        name = self.object_key(key)
        self._ensure_bucket()
        # upload_file streams from disk and, above the threshold, uploads parts in parallel
        # (each part request retried on its own) and aborts the multipart upload if it
        # fails for good. S3 objects appear atomically: readers never see a partial video.
        # Failures raise (S3UploadFailedError / ClientError); the worker fails the job.
        self.client.upload_file(
            str(source), self.bucket, name,
            ExtraArgs={"ContentType": content_type}, Config=self.transfer_config,
        )  # fmt: skip

    def url(self, key: str, ttl_seconds: int, base_url: str) -> str:
        # Called on every poll of a finished job: presigning is local HMAC work over the
        # credentials resolved at construction (no request to S3). base_url is unused:
        # clients fetch from S3, not from this API.
        expires = min(max(1, int(ttl_seconds)), MAX_PRESIGN_SECONDS)
        url: str = self.presigner.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=expires,
        )
        return url

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except self._client_error as exc:
            if _status(exc) == 404:
                return False
            raise  # 403 etc. is a configuration problem, not a missing video
        return True

    def delete(self, key: str) -> None:
        # DeleteObject succeeds for a missing key, matching LocalStorage's missing_ok.
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))


def _status(exc: Exception) -> int | None:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))
