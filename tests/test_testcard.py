"""The `testcard` engine: every capability as a labelled test card, exact shapes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kinema.engines.testcard import TestcardEngine
from kinema.render_request import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, MediaRef, RenderRequest
from kinema.testing import FakeContext, InProcess
from tests.support import finish, make_image
from tests.videos import download, probe

DRAGON = (
    "A menacing evil dragon appears in a distance above the tallest mountain, then rushes "
    "toward the camera with its jaws open, revealing massive fangs. We see it’s coming."
)


def render(tmp_path: Path, name: str, request: RenderRequest, **inputs: bytes) -> Path:
    ctx = FakeContext(tmp_path, inputs=inputs, output_name=name)
    TestcardEngine().generate(request, ctx)
    return ctx.output_path


@pytest.mark.parametrize(
    ("aspect", "short", "seconds", "audio", "size"),
    [("16:9", 720, 4, True, (1280, 720)), ("9:16", 480, 2, False, (480, 854)),
     ("1:1", 512, 1.2, True, (512, 512))],
)  # fmt: skip
def test_text_to_video_shapes(
    tmp_path: Path, aspect: str, short: int, seconds: float, audio: bool, size: tuple[int, int]
) -> None:
    request = RenderRequest(
        model="m", capability=TEXT_TO_VIDEO, prompt="bars", aspect=aspect, short_side=short,
        duration=seconds, generate_audio=audio,
    )  # fmt: skip
    p = probe(render(tmp_path, "a.mp4", request))
    assert (p.width, p.height) == size
    assert p.frames == round(seconds * 25)
    assert p.has_audio is audio


def test_deterministic_and_image_inset(tmp_path: Path) -> None:
    image = make_image(800, 600)
    request = RenderRequest(
        model="m", capability=IMAGE_TO_VIDEO, prompt="x", duration=1,
        image=MediaRef("image_url", "https://example.test/a.png"),
    )  # fmt: skip
    a = render(tmp_path, "a.mp4", request, image_url=image)
    b = render(tmp_path, "b.mp4", request, image_url=image)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    p = probe(a)
    assert (p.width, p.height) == (960, 720)  # the image's own 4:3 at 720p


@pytest.mark.parametrize(
    ("body", "seconds"),
    [({"model": "veo-3.1-lite-generate-001", "prompt": DRAGON}, 8),
     ({"model": "video-01", "prompt": DRAGON}, 6)],
)  # fmt: skip
def test_seed_prompt_only_requests_complete(
    tmp_path: Path, body: dict[str, str], seconds: float
) -> None:
    service = InProcess(tmp_path, engines=[TestcardEngine()])
    try:
        with service.client() as client:
            answer = client.post("/v2/video/generations", json=body)
            assert answer.status_code in (200, 201), answer.text
            result = finish(service, client, answer.json()["id"])
            assert result["status"] == "completed", result
            assert result["meta"]["backend"] == "testcard"
            p = probe(download(result["video"]["url"], tmp_path / "v.mp4", client))
            assert p.frames == seconds * 25 and p.height == 720
    finally:
        service.close()
