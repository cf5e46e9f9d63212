"""The fal, Replicate and Gemini provider kinds through the real engine code against fake
providers (real HTTP on 127.0.0.1, each provider's documented contract, fault injection);
per-model/backend prices; per-backend metrics and the upstreams on /ready."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from kinema import pricing
from kinema.providers import build_providers
from kinema.providers.base import Hooks, render
from kinema.providers.runner import upstream_state
from kinema.render_request import RenderRequest
from kinema.settings import Settings
from kinema.specs import spec_class
from kinema.testing import InProcess
from tests.fake_providers import KEY, FakeProvider
from tests.support import finish, free_port, make_image
from tests.videos import download, probe

SUBMIT = "/v2/video/generations"
VIDEO01 = {"model": "video-01", "prompt": "A lighthouse at dusk, waves crashing"}
LITE = {"model": "google/veo-3.1-lite-generate-001",
        "prompt": "A dragon flying over a snowy mountain at sunrise", "duration": 4}  # fmt: skip
IMAGE = "data:image/png;base64," + base64.b64encode(make_image(1280, 720, fmt="PNG")).decode()
I2V = {"model": "google/veo-3.1-i2v-fast", "prompt": "The camera pushes in slowly",
       "image_url": IMAGE, "duration": 4}  # fmt: skip

pytestmark = pytest.mark.usefixtures("fake_env")  # every test here talks to fake upstreams


def upstream(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "kind": fake.state.kind, "base_url": fake.base_url, "api_key_env": "FAKE_UP_KEY",
        "poll_seconds": 0.05, "request_timeout_seconds": 2.0, **extra,
    }  # fmt: skip


def run(tmp_path: Path, fake: FakeProvider, body: dict[str, Any], **extra: Any) -> dict:
    ups = {"up": upstream(fake, **extra)}
    svc = InProcess(tmp_path, engines=[], upstreams=ups, routes={body["model"]: ["up"]},
                    lease_seconds=3)  # fmt: skip
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json=body)
            assert answer.status_code in (200, 201), answer.text
            result = finish(svc, client, answer.json()["id"])
            if result["status"] == "completed":
                path = download(result["video"]["url"], tmp_path / "out.mp4", client)
                result["probe"] = probe(path)
            job = svc.store.get_job(answer.json()["id"])
            assert job is not None
            result["state"] = upstream_state(job)
            result["row"] = json.dumps(result["state"]) + json.dumps(job.params)
            return result
    finally:
        svc.close()


def only_job(fake: FakeProvider) -> Any:
    assert fake.submits == 1
    return next(iter(fake.state.jobs.values()))


def clean(result: dict[str, Any]) -> None:
    assert KEY not in result["row"]
    assert KEY not in json.dumps({k: v for k, v in result.items() if k != "probe"})


# ---- fal ------------------------------------------------------------------------------------
def test_fal_text_and_image_map_to_their_apps(tmp_path: Path, fal: FakeProvider) -> None:
    result = run(tmp_path / "t", fal, VIDEO01)
    assert result["status"] == "completed", result
    assert result["meta"]["backend"] == "up" and result["probe"].frames == 50
    job = only_job(fal)
    assert job.body == {"app": "fal-ai/minimax/video-01", "prompt": VIDEO01["prompt"],
                        "prompt_optimizer": True}  # fmt: skip
    assert set(fal.state.auth_seen) == {f"Key {KEY}"}
    # status/result use the app's owner/name only (the URLs fal returned)
    assert ("GET", f"/fal-ai/minimax/requests/{job.id}/status") in fal.state.requests
    assert result["state"]["cost"] == {"metrics": {"inference_time": 12.5}}
    clean(result)
    result = run(tmp_path / "i", fal, {**VIDEO01, "image_url": IMAGE})
    assert result["status"] == "completed", result
    second = next(j for j in fal.state.jobs.values() if j.id != job.id)
    assert second.body["app"] == "fal-ai/minimax/video-01/image-to-video"
    assert second.body["image_url"].startswith("data:image/png;base64,")


def test_fal_veo_fields_and_config_override(tmp_path: Path, fal: FakeProvider) -> None:
    result = run(tmp_path, fal, I2V)
    assert result["status"] == "completed", result
    body = only_job(fal).body
    assert body["app"] == "fal-ai/veo3.1/fast/image-to-video"
    assert body["duration"] == "4s" and body["resolution"] == "1080p"  # the spec's default
    assert body["generate_audio"] is True and body["image_url"] == IMAGE
    override = {"video-01": {"app": "fal-ai/minimax/hailuo-02/standard/text-to-video",
                             "input": {"prompt_optimizer": False}}}  # fmt: skip
    result = run(tmp_path / "o", fal, VIDEO01, models=override)
    assert result["status"] == "completed", result
    last = list(fal.state.jobs.values())[-1].body
    assert last["app"] == "fal-ai/minimax/hailuo-02/standard/text-to-video"
    assert last["prompt_optimizer"] is False


def test_fal_rides_out_faults(tmp_path: Path, fal: FakeProvider) -> None:
    fal.inject("submit", "429", "429")  # 429: surely not accepted, so safe to re-send
    fal.inject("poll", "drop", "malformed", "500", "429", "slow")
    fal.state.slow_seconds = 0.3
    fal.inject("download", "expired", "500")
    result = run(tmp_path, fal, VIDEO01)
    assert result["status"] == "completed", result
    assert fal.submits == 1


@pytest.mark.parametrize("kind", ["fal", "replicate", "gemini"])
def test_submit_lost_after_sending_is_never_resent(
    tmp_path: Path,
    clip: bytes,
    kind: str,
) -> None:
    fake = FakeProvider(kind, clip)
    try:
        fake.inject("submit", "sent-then-drop")
        result = run(tmp_path, fake, LITE)
        assert result["status"] == "error", result
        assert result["error"]["name"] == "UpstreamOutcomeUnknown"
        assert fake.submits == 1
    finally:
        fake.close()


def test_fal_refusal_names_the_field(tmp_path: Path, fal: FakeProvider) -> None:
    fal.state.reject_result = {
        "detail": [
            {"loc": ["body", "prompt"], "msg": "The prompt was flagged", "type": "value_error"}
        ]
    }
    result = run(tmp_path, fal, VIDEO01)
    assert result["error"]["name"] == "UpstreamRejected", result
    assert "field 'prompt'" in result["error"]["message"]
    assert "flagged" in result["error"]["message"]


# ---- replicate --------------------------------------------------------------------------------
def test_replicate_veo_i2v_with_metrics(tmp_path: Path, rep: FakeProvider) -> None:
    result = run(tmp_path, rep, I2V)
    assert result["status"] == "completed", result
    job = only_job(rep)
    assert job.body["model"] == "google/veo-3.1-fast"
    assert job.body["input"]["image"] == IMAGE and job.body["input"]["duration"] == 4
    assert job.body["input"].get("aspect_ratio") in (None, "16:9")
    assert set(rep.state.auth_seen) == {f"Bearer {KEY}"}
    assert result["state"]["cost"] == {"metrics": {"predict_time": 12.5, "total_time": 13.0}}
    assert set(rep.state.file_auth) == {""}  # output files fetched without the key
    clean(result)


def test_replicate_prefer_wait_and_faults(tmp_path: Path, rep: FakeProvider) -> None:
    rep.state.complete_after = 0.1
    rep.inject("poll", "500", "malformed", "drop")
    result = run(tmp_path, rep, VIDEO01, wait_seconds=5)
    assert result["status"] == "completed", result
    assert only_job(rep).body["input"]["prompt_optimizer"] is True


@pytest.mark.parametrize(
    ("setup", "name", "needle"),
    [
        ("reject", "UpstreamRejected", "field 'prompt'"),
        ("failed", "UpstreamFailed", "CUDA out of memory"),
        ("lost", "UpstreamJobLost", "lost"),
        ("quota", "UpstreamQuota", "billing"),
        ("auth", "UpstreamAuth", "credentials"),
    ],
)
def test_replicate_errors_are_mapped(
    tmp_path: Path, rep: FakeProvider, monkeypatch: pytest.MonkeyPatch,
    setup: str, name: str, needle: str,
) -> None:  # fmt: skip
    if setup == "reject":
        rep.state.reject_status = 422
        rep.state.reject = {"detail": "- input: prompt is required", "status": 422,
                            "title": "Input validation failed", "invalid_fields": [
                                {"type": "required", "field": "prompt",
                                 "description": "prompt is required"}]}  # fmt: skip
    elif setup == "failed":
        rep.state.fail_with = {"message": "CUDA out of memory"}
    elif setup == "lost":
        rep.inject("poll", "lost")
    elif setup == "quota":
        rep.state.reject_status = 402
        rep.state.reject = {"detail": "You have insufficient credit", "status": 402}
    elif setup == "auth":
        monkeypatch.setenv("FAKE_UP_KEY", "r8_wrong-key-for-this-test")
    result = run(tmp_path, rep, VIDEO01)
    assert result["status"] == "error", result
    assert result["error"]["name"] == name
    assert needle in result["error"]["message"]
    assert "r8_wrong" not in result["error"]["message"]


def test_fal_veo_lite_apps_by_input(tmp_path: Path, fal: FakeProvider) -> None:
    """Veo Lite: text -> fal's Lite app; first + last frame -> Lite's first-last-frame app,
    whose fields name the frames `first_frame_url` / `last_frame_url`."""
    result = run(tmp_path / "t", fal, LITE)
    assert result["status"] == "completed", result
    assert only_job(fal).body["app"] == "fal-ai/veo3.1/lite"
    pair = {**LITE, "image_url": IMAGE, "last_image_url": IMAGE, "duration": 8}
    result = run(tmp_path / "p", fal, pair)
    assert result["status"] == "completed", result
    second = [j for j in fal.state.jobs.values() if j.body["app"] != "fal-ai/veo3.1/lite"]
    assert len(second) == 1
    body = second[0].body
    assert body["app"] == "fal-ai/veo3.1/lite/first-last-frame-to-video"
    assert body["first_frame_url"] == IMAGE and body["last_frame_url"] == IMAGE
    assert "image_url" not in body and body["prompt"] == LITE["prompt"]


# ---- gemini ------------------------------------------------------------------------------------
def test_gemini_veo_lite_prompt_only(tmp_path: Path, gem: FakeProvider) -> None:
    result = run(tmp_path, gem, LITE)
    assert result["status"] == "completed", result
    job = only_job(gem)
    assert job.body["model"] == "veo-3.1-lite-generate-preview"
    assert job.body["instances"] == [{"prompt": LITE["prompt"]}]
    params = job.body["parameters"]
    assert params["durationSeconds"] == 4 and params["resolution"] == "720p"
    assert set(gem.state.auth_seen) == {KEY}  # x-goog-api-key on the API's own host...
    assert gem.state.file_auth == [""]  # ...never on the download's redirect target
    clean(result)


def test_gemini_image_inline_and_faults(tmp_path: Path, gem: FakeProvider) -> None:
    gem.inject("submit", "429")
    gem.inject("poll", "500", "drop")
    gem.inject("download", "expired")
    result = run(tmp_path, gem, {**LITE, "image_url": IMAGE})
    assert result["status"] == "completed", result
    image = only_job(gem).body["instances"][0]["image"]
    assert image["mimeType"] == "image/png"
    assert image["bytesBase64Encoded"] == IMAGE.split(",", 1)[1]


@pytest.mark.parametrize(
    ("setup", "name", "needle"),
    [
        ("quota", "UpstreamQuota", "quota"),
        ("failed", "UpstreamFailed", "unsafe"),
        ("reject", "UpstreamRejected", "durationSeconds"),
    ],
)
def test_gemini_errors_are_mapped(
    tmp_path: Path, gem: FakeProvider, setup: str, name: str, needle: str
) -> None:
    if setup == "quota":
        gem.state.reject_status = 429
        gem.state.reject = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                                      "message": "You exceeded your current quota"}}  # fmt: skip
    elif setup == "failed":
        gem.state.fail_with = {"message": "The prompt was judged unsafe"}
    else:
        gem.state.reject = {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                      "message": "durationSeconds out of bound"}}  # fmt: skip
    result = run(tmp_path, gem, LITE)
    assert result["status"] == "error", result
    assert result["error"]["name"] == name and needle in result["error"]["message"]


# ---- durability and cancel, straight through the shared sequence ---------------------------
def hooks_for(tmp_path: Path, state: dict[str, Any] | None, cancel_after: int = -1) -> Hooks:
    recorded: list[dict[str, Any]] = []
    calls = {"n": 0}

    async def record(new: dict[str, Any]) -> None:
        recorded.append(new)
        hooks.state = new

    async def fetch(_ref: Any) -> bytes:
        return b""

    def cancelled() -> bool:
        calls["n"] += 1
        return 0 <= cancel_after < calls["n"]

    hooks = Hooks(job_id="gen1", output_path=tmp_path / "out.mp4", record=record,
                  fetch=fetch, cancelled=cancelled, state=state)  # fmt: skip
    hooks.notes["recorded"] = recorded
    return hooks


def provider_for(fake: FakeProvider) -> Any:
    settings = Settings(upstreams={"up": upstream(fake)})
    return build_providers(settings, {"FAKE_UP_KEY": KEY})["up"]


def lite_request() -> RenderRequest:
    return spec_class("unified", LITE["model"]).model_validate(LITE).render()


@pytest.mark.parametrize("kind", ["fal", "replicate", "gemini"])
def test_resume_polls_the_recorded_job_and_submitting_is_never_resent(
    tmp_path: Path,
    clip: bytes,
    kind: str,
) -> None:
    fake = FakeProvider(kind, clip)
    provider = provider_for(fake)

    async def go(state: dict[str, Any] | None) -> Any:
        async with httpx.AsyncClient() as http:
            return await render(provider, http, lite_request(), hooks_for(tmp_path, state))

    try:
        asyncio.run(go(None))  # a first worker submits and records the id
        assert fake.submits == 1
        asyncio.run(go(_last_state(fake)))  # its successor resumes: no second job
        assert fake.submits == 1
        with pytest.raises(Exception, match="outcome is unknown"):
            asyncio.run(go({"backend": "up", "phase": "submitting", "key": "k"}))
        assert fake.submits == 1
    finally:
        fake.close()


def _last_state(fake: FakeProvider) -> dict[str, Any]:
    job = list(fake.state.jobs.values())[-1]
    if fake.state.kind == "gemini":
        return {"backend": "up", "phase": "accepted", "key": "k",
                "id": f"models/{job.body['model']}/operations/{job.id}"}  # fmt: skip
    if fake.state.kind == "fal":
        root = f"{fake.base_url}/fal-ai/veo3.1/requests/{job.id}"
        return {"backend": "up", "phase": "accepted", "key": "k", "id": job.id,
                "status_url": f"{root}/status", "response_url": root,
                "cancel_url": f"{root}/cancel"}  # fmt: skip
    get = f"{fake.base_url}/v1/predictions/{job.id}"
    return {"backend": "up", "phase": "accepted", "key": "k", "id": job.id, "get": get,
            "cancel": f"{get}/cancel"}  # fmt: skip


@pytest.mark.parametrize("kind", ["fal", "replicate"])
def test_cancel_reaches_the_provider(tmp_path: Path, clip: bytes, kind: str) -> None:
    fake = FakeProvider(kind, clip, complete_after=30)
    provider = provider_for(fake)

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            hooks = hooks_for(tmp_path, None, cancel_after=3)
            await render(provider, http, lite_request(), hooks)

    try:
        from kinema.errors import Cancelled

        with pytest.raises(Cancelled):
            asyncio.run(go())
        assert fake.state.cancelled == [only_job(fake).id]
    finally:
        fake.close()


def test_unmapped_model_is_a_clear_error(tmp_path: Path, gem: FakeProvider) -> None:
    result = run(tmp_path, gem, VIDEO01)
    assert result["error"]["name"] == "UpstreamUnsupported", result
    assert "models" in result["error"]["message"] and gem.submits == 0


# ---- prices, metrics, readiness -----------------------------------------------------------------
def test_price_per_model_and_backend() -> None:
    spec = spec_class("unified", "video-01").model_validate(VIDEO01)
    prices = {"video-01": 50_000, "video-01@fal": 90_000}
    assert pricing.per_second(spec, prices) == 50_000  # existing keys keep working
    assert pricing.per_second(spec, prices, backend="fal") == 90_000
    assert pricing.per_second(spec, prices, backend="aiml") == 50_000
    assert pricing.charge(spec, prices, 6, backend="fal") == 540_000
    lite = spec_class("unified", LITE["model"]).model_validate(LITE)
    keyed = {
        "google/veo-3.1-lite-generate-001@720P@gem": 7,
        "google/veo-3.1-lite-generate-001@720P": 3,
    }
    assert pricing.per_second(lite, keyed, backend="gem") == 7
    assert pricing.per_second(lite, keyed, backend="other") == 3
    assert pricing.estimate(lite, {}, backend="x") == 400_000


def test_metrics_per_backend_and_ready_lists_upstreams(tmp_path: Path, fal: FakeProvider) -> None:
    down = {"kind": "fal", "base_url": f"http://127.0.0.1:{free_port()}", "api_key": "x"}
    ups = {"up": upstream(fal), "down": down}
    svc = InProcess(tmp_path, engines=[], upstreams=ups, routes={"video-01": ["up"]},
                    lease_seconds=3)  # fmt: skip
    try:
        with svc.client() as client:
            gen_id = client.post(SUBMIT, json=VIDEO01).json()["id"]
            assert finish(svc, client, gen_id)["status"] == "completed"
            fal.state.fail_with = {"message": "boom"}
            gen_id = client.post(SUBMIT, json=VIDEO01).json()["id"]
            assert finish(svc, client, gen_id)["status"] == "error"
            text = client.get("/metrics").text
            assert 'kinema_backend_jobs_in_flight{backend="up"} 0.0' in text
            assert 'kinema_backend_failures{backend="up"} 1.0' in text
            assert 'kinema_backend_run_seconds{backend="up",quantile="0.5"}' in text
            ready = client.get("/ready").json()
            assert ready["upstreams"] == {"down": "unreachable", "up": "reachable"}
            assert KEY not in text and KEY not in json.dumps(ready)
    finally:
        svc.close()
