"""The wire contract, in-process (`kinema.testing`: the app under httpx's ASGITransport,
the default engines, and jobs run by `service.work()` where a test waits for one):
envelopes, auth, isolation, limits, headers, legacy routes, OpenAPI. The few checks that
need a real `kinema serve` (sockets, worker processes) are in tests/test_api_process.py."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

import kinema.api.auth
from kinema.cli import main
from kinema.testing import InProcess
from tests.support import MediaServer, finish, make_image
from tests.videos import assert_video, download

UNIFIED = "/v2/video/generations"
MINIMAX = "/v2/generate/video/minimax/generation"
PIXVERSE = "/v2/generate/video/pixverse/generation"


@pytest.fixture(scope="module")
def api(service: InProcess) -> Iterator[httpx.Client]:
    """A client of the module's in-process service, with the test key."""
    with service.client() as client:
        yield client


@pytest.fixture(scope="module")
def anon(service: InProcess) -> Iterator[httpx.Client]:
    """The same service without an API key (signed video links, health, docs)."""
    with service.client() as client:
        del client.headers["Authorization"]
        yield client


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def assert_envelope(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert set(body) >= {"message", "path", "requestId", "statusCode", "timestamp"}
    assert body["statusCode"] == status
    assert body["requestId"] == response.headers["x-inference-id"]
    assert "Traceback" not in response.text
    return body


def test_submit_and_poll_shapes(
    service: InProcess, api: httpx.Client, anon: httpx.Client, media: MediaServer, tmp_path: Path
) -> None:
    r = api.post(UNIFIED, json={
        "model": "pixverse/v5/image-to-video", "prompt": "zoom in slowly",
        "image_url": f"{media.base}/landscape.png", "resolution": "360P", "duration": "5",
    })  # fmt: skip
    assert r.status_code == 201, r.text
    submitted = r.json()
    assert set(submitted) == {"id", "status", "meta"}
    assert submitted["status"] == "queued"
    assert submitted["meta"]["usage"]["credits_used"] == 300_000
    gen_id = submitted["id"]
    assert r.headers["x-inference-id"] == gen_id

    first = api.get(UNIFIED, params={"generation_id": gen_id})
    assert first.headers["x-inference-id"] == gen_id
    body = first.json()
    assert body["status"] == "queued"  # nothing runs a job until the test does
    assert 0 <= body["progress"] <= 100 and body["queue_position"] >= 0
    done = finish(service, api, gen_id)
    assert done["status"] == "completed", done
    assert done["error"] is None and "progress" not in done
    video = done["video"]
    assert set(video) == {
        "url",
        "content_type",
        "file_name",
        "file_size",
        "duration",
        "width",
        "height",
    }
    assert video["content_type"] == "video/mp4" and (video["width"], video["height"]) == (
        640,
        360,
    )
    mp4 = download(video["url"], tmp_path / "out.mp4", client=anon)
    assert_video(mp4, seconds=5, short_side=360, audio=False, aspect=16 / 9)
    assert done["meta"]["usage"]["credits_used"] == 300_000
    # URLs are signed fresh per poll and work without the API key, with Range.
    again = api.get(UNIFIED, params={"generation_id": gen_id}).json()["video"]["url"]
    ranged = anon.get(again, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    assert ranged.content[4:8] == b"ftyp"
    tampered = again.replace("signature=", "signature=x")
    assert anon.get(tampered).status_code == 404


def test_legacy_minimax_route(service: InProcess, api: httpx.Client, media: MediaServer) -> None:
    r = api.post(MINIMAX, json={
        "model": "video-01", "prompt": "static shot",
        "first_frame_image": f"{media.base}/portrait.jpg", "prompt_optimizer": False,
    })  # fmt: skip
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"generation_id", "status", "meta"}
    gen_id = r.json()["generation_id"]
    done = finish(service, api, gen_id, path=MINIMAX)
    assert done["status"] == "completed" and done["id"] == gen_id
    # The unified field name is not part of the legacy schema.
    bad = api.post(MINIMAX, json={"model": "video-01", "prompt": "x", "image_url": "http://a"})
    body = assert_envelope(bad, 400)
    assert "first_frame_image" in str(body["details"])


def test_legacy_pixverse_has_aspect_ratio_but_no_lip_sync(api: httpx.Client) -> None:
    base = {"model": "pixverse/v5/image-to-video", "prompt": "p", "image_url": "http://x/a"}
    ok = api.post(PIXVERSE, json={**base, "aspect_ratio": "1:2"})
    assert "aspect_ratio" in str(assert_envelope(ok, 400)["details"])
    lip = api.post(PIXVERSE, json={**base, "lip_sync_tts_content": "hi"})
    assert "lip_sync_tts_content" in str(assert_envelope(lip, 400)["details"])
    unified = api.post(UNIFIED, json={**base, "aspect_ratio": "16:9"})
    assert "aspect_ratio" in str(assert_envelope(unified, 400)["details"])


def test_auth(anon: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = anon.get(UNIFIED, params={"generation_id": "x"}, headers=headers)
        body = assert_envelope(r, 401)
        assert "valid API key" in str(body["message"])
    r = anon.post(UNIFIED, json={"model": "video-01"})
    assert_envelope(r, 401)


def _keys(service: InProcess, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """`kinema keys COMMAND ARGS...` on the service's data dir (in-process): its stdout."""
    command, *rest = args
    code = main(["keys", command, "--data-dir", str(service.settings.data_dir), *rest])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_keys_isolation_credits_and_revocation(
    service: InProcess,
    api: httpx.Client,
    media: MediaServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = _keys(service, capsys, "create", "--name", "poor", "--credits", "500000")
    poor = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
    out = _keys(service, capsys, "create", "--name", "other")
    other = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
    assert "poor" in _keys(service, capsys, "list")
    body = {"model": "video-01", "prompt": "pan left", "image_url": f"{media.base}/wide.jpg"}
    first = api.post(UNIFIED, json=body, headers=poor)
    assert first.status_code == 201, first.text  # 432,000 of 500,000
    gen_id = first.json()["id"]
    second = api.post(UNIFIED, json=body, headers=poor)
    assert "run out of credits" in str(assert_envelope(second, 403)["message"])
    # Another key cannot see it: 404, same as an unknown id.
    r = api.get(UNIFIED, params={"generation_id": gen_id}, headers=other)
    assert_envelope(r, 404)
    r = api.get(UNIFIED, params={"generation_id": "does-not-exist"}, headers=other)
    assert_envelope(r, 404)
    service.work()
    done = api.get(UNIFIED, params={"generation_id": gen_id}, headers=poor).json()
    assert done["status"] == "completed"
    assert done["meta"]["usage"]["credits_used"] == 432_000
    # Finished jobs are served from the API's cache: still private to their key.
    r = api.get(UNIFIED, params={"generation_id": gen_id}, headers=other)
    assert_envelope(r, 404)
    listing = _keys(service, capsys, "list")
    assert "68000" in listing  # 500,000 - 432,000 charged at completion
    _keys(service, capsys, "revoke", poor["Authorization"].removeprefix("Bearer ")[:10])
    # The API caches a verified key for `auth_cache_seconds`: move the cache's clock past
    # that instead of sleeping through it.
    later = time.monotonic() + service.settings.auth_cache_seconds + 0.5
    monkeypatch.setattr(kinema.api.auth, "time", SimpleNamespace(monotonic=lambda: later))
    r = api.get(UNIFIED, params={"generation_id": gen_id}, headers=poor)
    assert_envelope(r, 401)


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"model": "video-01"}, "prompt", "Required"),
        ({"model": "video-01", "prompt": "x" * 2001}, "prompt", "2000"),
        ({"model": "video-01", "prompt": "p", "colour": "red"}, "colour", "Accepted fields"),
        ({"model": "sora"}, "model", "Expected"),
        ({"prompt": "no model"}, "model", "Required"),
        ({"model": "google/veo-3.1-i2v-fast", "prompt": "p"}, "image_url", "Required"),
        (
            {
                "model": "google/veo-3.1-i2v-fast",
                "prompt": "p",
                "image_url": "http://a/b",
                "duration": 5,
            },
            "duration",
            "4, 6 or 8",
        ),
        (
            {
                "model": "google/veo-3.1-i2v-fast",
                "prompt": "p",
                "image_url": "http://a/b",
                "aspect_ratio": "1:1",
            },
            "aspect_ratio",
            "16:9",
        ),
        (
            {
                "model": "google/veo-3.1-i2v-fast",
                "prompt": "p",
                "image_url": "http://a/b",
                "resolution": "4k",
            },
            "resolution",
            "720p",
        ),
        (
            {"model": "google/veo-3.1-i2v-fast", "prompt": "p", "image_url": "ftp://a/b"},
            "image_url",
            "http(s) URL",
        ),
        (
            {
                "model": "pixverse/v5/image-to-video",
                "prompt": "p",
                "image_url": "http://a/b",
                "resolution": "1080p",
                "duration": 8,
            },
            "body",
            "1080p",
        ),
        (
            {
                "model": "pixverse/v5/image-to-video",
                "prompt": "p",
                "image_url": "http://a/b",
                "style": "watercolor",
            },
            "style",
            "anime",
        ),
        (
            {
                "model": "pixverse/v5/image-to-video",
                "prompt": "p",
                "image_url": "http://a/b",
                "seed": "abc",
            },
            "seed",
            "integer",
        ),
        (
            {
                "model": "pixverse/v5/image-to-video",
                "prompt": "p",
                "image_url": "http://a/b",
                "lip_sync_tts_speaker": "Bob",
            },
            "lip_sync_tts_speaker",
            "Harper",
        ),
        ({"model": "veed/fabric-1.0", "image_url": "http://a/b"}, "audio_url", "Required"),
        (
            {
                "model": "veed/fabric-1.0",
                "image_url": "http://a/b",
                "audio_url": "http://a/c",
                "resolution": "1080p",
            },
            "resolution",
            "480p",
        ),
        (
            {"model": "veo-3.1-lite-generate-001", "prompt": "p", "person_generation": "all"},
            "person_generation",
            "dont_allow",
        ),
        (
            {
                "model": "veo-3.1-lite-generate-001",
                "prompt": "p",
                "image_url": "http://a/b",
                "last_image_url": "http://a/c",
                "tail_image_url": "http://a/d",
            },
            "body",
            "alias",
        ),
        (
            {"model": "video-01", "prompt": "p", "enhance_prompt": "maybe"},
            "enhance_prompt",
            "boolean",
        ),
    ],
)
def test_validation_errors(
    api: httpx.Client, body: dict[str, object], field: str, fragment: str
) -> None:
    r = api.post(UNIFIED, json=body)
    out = assert_envelope(r, 400)
    assert out["message"] == "Body validation error!"
    details = out["details"]
    assert isinstance(details, list)
    hit = [d for d in details if d["field"] == field]
    assert hit, details
    assert fragment.lower() in str(hit).lower(), hit


def test_invalid_json_and_non_object(api: httpx.Client) -> None:
    r = api.post(UNIFIED, content=b"{not json", headers={"content-type": "application/json"})
    assert "not valid JSON" in str(assert_envelope(r, 400)["details"])
    r = api.post(UNIFIED, json=[1, 2])
    assert "JSON object" in str(assert_envelope(r, 400)["details"])
    r = api.get(UNIFIED)
    assert "generation_id" in str(assert_envelope(r, 400)["details"])


def test_missing_capability_is_refused_at_submit(api: httpx.Client) -> None:
    # No text-to-video engine exists: a prompt without an image cannot be served.
    cases = [
        {"model": "video-01", "prompt": "a cat"},
        {"model": "veo-3.1-lite-generate-001", "prompt": "a cat"},
    ]
    for body in cases:
        out = assert_envelope(api.post(UNIFIED, json=body), 400)
        assert "has no engine for 'text-to-video'" in str(out["message"]), out


def test_lip_sync_text_must_fit_and_come_with_a_speaker(api: httpx.Client) -> None:
    base = {"model": "pixverse/v5/image-to-video", "prompt": "p", "image_url": "http://a/b"}
    long_text = "This sentence is far too long to be spoken in five seconds. " * 6
    r = api.post(UNIFIED, json={**base, "lip_sync_tts_content": long_text,
                                "lip_sync_tts_speaker": "Mason"})  # fmt: skip
    out = assert_envelope(r, 400)
    assert out["details"][0]["field"] == "lip_sync_tts_content"
    assert "longer than the video" in out["details"][0]["message"]
    for half in ({"lip_sync_tts_content": "Hello"}, {"lip_sync_tts_speaker": "Ava"}):
        out = assert_envelope(api.post(UNIFIED, json={**base, **half}), 400)
        assert "must be sent together" in str(out["details"])


def test_accepted_spellings(service: InProcess, api: httpx.Client, media: MediaServer) -> None:
    """duration as "8" or 8, resolution in any case, both Veo Lite ids, tail_image_url."""
    image = f"{media.base}/wide.jpg"
    for body in [
        {
            "model": "google/veo-3.1-i2v-fast",
            "prompt": "p",
            "image_url": image,
            "duration": "4",
            "resolution": "720P",
            "generate_audio": False,
        },
        {
            "model": "veo-3.1-lite-generate-001",
            "prompt": "p",
            "image_url": image,
            "duration": 4,
            "resolution": "720p",
        },
    ]:
        r = api.post(UNIFIED, json=body)
        assert r.status_code == 201, r.text
        done = finish(service, api, r.json()["id"])
        assert done["status"] == "completed", done
        assert done["video"]["duration"] == pytest.approx(4, abs=0.05)
        assert min(done["video"]["width"], done["video"]["height"]) == 720


def test_request_ids(api: httpx.Client) -> None:
    r = api.get("/health", headers={"X-Client-Request-Id": "abc-123:x.y_z"})
    assert r.headers["x-client-request-id"] == "abc-123:x.y_z"
    assert r.headers["x-inference-id"]
    r = api.get("/health", headers={"X-Client-Request-Id": "bad id!"})
    assert "x-client-request-id" not in r.headers
    r = api.get("/nope")
    assert_envelope(r, 404)


def test_inline_media_is_checked_at_submit(service: InProcess, api: httpx.Client) -> None:
    cases = [
        (data_uri(b"not an image at all"), "not"),
        ("data:image/png;base64,!!!", "base64"),
        (data_uri(make_image(300, 600, "PNG")), "300"),  # video-01: short side > 300
        (data_uri(make_image(800, 310, "PNG")), "aspect"),  # wider than 5:2
        (data_uri(make_image(640, 480, "WEBP")), "webp"),  # video-01: JPG/PNG only
        (data_uri(b"\x89PNG\r\n\x1a\n" + bytes(21 * 1024 * 1024)), "20"),  # > 20 MB
    ]
    for uri, fragment in cases:
        r = api.post(UNIFIED, json={"model": "video-01", "prompt": "p", "image_url": uri})
        out = assert_envelope(r, 400)
        assert fragment.lower() in str(out["details"]).lower(), out
    ok = api.post(
        UNIFIED,
        json={
            "model": "video-01",
            "prompt": "p",
            "image_url": data_uri(make_image(640, 480, "JPEG"), "image/jpeg"),
        },
    )
    assert ok.status_code == 201, ok.text
    assert finish(service, api, ok.json()["id"])["status"] == "completed"


def test_fetch_failures_fail_the_job_with_a_clear_error(
    service: InProcess, api: httpx.Client, media: MediaServer
) -> None:
    media.add("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    media.add("page.jpg", b"<html>not an image</html>")
    cases = [
        (f"{media.base}/missing.png", "404"),
        (f"{media.base}/corrupt.png", "image_url"),
        (f"{media.base}/page.jpg", "image_url"),
    ]
    for url, fragment in cases:
        r = api.post(
            UNIFIED,
            json={
                "model": "pixverse/v5/image-to-video",
                "prompt": "p",
                "image_url": url,
                "resolution": "360p",
            },
        )
        assert r.status_code == 201, r.text
        done = finish(service, api, r.json()["id"])
        assert done["status"] == "error" and done["video"] is None, done
        assert done["error"]["name"] == "InvalidInput"
        assert fragment in done["error"]["message"], done
        assert done["meta"]["usage"]["credits_used"] == 0


def test_openapi_lists_every_model(anon: httpx.Client) -> None:
    spec = anon.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in (
        "Fabric10",
        "Video01",
        "VeoI2VFast",
        "PixverseI2V",
        "VeoLite",
        "Video01Legacy",
        "PixverseI2VLegacy",
        "Fabric10Fast",
        "VeoFirstLastFast",
        "VeoLitePreview",
        "PixverseLipSync",
    ):
        assert name in schemas
    body = spec["paths"][UNIFIED]["post"]["requestBody"]["content"]["application/json"]
    assert len(body["schema"]["oneOf"]) == 9
    assert "veo-3.1-lite-generate-001" in body["schema"]["discriminator"]["mapping"]
    assert anon.get("/docs").status_code == 200


def test_health_ready_and_metrics(
    service: InProcess, api: httpx.Client, anon: httpx.Client, media: MediaServer
) -> None:
    for image in ("landscape.png", "no-such-file.png"):  # one job completes, one fails
        body = {"model": "pixverse/v5/image-to-video", "prompt": "p",
                "image_url": f"{media.base}/{image}", "resolution": "360p"}  # fmt: skip
        finish(service, api, api.post(UNIFIED, json=body).json()["id"])
    assert anon.get("/health").json() == {"status": "ok"}
    ready = anon.get("/ready").json()  # the in-process worker reported itself as it ran
    assert ready["status"] == "ok" and ready["workers"] == 1
    assert "image-to-video" in ready["capabilities"]
    text = anon.get("/metrics").text
    assert "kinema_workers_live 1.0" in text
    assert "kinema_jobs{" in text and 'status="completed"' in text
    assert "kinema_job_run_seconds{" in text
    assert 'kinema_job_failures{error="InvalidInput"}' in text


def _wav(seconds: float, rate: int = 16000) -> bytes:
    import io
    import wave

    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def test_bad_media_gets_clear_errors_or_correct_output(
    service: InProcess, api: httpx.Client, media: MediaServer
) -> None:
    """Fabric with too-long, corrupt or silent audio; odd image modes and sizes."""
    face = f"{media.base}/face.png"
    media.add("long.wav", _wav(31))
    media.add("silent.wav", bytes(_wav(0))[:44] + bytes(2 * 16000 * 2))  # header + zeros
    media.add("corrupt.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00garbage" * 500)
    from PIL import Image

    for name, mode, size in [
        ("cmyk.jpg", "CMYK", (640, 480)),
        ("gray.png", "L", (640, 480)),
        ("rgba.png", "RGBA", (640, 480)),
        ("tiny.png", "RGB", (12, 9)),
    ]:
        import io

        out = io.BytesIO()
        Image.new(mode, size, 90).save(out, "JPEG" if name.endswith("jpg") else "PNG")
        media.add(name, out.getvalue())
    # Inline audio is measured at submit: 31 s is refused before any job exists.
    inline = data_uri(_wav(31), "audio/wav")
    r = api.post(UNIFIED, json={"model": "veed/fabric-1.0", "image_url": face,
                                "audio_url": inline})  # fmt: skip
    assert "30 s" in str(assert_envelope(r, 400)["details"])
    jobs = {}
    for name in ("long.wav", "corrupt.mp3", "silent.wav"):
        r = api.post(UNIFIED, json={"model": "veed/fabric-1.0", "image_url": face,
                                    "audio_url": f"{media.base}/{name}"})  # fmt: skip
        jobs[name] = r.json()["id"]
    for name in ("cmyk.jpg", "gray.png", "rgba.png", "tiny.png"):
        r = api.post(UNIFIED, json={"model": "pixverse/v5/image-to-video", "prompt": "p",
                                    "image_url": f"{media.base}/{name}",
                                    "resolution": "360p"})  # fmt: skip
        jobs[name] = r.json()["id"]
    done = {name: finish(service, api, gen_id) for name, gen_id in jobs.items()}
    assert done["long.wav"]["status"] == "error"
    assert "audio_url" in done["long.wav"]["error"]["message"]
    assert "30" in done["long.wav"]["error"]["message"]
    assert done["corrupt.mp3"]["status"] == "error"
    assert done["corrupt.mp3"]["error"]["name"] == "InvalidInput"
    assert "audio_url" in done["corrupt.mp3"]["error"]["message"]
    assert done["silent.wav"]["status"] == "completed", done["silent.wav"]
    for name in ("cmyk.jpg", "gray.png", "rgba.png", "tiny.png"):
        assert done[name]["status"] == "completed", (name, done[name])


def test_person_generation_and_dialogue(
    service: InProcess, api: httpx.Client, media: MediaServer
) -> None:
    face = f"{media.base}/face.png"
    refused = api.post(UNIFIED, json={
        "model": "veo-3.1-lite-generate-001", "prompt": "a calm portrait",
        "image_url": face, "duration": 4, "person_generation": "dont_allow",
    })  # fmt: skip
    allowed = api.post(UNIFIED, json={
        "model": "veo-3.1-lite-generate-001", "prompt": "a calm gradient",
        "image_url": f"{media.base}/landscape.png", "duration": 4,
        "person_generation": "dont_allow", "generate_audio": False,
    })  # fmt: skip
    talking = api.post(UNIFIED, json={
        "model": "google/veo-3.1-i2v-fast", "prompt": "She smiles and says: 'Good morning'",
        "image_url": face, "duration": 4, "resolution": "720p",
    })  # fmt: skip
    done = {k: finish(service, api, r.json()["id"]) for k, r in
            {"refused": refused, "allowed": allowed, "talking": talking}.items()}  # fmt: skip
    assert done["refused"]["status"] == "error"
    assert "person_generation" in done["refused"]["error"]["message"]
    assert "image_url" in done["refused"]["error"]["message"]
    assert done["allowed"]["status"] == "completed"
    assert done["talking"]["status"] == "completed"
    assert done["talking"]["video"]["duration"] == pytest.approx(4, abs=0.05)
