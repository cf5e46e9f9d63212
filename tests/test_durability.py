"""Jobs survive crashes: SIGKILL of a worker mid-job, SIGKILL of the whole server, a
restart with queued jobs, and a graceful SIGTERM drain. Real processes, real SQLite."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import psutil

from tests.support import KinemaServer, MediaServer, wait_for
from tests.videos import assert_video, download

UNIFIED = "/v2/video/generations"


def long_job(media: MediaServer) -> dict[str, object]:
    # ~200 frames at 1080p: long enough to be caught mid-job on 2 cores.
    return {"model": "google/veo-3.1-i2v-fast", "prompt": "slow zoom in",
            "image_url": f"{media.base}/wide.jpg", "generate_audio": False}  # fmt: skip


def short_job(media: MediaServer) -> dict[str, object]:
    return {"model": "pixverse/v5/image-to-video", "prompt": "pan right",
            "image_url": f"{media.base}/landscape.png", "resolution": "360p"}  # fmt: skip


def worker_pids(server: KinemaServer) -> list[int]:
    assert server.proc is not None
    children = psutil.Process(server.proc.pid).children(recursive=True)
    return [p.pid for p in children if "worker" in " ".join(p.cmdline())]


def wait_generating(c: httpx.Client, gen_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = c.get(UNIFIED, params={"generation_id": gen_id}).json()
        if body["status"] == "generating" and body["progress"] > 5:
            return
        assert body["status"] != "completed", "job finished before it could be interrupted"
        time.sleep(0.1)
    raise AssertionError("job never started generating")


def test_sigkill_worker_mid_job(tmp_path: Path, media: MediaServer) -> None:
    server = KinemaServer(tmp_path / "k", workers=1).start()
    try:
        with server.client() as c:
            gen_id = c.post(UNIFIED, json=long_job(media)).json()["id"]
            wait_generating(c, gen_id)
            [pid] = worker_pids(server)
            os.kill(pid, signal.SIGKILL)
            # The pool restarts the worker; the dead worker's lease (4 s) expires and the
            # job runs again from the start.
            done = wait_for(c, gen_id, timeout=120)
            assert done["status"] == "completed", done
            assert worker_pids(server) != [pid]
            mp4 = download(done["video"]["url"], tmp_path / "out.mp4")
            assert_video(mp4, seconds=8, short_side=1080, audio=False)
            assert "re-queued" in server.log()
    finally:
        server.stop()


def test_restart_with_queued_jobs_and_server_sigkill(tmp_path: Path, media: MediaServer) -> None:
    data = tmp_path / "k"
    api_only = KinemaServer(data, workers=0).start()
    with api_only.client() as c:
        queued = [c.post(UNIFIED, json=short_job(media)).json()["id"] for _ in range(3)]
        for gen_id in queued:
            body = c.get(UNIFIED, params={"generation_id": gen_id}).json()
            assert body["status"] == "queued"
        assert [
            c.get(UNIFIED, params={"generation_id": g}).json()["queue_position"] for g in queued
        ] == [0, 1, 2]
    assert api_only.stop() == 0

    crashing = KinemaServer(data, workers=1).start()
    with crashing.client() as c:
        running = c.post(UNIFIED, json=long_job(media)).json()["id"]
        # The queued jobs run first; catch the long one mid-flight and kill everything.
        wait_generating(c, running, timeout=120)
    crashing.kill_all()

    restarted = KinemaServer(data, workers=1).start()
    try:
        with restarted.client() as c:
            for gen_id in [*queued, running]:
                done = wait_for(c, gen_id, timeout=120)
                assert done["status"] == "completed", done
    finally:
        restarted.stop()


def test_sigterm_drains_the_running_job(tmp_path: Path, media: MediaServer) -> None:
    data = tmp_path / "k"
    server = KinemaServer(data, workers=1).start()
    with server.client() as c:
        gen_id = c.post(UNIFIED, json=long_job(media)).json()["id"]
        wait_generating(c, gen_id)
    assert server.stop(signal.SIGTERM) == 0
    # The worker finished the job before exiting: it is complete without any restart work.
    again = KinemaServer(data, workers=0).start()
    try:
        with again.client() as c:
            body = c.get(UNIFIED, params={"generation_id": gen_id}).json()
            assert body["status"] == "completed", body
    finally:
        again.stop()


def test_ssrf_refusals_and_pending_limit(tmp_path: Path, media: MediaServer) -> None:
    server = KinemaServer(
        tmp_path / "k",
        workers=0,
        KINEMA_ALLOW_PRIVATE_URLS="0",
        KINEMA_MAX_PENDING_PER_KEY="2",
        KINEMA_ENGINES="motion",
    ).start()
    try:
        with server.client() as c:
            for url in ["http://127.0.0.1:9/x.png", "http://[::1]/x.png", "http://10.1.2.3/a",
                        "http://169.254.169.254/latest/meta-data/", "http://localhost/x.png",
                        "http://2130706433/x.png", "http://0x7f.1/x.png"]:  # fmt: skip
                r = c.post(UNIFIED, json={"model": "video-01", "prompt": "p", "image_url": url})
                assert r.status_code == 400, (url, r.text)
                assert r.json()["details"][0]["field"] == "image_url"
            # This deployment runs only the motion engine: what needs another is refused.
            for body in [
                {"model": "veed/fabric-1.0", "image_url": "https://example.com/a.png",
                 "audio_url": "https://example.com/a.mp3"},
                {"model": "pixverse/v5/image-to-video", "prompt": "p",
                 "image_url": "https://example.com/a.png", "lip_sync_tts_content": "hello",
                 "lip_sync_tts_speaker": "Chloe"},
                {"model": "veo-3.1-lite-generate-001", "prompt": "p",
                 "image_url": "https://example.com/a.png", "last_image_url": "https://example.com/b.png"},
            ]:  # fmt: skip
                r = c.post(UNIFIED, json=body)
                assert r.status_code == 400 and "has no engine for" in r.json()["message"]
            # Veo dialogue falls back to the camera move (with room tone) instead.
            veo = {"model": "google/veo-3.1-i2v-fast", "prompt": "She says: 'Hello there'",
                   "image_url": "https://example.com/a.png"}  # fmt: skip
            assert c.post(UNIFIED, json=veo).status_code == 201
            # No worker runs here, so jobs stay queued and the per-key limit bites.
            body = {"model": "video-01", "prompt": "p", "image_url": "https://example.com/a.png"}
            assert c.post(UNIFIED, json=body).status_code == 201
            limited = c.post(UNIFIED, json=body)
            assert limited.status_code == 429 and limited.headers["retry-after"]
            assert "Too Many Requests" in limited.json()["message"]
    finally:
        server.stop()
