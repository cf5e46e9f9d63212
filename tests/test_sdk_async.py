"""kinema.AsyncClient: the same checks as tests/test_sdk.py, awaited (run with asyncio.run,
no plugin): all five models at once against a live server, errors, deadlines that bound
hung requests, retries and resumed downloads against tests/flaky_server.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from kinema.client import (
    APIConnectionError,
    AsyncClient,
    AsyncGeneration,
    AuthenticationError,
    DeadlineExceeded,
    GenerationFailed,
    LocalValidationError,
    NotFoundError,
)
from tests.flaky_server import (
    GENERATIONS,
    Drop,
    File,
    FlakyServer,
    Hang,
    Json,
    completed,
    generation,
)
from tests.support import KinemaServer, MediaServer, free_port
from tests.test_sdk import MODELS, check_progress, check_video, model_cases


def test_generate_all_models_concurrently(
    server: KinemaServer, media: MediaServer, tmp_path: Path
) -> None:
    cases = model_cases(media)
    seen: dict[str, list[tuple[str, float | None]]] = {model: [] for model in MODELS}

    async def run(client: AsyncClient, model: str) -> tuple[AsyncGeneration, Path]:
        async def on_progress(g: AsyncGeneration) -> None:  # async callbacks are awaited
            seen[model].append((g.status, g.progress))

        done = await client.videos.generate(
            model, **cases[model], timeout=180, poll_interval=0.2, on_progress=on_progress
        )
        return done, await done.download(tmp_path / f"{model.replace('/', '_')}.mp4")

    async def main() -> list[tuple[AsyncGeneration, Path]]:
        async with AsyncClient(server.base_url, server.key) as client:
            return await asyncio.gather(*(run(client, model) for model in MODELS))

    for model, (done, path) in zip(MODELS, asyncio.run(main()), strict=True):
        assert done.model == model
        check_progress(seen[model])
        check_video(done, path)


def test_errors_map_to_the_same_types(server: KinemaServer, media: MediaServer) -> None:
    async def main() -> None:
        async with AsyncClient(server.base_url, "kn-wrong") as bad_key:
            with pytest.raises(AuthenticationError):
                await bad_key.videos.get("x")
        async with AsyncClient(server.base_url, server.key) as client:
            with pytest.raises(NotFoundError):
                await client.videos.get("no-such-generation")
            with pytest.raises(GenerationFailed) as failed:
                await client.videos.generate(
                    "veed/fabric-1.0", image=media.root / "landscape.png",
                    audio=f"{media.base}/hope.mp3", timeout=120, poll_interval=0.2,
                )  # fmt: skip
            assert failed.value.error_name == "FaceNotFound"
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", "k") as offline:
            with pytest.raises(LocalValidationError) as local:
                await offline.videos.create("video-01", prompt="x", image=b"not an image")
            assert local.value.details[0]["field"] == "image_url"
            with pytest.raises(LocalValidationError) as bad_style:
                await offline.videos.generate(
                    "pixverse/v5/image-to-video", prompt="x", image_url="https://x/a.png",
                    style="oil painting",
                )  # fmt: skip
            assert bad_style.value.details[0]["field"] == "style"

    asyncio.run(main())


def test_retries_submits_with_one_idempotency_key() -> None:
    body: dict[str, Any] = {"prompt": "x", "image_url": "https://x/a.png"}

    async def main(fake: FlakyServer) -> None:
        fake.queue("GET", GENERATIONS, Drop(), Json(200, generation("g", "queued")))
        async with AsyncClient(fake.base_url, "k", max_retries=1) as client:
            assert (await client.videos.get("g")).status == "queued"
            fake.queue("POST", GENERATIONS, Drop(), Json(201, generation("g2", "queued")))
            assert (await client.videos.create("video-01", **body)).id == "g2"
            fake.queue("POST", GENERATIONS, Drop(), Drop())
            with pytest.raises(APIConnectionError):
                await client.videos.create("video-01", **body)
        assert len(fake.seen("GET")) == 2
        keys = [r.headers["idempotency-key"] for r in fake.seen("POST")]
        assert len(keys) == 4 and keys[0] == keys[1] != keys[2] == keys[3]

    with FlakyServer() as fake:
        asyncio.run(main(fake))


def test_deadline_bounds_a_hung_request() -> None:
    async def main(fake: FlakyServer) -> float:
        fake.fallback("GET", GENERATIONS, Hang(10))
        async with AsyncClient(fake.base_url, "k", timeout=30) as client:
            start = time.monotonic()
            with pytest.raises(DeadlineExceeded) as late:
                await client.videos.wait("g", timeout=1.0)
            assert late.value.generation_id == "g" and late.value.last is None
            return time.monotonic() - start

    with FlakyServer() as fake:
        assert 0.9 <= asyncio.run(main(fake)) < 2.5  # not the 10 s hang


def test_download_resumes_after_a_cut(tmp_path: Path) -> None:
    data = bytes(range(251)) * 3000

    async def main(fake: FlakyServer) -> Any:
        fake.queue("GET", "/v.mp4", File(data, cut_after=200_000), File(data, cut_after=1))
        fake.fallback("GET", "/v.mp4", File(data))
        fake.queue("GET", GENERATIONS, Json(200, completed("g", f"{fake.base_url}/v.mp4", 1)))
        async with AsyncClient(fake.base_url, "k") as client:
            return await client.videos.download("g", tmp_path / "v.mp4")

    with FlakyServer() as fake:
        assert asyncio.run(main(fake)).read_bytes() == data
        ranges = [r.headers.get("range") for r in fake.seen("GET", "/v.mp4")]
        assert ranges == [None, "bytes=200000-", "bytes=200001-"]
