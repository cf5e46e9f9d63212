"""Upstream providers through the real engine code, against fake providers (real HTTP
servers on 127.0.0.1) with fault injection."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from kinema.providers.runner import upstream_state
from kinema.testing import InProcess
from tests.fake_providers import KEY, FakeProvider
from tests.support import finish, free_port, make_image
from tests.videos import download, probe

PROMPT = {"model": "video-01", "prompt": "A lighthouse at dusk, waves crashing"}
SUBMIT = "/v2/video/generations"


def upstream(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "kind": fake.state.kind, "base_url": fake.base_url, "api_key_env": "FAKE_UP_KEY",
        "poll_seconds": 0.05, "request_timeout_seconds": 1.0, **extra,
    }  # fmt: skip


def service(tmp_path: Path, upstreams: dict[str, Any], route: list[str]) -> InProcess:
    return InProcess(
        tmp_path, engines=[], upstreams=upstreams, routes={"video-01": route}, lease_seconds=3
    )


def run(tmp_path: Path, upstreams: dict[str, Any], route: list[str], body: Any = None) -> dict:
    svc = service(tmp_path, upstreams, route)
    try:
        with svc.client() as client:
            answer = client.post(SUBMIT, json=body or PROMPT)
            assert answer.status_code in (200, 201), answer.text
            result = finish(svc, client, answer.json()["id"])
            if result["status"] == "completed":
                path = download(result["video"]["url"], tmp_path / "out.mp4", client)
                result["probe"] = probe(path)
            job = svc.store.get_job(answer.json()["id"])
            assert job is not None
            result["row"] = json.dumps(upstream_state(job)) + json.dumps(job.params)
            return result
    finally:
        svc.close()


def state_of(svc: InProcess, gen_id: str) -> dict[str, Any] | None:
    job = svc.store.get_job(gen_id)
    assert job is not None
    return upstream_state(job)


def test_aimlapi_completes_mirrored_and_names_its_backend(
    tmp_path: Path, fake_env: None, aiml: FakeProvider
) -> None:
    result = run(tmp_path, {"aiml": upstream(aiml)}, ["aiml"])
    assert result["status"] == "completed", result
    assert result["meta"]["backend"] == "aiml"
    assert result["video"]["url"].startswith("http://kinema.test/")  # Kinema's own URL
    assert result["probe"].frames == 50
    assert aiml.submits == 1
    body = next(iter(aiml.state.jobs.values())).body
    assert body["prompt"] == PROMPT["prompt"] and body["model"] == "video-01"
    assert KEY not in result["row"]
    assert '"cost": {"credits_used": 42}' in result["row"]  # the provider's reported cost
    assert KEY not in json.dumps({k: v for k, v in result.items() if k != "probe"})


def test_aimlapi_rides_out_faults_with_one_upstream_job(
    tmp_path: Path, fake_env: None, aiml: FakeProvider
) -> None:
    aiml.inject("submit", "429", "500")
    aiml.inject("poll", "drop", "malformed", "500", "429")
    aiml.inject("download", "expired")
    result = run(tmp_path, {"aiml": upstream(aiml)}, ["aiml"])
    assert result["status"] == "completed", result
    assert aiml.submits == 1


def test_aimlapi_submit_lost_after_sending_is_resent_idempotently(
    tmp_path: Path, fake_env: None, aiml: FakeProvider
) -> None:
    """With `idempotent: true` (a back server that honours Idempotency-Key, like Kinema)."""
    aiml.inject("submit", "sent-then-drop")
    result = run(tmp_path, {"aiml": upstream(aiml, idempotent=True)}, ["aiml"])
    assert result["status"] == "completed", result
    assert aiml.submits == 1  # the same Idempotency-Key found the first job


def test_aimlapi_submit_lost_after_sending_is_not_resent_by_default(
    tmp_path: Path, fake_env: None, aiml: FakeProvider
) -> None:
    """The AI/ML API documents no idempotency key: an outcome Kinema cannot know is an
    error, never a second paid job."""
    aiml.inject("submit", "sent-then-drop")
    result = run(tmp_path, {"aiml": upstream(aiml)}, ["aiml"])
    assert result["status"] == "error"
    assert result["error"]["name"] == "UpstreamOutcomeUnknown"
    assert aiml.submits == 1


def test_openai_text_and_image(tmp_path: Path, fake_env: None, openai: FakeProvider) -> None:
    ups = {"gpu": upstream(openai, model="Wan2.2-TI2V-5B")}
    result = run(tmp_path / "t", ups, ["gpu"])
    assert result["status"] == "completed", result
    first = next(iter(openai.state.jobs.values()))
    assert first.body["model"] == "Wan2.2-TI2V-5B" and first.body["size"] == "1280x720"
    assert first.id in openai.state.deleted  # the provider's copy is freed after mirroring
    image = (
        "data:image/png;base64,"
        + __import__("base64").b64encode(make_image(800, 600, fmt="PNG")).decode()
    )
    result = run(tmp_path / "i", ups, ["gpu"], {**PROMPT, "image_url": image})
    assert result["status"] == "completed", result
    assert any(job.multipart for job in openai.state.jobs.values())


def test_openai_submit_lost_after_sending_is_never_resent(
    tmp_path: Path, fake_env: None, openai: FakeProvider
) -> None:
    openai.inject("submit", "sent-then-drop")
    result = run(tmp_path, {"gpu": upstream(openai, model="m")}, ["gpu"])
    assert result["status"] == "error"
    assert result["error"]["name"] == "UpstreamOutcomeUnknown"
    assert openai.submits == 1


@pytest.mark.parametrize(
    ("setup", "name", "needle"),
    [
        ("reject", "UpstreamRejected", "prompt"),
        ("auth", "UpstreamAuth", "credentials"),
        ("lost", "UpstreamJobLost", "lost"),
        ("timeout", "UpstreamTimedOut", "did not finish"),
        ("failed", "UpstreamFailed", "NSFW"),
    ],
)
def test_errors_are_mapped(
    tmp_path: Path, fake_env: None, aiml: FakeProvider, monkeypatch: pytest.MonkeyPatch,
    setup: str, name: str, needle: str,
) -> None:  # fmt: skip
    extra: dict[str, Any] = {}
    if setup == "reject":
        aiml.state.reject = {"message": "Body validation error!", "details": [
            {"field": "prompt", "message": "too long"}]}  # fmt: skip
    elif setup == "auth":
        monkeypatch.setenv("FAKE_UP_KEY", "sk-wrong-key-for-this-test")
    elif setup == "lost":
        aiml.inject("poll", "lost")
    elif setup == "timeout":
        aiml.state.complete_after = 60
        extra["max_wait_seconds"] = 0.3
    elif setup == "failed":
        aiml.state.fail_with = {"name": "ContentPolicy", "message": "NSFW prompt"}
    result = run(tmp_path, {"aiml": upstream(aiml, **extra)}, ["aiml"])
    assert result["status"] == "error", result
    assert result["error"]["name"] == name
    assert needle in result["error"]["message"]
    assert "sk-wrong" not in result["error"]["message"] and KEY not in result["error"]["message"]


def test_failover_before_acceptance(tmp_path: Path, fake_env: None, aiml: FakeProvider) -> None:
    down = {"kind": "aimlapi", "base_url": f"http://127.0.0.1:{free_port()}", "api_key": "x",
            "submit_attempts": 1}  # fmt: skip
    result = run(tmp_path, {"down": down, "aiml": upstream(aiml)}, ["down", "aiml"])
    assert result["status"] == "completed", result
    assert result["meta"]["backend"] == "aiml"


def test_no_route_keeps_the_refusal(tmp_path: Path) -> None:
    svc = InProcess(tmp_path, engines=[])
    try:
        with svc.client() as client:
            assert client.post(SUBMIT, json=PROMPT).status_code == 400
    finally:
        svc.close()


def test_a_new_worker_resumes_the_recorded_upstream_job(
    tmp_path: Path, fake_env: None, aiml: FakeProvider
) -> None:
    """The async path: the first worker's loop records the upstream id and is then lost
    (its lease expires); the next worker polls the same upstream job, never resubmits."""
    aiml.state.complete_after = 1.5
    svc = service(tmp_path, {"aiml": upstream(aiml)}, ["aiml"])
    try:
        with svc.client() as client:
            gen_id = client.post(SUBMIT, json=PROMPT).json()["id"]
            svc.worker.load()
            job = svc.store.claim(svc.worker.id, list(svc.worker.routes), 3)
            assert job is not None and svc.worker.upstreams.take(job)
            deadline = time.monotonic() + 10
            while (state_of(svc, gen_id) or {}).get("phase") != "accepted":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            # The first worker "dies": its loop stops, its lease is past.
            loop = svc.worker.upstreams.loop
            assert loop is not None
            loop.call_soon_threadsafe(loop.stop)
            svc.store.recover_expired(now=time.time() + 60)
            from kinema.worker import Worker

            svc.worker = Worker(svc.settings, svc.store, svc.storage, svc.engines)
            result = finish(svc, client, gen_id)
            assert result["status"] == "completed", result
            assert aiml.submits == 1
    finally:
        svc.close()


def test_async_loop_keeps_many_jobs_in_flight(
    tmp_path: Path, fake_env: None, aiml: FakeProvider
) -> None:
    aiml.state.complete_after = 0.5
    svc = service(tmp_path, {"aiml": upstream(aiml)}, ["aiml"])
    try:
        with svc.client() as client:
            ids = [client.post(SUBMIT, json=PROMPT).json()["id"] for _ in range(20)]
            svc.worker.load()
            for _ in ids:
                job = svc.store.claim(svc.worker.id, list(svc.worker.routes), 3)
                assert job is not None and svc.worker.upstreams.take(job)
            deadline = time.monotonic() + 30
            while svc.worker.upstreams.count():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            for gen_id in ids:
                body = client.get(SUBMIT, params={"generation_id": gen_id}).json()
                assert body["status"] == "completed", body["error"]
            assert aiml.submits == 20
    finally:
        svc.close()


def test_the_readme_providers_config_is_a_working_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Providers TOML, verbatim: it loads, every provider kind builds with its
    key from the environment, and every route names a known backend."""
    from kinema.providers import build_providers, check_routes, upstream_offers
    from kinema.settings import Settings
    from kinema.specs.passthrough import PASSTHROUGH

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## Providers") :]
    toml = section[
        section.index("```toml\n") + 8 : section.index("```", section.index("```toml") + 7)
    ]
    (tmp_path / "kinema.toml").write_text(toml)
    monkeypatch.setenv("KINEMA_CONFIG", str(tmp_path / "kinema.toml"))
    settings = Settings(data_dir=tmp_path)
    env = {
        name: "k" for name in ("AIMLAPI_KEY", "FAL_KEY", "REPLICATE_API_TOKEN", "GEMINI_API_KEY")
    }
    built = build_providers(settings, env)
    assert {p.kind for p in built.values()} == {"aimlapi", "fal", "replicate", "gemini", "openai"}
    check_routes(settings, ["motion"])
    assert PASSTHROUGH in upstream_offers(settings)["aiml"]
    assert settings.prices["*@aiml"] == 100000
