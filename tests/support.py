"""Test helpers that run real things: a `kinema serve` process on 127.0.0.1, a static
media server, real images made with PIL."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from kinema.testing import InProcess

TEST_KEY = "kn-test-key-0123456789abcdefghijklmnopqrstuvwxyz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_image(
    width: int, height: int, fmt: str = "PNG", mode: str = "RGB", seed: int = 0
) -> bytes:
    """A real, textured picture (gradients, circles, stripes) so motion and crops show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(x / 37.0 + seed)
    g = 128 + 100 * np.cos(y / 23.0)
    b = 128 + 100 * np.sin((x + y) / 51.0)
    img = np.stack([r, g, b], axis=-1)
    for _ in range(6):
        cx, cy, rad = rng.integers(0, width), rng.integers(0, height), rng.integers(20, 120)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < rad**2
        img[mask] = rng.integers(0, 255, 3)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").convert(mode)
    out = io.BytesIO()
    pil.save(out, fmt)
    return out.getvalue()


def make_face(size: int = 720, fmt: str = "PNG") -> bytes:
    """A real face photo (scikit-image's astronaut), scaled to `size` square."""
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((size, size), Image.LANCZOS).save(out, fmt)
    return out.getvalue()


def make_speech_mp3(text: str, speaker: str = "Jack") -> bytes:
    """Real speech (offline TTS) encoded as MP3 with PyAV: the talking-head input."""
    import av

    from kinema.media.speech import synthesize

    speech = synthesize(text, speaker)
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=speech.sample_rate, layout="mono")
        samples = (np.clip(speech.samples, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = speech.sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class MediaServer:
    """Serves files from a directory on 127.0.0.1 (the seeds' media URLs point here)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return f"{self.base}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()


class KinemaServer:
    """`kinema serve` as a subprocess, the way a user runs it."""

    def __init__(self, data_dir: Path, workers: int = 1, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.key = TEST_KEY
        self.env = {
            **os.environ,
            "KINEMA_DATA_DIR": str(data_dir),
            "KINEMA_API_KEY": TEST_KEY,
            "KINEMA_ALLOW_PRIVATE_URLS": "1",
            "KINEMA_WORKERS": str(workers),
            "KINEMA_LEASE_SECONDS": "4",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "serve.log"

    def start(self, timeout: float = 60) -> KinemaServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kinema", "serve", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kinema serve exited:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"kinema serve did not come up:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def kill_all(self) -> None:
        """SIGKILL the server and its whole process group (workers included)."""
        assert self.proc is not None
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=30)


def wait_for(
    client: httpx.Client, gen_id: str, timeout: float = 120, path: str = "/v2/video/generations"
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(path, params={"generation_id": gen_id}).json()
        if body["status"] in ("completed", "error"):
            return body
        time.sleep(0.25)
    raise AssertionError(f"generation {gen_id} did not finish in {timeout} s")


@contextmanager
def running(server: KinemaServer) -> Iterator[KinemaServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def finish(
    service: InProcess, client: httpx.Client, gen_id: str, path: str = "/v2/video/generations"
) -> dict[str, Any]:
    """In-process counterpart of `wait_for`: run every queued job to its end on this
    thread, then poll `gen_id` once; it must have finished."""
    service.work()
    body: dict[str, Any] = client.get(path, params={"generation_id": gen_id}).json()
    assert body["status"] in ("completed", "error"), body
    return body


def children(pid: int) -> list[int]:
    """The child processes of `pid` (e.g. `kinema serve`'s embedded workers)."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        text = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        found += [int(t) for t in text]
    return found
