"""LiteLLM's video API client (`video_generation` / `video_status` / `video_content`)
against a real `kinema serve`, as an OpenAI-compatible `api_base`: LiteLLM sends the
create as multipart with the image file and wraps the ids it returns, and Kinema's
`/v1/videos` answers it like OpenAI would."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kinema.media.encode import probe_mp4
from tests.support import KinemaServer, make_image

# LiteLLM fetches its model price map from the network at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")


def test_litellm_generates_polls_and_downloads_a_video(
    server: KinemaServer, tmp_path: Path
) -> None:
    image = tmp_path / "hills.png"
    image.write_bytes(make_image(1280, 720, "PNG", seed=5))
    auth = {"api_base": server.base_url + "/v1", "api_key": server.key}
    with open(image, "rb") as reference:
        created = litellm.video_generation(
            model="openai/sora-2", prompt="A slow pan over green hills.", seconds="4",
            size="1280x720", input_reference=reference, **auth,
        )  # fmt: skip
    assert created.object == "video" and created.status == "queued"
    assert (created.seconds, created.size, created.model) == ("4", "1280x720", "sora-2")
    deadline = time.monotonic() + 120
    status = created
    while status.status not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = litellm.video_status(video_id=created.id, **auth)
    assert status.status == "completed", status
    assert (status.progress, status.size, status.seconds) == (100, "1280x720", "4")
    data = litellm.video_content(video_id=created.id, **auth)
    video = tmp_path / "video.mp4"
    video.write_bytes(data)
    info = probe_mp4(video)
    assert (info.width, info.height) == (1280, 720) and info.duration == pytest.approx(4.0, 0.1)
    thumbnail = litellm.video_content(video_id=created.id, variant="thumbnail", **auth)
    assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"
