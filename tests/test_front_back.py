"""Kinema in front of Kinema, no fakes: a front server routes video-01 and Veo Lite to a
back server (kind `aimlapi`) that runs `testcard`. The front's worker is SIGKILLed while
it waits; the back must still see exactly one job per request."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

from tests.support import TEST_KEY, KinemaServer, children, wait_for
from tests.videos import download, probe

DRAGON = (
    "A menacing evil dragon appears in a distance above the tallest mountain, then rushes "
    "toward the camera with its jaws open, revealing massive fangs. We see it’s coming."
)
VEO = "google/veo-3.1-lite-generate-001"


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def test_front_routes_to_back_and_survives_a_killed_worker(tmp_path: Path) -> None:
    back = KinemaServer(tmp_path / "back", workers=1, KINEMA_ENGINES="testcard")
    # A Kinema back honours Idempotency-Key, hence `idempotent`.
    upstreams = {"back": {"kind": "aimlapi", "base_url": back.base_url, "api_key_env": "BACK_KEY",
                          "poll_seconds": 0.3, "idempotent": True}}  # fmt: skip
    front = KinemaServer(
        tmp_path / "front", workers=1, KINEMA_ENGINES="motion", BACK_KEY=TEST_KEY,
        KINEMA_UPSTREAMS=json.dumps(upstreams),
        KINEMA_ROUTES=json.dumps({"video-01": ["back"], VEO: ["motion", "back"]}),
    )  # fmt: skip
    back.start()
    try:
        front.start()
        try:
            with front.client() as client:
                ids = [
                    client.post("/v2/video/generations", json=body).json()["id"]
                    for body in (
                        {"model": "veo-3.1-lite-generate-001", "prompt": DRAGON},
                        {"model": "video-01", "prompt": DRAGON},
                    )
                ]
                front_db = tmp_path / "front" / "kinema.db"
                deadline = time.monotonic() + 60
                while True:  # both accepted upstream: kill the front's worker mid-wait
                    states = rows(front_db, "select upstream from jobs")
                    if all(s[0] and '"accepted"' in str(s[0]) for s in states):
                        break
                    assert time.monotonic() < deadline, front.log()
                    time.sleep(0.05)
                assert front.proc is not None
                for pid in children(front.proc.pid):
                    os.kill(pid, signal.SIGKILL)
                for gen_id in ids:
                    result = wait_for(client, gen_id, timeout=90)
                    assert result["status"] == "completed", (result, front.log())
                    assert result["meta"]["backend"] == "back"
                    assert result["video"]["url"].startswith(front.base_url)
                    p = probe(download(result["video"]["url"], tmp_path / f"{gen_id}.mp4"))
                    assert p.height == 720
            back_jobs = rows(tmp_path / "back" / "kinema.db", "select model from jobs")
            assert sorted(m for (m,) in back_jobs) == ["veo-3.1-lite-generate-001", "video-01"]
        finally:
            front.stop()
    finally:
        back.stop()
