"""`kinema generate / status / download / models / quote / cancel / ls / rm` against a live
`kinema serve` (in-process through `kinema.cli.main`, and as a real subprocess for Ctrl-C),
their one-line errors, and the progress display (fed by the event stream)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinema.cli import main
from kinema.cli_client import Progress
from kinema.client import Client, GenerationFailed
from tests.flaky_server import GENERATIONS, FlakyServer, Json, generation
from tests.support import KinemaServer, MediaServer, free_port, make_image
from tests.test_sdk_lifecycle import EVENTS, Proxy, fresh_key
from tests.videos import probe

Capture = pytest.CaptureFixture[str]
MODELS = ("veed/fabric-1.0", "pixverse/v5/image-to-video", "google/veo-3.1-i2v-fast",
          "google/veo-3.1-lite-generate-001", "video-01")  # fmt: skip


@pytest.fixture()
def env(server: KinemaServer, monkeypatch: pytest.MonkeyPatch) -> KinemaServer:
    """The CLI finds the server through the environment, as a user's shell would."""
    monkeypatch.setenv("KINEMA_BASE_URL", server.base_url)
    monkeypatch.setenv("KINEMA_API_KEY", server.key)
    return server


def run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_generate_waits_shows_progress_and_downloads(
    env: KinemaServer, media: MediaServer, tmp_path: Path, capsys: Capture
) -> None:
    target = tmp_path / "fabric.mp4"
    code, out, err = run(
        capsys, "generate", "veed/fabric-1.0", "--image", str(media.root / "face.png"),
        "--audio", str(media.root / "hope.mp3"), "--set", "resolution=480p", "-o", str(target),
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == str(target) and probe(target).frames > 0
    lines = err.strip().splitlines()  # not a terminal: one line per status change
    assert "queued" in lines[0] and "completed" in lines[-1] and "elapsed" in lines[-1]


def test_generate_follows_the_event_stream(
    env: KinemaServer, media: MediaServer, tmp_path: Path, capsys: Capture
) -> None:
    with Proxy(env.base_url) as proxy:
        code, out, err = run(
            capsys, "generate", "--base-url", proxy.base_url, "pixverse/v5/image-to-video",
            "--image", f"{media.base}/landscape.png", "--prompt", "slow zoom",
            "--set", "resolution=540p", "--priority", "high", "-o", str(tmp_path),
        )  # fmt: skip
        assert code == 0, err
        assert proxy.seen("GET", EVENTS) and proxy.seen("GET", GENERATIONS) == []  # no polls
        assert proxy.seen("POST", GENERATIONS)[0].headers["x-kinema-priority"] == "high"
    assert probe(Path(out.strip())).frames > 0
    statuses = [line.split(": ")[1].split()[0] for line in err.strip().splitlines()]
    assert statuses == ["queued", "generating", "completed"], err


def test_no_wait_then_status_and_download(
    env: KinemaServer, media: MediaServer, tmp_path: Path, capsys: Capture
) -> None:
    code, out, err = run(
        capsys, "generate", "google/veo-3.1-i2v-fast", "--image", f"{media.base}/landscape.png",
        "--prompt", "the camera pushes in", "--set", "resolution=720p", "--set", "duration=4",
        "--set", "generate_audio=false", "--no-wait",
    )  # fmt: skip
    gen_id = out.strip()
    assert code == 0 and gen_id and "kinema download" in err and gen_id in err
    # Ids may start with "-": after `--` they are never taken for an option.
    code, out, _ = run(capsys, "download", "-o", str(tmp_path), "--", gen_id)
    assert code == 0 and Path(out.strip()).parent == tmp_path
    assert probe(Path(out.strip())).duration == pytest.approx(4, abs=0.2)
    code, out, _ = run(capsys, "status", "--", gen_id)
    assert code == 0 and "completed" in out and "1280x720" in out
    code, out, _ = run(capsys, "status", "--json", "--", gen_id)
    assert code == 0 and f'"id": "{gen_id}"' in out


def test_models_lists_every_model_with_its_fields(env: KinemaServer, capsys: Capture) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0
    for model in MODELS:
        assert f"\n{model}  POST /v2/video/generations" in "\n" + out
    assert "lip_sync_tts_speaker" in out and "480p | 720p  (default 480p)" in out


def test_errors_are_one_line(
    env: KinemaServer, media: MediaServer, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = str(media.root / "face.png")
    closed = f"http://127.0.0.1:{free_port()}"
    cases = {
        # argv: (exit code, words the message must have)
        ("generate", "video-01", "--bogus"): (2, "unrecognized arguments: --bogus"),
        ("generate", "video-01", "--prompt", "x", "--set", "oops"): (2, "KEY=VALUE"),
        ("generate", "video-01", "--prompt", "x", "--image", "nowhere.png"): (2, "nowhere.png"),
        # A bad enum fails before any network call: the base URL is a closed port.
        ("generate", "--base-url", closed, "pixverse/v5/image-to-video", "--image", image,
         "--prompt", "x", "--set", "resolution=4k"): (2, "resolution: Invalid value"),
        ("generate", "--base-url", closed, "video-01", "--image", image, "--prompt", "x"):
            (1, "Is the server running"),
        ("status", "--api-key", "kn-wrong", "abc"): (1, "refused the API key (401)"),
        ("status", "no-such-id"): (1, "404: Generation 'no-such-id' was not found"),
        ("generate", "no/such-model", "--prompt", "x"): (1, "400: Body validation error! (model"),
        ("download", "--base-url", "localhost:8000", "x"): (2, "http:// or https://"),
    }  # fmt: skip
    for argv, (expected, words) in cases.items():
        try:
            code, _, err = run(capsys, *argv)
        except SystemExit as exit_:  # argparse's own exit
            code, err = int(str(exit_.code)), capsys.readouterr().err
        assert code == expected, (argv, err)
        assert words in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert err.startswith("kinema"), err


def test_ctrl_c_leaves_the_job_running(tmp_path: Path) -> None:
    with FlakyServer() as fake:
        fake.fallback("POST", GENERATIONS, Json(201, generation("-job-1", "queued")))
        fake.fallback("GET", GENERATIONS, Json(200, generation("-job-1", "queued")))
        image = tmp_path / "a.png"
        image.write_bytes(make_image(640, 360))
        env = {**os.environ, "KINEMA_BASE_URL": fake.base_url, "KINEMA_API_KEY": "k"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "kinema", "generate", "video-01", "--image", str(image),
             "--prompt", "x", "-o", "out.mp4"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while len(fake.seen("GET")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "keeps running" in err and "kinema download -o out.mp4 -- -job-1" in err
    assert "Traceback" not in err and out == ""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_with_eta() -> None:
    now = [0.0]
    client = Client("http://127.0.0.1:9")
    tty, log = Terminal(), io.StringIO()
    bars = [Progress(tty, clock=lambda: now[0]), Progress(log, clock=lambda: now[0])]
    polls = [(0, "queued", 0, 2), (2, "generating", 0, 0), (4, "generating", 25, 0),
             (6, "generating", 50, 0), (9, "completed", None, None)]  # fmt: skip
    for at, status, progress, position in polls:
        now[0] = at
        g = client._make(generation("g1", status, progress=progress, queue_position=position))
        for bar in bars:
            bar(g)
    for bar in bars:
        bar.finish()
    frames = tty.getvalue().split("\r")
    assert "queued (position 2)" in frames[1] and "elapsed 0:00" in frames[1]
    # 25 % after 2 s of generating: 6 s to go; then 50 % after 4 s: 4 s to go.
    assert "[######------------------]  25%" in frames[3] and "ETA 0:06" in frames[3]
    assert "ETA 0:04" in frames[4] and frames[-1].startswith("g1: completed  elapsed 0:09")
    assert tty.getvalue().endswith("\n")
    assert [line.split(":")[1].split()[0] for line in log.getvalue().splitlines()] == [
        "queued",
        "generating",
        "completed",
    ]


def test_quote_ls_cancel_and_rm(
    env: KinemaServer, media: MediaServer, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINEMA_API_KEY", fresh_key(env, "cli-lifecycle"))  # its own listing
    request = ("video-01", "--image", f"{media.base}/wide.jpg", "--prompt", "pan")
    code, out, _ = run(capsys, "quote", *request)
    rows = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert code == 0 and rows["model"] == "video-01" and int(rows["credits"]) > 0, out
    code, out, _ = run(capsys, "quote", "--json", *request)
    assert code == 0 and json.loads(out)["status"] == "quote"
    code, _, err = run(capsys, "ls")
    assert code == 0 and "no generations" in err  # a quote creates nothing

    ids = []
    for _ in range(3):
        code, out, _ = run(capsys, "generate", *request, "--no-wait")
        assert code == 0
        ids.append(out.strip())
    code, out, err = run(capsys, "ls", "--limit", "2")
    table = out.strip().splitlines()
    assert code == 0 and table[0].split() == ["ID", "STATUS", "MODEL", "CREDITS", "DETAIL"]
    assert [row.split()[0] for row in table[1:]] == [ids[2], ids[1]] and "--all" in err
    code, out, err = run(capsys, "ls", "--all", "--model", "video-01")
    assert [row.split()[0] for row in out.strip().splitlines()[1:]] == ids[::-1] and not err

    # Ids may start with "-": after `--` they are never taken for an option.
    code, out, _ = run(capsys, "cancel", "--", ids[2])
    assert code == 0 and out.startswith(f"{ids[2]}: cancel"), out
    with Client() as client, pytest.raises(GenerationFailed) as cancelled:
        client.videos.wait(ids[2], timeout=60)
    assert cancelled.value.error_name == "Cancelled"
    code, out, _ = run(capsys, "ls", "--status", "error")
    assert code == 0 and ids[2] in out and "Cancelled" in out
    code, _, err = run(capsys, "cancel", "--", ids[2])
    assert code == 1 and "409" in err and "already finished" in err

    code, out, _ = run(capsys, "rm", "--", ids[0], ids[1])
    assert code == 0 and out.split() == [f"{ids[0]}:", "deleted", f"{ids[1]}:", "deleted"]
    code, out, _ = run(capsys, "ls", "--json")
    assert code == 0 and [g["id"] for g in json.loads(out)] == [ids[2]]
    for argv in (("status", "--", ids[0]), ("rm", "--", ids[0]), ("cancel", "no-such-id")):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "404" in err and len(err.strip().splitlines()) == 1, (argv, err)
    try:
        run(capsys, "ls", "--limit", "0")
    except SystemExit as exit_:
        assert exit_.code == 2 and "at least 1" in capsys.readouterr().err
    else:
        raise AssertionError("--limit 0 was accepted")
