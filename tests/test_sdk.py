"""kinema.Client against a live `kinema serve` (all five models, errors, resumed waits and
downloads) and against tests/flaky_server.py (drops, 429/503, hangs, cut downloads)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kinema.client import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    DeadlineExceeded,
    Generation,
    GenerationFailed,
    InternalServerError,
    LocalValidationError,
    NotFoundError,
)
from tests.flaky_server import (
    GENERATIONS,
    Drop,
    File,
    FlakyServer,
    Hang,
    Json,
    completed,
    generation,
    start_later,
)
from tests.support import KinemaServer, MediaServer, free_port
from tests.videos import probe

STATUSES = {"queued", "generating", "completed"}
MODELS = [
    "veed/fabric-1.0", "pixverse/v5/image-to-video", "google/veo-3.1-lite-generate-001",
    "video-01", "google/veo-3.1-i2v-fast",
]  # fmt: skip


def model_cases(media: MediaServer) -> dict[str, dict[str, Any]]:
    """One small job per model. Inputs mix every accepted form: Path, str path, bytes, URL."""
    root, base = media.root, media.base
    return {
        "veed/fabric-1.0": {
            "image": root / "face.png", "audio": root / "hope.mp3", "resolution": "480p",
        },
        "pixverse/v5/image-to-video": {
            "image": str(root / "face.png"), "prompt": "she speaks", "resolution": "360p",
            "duration": 5, "lip_sync_tts_content": "Hello.", "lip_sync_tts_speaker": "Ava",
        },
        "google/veo-3.1-lite-generate-001": {
            "image": f"{base}/face.png", "last_image": root / "landscape.png",
            "prompt": "turn into a landscape", "resolution": "720p", "duration": 4,
            "generate_audio": False,
        },
        "video-01": {"image": (root / "landscape.png").read_bytes(), "prompt": "slow pan left"},
        "google/veo-3.1-i2v-fast": {
            "image": f"{base}/landscape.png", "prompt": "the camera pushes in",
            "resolution": "720p", "duration": 4, "generate_audio": False,
        },
    }  # fmt: skip


def check_video(done: Generation | Any, path: Path) -> None:
    assert done.status == "completed" and done.video is not None, done
    assert path.is_file() and path.stat().st_size == done.video.file_size
    assert not path.with_name(path.name + ".part").exists()
    info = probe(path)
    assert info.frames > 0 and (info.width, info.height) == (done.video.width, done.video.height)


def check_progress(seen: list[tuple[str, float | None]]) -> None:
    assert seen and seen[-1][0] == "completed", seen
    assert {status for status, _ in seen} <= STATUSES
    values = [p for _, p in seen if p is not None]
    assert all(0 <= p <= 100 for p in values) and values == sorted(values), seen


@pytest.fixture()
def client(server: KinemaServer) -> Any:
    with Client(server.base_url, server.key, timeout=30) as c:
        yield c


@pytest.mark.parametrize("model", MODELS)
def test_generate_each_model(
    client: Client, media: MediaServer, tmp_path: Path, model: str
) -> None:
    seen: list[tuple[str, float | None]] = []
    done = client.videos.generate(
        model, **model_cases(media)[model], timeout=120, poll_interval=0.2,
        on_progress=lambda g: seen.append((g.status, g.progress)),
    )  # fmt: skip
    check_progress(seen)
    assert done.model == model and done.credits_used and done.credits_used > 0
    path = done.download(tmp_path / "out.mp4")
    assert path == tmp_path / "out.mp4"
    check_video(done, path)


def test_create_wait_resume_and_download(
    client: Client, media: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = client.videos.create(
        "pixverse/v5/image-to-video", image=f"{media.base}/landscape.png", prompt="zoom out",
        resolution="360p",
    )  # fmt: skip
    assert created.status == "queued" and created.video is None and created.id
    assert client.videos.get(created.id).id == created.id
    # A deadline that passes leaves the job running; waiting again picks it up.
    with pytest.raises(DeadlineExceeded) as expired:
        client.videos.wait(created, timeout=0.01)
    assert expired.value.generation_id == created.id
    done = client.videos.wait(created.id, timeout=120, poll_interval=0.2)
    # Into a directory: the server's file name. A .part left by a cut run is resumed.
    assert done.video is not None and done.video.file_name
    full = client.videos.download(done.id, tmp_path)
    assert full == tmp_path / done.video.file_name
    check_video(done, full)
    data = full.read_bytes()
    again = tmp_path / "again.mp4"
    again.with_name("again.mp4.part").write_bytes(data[:1000])
    assert done.download(again).read_bytes() == data
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert done.download() == tmp_path / "cwd" / done.video.file_name


def test_failed_job_carries_the_servers_error(client: Client, media: MediaServer) -> None:
    with pytest.raises(GenerationFailed) as failed:
        client.videos.generate(
            "veed/fabric-1.0", image=media.root / "landscape.png", audio=media.root / "hope.mp3",
            timeout=120, poll_interval=0.2,
        )  # fmt: skip
    assert failed.value.error_name == "FaceNotFound"
    assert "face" in failed.value.error_message and failed.value.generation.failed


def test_status_errors_map_to_types(server: KinemaServer, client: Client) -> None:
    with pytest.raises(AuthenticationError) as unauthorized:
        Client(server.base_url, "kn-not-a-key").videos.get("anything")
    assert unauthorized.value.status_code == 401 and unauthorized.value.request_id
    with pytest.raises(NotFoundError) as missing:
        client.videos.get("no-such-generation")
    assert missing.value.status_code == 404 and "no-such-generation" in missing.value.message
    # Valid for the spec, refused by the server (no text-to-video engine): a server 400.
    with pytest.raises(BadRequestError) as refused:
        client.videos.create("google/veo-3.1-lite-generate-001", prompt="a cat")
    assert type(refused.value) is BadRequestError and refused.value.request_id
    # A model Kinema has no spec for goes to the server (the hosted API has more models).
    with pytest.raises(BadRequestError) as unknown:
        client.videos.create("kling-video/v1.6/standard/image-to-video", prompt="x")
    assert not isinstance(unknown.value, LocalValidationError)
    assert unknown.value.details[0]["field"] == "model"


def test_bad_requests_fail_locally_without_network(tmp_path: Path) -> None:
    # Nothing listens on this port: any request would be a connection error instead.
    offline = Client(f"http://127.0.0.1:{free_port()}", "k", max_retries=0)
    with pytest.raises(LocalValidationError) as bad_enum:
        offline.videos.create("veed/fabric-1.0", image_url="https://x/a.png",
                              audio_url="https://x/a.mp3", resolution="4k")  # fmt: skip
    assert isinstance(bad_enum.value, BadRequestError)
    assert bad_enum.value.details[0]["field"] == "resolution"
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as handle:  # sparse: the size check must not read it
        handle.truncate(21 * 1024 * 1024)
    problems = {
        "missing.png": tmp_path / "missing.png", "too big": huge,
        "not an image": tmp_path / "notes.txt",
    }  # fmt: skip
    (tmp_path / "notes.txt").write_text("hello")
    for label, path in problems.items():
        with pytest.raises(LocalValidationError) as info:
            offline.videos.create("video-01", image=path, prompt="x")
        assert info.value.details[0]["field"] == "image_url", label
    with pytest.raises(LocalValidationError, match="validation"):
        offline.videos.create("video-01", prompt="x", unknown_field=1)
    with pytest.raises(APIConnectionError):  # the same client does reach for the network
        offline.videos.get("x")


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINEMA_BASE_URL", "https://api.example.com/v2/")
    monkeypatch.delenv("KINEMA_API_KEY", raising=False)
    monkeypatch.setenv("AIMLAPI_KEY", "hosted-key")
    client = Client()
    assert (client.base_url, client.api_key) == ("https://api.example.com", "hosted-key")
    monkeypatch.setenv("KINEMA_API_KEY", "kinema-key")
    assert Client().api_key == "kinema-key" and Client(api_key="arg").api_key == "arg"
    with pytest.raises(ValueError, match="http"):
        Client("localhost:8000")
    # `import kinema` stays light: the SDK (and httpx) load on first use of kinema.Client.
    probe_code = "import kinema, sys; assert 'httpx' not in sys.modules; kinema.Client"
    assert subprocess.run([sys.executable, "-c", probe_code], check=False).returncode == 0


# --------------------------------------------------------------------- the flaky server
def test_get_retries_dropped_connections() -> None:
    with FlakyServer() as fake:
        busy = Json(503, {"message": "busy"}, {"Retry-After": "0"})
        fake.queue("GET", GENERATIONS, Drop(), busy, Json(200, generation("g", "generating",
                                                                         progress=40)))  # fmt: skip
        got = Client(fake.base_url, "k", max_retries=2).videos.get("g")
        assert got.status == "generating" and got.progress == 40
        assert len(fake.seen("GET")) == 3
        fake.queue("GET", GENERATIONS, Drop(), Drop())
        with pytest.raises(APIConnectionError):
            Client(fake.base_url, "k", max_retries=1).videos.get("g")


def test_submits_are_retried_with_one_idempotency_key(media: MediaServer) -> None:
    body: dict[str, Any] = {"prompt": "x", "image_url": f"{media.base}/landscape.png"}
    busy = Json(503, {"message": "store down"}, {"Retry-After": "0"})
    with FlakyServer() as fake:
        client = Client(fake.base_url, "k", max_retries=3)
        # The request arrived (a job may exist) but its answer did not, then a 503: both
        # retried with the same Idempotency-Key, which the server answers with that job.
        fake.queue("POST", GENERATIONS, Drop(), busy, Json(201, generation("g1", "queued")))
        made = client.videos.create("video-01", **body)
        first = fake.seen("POST")
        keys = {r.headers["idempotency-key"] for r in first}
        assert made.id == "g1" and len(first) == 3 and len({r.body for r in first}) == 1
        assert len(keys) == 1 and len(next(iter(keys))) == 36  # a uuid4
        # 429 is honoured with its Retry-After; a new call brings a new key.
        fake.queue("POST", GENERATIONS, Json(429, {"message": "slow down"}, {"Retry-After": "1"}),
                   Json(201, {"generation_id": "legacy-id", "status": "waiting"}))  # fmt: skip
        start = time.monotonic()
        made = client.videos.create("video-01", **body)
        assert time.monotonic() - start >= 1.0 and len(fake.seen("POST")) == 5
        assert (made.id, made.status, made.raw_status) == ("legacy-id", "queued", "waiting")
        second = {r.headers["idempotency-key"] for r in fake.seen("POST")[3:]}
        assert len(second) == 1 and not second & keys
        # Retries run out: the last error. A 409 is never retried.
        fake.queue("POST", GENERATIONS, busy, busy, busy, busy)
        with pytest.raises(InternalServerError) as down:
            client.videos.create("video-01", **body)
        assert down.value.status_code == 503 and len(fake.seen("POST")) == 9
        conflict = {"message": "Idempotency-Key 'order-1' was used with another body"}
        fake.queue("POST", GENERATIONS, Json(409, conflict))
        with pytest.raises(ConflictError, match="order-1"):
            client.videos.create("video-01", idempotency_key="order-1", **body)
        assert len(fake.seen("POST")) == 10
        assert fake.seen("POST")[-1].headers["idempotency-key"] == "order-1"
        # Kinema's other submit extensions: headers and a query parameter.
        fake.queue("POST", GENERATIONS, Json(201, generation("g2", "queued")))
        client.videos.create(
            "video-01", priority="low", start_timeout=30, run_timeout=90.5,
            webhook_url="https://hooks.example/kinema", **body,
        )  # fmt: skip
        sent = fake.seen("POST")[-1]
        assert sent.headers["x-kinema-priority"] == "low"
        assert float(sent.headers["x-kinema-start-timeout"]) == 30
        assert float(sent.headers["x-kinema-run-timeout"]) == 90.5
        assert sent.query == {"webhook_url": ["https://hooks.example/kinema"]}


def test_post_retried_when_the_connection_was_refused(media: MediaServer) -> None:
    port = free_port()
    late = start_later(port, 0.2, lambda s: s.fallback(
        "POST", GENERATIONS, Json(201, generation("late", "queued"))))  # fmt: skip
    client = Client(f"http://127.0.0.1:{port}", "k", max_retries=4)
    made = client.videos.create("video-01", prompt="x", image_url=f"{media.base}/wide.jpg")
    assert made.id == "late" and len(late[0].seen("POST")) == 1
    late[0].close()


def test_wait_spellings_deadline_and_hung_requests() -> None:
    with FlakyServer() as fake:
        fake.queue("GET", GENERATIONS, Json(200, generation("g", "waiting")),
                   Drop(), Json(200, generation("g", "active", progress=50)),
                   Json(200, completed("g", f"{fake.base_url}/f.mp4", 4)))  # fmt: skip
        client = Client(fake.base_url, "k", max_retries=0)
        seen: list[str] = []
        done = client.videos.wait("g", timeout=30, poll_interval=0.05,
                                  on_progress=lambda g: seen.append(g.raw_status))  # fmt: skip
        assert done.completed and seen == ["waiting", "active", "completed"]
        fake.queue("GET", GENERATIONS, Json(200, generation("g", "succeeded", video=[
            {"url": "http://x/v.mp4"}], meta={"usage": {"tokens_used": 7}})))  # fmt: skip
        listed = client.videos.wait("g")
        assert listed.video and listed.video.url == "http://x/v.mp4" and listed.credits_used == 7
        fake.queue("GET", GENERATIONS, Json(200, generation("g", "failed", error={
            "detail": [{"msg": "bad frame"}]})))  # fmt: skip
        with pytest.raises(GenerationFailed, match="bad frame"):
            client.videos.wait("g")
        fake.queue("GET", GENERATIONS, Json(200, generation("g", "done")))
        with pytest.raises(GenerationFailed) as no_video:
            client.videos.wait("g")
        assert no_video.value.error_name == "MissingVideo"
        # No events route on this server: the first wait learnt it, the others just poll.
        assert len(fake.seen("GET", GENERATIONS + "/events")) == 1
        for stuck in (Json(200, generation("g", "queued", queue_position=2)), Hang(10)):
            fake.fallback("GET", GENERATIONS, stuck)
            start = time.monotonic()
            with pytest.raises(DeadlineExceeded) as late:
                client.videos.wait("g", timeout=1.0, poll_interval=0.1)
            assert 0.9 <= time.monotonic() - start < 2.5, stuck  # not the 10 s hang
            assert late.value.generation_id == "g"


def test_download_resumes_after_a_cut(tmp_path: Path) -> None:
    data = bytes(range(256)) * 2000  # 512,000 bytes
    with FlakyServer() as fake:
        url = f"{fake.base_url}/v.mp4"
        done = Client(fake.base_url, "k")._make(completed("g", url, len(data)))
        fake.queue("GET", "/v.mp4", File(data, cut_after=100_000), Drop(),
                   File(data, cut_after=50_000), File(data))  # fmt: skip
        assert done.download(tmp_path / "a.mp4").read_bytes() == data
        ranges = [r.headers.get("range") for r in fake.seen("GET", "/v.mp4")]
        assert ranges == [None, "bytes=100000-", "bytes=100000-", "bytes=150000-"]
        # A server that ignores Range: start over; an expired link: poll for a fresh one.
        fake.queue("GET", "/v.mp4", File(data, cut_after=10), File(data, ignore_range=True))
        assert done.download(tmp_path / "b.mp4").read_bytes() == data
        fake.queue("GET", "/v.mp4", Json(404, {"message": "expired"}))
        fake.queue("GET", GENERATIONS, Json(200, completed("g", url + "?v=2", len(data))))
        fake.fallback("GET", "/v.mp4", File(data))
        assert done.download(tmp_path / "c.mp4").read_bytes() == data
        files = fake.seen("GET", "/v.mp4")
        assert files[-1].query == {"v": ["2"]}
        # Video links are pre-signed and may be on another host: the key never goes there.
        assert not any("authorization" in r.headers for r in files)
        assert all("authorization" in r.headers for r in fake.seen("GET"))
