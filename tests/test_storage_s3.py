"""S3 storage against a real S3-speaking HTTP server (moto's, in a subprocess).

moto serves presigned URLs without checking their signature or expiry, so clients here
download through `SigV4Gateway`: a small proxy in front of moto that verifies presigned
GETs the way S3 does (independently of botocore) and plays the "public endpoint", the
host clients use to reach S3 when it differs from the workers' one."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

import boto3
import httpx
import pytest

from kinema.settings import Settings
from kinema.storage import S3Storage, open_storage
from tests.support import KinemaServer, MediaServer, free_port, make_image, running, wait_for

ACCESS_KEY, SECRET_KEY = "test", "test"
BUCKET = "kinema-test"
MB = 1024 * 1024


class S3Settings(Settings):
    """Settings with the s3_* fields declared, so these tests do not depend on the order
    in which the fields and the backend land in `Settings`."""

    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_create_bucket: bool = False
    s3_multipart_threshold_mb: int = 8
    s3_multipart_chunksize_mb: int | None = None


class SigV4Gateway:
    """Verifies SigV4 query-string auth (algorithm, credential, expiry, signature over
    method, path, query and Host) and forwards good GET/HEADs to moto, Range included."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                gateway.handle(self, body=True)

            def do_HEAD(self) -> None:
                gateway.handle(self, body=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def problem(request: BaseHTTPRequestHandler) -> str | None:
        raw_path, _, raw_query = request.path.partition("?")
        params = {
            unquote(k): unquote(v)
            for k, _, v in (part.partition("=") for part in raw_query.split("&") if part)
        }
        if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            return "not a presigned request"
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if time.time() > signed_at.timestamp() + int(params["X-Amz-Expires"]):
            return "Request has expired"
        key_id, day, region, service, _ = params["X-Amz-Credential"].split("/")
        if key_id != ACCESS_KEY or params["X-Amz-SignedHeaders"] != "host":
            return "unexpected credential or signed headers"
        query = "&".join(
            f"{k}={v}"
            for k, v in sorted(
                (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
                for k, v in params.items()
                if k != "X-Amz-Signature"
            )
        )
        canonical = "\n".join([
            request.command, raw_path, query, f"host:{request.headers['Host']}", "", "host",
            "UNSIGNED-PAYLOAD",
        ])  # fmt: skip
        scope = f"{day}/{region}/{service}/aws4_request"
        to_sign = "\n".join([
            "AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ])  # fmt: skip
        key = ("AWS4" + SECRET_KEY).encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
            return "SignatureDoesNotMatch"
        return None

    def handle(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        problem = self.problem(request)
        if problem is not None:
            payload = f"<Error><Code>AccessDenied</Code><Message>{problem}</Message></Error>"
            request.send_response(403)
            request.send_header("Content-Type", "application/xml")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload.encode())
            return
        forwarded = {k: v for k, v in request.headers.items() if k.lower() == "range"}
        # The query goes along: moto takes X-Amz-Credential as "authenticated" (it answers
        # anonymous GETs of private objects with 403) without checking the signature.
        response = self.upstream.request(request.command, request.path, headers=forwarded)
        request.send_response(response.status_code)
        for name in ("content-type", "content-length", "content-range", "accept-ranges", "etag"):
            if name in response.headers:
                request.send_header(name, response.headers[name])
        request.end_headers()
        if body:
            request.wfile.write(response.content)

    def close(self) -> None:
        self.httpd.shutdown()
        self.upstream.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(moto: str) -> Iterator[SigV4Gateway]:
    gw = SigV4Gateway(moto)
    yield gw
    gw.close()


def s3_client(endpoint: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
    )  # fmt: skip


def make_storage(
    moto: str, public: str | None = None, bucket: str = BUCKET, prefix: str = "", **fields: Any
) -> S3Storage:
    settings = S3Settings(
        s3_endpoint_url=moto, s3_public_endpoint_url=public,
        s3_access_key_id=ACCESS_KEY, s3_secret_access_key=SECRET_KEY, **fields,
    )  # fmt: skip
    return S3Storage(bucket, prefix, settings)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_round_trip_respects_prefix(moto: str, tmp_path: Path) -> None:
    storage = make_storage(moto, prefix="/tenant/a/")
    source = write(tmp_path / "v.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(5000))
    assert not storage.exists("videos/one.mp4")
    storage.put("videos/one.mp4", source, "video/mp4")
    assert storage.exists("videos/one.mp4")
    raw = s3_client(moto)
    head = raw.head_object(Bucket=BUCKET, Key="tenant/a/videos/one.mp4")
    assert head["ContentType"] == "video/mp4" and head["ContentLength"] == 5012
    assert "-" not in head["ETag"]  # small: a single PUT
    listed = raw.list_objects_v2(Bucket=BUCKET, Prefix="tenant/")["Contents"]
    assert [o["Key"] for o in listed] == ["tenant/a/videos/one.mp4"]
    # Replacing keeps one object; delete removes it and is idempotent.
    storage.put("videos/one.mp4", write(tmp_path / "w.mp4", b"replaced"), "video/mp4")
    body = raw.get_object(Bucket=BUCKET, Key="tenant/a/videos/one.mp4")["Body"].read()
    assert body == b"replaced"
    storage.delete("videos/one.mp4")
    assert not storage.exists("videos/one.mp4")
    storage.delete("videos/one.mp4")
    # No prefix: the key is the object name.
    bare = make_storage(moto)
    bare.put("videos/two.mp4", source, "video/mp4")
    assert raw.head_object(Bucket=BUCKET, Key="videos/two.mp4")["ContentLength"] == 5012
    bare.delete("videos/two.mp4")


def test_large_upload_is_multipart(moto: str, gateway: SigV4Gateway, tmp_path: Path) -> None:
    storage = make_storage(moto, public=gateway.base, prefix="big")
    data = os.urandom(20 * MB)
    storage.put("videos/big.mp4", write(tmp_path / "big.mp4", data), "video/mp4")
    head = s3_client(moto).head_object(Bucket=BUCKET, Key="big/videos/big.mp4")
    # A multipart object's ETag is "<md5 of part md5s>-<parts>": 8 + 8 + 4 MB.
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert head["ContentType"] == "video/mp4"
    fetched = httpx.get(storage.url("videos/big.mp4", 60, "http://unused/"), timeout=60)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).digest() == hashlib.sha256(data).digest()
    # The thresholds come from settings: at 32 MB the same file is a single PUT.
    single = make_storage(moto, prefix="big", s3_multipart_threshold_mb=32)
    single.put("videos/single.mp4", tmp_path / "big.mp4", "video/mp4")
    head = s3_client(moto).head_object(Bucket=BUCKET, Key="big/videos/single.mp4")
    assert "-" not in head["ETag"]
    for key in ("videos/big.mp4", "videos/single.mp4"):
        storage.delete(key)


def test_presigned_urls(moto: str, gateway: SigV4Gateway, tmp_path: Path) -> None:
    storage = make_storage(moto, public=gateway.base, prefix="signed")
    data = b"\x00\x00\x00\x18ftypisom" + os.urandom(100_000)
    storage.put("videos/clip.mp4", write(tmp_path / "clip.mp4", data), "video/mp4")
    url = storage.url("videos/clip.mp4", 60, "http://api.example/")
    # Signed for the public host, no credentials needed to fetch it.
    assert url.startswith(f"{gateway.base}/{BUCKET}/signed/videos/clip.mp4?")
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Expires"] == ["60"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    full = httpx.get(url)
    assert full.status_code == 200, full.text
    assert full.headers["content-type"] == "video/mp4" and full.content == data
    ranged = httpx.get(url, headers={"Range": "bytes=4-11"})
    assert ranged.status_code == 206 and ranged.content == b"ftypisom"
    assert ranged.headers["content-range"] == f"bytes 4-11/{len(data)}"
    # The gateway checks what S3 checks: a changed signature, key or host is refused.
    assert httpx.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403
    assert httpx.get(url.replace("clip.mp4", "clip2.mp4")).status_code == 403
    direct = make_storage(moto, prefix="signed").url("videos/clip.mp4", 60, "")
    assert direct.startswith(moto)  # no public endpoint: signed for the workers' host
    assert httpx.get(gateway.base + direct[len(moto) :]).status_code == 403
    # A week is the longest S3 accepts; longer TTLs are capped rather than broken.
    week = parse_qs(urlparse(storage.url("videos/clip.mp4", 10**7, "")).query)
    assert week["X-Amz-Expires"] == [str(7 * 24 * 3600)]
    short = storage.url("videos/clip.mp4", 1, "")
    assert httpx.get(short).status_code == 200
    time.sleep(2.2)
    expired = httpx.get(short)
    assert expired.status_code == 403 and b"expired" in expired.content
    storage.delete("videos/clip.mp4")


def test_url_does_no_network_io(
    moto: str, gateway: SigV4Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """url() runs on every poll of a finished job: presigning must be local computation."""
    storage = make_storage(moto, public=gateway.base)
    storage.url("videos/warm.mp4", 60, "")  # first call loads botocore's lazy models

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("url() opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    started = time.perf_counter()
    urls = [storage.url(f"videos/{i}.mp4", 3600, "") for i in range(500)]
    per_call = (time.perf_counter() - started) / len(urls)
    assert len(set(urls)) == 500
    # About 250 µs measured on a shared core; the bound only catches a round trip.
    assert per_call < 0.01, f"{per_call * 1e6:.0f} µs per presign"


def test_bucket_is_created_only_when_asked(moto: str, tmp_path: Path) -> None:
    source = write(tmp_path / "v.mp4", b"video")
    raw = s3_client(moto)
    missing = make_storage(moto, bucket="kinema-absent")
    with pytest.raises(Exception, match="NoSuchBucket"):  # S3UploadFailedError
        missing.put("videos/a.mp4", source, "video/mp4")
    with pytest.raises(Exception, match="404"):
        raw.head_bucket(Bucket="kinema-absent")
    made = make_storage(moto, bucket="kinema-made", s3_create_bucket=True)
    made.put("videos/a.mp4", source, "video/mp4")
    assert made.exists("videos/a.mp4")
    # Outside us-east-1 the bucket needs a LocationConstraint; a second storage (another
    # worker) finds it there.
    for _ in range(2):
        eu = make_storage(moto, bucket="kinema-eu", s3_create_bucket=True, s3_region="eu-west-1")
        eu.put("videos/b.mp4", source, "video/mp4")
    assert raw.get_bucket_location(Bucket="kinema-eu")["LocationConstraint"] == "eu-west-1"


def test_open_storage_and_keys(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    common: dict[str, Any] = {"s3_endpoint_url": moto, "s3_access_key_id": ACCESS_KEY,
              "s3_secret_access_key": SECRET_KEY}  # fmt: skip
    storage = open_storage(S3Settings(storage_url="s3://my-bucket/videos/out/", **common))
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == ("my-bucket", "videos/out")
    assert storage.object_key("videos/x.mp4") == "videos/out/videos/x.mp4"
    bare = open_storage(S3Settings(storage_url="s3://my-bucket", **common))
    assert isinstance(bare, S3Storage) and bare.object_key("k.mp4") == "k.mp4"
    with pytest.raises(ValueError, match="bucket"):
        open_storage(S3Settings(storage_url="s3:///videos", **common))
    with pytest.raises(ValueError, match=r"s3://"):
        open_storage(S3Settings(storage_url="gs://bucket/x"))
    for bad in ("", "/abs.mp4", "a//b.mp4", "../x.mp4", "videos/./x.mp4", "videos/"):
        with pytest.raises(ValueError, match="invalid storage key"):
            storage.url(bad, 60, "")
    # No keys configured: boto3's default chain (here, the environment) supplies them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    chained = open_storage(S3Settings(storage_url="s3://my-bucket", s3_endpoint_url=moto))
    assert "X-Amz-Credential=from-env%2F" in chained.url("k.mp4", 60, "")
    # boto3 is imported by S3Storage only: a file:// deployment never loads it.
    probe = "import sys, kinema.storage; assert 'boto3' not in sys.modules, 'boto3 loaded'"
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_end_to_end_with_kinema_serve(
    moto: str, gateway: SigV4Gateway, media: MediaServer, tmp_path: Path
) -> None:
    image = media.add("s3-still.png", make_image(960, 540, "PNG", seed=7))
    server = KinemaServer(
        tmp_path / "kinema", workers=1,
        KINEMA_STORAGE_URL="s3://kinema-e2e/videos",
        KINEMA_S3_ENDPOINT_URL=moto,
        KINEMA_S3_PUBLIC_ENDPOINT_URL=gateway.base,
        KINEMA_S3_ACCESS_KEY_ID=ACCESS_KEY,
        KINEMA_S3_SECRET_ACCESS_KEY=SECRET_KEY,
        KINEMA_S3_CREATE_BUCKET="1",
        KINEMA_URL_TTL_SECONDS="600",
    )  # fmt: skip
    with running(server), server.client() as c:
        r = c.post("/v2/video/generations", json={
            "model": "pixverse/v5/image-to-video", "prompt": "slow zoom",
            "image_url": image, "resolution": "360p", "duration": "5",
        })  # fmt: skip
        assert r.status_code == 201, r.text
        gen_id = r.json()["id"]
        done = wait_for(c, gen_id)
        assert done["status"] == "completed", (done, server.log())
        url = done["video"]["url"]
        # The worker created the bucket and uploaded under the URL's prefix.
        head = s3_client(moto).head_object(Bucket="kinema-e2e", Key=f"videos/videos/{gen_id}.mp4")
        assert head["ContentType"] == "video/mp4"
        assert head["ContentLength"] == done["video"]["file_size"]
        assert url.startswith(f"{gateway.base}/kinema-e2e/videos/videos/{gen_id}.mp4?")
        video = httpx.get(url, timeout=60)  # no API key, signature checked by the gateway
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert video.content[4:8] == b"ftyp" and len(video.content) == head["ContentLength"]

        # Each poll presigns afresh; SigV4 stamps the second, so polls within one second
        # agree and later ones differ, and each of them downloads (Range too).
        def poll() -> tuple[str, dict[str, list[str]]]:
            body = c.get("/v2/video/generations", params={"generation_id": gen_id}).json()
            fresh: str = body["video"]["url"]
            return fresh, parse_qs(urlparse(fresh).query)

        polls = [poll(), poll()]
        time.sleep(1.1)
        polls.append(poll())
        for (_, a), (_, b) in ((polls[0], polls[1]), (polls[0], polls[2]), (polls[1], polls[2])):
            same_second = a["X-Amz-Date"] == b["X-Amz-Date"]
            assert (a["X-Amz-Signature"] == b["X-Amz-Signature"]) == same_second
        assert polls[2][1]["X-Amz-Date"] != polls[0][1]["X-Amz-Date"]
        assert polls[0][1]["X-Amz-Expires"] == ["600"]
        for fresh, _ in polls:
            ranged = httpx.get(fresh, headers={"Range": "bytes=0-7"})
            assert ranged.status_code == 206 and ranged.content[4:8] == b"ftyp"
