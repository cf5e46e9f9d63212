"""Fixtures shared by the upstream-provider tests (registered in conftest.py): the video
the fake providers deliver, the upstream key in the environment, one fake per kind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kinema.engines.testcard import TestcardEngine
from kinema.render_request import TEXT_TO_VIDEO, RenderRequest
from kinema.testing import FakeContext
from tests.fake_providers import KEY, FakeProvider


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 2 s test card: what every fake provider delivers as its generated video."""
    ctx = FakeContext(tmp_path_factory.mktemp("clip"))
    request = RenderRequest(model="video-01", capability=TEXT_TO_VIDEO, prompt="x", duration=2)
    TestcardEngine().generate(request, ctx)
    return ctx.output_path.read_bytes()


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The upstream key where the upstreams' `api_key_env` ("FAKE_UP_KEY") points."""
    monkeypatch.setenv("FAKE_UP_KEY", KEY)


def _serve(kind: str, clip: bytes) -> Iterator[FakeProvider]:
    fake = FakeProvider(kind, clip)
    yield fake
    fake.close()


@pytest.fixture
def aiml(clip: bytes) -> Iterator[FakeProvider]:
    yield from _serve("aimlapi", clip)


@pytest.fixture
def openai(clip: bytes) -> Iterator[FakeProvider]:
    yield from _serve("openai", clip)


@pytest.fixture
def fal(clip: bytes) -> Iterator[FakeProvider]:
    yield from _serve("fal", clip)


@pytest.fixture
def rep(clip: bytes) -> Iterator[FakeProvider]:
    yield from _serve("replicate", clip)


@pytest.fixture
def gem(clip: bytes) -> Iterator[FakeProvider]:
    yield from _serve("gemini", clip)
