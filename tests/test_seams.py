"""The seams: engines as configured plugins (options, the load contract), one finish path
with an event log, the dialect's typed responses — driven in-process through
`kinema.testing` (the app under httpx's ASGITransport, a worker stepped by hand)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import ClassVar

import pytest

from kinema.dialects.aimlapi import ErrorEnvelope, Generation, SubmitResponse
from kinema.engines import Context, Engine, EngineSet
from kinema.errors import ConfigError
from kinema.jobs.model import Status
from kinema.render_request import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, RenderRequest
from kinema.settings import Settings
from kinema.testing import FailingEngine, InProcess, InstantEngine, SlowEngine, in_process
from kinema.testing.engines import FailingOptions, FixtureOptions, SlowOptions
from tests.videos import probe

PROMPT_ONLY = {"model": "video-01", "prompt": "A red fox runs through fresh snow."}


def test_a_job_runs_through_submit_poll_finish_and_download(tmp_path: Path) -> None:
    with in_process(tmp_path, [InstantEngine()]) as kinema, kinema.client() as client:
        submitted = client.post("/v2/video/generations", json=PROMPT_ONLY)
        assert submitted.status_code == 201, submitted.text
        answer = SubmitResponse.model_validate(submitted.json())
        assert answer.status == Status.QUEUED
        polled = client.get("/v2/video/generations", params={"generation_id": answer.id})
        queued = Generation.model_validate(polled.json())
        assert (queued.status, queued.progress, queued.queue_position) == (Status.QUEUED, 0, 0)
        [job] = kinema.work()
        assert job.id == answer.id
        body = client.get("/v2/video/generations", params={"generation_id": answer.id}).json()
        done = Generation.model_validate(body)
        assert done.status == Status.COMPLETED and done.video is not None
        assert "progress" not in body and "queue_position" not in body
        video = client.get(done.video.url)
        assert video.status_code == 200
        target = tmp_path / "out.mp4"
        target.write_bytes(video.content)
        assert probe(target).width == 64
        kinds = [(e.kind, e.status) for e in kinema.store.events(answer.id)]
        assert kinds[0] == ("status", Status.QUEUED) and kinds[1] == ("status", Status.GENERATING)
        assert kinds[-1] == ("status", Status.COMPLETED)


def test_async_client_over_asgi_transport(tmp_path: Path) -> None:
    async def scenario(kinema: InProcess) -> dict[str, object]:
        async with kinema.async_client() as client:
            made = await client.post("/v2/video/generations", json=PROMPT_ONLY)
            assert made.status_code == 201
            await asyncio.to_thread(kinema.work)
            polled = await client.get(
                "/v2/video/generations", params={"generation_id": made.json()["id"]}
            )
            return dict(polled.json())

    with in_process(tmp_path, [InstantEngine()]) as kinema:
        assert asyncio.run(scenario(kinema))["status"] == "completed"


def test_a_failed_generation_is_data_and_not_charged(tmp_path: Path) -> None:
    failing = FailingEngine(FailingOptions(error_name="FaceNotFound", message="no face here"))
    with in_process(tmp_path, [failing]) as kinema, kinema.client() as client:
        gen_id = client.post("/v2/video/generations", json=PROMPT_ONLY).json()["id"]
        kinema.work()
        body = client.get("/v2/video/generations", params={"generation_id": gen_id}).json()
        assert body["status"] == "error"
        assert body["error"] == {"name": "FaceNotFound", "message": "no face here"}
        assert body["meta"]["usage"]["credits_used"] == 0


def test_progress_events_are_coarse_and_cancellation_goes_through_ctx(tmp_path: Path) -> None:
    slow = SlowEngine(SlowOptions(steps=40, step_seconds=0.0))
    with in_process(tmp_path, [slow], lease_seconds=30) as kinema, kinema.client() as client:
        gen_id = client.post("/v2/video/generations", json=PROMPT_ONLY).json()["id"]
        kinema.work()
        events = kinema.store.events(gen_id)
        assert events[-1].status == Status.COMPLETED
        progress = [e.progress for e in events if e.kind == "progress"]
        assert progress == sorted(progress)
        assert all(b // 5 > a // 5 for a, b in itertools.pairwise(progress))


def test_unknown_capability_is_a_400_naming_the_missing_engine(tmp_path: Path) -> None:
    class NeedsTorch(Engine):
        name: ClassVar[str] = "needs_torch"
        capabilities: ClassVar[frozenset[str]] = frozenset({TEXT_TO_VIDEO})
        requires = ("kinema_no_such_module",)
        install_hint = "pip install kinema-no-such-module"

        def generate(self, request: RenderRequest, ctx: Context) -> None:
            raise AssertionError("never runs")

    i2v_only = InstantEngine(FixtureOptions(capabilities=[IMAGE_TO_VIDEO]))
    with in_process(tmp_path, [NeedsTorch(), i2v_only]) as kinema, kinema.client() as client:
        refused = client.post("/v2/video/generations", json=PROMPT_ONLY)
        assert refused.status_code == 400
        envelope = ErrorEnvelope.model_validate(refused.json())
        assert "needs_torch" in envelope.message and "kinema_no_such_module" in envelope.message
        assert "pip install kinema-no-such-module" in envelope.message
        models = client.get("/v2/models").json()
        assert "needs_torch" in models["disabled_engines"]
        assert models["capabilities"] == {IMAGE_TO_VIDEO: "instant"}


def test_an_engine_whose_load_fails_is_disabled_not_fatal(tmp_path: Path) -> None:
    class BrokenLoad(InstantEngine):
        name: ClassVar[str] = "broken"

        def load(self) -> None:
            raise RuntimeError("weights are corrupt")

    engines = EngineSet.of([BrokenLoad(), SlowEngine()])
    engines.load()
    assert "broken" in engines.disabled and "weights are corrupt" in engines.disabled["broken"]
    assert set(engines.routes().values()) == {"slow"}


def test_engine_options_from_environment_json_and_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kinema.toml"
    config.write_text("workers = 3\n[engine_options.motion]\nfps = 30\ndefault_seconds = 4.0\n")
    monkeypatch.setenv("KINEMA_CONFIG", str(config))
    settings = Settings()
    assert settings.workers == 3
    assert settings.engine_options == {"motion": {"fps": 30, "default_seconds": 4.0}}
    # The environment overrides the file, key by key.
    monkeypatch.setenv("KINEMA_ENGINE_OPTIONS", '{"motion": {"fps": 24}}')
    monkeypatch.setenv("KINEMA_WORKERS", "1")
    settings = Settings()
    assert settings.workers == 1 and settings.engine_options["motion"]["fps"] == 24
    engines = EngineSet.configure(["motion"], settings.engine_options)
    assert engines.engines["motion"].options.fps == 24  # type: ignore[attr-defined]


def test_unknown_engine_or_option_is_a_start_up_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown engine 'warp'.*installed engines: .*motion"):
        EngineSet.configure(["warp"], {})
    with pytest.raises(ConfigError, match="engine 'motion': unknown option 'fsp'"):
        EngineSet.configure(["motion"], {"motion": {"fsp": 30}})
    with pytest.raises(ConfigError, match="engine 'motion': option 'fps'"):
        EngineSet.configure(["motion"], {"motion": {"fps": "fast"}})


def test_secret_options_come_from_the_variable_they_name() -> None:
    from kinema.engines.registry import resolve_secrets

    env = {"UPSTREAM_KEY": "sk-secret"}
    assert resolve_secrets("x", {"api_key_env": "UPSTREAM_KEY", "a": 1}, env) == {
        "api_key": "sk-secret", "a": 1,
    }  # fmt: skip
    with pytest.raises(ConfigError, match="'MISSING', which is not set"):
        resolve_secrets("x", {"api_key_env": "MISSING"}, env)


def test_openapi_documents_every_response(tmp_path: Path) -> None:
    with in_process(tmp_path, [InstantEngine()]) as kinema, kinema.client() as client:
        schema = client.get("/openapi.json").json()
    envelope_ref = "#/components/schemas/ErrorEnvelope"
    post = schema["paths"]["/v2/video/generations"]["post"]["responses"]
    for code in ("400", "401", "403", "413", "429", "503"):
        assert post[code]["content"]["application/json"]["schema"]["$ref"] == envelope_ref
    assert "SubmitResponse" in post["201"]["content"]["application/json"]["schema"]["$ref"]
    legacy = schema["paths"]["/v2/generate/video/minimax/generation"]["post"]["responses"]
    assert "MinimaxSubmitResponse" in legacy["201"]["content"]["application/json"]["schema"]["$ref"]
    get = schema["paths"]["/v2/video/generations"]["get"]["responses"]
    assert get["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Generation")
    assert {"400", "401", "404", "503"} <= set(get)
