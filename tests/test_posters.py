"""Posters (the WebP thumbnail and the JPEG spritesheet of the OpenAI Videos dialect) are
made on their first request, not when a job completes: the completion stores only the
video and names their keys; the first request makes both from the stored video, stores
them and serves one; later requests serve the stored blobs. Local storage and S3 (moto)."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kinema.jobs.model import VideoOutput
from kinema.media.encode import write_mp4
from kinema.media.poster_store import PosterMaker, Undecodable
from kinema.media.posters import make_posters
from kinema.storage import LocalStorage
from kinema.storage.signing import UrlSigner
from kinema.testing import InProcess, InstantEngine, in_process
from kinema.testing.engines import FixtureOptions
from tests.test_storage_s3 import ACCESS_KEY, SECRET_KEY, moto  # noqa: F401 - the fixture

VIDEOS = "/v1/videos"


@pytest.fixture(scope="module")
def kinema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    engine = InstantEngine(FixtureOptions(width=640, height=360, fps=4))
    with in_process(tmp_path_factory.mktemp("posters"), [engine]) as service:
        yield service


def completed(service: InProcess, prompt: str = "A kite over dunes.") -> dict[str, Any]:
    """A finished video's stored output (its id under `id`)."""
    with service.client() as http:
        made = http.post(VIDEOS, json={"prompt": prompt, "seconds": "4"})
    assert made.status_code == 200, made.text
    service.work()
    job = service.store.get_job(made.json()["id"])
    assert job is not None and isinstance(job.output, dict)
    return {**job.output, "id": job.id}


def content(service: InProcess, video_id: str, variant: str) -> Any:
    with service.client() as http:
        return http.get(f"{VIDEOS}/{video_id}/content", params={"variant": variant})


def test_completion_stores_only_the_video_and_names_the_poster_keys(kinema: InProcess) -> None:
    output = completed(kinema)
    video_id = output["id"]
    assert output["thumbnail_key"] == f"videos/{video_id}.thumbnail.webp"
    assert output["spritesheet_key"] == f"videos/{video_id}.spritesheet.jpg"
    assert kinema.storage.exists(output["key"])
    assert not kinema.storage.exists(output["thumbnail_key"])
    assert not kinema.storage.exists(output["spritesheet_key"])


def test_first_request_makes_and_stores_both_later_ones_serve_them(kinema: InProcess) -> None:
    output = completed(kinema)
    sheet = content(kinema, output["id"], "spritesheet")
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(sheet.content)) as grid:  # 4 s: four 256x144 tiles in a row
        assert (grid.format, grid.size) == ("JPEG", (1024, 144))
    # One decode made both: the thumbnail is stored already, before it is asked for.
    stored = kinema.storage.path(output["thumbnail_key"])  # type: ignore[attr-defined]
    assert stored.is_file()
    before = stored.stat()
    first = content(kinema, output["id"], "thumbnail")
    again = content(kinema, output["id"], "thumbnail")
    assert first.status_code == again.status_code == 200
    assert first.headers["content-type"] == "image/webp" and first.content == again.content
    with Image.open(io.BytesIO(first.content)) as poster:
        assert (poster.format, poster.size) == ("WEBP", (640, 360))
    after = stored.stat()  # served, not made again (a put replaces the file: a new inode)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert first.content == stored.read_bytes()


def test_concurrent_first_requests_make_the_posters_once(kinema: InProcess) -> None:
    output = completed(kinema)

    async def burst() -> list[Any]:
        async with kinema.async_client() as http:
            url = f"{VIDEOS}/{output['id']}/content"
            return await asyncio.gather(*(
                http.get(url, params={"variant": ("thumbnail", "spritesheet")[i % 2]})
                for i in range(8)
            ))  # fmt: skip

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.content for a in answers[0::2]}) == len({a.content for a in answers[1::2]}) == 1
    # The same through the maker itself from 8 threads: `wanted` is asked once per making.
    fresh = completed(kinema, "Rain on a tin roof.")
    maker = PosterMaker(kinema.storage)
    makings: list[int] = []
    keys = (fresh["key"], fresh["thumbnail_key"], fresh["spritesheet_key"])

    def wanted() -> bool:
        makings.append(1)
        return True

    threads = [threading.Thread(target=maker.ensure, args=(*keys, wanted)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(makings) == 1 and kinema.storage.exists(fresh["spritesheet_key"])
    assert not maker._locks  # every per-video lock released and dropped


def test_delete_removes_the_video_and_the_posters_made_or_not(kinema: InProcess) -> None:
    asked = completed(kinema)
    never = completed(kinema, "Never previewed.")
    assert content(kinema, asked["id"], "thumbnail").status_code == 200
    with kinema.client() as http:
        for output in (asked, never):
            gone = http.delete(f"{VIDEOS}/{output['id']}")
            assert gone.status_code == 200 and gone.json()["deleted"] is True
            keys = VideoOutput.from_dict({k: v for k, v in output.items() if k != "id"}).blob_keys()
            assert len(keys) == 3 and not any(kinema.storage.exists(key) for key in keys)
            missing = http.get(f"{VIDEOS}/{output['id']}/content", params={"variant": "thumbnail"})
            assert missing.status_code == 404


def test_posters_made_for_a_job_deleted_meanwhile_do_not_outlive_it(kinema: InProcess) -> None:
    output = completed(kinema)
    # The moment of a delete after its row went and before its blobs do: the maker finds
    # the row gone once the posters are stored, and removes them itself.
    assert kinema.store.delete_job(output["id"], None) is not None
    maker = PosterMaker(kinema.storage)
    with pytest.raises(FileNotFoundError):
        maker.ensure(
            output["key"], output["thumbnail_key"], output["spritesheet_key"],
            lambda: kinema.store.get_job(output["id"]) is not None,
        )  # fmt: skip
    assert not kinema.storage.exists(output["thumbnail_key"])
    assert not kinema.storage.exists(output["spritesheet_key"])
    kinema.storage.delete(output["key"])
    with pytest.raises(FileNotFoundError):  # the video itself gone: nothing to make
        maker.ensure(output["key"], output["thumbnail_key"], output["spritesheet_key"], bool)


def test_an_undecodable_video_is_a_clear_404_and_the_server_keeps_serving(
    kinema: InProcess,
) -> None:
    broken = completed(kinema, "Corrupted later.")
    kinema.storage.path(broken["key"]).write_bytes(b"\x00" * 4096)  # type: ignore[attr-defined]
    for _ in range(2):  # the second answer comes from the remembered failure
        refused = content(kinema, broken["id"], "spritesheet")
        assert refused.status_code == 404
        error = refused.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "not_found"
        assert error["message"].startswith(f"Video '{broken['id']}' has no spritesheet: its ")
        assert "cannot be decoded (Invalid data found" in error["message"]
        assert str(kinema.settings.data_dir) not in error["message"]  # no local paths
    assert not kinema.storage.exists(broken["spritesheet_key"])
    healthy = completed(kinema)
    assert content(kinema, healthy["id"], "thumbnail").status_code == 200
    assert content(kinema, broken["id"], "video").status_code == 200  # its bytes, as stored


def test_make_posters_tiles_and_rejects_a_video_without_frames(tmp_path: Path) -> None:
    import numpy as np

    frames = [np.full((180, 320, 3), 20 * i, np.uint8) for i in range(10)]  # 2.5 s at 4 fps
    video = tmp_path / "ramp.mp4"
    write_mp4(video, iter(frames), fps=4, width=320, height=180, audio=None)
    made = make_posters(video, tmp_path / "out")
    assert (made.columns, made.rows, made.tile_width, made.tile_height) == (4, 1, 256, 144)
    with Image.open(made.spritesheet) as sheet:
        tiles = np.asarray(sheet.convert("L"), np.float32).reshape(144, 4, 256).mean(axis=(0, 2))
    assert list(tiles) == sorted(tiles) and tiles[-1] - tiles[0] > 60  # evenly spaced, in order
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(Exception):  # noqa: B017 - PyAV's own error; the maker wraps it
        make_posters(empty, tmp_path / "none")
    with pytest.raises(Undecodable, match="cannot be decoded"):
        storage = LocalStorage(tmp_path, UrlSigner(b"0" * 32))
        PosterMaker(storage).ensure("empty.mp4", "t.webp", "s.jpg", bool)


def test_on_s3_the_first_request_makes_them_through_a_presigned_fetch(
    moto: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    s3 = {
        "storage_url": "s3://kinema-posters/p", "s3_endpoint_url": moto,
        "s3_access_key_id": ACCESS_KEY, "s3_secret_access_key": SECRET_KEY,
        "s3_create_bucket": True,
    }  # fmt: skip
    engine = InstantEngine(FixtureOptions(width=640, height=360, fps=4))
    with in_process(tmp_path, [engine], **s3) as service:
        output = completed(service)
        assert not service.storage.exists(output["thumbnail_key"])
        first = content(service, output["id"], "thumbnail")
        assert first.status_code == 200 and first.content[8:12] == b"WEBP"
        assert service.storage.exists(output["thumbnail_key"])
        assert service.storage.exists(output["spritesheet_key"])
        assert content(service, output["id"], "thumbnail").content == first.content
        with service.client() as http:
            assert http.delete(f"{VIDEOS}/{output['id']}").status_code == 200
        assert not service.storage.exists(output["thumbnail_key"])
        assert not service.storage.exists(output["key"])
