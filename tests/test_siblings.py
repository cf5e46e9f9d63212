"""The four sibling models (issue 15 part 3) through the API, in-process with the default
engines: seed-style requests complete with valid MP4s (checked with PyAV), the catalogue
and OpenAPI list them, and bad input is a 400 naming the field."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from kinema.testing import InProcess
from tests.support import MediaServer, finish
from tests.videos import assert_video, download

UNIFIED = "/v2/video/generations"
NEW_MODELS = {
    "veed/fabric-1.0-fast": "Fabric10Fast",
    "google/veo-3.1-first-last-image-to-video-fast": "VeoFirstLastFast",
    "google/veo-3-1-lite-generate-preview": "VeoLitePreview",
    "pixverse/lip-sync": "PixverseLipSync",
}


@pytest.fixture(scope="module")
def api(service: InProcess) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def submit(api: httpx.Client, body: dict[str, Any]) -> str:
    response = api.post(UNIFIED, json=body)
    assert response.status_code == 201, response.text
    gen_id: str = response.json()["id"]
    return gen_id


def completed(service: InProcess, api: httpx.Client, gen_id: str, tmp: Path) -> Path:
    done = finish(service, api, gen_id)
    assert done["status"] == "completed", done
    assert done["meta"]["usage"]["credits_used"] > 0
    return download(done["video"]["url"], tmp / f"{len(list(tmp.iterdir()))}.mp4", client=api)


@pytest.fixture(scope="module")
def talking(
    service: InProcess, api: httpx.Client, media: MediaServer, tmp_path_factory: Any
) -> tuple[Path, str]:
    """`veed/fabric-1.0-fast` as its docs' example sends it (resolution left to its
    default, 480p): the talking clip the lip-sync tests then re-voice."""
    tmp = tmp_path_factory.mktemp("fabric-fast")
    gen_id = submit(api, {
        "model": "veed/fabric-1.0-fast",
        "image_url": f"{media.base}/face.png",
        "audio_url": f"{media.base}/hope.mp3",
    })  # fmt: skip
    path = completed(service, api, gen_id, tmp)
    return path, media.add("talking.mp4", path.read_bytes())


def seconds_of(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base)


def test_fabric_fast_defaults_to_480p_and_follows_the_audio(talking: tuple[Path, str]) -> None:
    path, _ = talking
    seconds = seconds_of(path)
    assert 2.0 < seconds < 8.0
    assert_video(path, seconds=seconds, short_side=480, audio=True, aspect=1.0)


def test_veo_first_last_fast_morphs_between_the_two_images(
    service: InProcess, api: httpx.Client, media: MediaServer, tmp_path: Path
) -> None:
    gen_id = submit(api, {
        "model": "google/veo-3.1-first-last-image-to-video-fast",
        "prompt": "The camera slowly pushes in while the light shifts.",
        "image_url": f"{media.base}/wide.jpg",
        "last_image_url": f"{media.base}/landscape.png",
        "aspect_ratio": "16:9", "duration": "4", "resolution": "720p",
        "generate_audio": False,
    })  # fmt: skip
    path = completed(service, api, gen_id, tmp_path)
    assert_video(path, seconds=4, short_side=720, audio=False, aspect=16 / 9)


def test_veo_lite_preview_takes_lower_case_resolutions(
    service: InProcess, api: httpx.Client, media: MediaServer, tmp_path: Path
) -> None:
    gen_id = submit(api, {
        "model": "google/veo-3-1-lite-generate-preview",
        "prompt": "A slow dolly across a quiet landscape.",
        "image_url": f"{media.base}/landscape.png",
        "resolution": "720p", "duration": 4, "aspect_ratio": "16:9",
    })  # fmt: skip
    path = completed(service, api, gen_id, tmp_path)
    assert_video(path, seconds=4, short_side=720, audio=True, aspect=16 / 9)
    stored = api.get(UNIFIED, params={"generation_id": gen_id}).json()
    assert stored["meta"]["usage"]["credits_used"] == 4 * 100_000  # 720p: Veo Lite's price


@pytest.mark.parametrize("speech", ["tts", "audio"])
def test_lip_sync_redubs_the_video(
    service: InProcess,
    api: httpx.Client,
    media: MediaServer,
    talking: tuple[Path, str],
    tmp_path: Path,
    speech: str,
) -> None:
    source, video_url = talking
    body: dict[str, Any] = {"model": "pixverse/lip-sync", "video_url": video_url}
    if speech == "tts":
        body |= {"lip_sync_tts_content": "Not today, thank you.", "lip_sync_tts_speaker": "Emily"}
    else:
        body["audio_url"] = f"{media.base}/hope.mp3"
    path = completed(service, api, submit(api, body), tmp_path)
    # The same video (length, size), re-voiced.
    seconds = seconds_of(source)
    assert_video(path, seconds=seconds, short_side=480, audio=True, aspect=1.0)
    with av.open(str(path)) as container:
        sound = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    assert np.sqrt(np.mean(sound**2)) > 0.02  # speech, not silence


def test_catalogue_and_openapi_list_the_siblings(api: httpx.Client) -> None:
    listed = {m["id"] for m in api.get("/v2/models").json()["data"]}
    assert set(NEW_MODELS) <= listed
    spec = api.get("/openapi.json").json()
    body = spec["paths"][UNIFIED]["post"]["requestBody"]["content"]["application/json"]
    mapping = body["schema"]["discriminator"]["mapping"]
    for model, schema in NEW_MODELS.items():
        assert model in mapping and schema in spec["components"]["schemas"]
    lip = spec["components"]["schemas"]["PixverseLipSync"]
    assert lip["required"] == ["model", "video_url"]
    assert "Harper" in str(lip["properties"]["lip_sync_tts_speaker"])


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


IMG, SND, VID = "https://example.com/a.png", "https://example.com/a.mp3", "https://e.com/v.mp4"


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"model": "veed/fabric-1.0-fast", "image_url": IMG}, "audio_url", "Required"),
        ({"model": "veed/fabric-1.0-fast", "image_url": IMG, "audio_url": SND,
          "resolution": "1080p"}, "resolution", "480p"),
        ({"model": "google/veo-3.1-first-last-image-to-video-fast", "prompt": "p",
          "image_url": IMG}, "last_image_url", "Required"),
        ({"model": "google/veo-3.1-first-last-image-to-video-fast", "prompt": "p",
          "image_url": IMG, "last_image_url": IMG, "duration": 5}, "duration", "8"),
        ({"model": "google/veo-3-1-lite-generate-preview", "prompt": "p",
          "person_generation": "allow_adult"}, "person_generation", "Unknown field"),
        ({"model": "google/veo-3-1-lite-generate-preview", "prompt": "p", "image_url": IMG,
          "last_image_url": IMG, "duration": 6}, "body", "only 8"),
        ({"model": "google/veo-3-1-lite-generate-preview", "prompt": "p",
          "last_image_url": IMG}, "body", "needs image_url"),
        ({"model": "pixverse/lip-sync"}, "video_url", "Required"),
        ({"model": "pixverse/lip-sync", "video_url": VID}, "body", "no speech"),
        ({"model": "pixverse/lip-sync", "video_url": VID, "audio_url": SND,
          "lip_sync_tts_content": "hi", "lip_sync_tts_speaker": "Ava"}, "body", "not both"),
        ({"model": "pixverse/lip-sync", "video_url": VID,
          "lip_sync_tts_content": "hi"}, "body", "together"),
        ({"model": "pixverse/lip-sync", "video_url": VID, "lip_sync_tts_content": "hi",
          "lip_sync_tts_speaker": "Bob"}, "lip_sync_tts_speaker", "Harper"),
        ({"model": "pixverse/lip-sync", "video_url": "ftp://e.com/v.mp4",
          "audio_url": SND}, "video_url", "http"),
        ({"model": "pixverse/lip-sync", "video_url": _data_uri(b"\x89PNG\r\n\x1a\n" * 8,
          "video/mp4"), "audio_url": SND}, "video_url", "MP4, MOV or WebM"),
        ({"model": "pixverse/lip-sync", "video_url": _data_uri(
          b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, "video/mp4"), "audio_url": SND},
         "video_url", "MP4"),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = api.post(UNIFIED, json=body)
    assert response.status_code == 400, response.text
    details = response.json()["details"]
    hit = [d for d in details if d["field"] == field]
    assert hit, details
    assert fragment.lower() in str(hit).lower(), hit
