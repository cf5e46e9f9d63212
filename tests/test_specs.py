"""Model specs mirror the official schemas: required fields, enums, defaults, aliases and
the spellings real clients send. (HTTP-level error shapes are in test_api.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from kinema.errors import ValidationFailed
from kinema.render_request import FIRST_LAST_FRAME, IMAGE_TO_VIDEO, LIP_SYNC_TTS, TEXT_TO_VIDEO
from kinema.specs import ROUTES, parse_request

IMG = "https://example.com/a.png"


def fields_of(route: str, body: dict[str, Any]) -> dict[str, Any]:
    return parse_request(route, body).model_dump()


def test_defaults_follow_the_official_schemas() -> None:
    assert fields_of("unified", {"model": "veed/fabric-1.0", "image_url": IMG,
                                 "audio_url": IMG})["resolution"] == "480p"  # fmt: skip
    v = fields_of("unified", {"model": "video-01", "prompt": "p"})
    assert v["enhance_prompt"] is True and v["image_url"] is None
    veo = fields_of("unified", {"model": "google/veo-3.1-i2v-fast", "prompt": "p",
                                "image_url": IMG})  # fmt: skip
    assert (veo["duration"], veo["resolution"], veo["generate_audio"], veo["aspect_ratio"]) == (
        8, "1080p", True, None)  # fmt: skip
    pix = fields_of("unified", {"model": "pixverse/v5/image-to-video", "prompt": "p",
                                "image_url": IMG})  # fmt: skip
    assert (pix["duration"], pix["resolution"], pix["style"], pix["seed"]) == (5, "720p", None,
                                                                              None)  # fmt: skip
    lite = fields_of("unified", {"model": "veo-3.1-lite-generate-001", "prompt": "p"})
    assert (lite["duration"], lite["resolution"], lite["person_generation"],
            lite["generate_audio"]) == (8, "720P", "allow_adult", True)  # fmt: skip
    legacy = fields_of("pixverse", {"model": "pixverse/v5/image-to-video", "prompt": "p",
                                    "image_url": IMG})  # fmt: skip
    assert legacy["aspect_ratio"] == "16:9" and legacy["duration"] is None
    mm = fields_of("minimax", {"model": "video-01", "prompt": "p"})
    assert mm["prompt_optimizer"] is True


def test_real_client_spellings() -> None:
    base = {"model": "google/veo-3.1-lite-generate-001", "prompt": "p", "image_url": IMG}
    spec = parse_request("unified", {**base, "duration": "6", "resolution": "1080p",
                                     "tail_image_url": IMG})  # fmt: skip
    assert spec.model_dump()["duration"] == 6 and spec.model_dump()["resolution"] == "1080P"
    assert spec.model_dump()["last_image_url"] == IMG
    assert spec.render().capability == FIRST_LAST_FRAME
    assert parse_request("unified", {**base, "model": "veo-3.1-lite-generate-001"}).render(
    ).capability == IMAGE_TO_VIDEO  # fmt: skip
    fabric = parse_request("unified", {"model": "veed/fabric-1.0", "image_url": IMG,
                                       "audio_url": IMG, "resolution": "720P"})  # fmt: skip
    assert fabric.model_dump()["resolution"] == "720p"
    assert fabric.render().audio is not None and fabric.render().audio.kind == "audio"


def test_capabilities_per_request_shape() -> None:
    assert parse_request("unified", {"model": "video-01", "prompt": "p"}).render(
    ).capability == TEXT_TO_VIDEO  # fmt: skip
    lip = parse_request("unified", {"model": "pixverse/v5/image-to-video", "prompt": "p",
                                    "image_url": IMG, "lip_sync_tts_content": "hi",
                                    "lip_sync_tts_speaker": "Auto"})  # fmt: skip
    request = lip.render()
    assert request.capability == LIP_SYNC_TTS and request.tts_speaker == "Auto"


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_model_rejects_unknown_fields_and_requires_its_fields(route: str) -> None:
    for cls in ROUTES[route]:
        model = cls.MODEL_IDS[0]
        with pytest.raises(ValidationFailed) as exc:
            parse_request(route, {"model": model, "surprise": 1})
        fields = {p.field for p in exc.value.problems}
        assert "surprise" in fields
        required = {n for n, f in cls.model_fields.items() if f.is_required()} - {"model"}
        assert required <= fields, (model, required, fields)
        # The published JSON Schema carries the same required list and enums.
        schema = cls.model_json_schema()
        assert set(schema.get("required", [])) == required | {"model"}


def test_integer_fields_refuse_non_numeric_strings() -> None:
    with pytest.raises(ValidationFailed):
        parse_request("unified", {"model": "google/veo-3.1-i2v-fast", "prompt": "p",
                                  "image_url": IMG, "duration": "eight"})  # fmt: skip
