"""An engine from a separate package: `tests/plugin_example` (kinema-slate, a text-to-video
title card) is installed with a real `pip install` into its own directory, then a real
`kinema serve` is started with that directory on PYTHONPATH and `KINEMA_ENGINES=slate,...`.
Nothing in Kinema names the plugin: it is found through its `kinema.engines` entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from tests.support import KinemaServer, running, wait_for
from tests.videos import download, probe

PLUGIN = Path(__file__).parent / "plugin_example"
PROMPT_ONLY = {"model": "video-01", "prompt": "A red fox runs through fresh snow at dawn."}
BACKGROUND, FOREGROUND = "#204060", "#f0c020"
OPTIONS = {"slate": {"background": BACKGROUND, "foreground": FOREGROUND, "title": "Kinema"}}


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kinema-slate installed by pip into a directory of its own (never the shared venv).
    The source is copied first so pip's build leaves nothing in the working tree."""
    root = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(
        PLUGIN, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = root / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--target", str(site), str(source),
        ],
        check=True, timeout=180, capture_output=True,
    )  # fmt: skip
    [dist] = site.glob("kinema_slate-*.dist-info")
    assert "slate = kinema_slate:SlateEngine" in (dist / "entry_points.txt").read_text()
    return site


def _server(tmp: Path, site: Path | None, engines: str, **env: str) -> KinemaServer:
    extra = {"KINEMA_ENGINES": engines, "KINEMA_ENGINE_OPTIONS": json.dumps(OPTIONS), **env}
    if site is not None:
        extra["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return KinemaServer(tmp, workers=1, **extra)


def _frame(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.float64)
    raise AssertionError(f"{path} has no frame {index}")


def _near(pixels: np.ndarray, colour: str, tolerance: float = 8.0) -> bool:
    return bool(np.abs(pixels.reshape(-1, 3).mean(axis=0) - _rgb(colour)).max() <= tolerance)


def test_a_pip_installed_plugin_serves_text_to_video_end_to_end(
    plugin_site: Path, tmp_path: Path
) -> None:
    server = _server(tmp_path / "kinema", plugin_site, "slate,motion")
    with running(server), server.client() as client:
        catalogue = client.get("/v2/models").json()
        assert catalogue["capabilities"]["text-to-video"] == "slate"
        assert catalogue["capabilities"]["image-to-video"] == "motion"

        # video-01 with only a prompt: 6 s, short side 720, the plugin's default 16:9.
        submitted = client.post("/v2/video/generations", json=PROMPT_ONLY)
        assert submitted.status_code == 201, submitted.text
        # Veo 3.1 Lite text-only: the request's own duration and aspect.
        veo = {
            "model": "google/veo-3.1-lite-generate-001", "prompt": "Waves roll onto a beach.",
            "aspect_ratio": "9:16", "duration": 4, "resolution": "720p",
            "generate_audio": False,
        }  # fmt: skip
        portrait = client.post("/v2/video/generations", json=veo)
        assert portrait.status_code == 201, portrait.text

        results = {}
        for name, answer in (("video01", submitted), ("veo", portrait)):
            body = wait_for(client, answer.json()["id"], timeout=120)
            assert body["status"] == "completed", (body, server.log())
            results[name] = (body["video"], download(body["video"]["url"], tmp_path / name))

        meta, path = results["video01"]
        assert (meta["width"], meta["height"]) == (1280, 720)
        p = probe(path)
        assert (p.codec, p.pix_fmt, p.width, p.height) == ("h264", "yuv420p", 1280, 720)
        assert p.frames == 150 and abs(p.duration - 6.0) < 0.1, p
        assert not p.has_audio
        # The plugin's options drew it: its background, then its progress bar filling.
        first, last = _frame(path, 0), _frame(path, 149)
        assert _near(first[300:700, 1000:1270], BACKGROUND)
        assert _near(last[-4:, 40:-40], FOREGROUND, tolerance=24)
        assert _near(first[-4:, 200:-40], BACKGROUND, tolerance=24)
        # The prompt is revealed word by word: far more text on the last frame than the first.
        text = (slice(180, 400), slice(60, 1220))

        def inked(frame: np.ndarray) -> int:
            return int((np.abs(frame[text] - _rgb(BACKGROUND)).max(axis=-1) > 100).sum())

        assert inked(last) > 5 * max(1, inked(first)), (inked(first), inked(last))

        meta, path = results["veo"]
        p = probe(path)
        assert (p.width, p.height, p.frames) == (720, 1280, 100), p
        assert abs(p.duration - 4.0) < 0.1 and abs(p.fps - 25) < 0.01, p

        assert "Traceback" not in server.log()


def test_without_the_plugin_enabled_text_to_video_is_refused(
    plugin_site: Path, tmp_path: Path
) -> None:
    # Installed but not enabled: the same request is a 400 at submit, nothing is queued.
    server = _server(tmp_path / "kinema", plugin_site, "motion", KINEMA_ENGINE_OPTIONS="{}")
    with running(server), server.client() as client:
        refused = client.post("/v2/video/generations", json=PROMPT_ONLY)
        assert refused.status_code == 400, refused.text
        message = refused.json()["message"]
        assert "text-to-video" in message and "video-01" in message
        assert "text-to-video" not in client.get("/v2/models").json()["capabilities"]


def test_the_plugin_options_are_checked_at_start_up(plugin_site: Path, tmp_path: Path) -> None:
    # A typo in the plugin's options stops `kinema serve` at once, naming what it accepts.
    bad = {"slate": {"backgroud": "#000000"}}
    server = _server(
        tmp_path / "kinema", plugin_site, "slate,motion", KINEMA_ENGINE_OPTIONS=json.dumps(bad)
    )
    server.data_dir.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "kinema", "serve", "--port", str(server.port)],
        env=server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "engine 'slate': unknown option 'backgroud'" in done.stderr
    assert "accepted: background, foreground, title, aspect, seconds" in done.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.base_url + "/health", timeout=1)
