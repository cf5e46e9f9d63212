"""The OpenAI Videos dialect (`/v1/videos`) driven by the official `openai` package: in
process (the SDK's httpx2 client over the ASGI app, the worker stepped by hand) and once
against a real `kinema serve`. Every video object is validated against the `Video` type
of the `openai` package itself."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai.types import Video, VideoDeleteResponse
from PIL import Image

from kinema.jobs.model import VideoOutput
from kinema.media.encode import probe_mp4
from kinema.testing import FailingEngine, InProcess, InstantEngine, in_process
from kinema.testing.engines import FixtureOptions
from tests.support import KinemaServer, make_image

# The SDK marks the Videos API deprecated (Sora's shutdown), which is not ours to warn of.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
UNIFIED = "/v2/video/generations"
WIDE = make_image(1280, 720, "PNG", seed=3)


class ASGI(httpx2.BaseTransport):
    """The app behind a synchronous httpx2 client (what the `openai` SDK takes): run on an
    event loop in a background thread, the way a server runs it."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx2.ASGITransport(app=app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        return httpx2.Response(response.status_code, headers=response.headers, content=content)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        return asyncio.run_coroutine_threadsafe(self._send(request), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def kinema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    engine = InstantEngine(FixtureOptions(width=1280, height=720, fps=4))
    with in_process(tmp_path_factory.mktemp("openai"), [engine]) as service:
        yield service


def sdk(service: InProcess, key: str | None = None) -> openai.OpenAI:
    secret = key or service.headers["Authorization"].removeprefix("Bearer ")
    transport = ASGI(service.app)
    return openai.OpenAI(
        api_key=secret, base_url="http://kinema.test/v1", max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )  # fmt: skip


@pytest.fixture(scope="module")
def client(kinema: InProcess) -> Iterator[openai.OpenAI]:
    with sdk(kinema) as made:
        yield made


def conforms(video: Video) -> Video:
    """The response, re-validated strictly against the `openai` package's own type."""
    checked = Video.model_validate(video.to_dict())
    assert checked.object == "video" and checked.status in (
        "queued", "in_progress", "completed", "failed",
    )  # fmt: skip
    assert isinstance(checked.progress, int) and isinstance(checked.seconds, str)
    return checked


def test_create_multipart_retrieve_and_download_every_variant(
    kinema: InProcess, client: openai.OpenAI
) -> None:
    made = conforms(client.videos.create(
        prompt="A fox trots through snow.", input_reference=("fox.png", WIDE, "image/png"),
        seconds="4", size="1280x720",
    ))  # fmt: skip
    assert (made.status, made.progress, made.model) == ("queued", 0, "sora-2")
    assert (made.seconds, made.size, made.prompt) == ("4", "1280x720", "A fox trots through snow.")
    stored = kinema.store.get_job(made.id)
    assert stored is not None and stored.params["image_url"].startswith("data:image/png;base64,")
    assert (stored.params["duration"], stored.params["aspect_ratio"]) == (4, "16:9")
    raw = client.videos.with_raw_response.retrieve(made.id)
    assert raw.headers["openai-poll-after-ms"] == "1000"  # what create_and_poll waits
    kinema.work()
    done = conforms(client.videos.retrieve(made.id))
    assert (done.status, done.progress, done.size, done.seconds) == (
        "completed",
        100,
        "1280x720",
        "4",
    )
    assert done.completed_at is not None and done.completed_at >= done.created_at
    assert "openai-poll-after-ms" not in client.videos.with_raw_response.retrieve(made.id).headers

    video = client.videos.download_content(made.id)
    assert video.response.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    thumbnail = client.videos.download_content(made.id, variant="thumbnail")
    assert thumbnail.response.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(thumbnail.content)) as poster:
        assert (poster.format, poster.size) == ("WEBP", (1280, 720))
    sheet = client.videos.download_content(made.id, variant="spritesheet")
    assert sheet.response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(sheet.content)) as grid:  # 4 s: four 256x144 tiles in a row
        assert (grid.format, grid.size) == ("JPEG", (1024, 144))
    with kinema.client() as http:
        ranged = http.get(f"/v1/videos/{made.id}/content", headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206 and len(ranged.content) == 100
        assert ranged.headers["content-range"].startswith("bytes 0-99/")
        # The same generation through the AI/ML API dialect.
        polled = http.get(UNIFIED, params={"generation_id": made.id}).json()
        assert polled["status"] == "completed" and polled["video"]["width"] == 1280


def test_json_create_with_a_reference_object_and_a_v2_job_read_on_v1(
    kinema: InProcess, client: openai.OpenAI
) -> None:
    # The SDK's create() always sends multipart; its JSON reference object goes as JSON.
    tall = make_image(720, 1280, "JPEG", seed=4)
    uri = "data:image/jpeg;base64," + base64.b64encode(tall).decode()
    made = conforms(client.post(
        "/videos", cast_to=Video,
        body={"model": "google/veo-3.1-lite-generate-001", "prompt": "A tower at dusk.",
              "input_reference": {"image_url": uri}, "seconds": 6},
    ))  # fmt: skip
    # No size asked: the model's default resolution at the image's own (portrait) aspect.
    assert (made.model, made.seconds, made.size) == (
        "google/veo-3.1-lite-generate-001", "6", "720x1280",
    )  # fmt: skip
    with kinema.client() as http:
        v2 = http.post(UNIFIED, json={"model": "video-01", "prompt": "A heron lifts off."})
    seen = conforms(client.videos.retrieve(v2.json()["id"]))
    assert (seen.model, seen.status, seen.seconds, seen.size) == (
        "video-01", "queued", "6", "1280x720",
    )  # fmt: skip
    kinema.work()
    assert conforms(client.videos.retrieve(made.id)).status == "completed"


def test_create_and_poll_completes_with_the_worker_running(kinema: InProcess) -> None:
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            if not kinema.work():
                stop.wait(0.05)

    runner = threading.Thread(target=work, daemon=True)
    runner.start()
    try:
        with sdk(kinema) as client:
            video = conforms(client.videos.create_and_poll(
                prompt="Waves on a pebble beach.", model="video-01", seconds="6"
            ))  # fmt: skip
    finally:
        stop.set()
        runner.join()
    assert (video.status, video.progress, video.model, video.seconds) == (
        "completed", 100, "video-01", "6",
    )  # fmt: skip


def test_list_pages_newest_first_with_auto_pagination_and_asc(kinema: InProcess) -> None:
    _, secret = kinema.store.create_key("lister", None)
    with sdk(kinema, secret) as client:
        made = [client.videos.create(prompt=f"clip {n}", model="video-01").id for n in range(5)]
        page = client.videos.list(limit=2)
        assert [v.id for v in page.data] == made[::-1][:2] and page.has_more is True
        assert page.last_id == made[3]
        every = [conforms(video).id for video in client.videos.list(limit=2)]
        assert every == made[::-1]  # all pages, through `after=last_id`
        oldest = client.videos.list(limit=3, order="asc")
        assert [v.id for v in oldest.data] == made[:3] and oldest.has_more is True
        rest = client.videos.list(limit=3, order="asc", after=oldest.last_id)
        assert [v.id for v in rest.data] == made[3:] and rest.has_more is False
        with pytest.raises(openai.NotFoundError):
            client.videos.list(after="no-such-video")
    with sdk(kinema) as other:  # another key's list does not hold them
        assert not set(made) & {v.id for v in other.videos.list(limit=100).data}


def test_remix_keeps_the_inputs_with_the_new_prompt(
    kinema: InProcess, client: openai.OpenAI
) -> None:
    source = client.videos.create(
        prompt="A cat looks left.", input_reference=("cat.png", WIDE, "image/png"),
        size="1280x720", seconds="4",
    )  # fmt: skip
    remix = conforms(client.videos.remix(source.id, prompt="The cat looks right."))
    assert remix.remixed_from_video_id == source.id and remix.prompt == "The cat looks right."
    assert (remix.size, remix.seconds, remix.model) == ("1280x720", "4", "sora-2")
    before, after = kinema.store.get_job(source.id), kinema.store.get_job(remix.id)
    assert before is not None and after is not None
    assert after.params == {**before.params, "prompt": "The cat looks right."}
    kinema.work()
    assert conforms(client.videos.retrieve(remix.id)).remixed_from_video_id == source.id
    # The link survives in the store: every later read shows it.
    listed = {v.id: v for v in client.videos.list(limit=100).data}
    assert listed[remix.id].remixed_from_video_id == source.id


def test_extend_continues_from_the_last_frame_stitched_to_the_total(
    kinema: InProcess, client: openai.OpenAI
) -> None:
    source = client.videos.create(prompt="A kite rises.", model="video-01")
    kinema.work()
    # openai 3.57's extend() cannot send `video={"id": ...}` (its multipart file
    # extraction rejects the dict), so the reference rides in extra_body, as multipart.
    extended = conforms(client.videos.extend(
        video=openai.omit, prompt="The kite loops once.", seconds="6",
        extra_body={"video": {"id": source.id}},
    ))  # fmt: skip
    assert (extended.seconds, extended.model, extended.size) == ("12", "video-01", "1280x720")
    job = kinema.store.get_job(extended.id)
    assert job is not None and job.params["image_url"].startswith("data:image/jpeg;base64,")
    assert job.params["prompt"] == "The kite loops once."
    kinema.work()
    done = conforms(client.videos.retrieve(extended.id))
    assert (done.status, done.seconds) == ("completed", "12")
    finished = kinema.store.get_job(extended.id)
    assert finished is not None and finished.output is not None
    assert finished.output["duration"] == pytest.approx(12.0, abs=0.3)  # 6 s + 6 s, stitched
    assert finished.output["generated_seconds"] == pytest.approx(6.0, abs=0.3)
    original = kinema.store.get_job(source.id)
    assert original is not None and finished.credits_used == original.credits_used  # 6 s each
    data = client.videos.download_content(extended.id).content
    path = kinema.settings.data_dir / "extended.mp4"
    path.write_bytes(data)
    assert probe_mp4(path).duration == pytest.approx(12.0, abs=0.3)


def test_extend_refuses_unfinished_videos_and_bad_seconds(
    kinema: InProcess, client: openai.OpenAI
) -> None:
    queued = client.videos.create(prompt="Rain on glass.", model="video-01")
    with pytest.raises(openai.ConflictError, match="only a completed video"):
        client.post(
            "/videos/extensions", cast_to=Video,
            body={"video": {"id": queued.id}, "prompt": "More rain.", "seconds": "6"},
        )  # fmt: skip
    kinema.work()
    with pytest.raises(openai.BadRequestError) as refused:
        client.post(
            "/videos/extensions", cast_to=Video,
            body={"video": {"id": queued.id}, "prompt": "More rain.", "seconds": "4"},
        )  # fmt: skip
    assert refused.value.body["param"] == "seconds"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="not supported"):
        client.videos.extend(video=b"\x00\x00\x00\x18ftypmp42", prompt="x", seconds="4")


def test_delete_removes_the_video_its_posters_and_cancels_pending_ones(
    kinema: InProcess, client: openai.OpenAI
) -> None:
    done = client.videos.create(prompt="A lamp flickers.", model="video-01")
    kinema.work()
    output = kinema.store.get_job(done.id).output  # type: ignore[union-attr]
    assert output is not None and output["thumbnail_key"] and output["spritesheet_key"]
    gone = client.videos.delete(done.id)
    assert VideoDeleteResponse.model_validate(gone.to_dict()).deleted is True
    assert gone.object == "video.deleted" and gone.id == done.id
    for key in ("key", "thumbnail_key", "spritesheet_key"):
        assert not kinema.storage.exists(output[key])
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(done.id)
    queued = client.videos.create(prompt="Never rendered.", model="video-01")
    assert client.videos.delete(queued.id).deleted is True  # cancelled, then deleted
    assert kinema.work() == [] and kinema.store.get_job(queued.id) is None
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(queued.id)


def test_errors_in_openais_envelope_and_status_codes(
    kinema: InProcess, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as bad_size:
        client.videos.create(prompt="x", size="1792x1024")
    error = bad_size.value.body
    assert isinstance(error, dict) and error["param"] == "size"
    assert error["type"] == "invalid_request_error" and "'1280x720'" in error["message"]
    with pytest.raises(openai.BadRequestError) as bad_seconds:
        client.videos.create(prompt="x", seconds="12")
    assert "'4', '6', '8'" in bad_seconds.value.message
    with pytest.raises(openai.BadRequestError, match="Supported models"):
        client.videos.create(prompt="x", model="no-such-model")
    with pytest.raises(openai.BadRequestError, match="does not take negative_prompt"):
        client.videos.create(prompt="x", extra_body={"negative_prompt": "blur"})
    with pytest.raises(openai.BadRequestError, match="Edits are not supported"):
        client.videos.edit(prompt="x", video=b"\x00")
    with pytest.raises(openai.BadRequestError, match="Characters are not supported"):
        client.videos.create_character(name="x", video=b"\x00")
    mine = client.videos.create(prompt="Mine.", model="video-01")
    with pytest.raises(openai.NotFoundError, match="has no content"):
        client.videos.download_content(mine.id)
    _, secret = kinema.store.create_key("stranger", None)
    with sdk(kinema, secret) as stranger:
        for call in (
            lambda: stranger.videos.retrieve(mine.id),
            lambda: stranger.videos.download_content(mine.id),
            lambda: stranger.videos.remix(mine.id, prompt="theirs"),
            lambda: stranger.videos.delete(mine.id),
        ):
            with pytest.raises(openai.NotFoundError) as missing:
                call()
            assert missing.value.status_code == 404 and mine.id in missing.value.message
    with sdk(kinema, "kn-wrong") as anonymous, pytest.raises(openai.AuthenticationError):
        anonymous.videos.list()
    with kinema.client() as http:
        raw = http.post(
            "/v1/videos", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert raw.status_code == 400 and set(raw.json()["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }
        assert http.put("/v1/videos").status_code == 405
        assert http.get("/v1/nothing-here").json()["error"]["type"] == "invalid_request_error"


def test_idempotency_key_replays_the_same_video(client: openai.OpenAI) -> None:
    headers = {"Idempotency-Key": "openai-once"}
    first = client.videos.with_raw_response.create(
        prompt="Once.", model="video-01", extra_headers=headers
    )
    again = client.videos.with_raw_response.create(
        prompt="Once.", model="video-01", extra_headers=headers
    )
    assert first.parse().id == again.parse().id and again.headers["idempotent-replayed"] == "true"


def test_failed_video_and_old_rows(tmp_path: Path) -> None:
    with in_process(tmp_path, [FailingEngine()]) as service, sdk(service) as client:
        made = client.videos.create(prompt="Doomed.", model="video-01")
        service.work()
        failed = conforms(client.videos.retrieve(made.id))
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "generation_error" and "fails every job" in failed.error.message
    old = {
        "key": "videos/x.mp4", "content_type": "video/mp4", "file_name": "x.mp4",
        "file_size": 1, "duration": 1.0, "width": 2, "height": 2, "has_audio": False,
    }  # fmt: skip
    assert VideoOutput.from_dict(old).thumbnail_key is None  # rows from before load


def test_the_sdk_against_a_real_server(server: KinemaServer) -> None:
    """`kinema serve` with its default engines: an image-to-video job through the alias,
    polled by the SDK with the server's `openai-poll-after-ms`."""
    with openai.OpenAI(api_key=server.key, base_url=server.base_url + "/v1") as client:
        video = conforms(client.videos.create_and_poll(
            prompt="Slow push-in on the harbour.", seconds="4", size="1280x720",
            input_reference=("harbour.png", WIDE, "image/png"),
        ))  # fmt: skip
        assert (video.status, video.size, video.seconds) == ("completed", "1280x720", "4")
        data = client.videos.download_content(video.id).content
        thumbnail = client.videos.download_content(video.id, variant="thumbnail").content
    path = server.data_dir / f"{video.id}.mp4"
    path.write_bytes(data)
    info = probe_mp4(path)
    assert (info.width, info.height) == (1280, 720) and info.duration == pytest.approx(4.0, 0.1)
    assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"
    with httpx.Client(base_url=server.base_url, headers=server.headers) as http:
        polled = http.get(UNIFIED, params={"generation_id": video.id}).json()
    assert polled["status"] == "completed"
