"""The wire contract against a real `kinema serve` subprocess: what the in-process tests
(tests/test_api.py) cannot see. A job end to end over real sockets (uvicorn, a worker
process, the signed download link), the body limit on a streamed request with no
Content-Length, and the worker processes reported live by /ready and /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support import KinemaServer, MediaServer, wait_for
from tests.videos import assert_video, download

UNIFIED = "/v2/video/generations"


def assert_envelope(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"message", "path", "requestId", "statusCode", "timestamp"}
    assert body["statusCode"] == status
    assert body["requestId"] == response.headers["x-inference-id"]
    assert "Traceback" not in response.text


def test_a_job_end_to_end_over_http(
    server: KinemaServer, media: MediaServer, tmp_path: Path
) -> None:
    with server.client() as c:
        r = c.post(UNIFIED, json={
            "model": "pixverse/v5/image-to-video", "prompt": "zoom in slowly",
            "image_url": f"{media.base}/landscape.png", "resolution": "360P", "duration": "5",
        })  # fmt: skip
        assert r.status_code == 201, r.text
        done = wait_for(c, r.json()["id"])
        assert done["status"] == "completed", done
        # The signed link is fetched over the network, without the API key, with Range.
        mp4 = download(done["video"]["url"], tmp_path / "out.mp4")
        assert_video(mp4, seconds=5, short_side=360, audio=False, aspect=16 / 9)
        ranged = httpx.get(done["video"]["url"], headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206 and len(ranged.content) == 100
        assert ranged.content[4:8] == b"ftyp"
        tampered = done["video"]["url"].replace("signature=", "signature=x")
        assert httpx.get(tampered).status_code == 404


def test_body_too_large(server: KinemaServer) -> None:
    big = b"x" * (65 * 1024 * 1024)
    with server.client() as c:
        r = c.post(UNIFIED, content=big, headers={"content-type": "application/json"})
        assert_envelope(r, 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            for _ in range(65):
                yield b"x" * (1024 * 1024)

        r = c.post(UNIFIED, content=chunks(), headers={"content-type": "application/json"})
        assert_envelope(r, 413)
        assert c.get("/health").status_code == 200  # still serving


def test_ready_and_metrics_count_the_worker_process(server: KinemaServer) -> None:
    # The worker process reports itself once its engines are loaded: wait for that (a
    # condition with a deadline, not a fixed sleep), then both endpoints agree.
    deadline = time.monotonic() + 60
    ready = httpx.get(server.base_url + "/ready").json()
    while ready["workers"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        ready = httpx.get(server.base_url + "/ready").json()
    assert ready["status"] == "ok" and ready["workers"] == 1, ready
    assert "image-to-video" in ready["capabilities"]
    assert "kinema_workers_live 1.0" in httpx.get(server.base_url + "/metrics").text
