"""A multi-process Kinema cluster on one machine, for the scale-out tests and `make chaos`:
N API processes (`kinema serve --workers 0`) and M standalone workers (`kinema worker`)
sharing PostgreSQL (a private schema on 127.0.0.1:5432) and S3 (moto's real server).

`python -m tests.cluster --jobs 200 --kills 20` runs the full chaos scenarios; the test
suite runs the same code with smaller numbers (tests/test_cluster.py).
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.support import TEST_KEY, MediaServer, free_port, make_image

PG_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PATH = "/v2/video/generations"
BUCKET = "kinema-chaos"


class Cluster:
    def __init__(
        self, root: Path, apis: int = 2, workers: int = 3, credits: int | None = None,
        attempts: int = 3,
    ) -> None:  # fmt: skip
        self.root = root
        self.schema = "kinema_cluster_" + secrets.token_hex(4)
        self.database_url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api_urls: list[str] = []
        self.n_apis, self.n_workers = apis, workers
        self.worker_names = itertools.count()
        self.credits = credits
        self.attempts = attempts
        self.key = TEST_KEY

    # -- processes ------------------------------------------------------------------
    def env(self, name: str) -> dict[str, str]:
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "KINEMA_DATA_DIR": str(data_dir),
            "KINEMA_DATABASE_URL": self.database_url,
            "KINEMA_STORAGE_URL": f"s3://{BUCKET}/videos",
            "KINEMA_S3_ENDPOINT_URL": self.s3,
            "KINEMA_S3_ACCESS_KEY_ID": "test",
            "KINEMA_S3_SECRET_ACCESS_KEY": "test",
            "KINEMA_S3_CREATE_BUCKET": "1",
            "KINEMA_ALLOW_PRIVATE_URLS": "1",
            "KINEMA_ENGINES": "motion",
            "KINEMA_LEASE_SECONDS": "3",
            "KINEMA_MAX_ATTEMPTS": str(self.attempts),
            "KINEMA_MAX_PENDING_PER_KEY": "100000",
            "KINEMA_AUTH_CACHE_SECONDS": "30",
        }

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        with open(self.root / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "kinema", *args], env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def start_worker(self) -> str:
        name = f"worker{next(self.worker_names)}"
        self._spawn(name, ["worker"], self.env(name))
        return name

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.schema}"))
        admin.dispose()
        port = free_port()
        self.s3 = f"http://127.0.0.1:{port}"
        with open(self.root / "moto.log", "ab") as log:
            self.procs["moto"] = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._wait(self.s3 + "/moto-api/")
        for i in range(self.n_apis):
            api_port = free_port()
            env = {**self.env(f"api{i}"), "KINEMA_API_KEY": self.key}
            self._spawn(f"api{i}", ["serve", "--workers", "0", "--port", str(api_port)], env)
            self.api_urls.append(f"http://127.0.0.1:{api_port}")
            self._wait(self.api_urls[-1] + "/health")  # one at a time: one runs migrations
        if self.credits is not None:
            subprocess.run(
                [sys.executable, "-m", "kinema", "keys", "credit", self.key[:10], "--add",
                 str(self.credits)], env=self.env("cli"), check=True, capture_output=True,
            )  # fmt: skip
        for _ in range(self.n_workers):
            self.start_worker()
        return self

    def _wait(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{url} did not come up; logs in {self.root}")

    def stop(self) -> None:
        for proc in self.procs.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
        admin.dispose()

    # -- clients --------------------------------------------------------------------
    def client(self, i: int) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_urls[i % len(self.api_urls)],
            headers={"Authorization": f"Bearer {self.key}"}, timeout=30,
        )  # fmt: skip

    def db(self) -> Any:
        return create_engine(self.database_url)

    def running_worker_pid(self) -> int | None:
        """The pid of a worker currently running a job (from the workers table)."""
        engine = self.db()
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT pid FROM workers WHERE current_job IS NOT NULL LIMIT 1")
            ).first()
        engine.dispose()
        return int(row[0]) if row else None


@contextmanager
def cluster(root: Path, **kwargs: Any) -> Iterator[Cluster]:
    c = Cluster(root, **kwargs)
    try:
        yield c.start()
    finally:
        c.stop()


def submit_round_robin(c: Cluster, body: dict[str, Any], count: int) -> list[str]:
    ids = []
    clients = [c.client(i) for i in range(len(c.api_urls))]
    for n in range(count):
        r = clients[n % len(clients)].post(PATH, json=body)
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


def wait_all(c: Cluster, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll each job through the API it was NOT submitted to, until all are final."""
    clients = [c.client(i + 1) for i in range(len(c.api_urls))]
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids) and time.monotonic() < deadline:
        for n, gen_id in enumerate(ids):
            if gen_id in done:
                continue
            body = clients[n % len(clients)].get(PATH, params={"generation_id": gen_id}).json()
            if body["status"] in ("completed", "error"):
                done[gen_id] = body
        time.sleep(0.5)
    missing = [i for i in ids if i not in done]
    assert not missing, f"{len(missing)} jobs unfinished after {timeout} s"
    return done


def small_job(media: MediaServer) -> dict[str, Any]:
    url = media.add("chaos.png", make_image(640, 360, "PNG", seed=7))
    return {"model": "pixverse/v5/image-to-video", "prompt": "pan right", "image_url": url,
            "resolution": "360p"}  # fmt: skip


def main() -> None:
    from tests.test_cluster import scenario_database_drops, scenario_kills, scenario_round_robin

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kinema-chaos-") as tmp:
        root = Path(tmp)
        media = MediaServer(root / "media")
        started = time.monotonic()
        scenario_round_robin(root / "rr", media, args.jobs)
        print(f"round robin: {args.jobs} jobs via 2 APIs + 3 workers: ok "
              f"({time.monotonic() - started:.0f} s)")  # fmt: skip
        started = time.monotonic()
        scenario_kills(root / "kills", media, args.kills)
        print(f"{args.kills} worker SIGKILLs mid-job: every job completed exactly once "
              f"({time.monotonic() - started:.0f} s)")  # fmt: skip
        started = time.monotonic()
        scenario_database_drops(root / "db", media, 40)
        print(f"database connections killed under load: no 500s, no lost job "
              f"({time.monotonic() - started:.0f} s)")  # fmt: skip
        media.close()


if __name__ == "__main__":
    main()
