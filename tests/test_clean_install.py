"""`pip install .` into a fresh virtualenv, the way a user without make installs Kinema,
then a real `kinema serve` from that venv.

Bare (no extras): the server must come up and stay up, with one worker that never
restarts, and answer every request of the five seed models with a 400 that names the
engine it needs and what to install, never a 500. Then with the `engines` extra but not
the face model: the camera-move and morph requests complete, the face engines' requests
get a 400 pointing at `kinema setup`, and `kinema setup` installs the model.

pip's cache (and the local wheel index) make the installs take seconds, not minutes."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support import KinemaServer, MediaServer, make_image, wait_for

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parent.parent
PIP_TIMEOUT = 400
MEDIA_MODULES = ("av", "cv2", "numpy", "PIL", "espeakng_loader", "mediapipe")
# The `python -m kinema` of a child must find the venv's Kinema, nothing of ours.
_DROP = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _DROP}, **extra}


def _pip(venv: Path, *args: str) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", *args],
        env=_env(), capture_output=True, text=True, timeout=PIP_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _present(venv: Path) -> set[str]:
    probe = "import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if u.find_spec(m)])"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe, *MEDIA_MODULES],
        env=_env(), capture_output=True, text=True, check=True, cwd=venv,
    )  # fmt: skip
    return set(done.stdout.split())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as a user checks it out (pyproject, README, src), copied so pip's
    in-tree build leaves nothing in the shared working tree."""
    root = tmp_path_factory.mktemp("kinema-src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(
        REPO / "src", root / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def venv(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install <kinema>` and no extras."""
    path = tmp_path_factory.mktemp("clean") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    _pip(path, str(source))
    assert (path / "bin" / "kinema").exists()
    return path


class VenvServer(KinemaServer):
    """`<venv>/bin/kinema serve`, started outside the repository with a clean environment."""

    def __init__(self, venv: Path, data_dir: Path) -> None:
        super().__init__(data_dir, workers=1)
        self.venv = venv
        self.env = _env(**{k: v for k, v in self.env.items() if k.startswith("KINEMA_")})
        self.env["PYTHONUNBUFFERED"] = "1"

    def start(self, timeout: float = 60) -> VenvServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "kinema"), "serve", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.data_dir,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kinema serve exited:\n{self.log()}")
            try:
                ready = httpx.get(self.base_url + "/ready", timeout=1)
                if ready.status_code == 200 and ready.json()["workers"] == 1:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"kinema serve did not come up:\n{self.log()}")

    def full_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return sorted(child.pid for child in psutil.Process(self.proc.pid).children())


def _requests(media: MediaServer) -> dict[str, tuple[str, dict[str, Any], str]]:
    """name -> (route, body, the engine it needs): the seed models' requests."""
    face, portrait, wide = (f"{media.base}/{n}" for n in ("face.png", "portrait.jpg", "wide.jpg"))
    inline = "data:image/png;base64," + base64.b64encode(make_image(640, 480)).decode()
    unified, minimax = "/v2/video/generations", "/v2/generate/video/minimax/generation"
    pixverse = "/v2/generate/video/pixverse/generation"
    return {
        "fabric": (unified, {
            "model": "veed/fabric-1.0", "image_url": face,
            "audio_url": f"{media.base}/hope.mp3", "resolution": "720p",
        }, "talking_head"),
        "video01": (unified, {
            "model": "video-01", "prompt": "The camera pushes in slowly.", "image_url": portrait,
        }, "motion"),
        "video01-legacy-inline": (minimax, {
            "model": "video-01", "prompt": "Pan left.", "first_frame_image": inline,
        }, "motion"),
        "veo-fast-dialogue": (unified, {
            "model": "google/veo-3.1-i2v-fast", "image_url": portrait,
            "prompt": "The woman puts on glasses and then sighs and says slowly: 'Well...'.",
            "duration": 4, "resolution": "720p",
        }, "speaking"),
        "veo-fast": (unified, {
            "model": "google/veo-3.1-i2v-fast", "prompt": "A slow zoom in.", "image_url": wide,
            "duration": 4, "resolution": "720p", "generate_audio": False,
        }, "motion"),
        "pixverse-lipsync": (unified, {
            "model": "pixverse/v5/image-to-video", "image_url": face,
            "prompt": "A news presenter in the studio, facing the camera.",
            "lip_sync_tts_content": "Hello and welcome. Here are the headlines.",
            "lip_sync_tts_speaker": "Chloe",
        }, "speaking"),
        "pixverse-legacy": (pixverse, {
            "model": "pixverse/v5/image-to-video", "prompt": "Zoom in.", "image_url": portrait,
            "duration": 5,
        }, "motion"),
        "veo-lite-first-last": (unified, {
            "model": "google/veo-3.1-lite-generate-001", "image_url": face,
            "prompt": "She smiles.", "tail_image_url": face, "duration": "4",
        }, "morph"),
    }  # fmt: skip


# Rendered once the engines extra is in (three renders are enough): a camera move, a first
# -> last frame morph, and Veo dialogue, which without `speaking` falls back to `motion`.
RENDERED = ("video01", "veo-lite-first-last", "veo-fast-dialogue")


def _submit(
    server: VenvServer, client: httpx.Client, route: str, body: dict[str, Any]
) -> tuple[httpx.Response, str]:
    response = client.post(route, json=body)
    assert response.status_code < 500, (route, body, response.text, server.full_log())
    return response, response.json().get("message", "")


def test_bare_pip_install_serves_and_refuses_with_what_to_install(
    venv: Path, media: MediaServer, tmp_path: Path
) -> None:
    assert _present(venv) == set(), "the venv is not bare (run this test before the next one)"
    server = VenvServer(venv, tmp_path / "kinema")
    server.start()
    try:
        [worker] = server.worker_pids()
        with server.client() as client:
            disabled = client.get("/v2/models").json()["disabled_engines"]
            assert {"motion", "talking_head", "speaking", "morph"} <= set(disabled)
            for name, (route, body, engine) in _requests(media).items():
                response, message = _submit(server, client, route, body)
                assert response.status_code == 400, (name, response.text)
                assert f"engine '{engine}' is disabled" in message, (name, message)
                assert "pip install" in message or "kinema setup" in message, (name, message)
            # Text-only video-01: no engine of Kinema's offers text-to-video at all.
            response, message = _submit(server, client, "/v2/video/generations", {
                "model": "video-01", "prompt": "A red fox runs through fresh snow.",
            })  # fmt: skip
            assert response.status_code == 400 and "text-to-video" in message, response.text
            time.sleep(1.5)  # the supervisor checks its workers every 0.5 s
            assert client.get("/health").json() == {"status": "ok"}
            ready = client.get("/ready").json()
            assert (ready["status"], ready["workers"]) == ("ok", 1), ready
        assert server.worker_pids() == [worker]
        log = server.full_log()
        assert log.count("worker slot 0: started pid") == 1, log
        assert "ready: nothing (every engine is disabled)" in log, log
        for bad in ("restarting", "Traceback", "ModuleNotFoundError", "Internal Server Error"):
            assert bad not in log, log
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()
    assert "Traceback" not in server.full_log()


def test_engines_extra_without_the_face_model_then_kinema_setup(
    venv: Path, source: Path, media: MediaServer, tmp_path: Path
) -> None:
    _pip(venv, f"{source}[engines]")
    assert _present(venv) == set(MEDIA_MODULES) - {"mediapipe"}
    server = VenvServer(venv, tmp_path / "kinema")
    server.start()
    try:
        [worker] = server.worker_pids()
        with server.client() as client:
            disabled = client.get("/v2/models").json()["disabled_engines"]
            assert {"talking_head", "speaking"} <= set(disabled), disabled
            assert not {"motion", "morph"} & set(disabled), disabled
            queued = []
            for name, (route, body, engine) in _requests(media).items():
                if name in ("fabric", "pixverse-lipsync"):
                    response, message = _submit(server, client, route, body)
                    assert response.status_code == 400, (name, response.text)
                    assert f"engine '{engine}' is disabled" in message, (name, message)
                    assert "run `kinema setup`" in message, (name, message)
                elif name in RENDERED:
                    response, message = _submit(server, client, route, body)
                    assert response.status_code == 201, (name, response.text)
                    queued.append((name, response.json()["id"]))
            for name, gen_id in queued:
                body = wait_for(client, gen_id, timeout=240)
                assert body["status"] == "completed", (name, body, server.log())
        assert server.worker_pids() == [worker]
        log = server.full_log()
        for bad in ("restarting", "Traceback", "Internal Server Error"):
            assert bad not in log, log
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()

    # `kinema setup` brings the face model; run twice, the second run changes nothing.
    kinema = str(venv / "bin" / "kinema")
    setup = subprocess.run(
        [kinema, "setup", "--quiet"], env=_env(), capture_output=True, text=True,
        timeout=PIP_TIMEOUT, cwd=tmp_path,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "installing mediapipe==0.10.21 without its dependencies" in setup.stdout
    assert _present(venv) == set(MEDIA_MODULES)
    rerun = subprocess.run(
        [kinema, "setup", "--quiet"], env=_env(), capture_output=True, text=True,
        timeout=PIP_TIMEOUT, cwd=tmp_path,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "face-landmark model: already installed (mediapipe==0.10.21)" in rerun.stdout
    assert "-m pip" not in rerun.stdout
    again = subprocess.run(
        [kinema, "setup", "--check"], env=_env(), capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    ready = [line.split() for line in again.stdout.splitlines()]
    for engine in ("motion", "talking_head", "speaking", "morph"):
        assert [engine, "ready"] in ready, again.stdout


def test_setup_is_idempotent_and_reports_a_pip_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, against this checkout's venv (everything installed): nothing to do, so
    pip is never called; with the pins reported missing, pip is called with them (the
    model wheel without its dependencies) and its failure is the command's."""
    from kinema import setup_command

    calls: list[list[str]] = []

    def runner(args: Sequence[str]) -> int:
        calls.append(list(args))
        return 1

    assert setup_command.run_setup(engines=True, check_only=False, runner=runner) == 0
    assert calls == []
    assert "engine packages: already installed" in capsys.readouterr().out

    monkeypatch.setattr(setup_command, "satisfied", lambda requirement: False)
    assert setup_command.run_setup(engines=False, check_only=False, runner=runner) == 1
    assert calls == [["--no-deps", "mediapipe==0.10.21"]]
    assert "pip failed" in capsys.readouterr().err
