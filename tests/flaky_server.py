"""A scripted HTTP server on 127.0.0.1 for the SDK's failure paths: it drops connections,
answers 429/503 with Retry-After, hangs, and cuts downloads midway. Every request is
recorded; each one takes the next action queued for its method and path, else the
fallback for that method and path, else a 404."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

GENERATIONS = "/v2/video/generations"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Drop:
    """Read the request, then close the connection without a word."""


@dataclass
class Hang:
    """Hold the request this long, then drop it."""

    seconds: float


@dataclass
class Json:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class File:
    """Serve `data` as video/mp4 with Range support; `cut_after`: announce the full length
    but send only this many bytes, then close (a transfer cut midway). `ignore_range`:
    always answer 200 with everything, like a server without Range support."""

    data: bytes
    cut_after: int | None = None
    ignore_range: bool = False


Action = Drop | Hang | Json | File
Fallback = Callable[[Seen], Action]


class FlakyServer:
    def __init__(self, port: int | None = None) -> None:
        self.requests: list[Seen] = []
        self._script: dict[tuple[str, str], deque[Action]] = defaultdict(deque)
        self._fallback: dict[tuple[str, str], Fallback] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()}, body)  # fmt: skip
                outer._perform(self, outer._next(seen))

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    # -- scripting ---------------------------------------------------------------------
    def queue(self, method: str, path: str, *actions: Action) -> None:
        with self._lock:
            self._script[(method, path)].extend(actions)

    def fallback(self, method: str, path: str, answer: Fallback | Action) -> None:
        self._fallback[(method, path)] = answer if callable(answer) else (lambda _seen: answer)

    def seen(self, method: str, path: str = GENERATIONS) -> list[Seen]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FlakyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving -----------------------------------------------------------------------
    def _next(self, seen: Seen) -> Action:
        key = (seen.method, seen.path)
        with self._lock:
            self.requests.append(seen)
            if self._script[key]:
                return self._script[key].popleft()
        if key in self._fallback:
            return self._fallback[key](seen)
        return Json(404, {"message": f"Cannot {seen.method} {seen.path}", "statusCode": 404})

    def _perform(self, handler: BaseHTTPRequestHandler, action: Action) -> None:
        if isinstance(action, Hang):
            time.sleep(action.seconds)
        if isinstance(action, Drop | Hang):
            handler.close_connection = True
            return
        if isinstance(action, Json):
            payload = json.dumps(action.body).encode()
            handler.send_response(action.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in action.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
            return
        self._serve_file(handler, action)

    @staticmethod
    def _serve_file(handler: BaseHTTPRequestHandler, action: File) -> None:
        data, start = action.data, 0
        wanted = handler.headers.get("Range", "")
        if wanted.startswith("bytes=") and not action.ignore_range:
            start = int(wanted[6:].split("-")[0])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if action.cut_after is not None:
            handler.wfile.write(body[: action.cut_after])
            handler.wfile.flush()
            # Close hard so the client sees the body end early, not a slow server.
            handler.connection.shutdown(socket.SHUT_RDWR)
            handler.close_connection = True
            return
        handler.wfile.write(body)


def generation(gen_id: str, status: str, **extra: Any) -> dict[str, Any]:
    """A poll answer in the wire contract's shape."""
    body: dict[str, Any] = {
        "id": gen_id, "status": status, "model": "video-01", "video": None, "error": None,
        "meta": {"usage": {"credits_used": 432000}},
    }  # fmt: skip
    body.update(extra)
    return body


def completed(gen_id: str, url: str, size: int) -> dict[str, Any]:
    video = {"url": url, "content_type": "video/mp4", "file_name": f"{gen_id}.mp4",
             "file_size": size, "duration": 6.0, "width": 720, "height": 720}  # fmt: skip
    return generation(gen_id, "completed", video=video)


def start_later(port: int, delay: float, setup: Callable[[FlakyServer], None]) -> list[FlakyServer]:
    """Start a FlakyServer on `port` after `delay` seconds; until then connections are
    refused (the "server not up yet" case). The returned list receives the server."""
    started: list[FlakyServer] = []

    def run() -> None:
        time.sleep(delay)
        server = FlakyServer(port)
        setup(server)
        started.append(server)

    threading.Thread(target=run, daemon=True).start()
    return started
