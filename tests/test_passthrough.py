"""Passthrough: an `aimlapi` upstream with `"passthrough": true` lets Kinema take any of the
AI/ML API's other video model ids on POST /v2/video/generations and forward the body
as-is, with Kinema's keys, prices, idempotency, durability and mirroring. Against the
fake AI/ML API (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kinema.errors import ConfigError
from kinema.providers import build_providers
from kinema.providers.runner import upstream_state
from kinema.settings import Settings
from kinema.testing import InProcess
from tests.fake_providers import KEY, FakeProvider
from tests.support import finish, free_port
from tests.videos import download, probe

SUBMIT = "/v2/video/generations"
KLING = {
    "model": "kling-video/v1.6/pro/text-to-video",
    "prompt": "A paper boat drifting down a rainy street",
    "duration": "5",
    "aspect_ratio": "16:9",
    "camera_control": {"type": "simple", "config": {"zoom": 2}},
    "negative_prompt": None,
}
CLIP_SECONDS = 2  # the fake's video; charged by its real length

pytestmark = pytest.mark.usefixtures("fake_env")  # every test here talks to fake upstreams


def upstream(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "aimlapi", "base_url": fake.base_url, "api_key_env": "FAKE_UP_KEY",
        "poll_seconds": 0.05, "request_timeout_seconds": 2.0, "passthrough": True, **extra,
    }  # fmt: skip


def service(tmp_path: Path, upstreams: dict[str, Any], **settings: Any) -> InProcess:
    defaults: dict[str, Any] = {"prices": {"*@aiml": 50_000}}
    return InProcess(
        tmp_path, engines=[], upstreams=upstreams, lease_seconds=3, **{**defaults, **settings}
    )


def test_an_unknown_model_is_forwarded_as_is_and_mirrored(
    tmp_path: Path, aiml: FakeProvider
) -> None:
    svc = service(tmp_path, {"aiml": upstream(aiml)})
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json=KLING)
            assert answer.status_code == 201, answer.text
            assert answer.json()["meta"]["usage"]["credits_used"] == 50_000 * 5  # reserved
            gen_id = answer.json()["id"]
            result = finish(svc, client, gen_id)
            assert result["status"] == "completed", result
            assert result["model"] == KLING["model"]
            assert result["meta"]["backend"] == "aiml"
            assert result["meta"]["usage"]["credits_used"] == 50_000 * CLIP_SECONDS
            assert result["video"]["url"].startswith("http://kinema.test/")  # Kinema's copy
            assert probe(download(result["video"]["url"], tmp_path / "o.mp4", client)).frames
            # the body reached the upstream exactly as sent: nested object, null and all
            assert next(iter(aiml.state.jobs.values())).body == KLING
            job = svc.store.get_job(gen_id)
            assert job is not None and job.route == "passthrough"
            state = upstream_state(job)
            assert state is not None and state["cost"] == {"credits_used": 42}
            assert KEY not in json.dumps(state) + json.dumps(result)
    finally:
        svc.close()


def test_without_passthrough_an_unknown_model_keeps_the_400(
    tmp_path: Path, aiml: FakeProvider
) -> None:
    svc = service(tmp_path, {"aiml": upstream(aiml, passthrough=False)})
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json=KLING)
            assert answer.status_code == 400
            detail = answer.json()["details"][0]
            assert detail["field"] == "model" and "'video-01'" in detail["message"]
            assert aiml.submits == 0
    finally:
        svc.close()


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({**KLING, "model": 7}, "model", "Expected"),
        ({**KLING, "model": "kling video!"}, "model", "Invalid model id"),
        ({**KLING, "prompt": "x" * 3000}, "body", "at most 2048 bytes"),
        ([KLING], "body", "JSON object"),
    ],
)
def test_minimal_validation_names_the_field(
    tmp_path: Path, aiml: FakeProvider, body: Any, field: str, needle: str
) -> None:
    svc = service(tmp_path, {"aiml": upstream(aiml)}, max_input_bytes=2048)
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json=body)
            assert answer.status_code == 400, answer.text
            detail = answer.json()["details"][0]
            assert detail["field"] == field and needle in detail["message"], detail
    finally:
        svc.close()


def test_a_known_model_is_still_validated_by_its_spec(tmp_path: Path, aiml: FakeProvider) -> None:
    svc = service(tmp_path, {"aiml": upstream(aiml)})
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json={"model": "video-01", "prompt": "x", "bogus": 1})
            assert answer.status_code == 400
            assert answer.json()["details"][0]["field"] == "bogus"
    finally:
        svc.close()


def test_no_price_is_a_400_naming_the_model_and_the_setting(
    tmp_path: Path, aiml: FakeProvider
) -> None:
    svc = service(tmp_path, {"aiml": upstream(aiml)}, prices={"video-01": 1})
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json=KLING)
            assert answer.status_code == 400
            detail = answer.json()["details"][0]
            assert detail["field"] == "model" and "KINEMA_PRICES" in detail["message"]
            assert aiml.submits == 0
    finally:
        svc.close()


def test_prices_most_specific_first(tmp_path: Path, aiml: FakeProvider) -> None:
    prices = {"*": 1, "*@aiml": 2, KLING["model"]: 3, f"{KLING['model']}@aiml": 4}
    svc = service(tmp_path, {"aiml": upstream(aiml)}, prices=prices)
    try:
        with svc.client() as client:
            quote = client.post(SUBMIT, params={"dry_run": "true"}, json=KLING).json()
            assert quote["meta"]["usage"]["credits_used"] == 4 * 5
            assert quote["backend"] == "aiml"
            other = {**KLING, "model": "minimax/hailuo-02", "duration": None}
            quote = client.post(SUBMIT, params={"dry_run": "true"}, json=other).json()
            assert quote["meta"]["usage"]["credits_used"] == 2 * 10  # no duration: 10 s
    finally:
        svc.close()


def test_an_upstream_refusal_names_the_field(tmp_path: Path, aiml: FakeProvider) -> None:
    aiml.state.reject = {
        "message": "Body validation error!",
        "details": [{"field": "aspect_ratio", "message": "Invalid enum value"}],
    }
    svc = service(tmp_path, {"aiml": upstream(aiml)})
    try:
        with svc.client() as client:
            gen_id = client.post(SUBMIT, json=KLING).json()["id"]
            result = finish(svc, client, gen_id)
            assert result["error"]["name"] == "UpstreamRejected", result
            assert "field 'aspect_ratio'" in result["error"]["message"]
            assert "Invalid enum value" in result["error"]["message"]
            assert result["meta"]["usage"]["credits_used"] == 0
    finally:
        svc.close()


def test_idempotent_submits_and_one_upstream_job(tmp_path: Path, aiml: FakeProvider) -> None:
    """Kinema's own Idempotency-Key on the front, and an upstream that honours one (as a
    Kinema back does: `idempotent: true`) behind it."""
    aiml.inject("submit", "sent-then-drop")  # the upstream took it; its answer was lost
    svc = service(tmp_path, {"aiml": upstream(aiml, idempotent=True)})
    try:
        with svc.client() as client:
            headers = {"Idempotency-Key": "pass-1"}
            one = client.post(SUBMIT, json=KLING, headers=headers)
            two = client.post(SUBMIT, json=KLING, headers=headers)
            assert one.json()["id"] == two.json()["id"]
            assert two.headers["Idempotent-Replayed"] == "true"
            result = finish(svc, client, one.json()["id"])
            assert result["status"] == "completed", result
            assert aiml.submits == 1
    finally:
        svc.close()


def test_fails_over_between_passthrough_upstreams(tmp_path: Path, aiml: FakeProvider) -> None:
    down = {"kind": "aimlapi", "base_url": f"http://127.0.0.1:{free_port()}", "api_key": "x",
            "passthrough": True, "submit_attempts": 1}  # fmt: skip
    svc = service(tmp_path, {"down": down, "aiml": upstream(aiml)},
                  prices={"*@down": 9, "*@aiml": 7})  # fmt: skip
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json=KLING)
            assert answer.json()["meta"]["usage"]["credits_used"] == 9 * 5  # routed to down
            result = finish(svc, client, answer.json()["id"])
            assert result["status"] == "completed", result
            assert result["meta"]["backend"] == "aiml"
            assert result["meta"]["usage"]["credits_used"] == 7 * CLIP_SECONDS
    finally:
        svc.close()


def test_passthrough_is_an_aimlapi_option_only() -> None:
    settings = Settings(upstreams={"f": {"kind": "fal", "base_url": "http://x", "api_key": "k",
                                         "passthrough": True}})  # fmt: skip
    with pytest.raises(ConfigError, match="passthrough"):
        build_providers(settings, {})


def test_kinema_in_front_of_kinema_passes_through_twice(tmp_path: Path, aiml: FakeProvider) -> None:
    """Front (in-process) -> back (`kinema serve`, a real process) -> the fake AI/ML API:
    Kinema's own wire takes a passed-through model too; the body arrives unchanged at the
    end of the chain, and the video is served from the front's storage."""
    from tests.support import TEST_KEY, KinemaServer

    back_up = {"aiml": {**upstream(aiml), "poll_seconds": 0.1}}
    back = KinemaServer(
        tmp_path / "back", workers=1, KINEMA_ENGINES="testcard", FAKE_UP_KEY=KEY,
        KINEMA_UPSTREAMS=json.dumps(back_up), KINEMA_PRICES=json.dumps({"*": 1}),
    )  # fmt: skip
    back.start()
    try:
        front_up = {"back": {"kind": "aimlapi", "base_url": back.base_url, "api_key": TEST_KEY,
                             "passthrough": True, "poll_seconds": 0.1}}  # fmt: skip
        svc = service(tmp_path / "front", front_up, prices={"*@back": 5})
        try:
            with svc.client() as client:
                gen_id = client.post(SUBMIT, json=KLING).json()["id"]
                result = finish(svc, client, gen_id)
                assert result["status"] == "completed", (result, back.log())
                assert result["meta"]["backend"] == "back"
                assert result["video"]["url"].startswith("http://kinema.test/")
                assert result["meta"]["usage"]["credits_used"] == 5 * CLIP_SECONDS
        finally:
            svc.close()
        assert [job.body for job in aiml.state.jobs.values()] == [KLING]
    finally:
        back.stop()
