"""Fake upstream providers: real HTTP servers on 127.0.0.1 speaking each provider's
documented contract, with fault injection.

- `aimlapi`: POST /v2/video/generations (Bearer, Idempotency-Key honoured),
  GET /v2/video/generations?generation_id=ID, the video at a signed /files/ URL.
- `openai`: POST /v1/videos (JSON or multipart with input_reference),
  GET /v1/videos/{id}, GET /v1/videos/{id}/content, DELETE /v1/videos/{id}.
- `fal`: POST /{app id} (`Authorization: Key`) -> request_id + status/response/cancel
  URLs on /{owner}/{app}/requests/{id}; status 202 IN_QUEUE/IN_PROGRESS then 200
  COMPLETED with metrics; result {video: {url}}; PUT .../cancel; 422 `detail: [{loc}]`.
- `replicate`: POST /v1/models/{owner}/{name}/predictions or /v1/predictions (Bearer,
  `Prefer: wait=N` honoured), GET /v1/predictions/{id}, POST /v1/predictions/{id}/cancel;
  output URL + metrics; 422 `invalid_fields`.
- `gemini`: POST /v1beta/models/{m}:predictLongRunning (`x-goog-api-key`) -> operation
  name; GET /v1beta/{name} (done/response/error); the video URI /v1beta/files/{id}:download
  needs the key and redirects to a /files/ URL (which records any key sent to it).

Faults are queued per operation ("submit", "poll", "download") and consumed one per
request: "429" (Retry-After: 0.05), "500", "502" (a gateway's), "503", "drop" (connection
closed without an answer), "slow" (the answer comes after `slow_seconds`), "malformed"
(not JSON), "expired" (the result URL answers 403: the next poll signs a fresh one),
"lost" (404 on a poll), "sent-then-drop" (the submit is accepted, then the connection
drops before the answer).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KEY = "sk-fake-upstream-secret-0123456789"


@dataclass
class FakeJob:
    id: str
    body: dict[str, Any]
    created: float
    multipart: bool = False
    token: int = 0  # the result URL's signature: each poll signs a fresh one


@dataclass
class FakeState:
    kind: str
    video: bytes
    complete_after: float = 0.2
    slow_seconds: float = 2.0
    faults: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    auth_seen: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    fail_with: dict[str, Any] | None = None  # the generation fails with this error
    cancelled: list[str] = field(default_factory=list)
    completed_seen: dict[str, float] = field(default_factory=dict)  # first "done" answer
    file_auth: list[str] = field(default_factory=list)  # credentials sent to /files/
    reject: dict[str, Any] | None = None  # submits answer 400 with this body
    reject_status: int = 400
    reject_result: dict[str, Any] | None = None  # fal: the result answers 422 with this
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault(self, op: str) -> str | None:
        with self.lock:
            queue = self.faults.get(op)
            return queue.pop(0) if queue else None


class FakeProvider:
    def __init__(self, kind: str, video: bytes, complete_after: float = 0.2) -> None:
        self.state = FakeState(kind, video, complete_after)
        state = self.state

        class Handler(_Handler):
            fake = state

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def inject(self, op: str, *faults: str) -> None:
        self.state.faults[op].extend(faults)

    @property
    def submits(self) -> int:
        return len(self.state.jobs)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # hundreds of concurrent clients (the benchmark)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeState
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ---- plumbing ------------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/json" if not isinstance(body, bytes) else "video/mp4"
        )
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.close()

    def _faulted(self, op: str) -> bool:
        fault = self.fake.fault(op)
        if fault is None or fault in ("expired", "lost", "sent-then-drop"):
            if fault is not None:
                self.fake.faults[op].insert(0, fault)  # handled by the operation itself
            return False
        if fault == "429":
            self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0.05"})
        elif fault in ("500", "502", "503"):
            self._send(int(fault), {"error": {"message": f"HTTP {fault} from the fake"}})
        elif fault == "drop":
            self._drop()
        elif fault == "malformed":
            self._send(200, b"{not json", {"Content-Type": "application/json"})
        elif fault == "slow":
            time.sleep(self.fake.slow_seconds)
            return False
        return True

    def _authorized(self) -> bool:
        kind = self.fake.kind
        if kind == "gemini":
            header = self.headers.get("x-goog-api-key", "")
            expected = KEY
        else:
            header = self.headers.get("Authorization", "")
            expected = f"Key {KEY}" if kind == "fal" else f"Bearer {KEY}"
        self.fake.auth_seen.append(header)
        if header != expected:
            self._send(401, {"error": {"message": "invalid api key"}})
            return False
        return True

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _done(self, job: FakeJob) -> bool:
        return time.monotonic() - job.created >= self.fake.complete_after

    def _take(self, op: str, name: str) -> bool:
        with self.fake.lock:
            queue = self.fake.faults.get(op)
            if queue and queue[0] == name:
                queue.pop(0)
                return True
        return False

    # ---- routes ------------------------------------------------------------------------
    def do_POST(self) -> None:
        self.fake.requests.append(("POST", self.path))
        body = self._body()
        if self._faulted("submit") or not self._authorized():
            return
        if self.fake.reject is not None:
            self._send(self.fake.reject_status, self.fake.reject)
            return
        path = urlsplit(self.path).path
        if self.fake.kind == "aimlapi" and path == "/v2/video/generations":
            key = self.headers.get("Idempotency-Key")
            with self.fake.lock:
                if key and key in self.fake.by_key:
                    job = self.fake.jobs[self.fake.by_key[key]]
                else:
                    job = FakeJob(uuid.uuid4().hex, json.loads(body), time.monotonic())
                    self.fake.jobs[job.id] = job
                    if key:
                        self.fake.by_key[key] = job.id
            if self._take("submit", "sent-then-drop"):
                self._drop()
                return
            self._send(
                201, {"id": job.id, "status": "queued", "meta": {"usage": {"credits_used": 1}}}
            )
        elif self.fake.kind == "openai" and path == "/v1/videos":
            multipart = self.headers.get("Content-Type", "").startswith("multipart/")
            if multipart:
                if b'name="input_reference"' not in body:
                    self._send(400, {"error": {"param": "input_reference", "message": "missing"}})
                    return
                fields = {"multipart": True}
            else:
                fields = json.loads(body)
            job = FakeJob("video_" + uuid.uuid4().hex, fields, time.monotonic(), multipart)
            with self.fake.lock:
                self.fake.jobs[job.id] = job
            if self._take("submit", "sent-then-drop"):
                self._drop()
                return
            self._send(200, {"id": job.id, "object": "video", "status": "queued", "progress": 0})
        elif self.fake.kind in ("fal", "replicate", "gemini"):
            self._post_more(path, body)
        else:
            self._send(404, {"error": {"message": "no such route"}})

    def do_GET(self) -> None:
        self.fake.requests.append(("GET", self.path))
        parts = urlsplit(self.path)
        if parts.path.startswith("/files/"):
            if self._faulted("download"):
                return
            self.fake.file_auth.append(
                self.headers.get("Authorization", "") + self.headers.get("x-goog-api-key", "")
            )
            _, _, job_id, token = parts.path.split("/", 3)
            job = self.fake.jobs.get(job_id)
            if self._take("download", "expired") or job is None or token != str(job.token):
                self._send(403, {"error": "expired"})
                return
            self._send(200, self.fake.video)
            return
        if self._faulted("poll") or not self._authorized():
            return
        if self._take("poll", "lost"):
            self._send(404, {"error": {"message": "not found"}})
            return
        if self.fake.kind == "aimlapi":
            job_id = parse_qs(parts.query).get("generation_id", [""])[0]
            job = self.fake.jobs.get(job_id)
            if job is None:
                self._send(404, {"message": "not found"})
                return
            if self.fake.fail_with is not None:
                self._send(200, {"id": job.id, "status": "error", "error": self.fake.fail_with})
            elif self._done(job):
                job.token += 1
                url = f"http://{self.headers['Host']}/files/{job.id}/{job.token}"
                self._send(200, {
                    "id": job.id, "status": "completed", "video": {"url": url},
                    "meta": {"usage": {"credits_used": 42}},
                })  # fmt: skip
            else:
                self._send(200, {"id": job.id, "status": "generating", "progress": 50})
            return
        if self.fake.kind in ("fal", "replicate", "gemini"):
            self._get_more(parts.path)
            return
        segments = parts.path.strip("/").split("/")
        if self.fake.kind == "openai" and segments[:2] == ["v1", "videos"] and len(segments) >= 3:
            job = self.fake.jobs.get(segments[2])
            if job is None or job.id in self.fake.deleted:
                self._send(404, {"error": {"message": "not found"}})
            elif len(segments) == 4 and segments[3] == "content":
                if self._faulted("download"):
                    return
                self._send(200, self.fake.video)
            elif self.fake.fail_with is not None:
                self._send(200, {"id": job.id, "status": "failed", "error": self.fake.fail_with})
            elif self._done(job):
                self._send(
                    200, {"id": job.id, "object": "video", "status": "completed", "progress": 100}
                )
            else:
                self._send(
                    200, {"id": job.id, "object": "video", "status": "in_progress", "progress": 40}
                )
            return
        self._send(404, {"error": {"message": "no such route"}})

    # ---- fal, replicate, gemini ------------------------------------------------------------
    def _new_job(self, job_id: str, body: dict[str, Any]) -> FakeJob | None:
        """Record a job; None when a "sent-then-drop" fault dropped the answer."""
        job = FakeJob(job_id, body, time.monotonic())
        with self.fake.lock:
            self.fake.jobs[job.id] = job
        if self._take("submit", "sent-then-drop"):
            self._drop()
            return None
        return job

    def _file_url(self, job: FakeJob) -> str:
        job.token += 1
        return f"http://{self.headers['Host']}/files/{job.id}/{job.token}"

    def _seen_done(self, job: FakeJob) -> None:
        self.fake.completed_seen.setdefault(job.id, time.time())

    def _post_more(self, path: str, raw: bytes) -> None:
        kind, host = self.fake.kind, f"http://{self.headers['Host']}"
        body = json.loads(raw or b"{}")
        segments = path.strip("/").split("/")
        if kind == "fal" and len(segments) >= 2 and "requests" not in segments:
            job = self._new_job(uuid.uuid4().hex, {"app": "/".join(segments), **body})
            if job is not None:
                root = f"{host}/{segments[0]}/{segments[1]}/requests/{job.id}"
                self._send(200, {
                    "request_id": job.id, "status": "IN_QUEUE", "queue_position": 0,
                    "status_url": f"{root}/status", "response_url": root,
                    "cancel_url": f"{root}/cancel",
                })  # fmt: skip
        elif kind == "replicate" and path.endswith("/cancel"):
            self.fake.cancelled.append(segments[-2])
            self._send(200, {"id": segments[-2], "status": "canceled"})
        elif kind == "replicate" and (
            path == "/v1/predictions" or (segments[:2] == ["v1", "models"] and
                                          segments[-1] == "predictions")
        ):  # fmt: skip
            model = "/".join(segments[2:4]) if segments[1] == "models" else None
            job = self._new_job(uuid.uuid4().hex[:26], {"model": model, **body})
            if job is None:
                return
            wait = self.headers.get("Prefer", "")
            if wait.startswith("wait"):
                seconds = float(wait.partition("=")[2] or 60)
                end = time.monotonic() + seconds
                while not self._done(job) and time.monotonic() < end:
                    time.sleep(0.02)
            self._send(201, self._prediction(job, host))
        elif kind == "gemini" and path.endswith(":predictLongRunning"):
            model = path.rsplit("/", 1)[-1].removesuffix(":predictLongRunning")
            job = self._new_job(uuid.uuid4().hex[:12], {"model": model, **body})
            if job is not None:
                self._send(200, {"name": f"models/{model}/operations/{job.id}"})
        else:
            self._send(404, {"error": {"message": "no such route"}})

    def _prediction(self, job: FakeJob, host: str) -> dict[str, Any]:
        get = f"{host}/v1/predictions/{job.id}"
        data: dict[str, Any] = {
            "id": job.id, "model": job.body.get("model"), "input": job.body.get("input"),
            "status": "processing", "output": None, "error": None,
            "urls": {"get": get, "cancel": f"{get}/cancel"},
        }  # fmt: skip
        if job.id in self.fake.cancelled:
            data["status"] = "canceled"
        elif self.fake.fail_with is not None:
            data.update(status="failed", error=self.fake.fail_with.get("message"))
        elif self._done(job):
            self._seen_done(job)
            data.update(status="succeeded", output=self._file_url(job),
                        metrics={"predict_time": 12.5, "total_time": 13.0})  # fmt: skip
        return data

    def _get_more(self, path: str) -> None:
        kind, host = self.fake.kind, f"http://{self.headers['Host']}"
        segments = path.strip("/").split("/")
        if kind == "fal" and len(segments) >= 4 and segments[2] == "requests":
            job = self.fake.jobs.get(segments[3])
            if job is None:
                self._send(404, {"detail": "Request not found"})
            elif len(segments) == 5 and segments[4] == "status":
                if self.fake.fail_with is not None:
                    self._send(200, {"status": "COMPLETED", "error": self.fake.fail_with[
                        "message"], "error_type": self.fake.fail_with.get("name")})  # fmt: skip
                elif self._done(job):
                    self._seen_done(job)
                    self._send(200, {"status": "COMPLETED", "response_url": path,
                                     "metrics": {"inference_time": 12.5}})  # fmt: skip
                else:
                    self._send(202, {"status": "IN_PROGRESS", "queue_position": 0})
            elif len(segments) == 4:
                if self.fake.reject_result is not None:
                    self._send(422, self.fake.reject_result)
                else:
                    self._send(200, {"video": {"url": self._file_url(job),
                                               "content_type": "video/mp4"}})  # fmt: skip
            else:
                self._send(404, {"detail": "no such route"})
        elif kind == "replicate" and segments[:2] == ["v1", "predictions"] and len(segments) == 3:
            job = self.fake.jobs.get(segments[2])
            if job is None:
                self._send(404, {"detail": "Not found.", "status": 404})
            else:
                self._send(200, self._prediction(job, host))
        elif kind == "gemini" and path.endswith(":download"):
            job = self.fake.jobs.get(segments[-1].removesuffix(":download"))
            if job is None:
                self._send(404, {"error": {"code": 404, "message": "not found"}})
            else:
                self.send_response(302)
                self.send_header("Location", self._file_url(job))
                self.send_header("Content-Length", "0")
                self.end_headers()
        elif kind == "gemini" and "operations" in segments:
            job = self.fake.jobs.get(segments[-1])
            name = "/".join(segments[1:])
            if job is None:
                self._send(404, {"error": {"code": 404, "message": "not found"}})
            elif self.fake.fail_with is not None:
                self._send(200, {"name": name, "done": True, "error": {
                    "code": 3, "message": self.fake.fail_with["message"]}})  # fmt: skip
            elif self._done(job):
                self._seen_done(job)
                uri = f"{host}/v1beta/files/{job.id}:download?alt=media"
                self._send(200, {"name": name, "done": True, "response": {
                    "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta."
                    "PredictLongRunningResponse",
                    "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]},
                }})  # fmt: skip
            else:
                self._send(200, {"name": name, "done": False})
        else:
            self._send(404, {"error": {"message": "no such route"}})

    def do_PUT(self) -> None:
        self.fake.requests.append(("PUT", self.path))
        self._body()
        if not self._authorized():
            return
        segments = urlsplit(self.path).path.strip("/").split("/")
        if self.fake.kind == "fal" and segments[-1] == "cancel":
            self.fake.cancelled.append(segments[-2])
            self._send(202, {"status": "CANCELLATION_REQUESTED"})
        else:
            self._send(404, {"detail": "no such route"})

    def do_DELETE(self) -> None:
        self.fake.requests.append(("DELETE", self.path))
        if not self._authorized():
            return
        job_id = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
        self.fake.deleted.append(job_id)
        self._send(200, {"id": job_id, "object": "video.deleted", "deleted": True})
