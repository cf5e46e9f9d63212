"""Schemathesis against a live `kinema serve`: every phase (examples, coverage, fuzzing,
stateful), `--checks all`, with and without the API key. No 5xx, and every response
matches what /openapi.json documents for it.

This file is also the run's hooks module (`SCHEMATHESIS_HOOKS`, loaded by the `st`
process): it supplies media URLs and keeps the refusals the document declares on purpose.

`make fuzz` runs the same test with thousands of cases (`KINEMA_FUZZ_EXAMPLES`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import KinemaServer, running

IMAGE_URL = "https://example.com/media/portrait.png"
AUDIO_URL = "https://example.com/media/speech.mp3"
EXAMPLES = int(os.environ.get("KINEMA_FUZZ_EXAMPLES", "25"))  # per operation and phase
SEED = os.environ.get("KINEMA_FUZZ_SEED", "20240601")  # "random": schemathesis picks one


# ------------------------------------------------------------------ the schemathesis hooks
def media_fields_by_path() -> dict[str, dict[str, str]]:
    """Submit path -> {media field: a well-formed URL for it}."""
    from kinema.dialects.aimlapi import media_fields
    from kinema.specs import SPECS

    fields: dict[str, dict[str, str]] = {}
    for cls in SPECS:
        for name in media_fields(cls):
            url = AUDIO_URL if "audio" in name else IMAGE_URL
            fields.setdefault(cls.ROUTE.path, {})[name] = url
    return fields


# /v1/videos takes any model id, so what depends on the model cannot be in one schema:
# the prompt's length, the seconds and sizes it makes, the files it accepts (decoded, not
# just sniffed). The dialect's 400 names the parameter; these are the ones that vary.
MODEL_DEPENDENT_PARAMS = {
    "model",
    "prompt",
    "negative_prompt",
    "seconds",
    "size",
    "seed",
    "input_reference",
    "image_reference",
    "audio_reference",
    "last_frame",
    "video",
}


def documented_refusal(body: Any) -> bool:
    """A 400 the document declares for schema-valid requests: a capability no enabled
    engine serves (no `details`), a combination of fields the model does not offer
    (`details[].field` is `body`), text that takes longer to say than the video; on
    /v1/videos, a parameter whose limits depend on the model."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("param") in MODEL_DEPENDENT_PARAMS
    if not isinstance(body, dict) or body.get("statusCode") != 400:
        return False
    if "details" not in body:
        return str(body.get("message", "")).startswith("This Kinema deployment ")
    return all(
        d.get("field") == "body"
        or "to say with this voice" in str(d.get("message"))
        # Webhook destinations are resolved and checked (SSRF policy) when given.
        or d.get("field") in ("url", "webhook_url")
        for d in body["details"]
    )


def register_hooks() -> None:
    import schemathesis
    from schemathesis.core.failures import Failure
    from schemathesis.openapi.checks import RejectedPositiveData

    media = media_fields_by_path()

    @schemathesis.hook
    def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
        """Schema-valid bodies get URLs that pass the submit-time checks (the schema can
        say "an http(s) URL or a data: URI", not "one that decodes to a picture"). No
        worker runs, so nothing is fetched."""
        meta = case.meta
        positive = meta is None or meta.generation.mode.is_positive
        fields = media.get(case.operation.path, {})
        if positive and case.method == "POST" and isinstance(case.body, dict):
            for name, url in fields.items():
                if isinstance(case.body.get(name), str):
                    case.body[name] = url

    @schemathesis.hook
    def filter_failure(ctx: Any, failure: Failure, case: Any, response: Any) -> bool:
        if isinstance(failure, RejectedPositiveData) and response.status_code == 400:
            try:
                return not documented_refusal(response.json())
            except ValueError:
                return True
        return True


if __name__ == "_schemathesis_hooks":  # loaded by `st` through SCHEMATHESIS_HOOKS
    register_hooks()


# ------------------------------------------------------------------ the test
def schemathesis(base_url: str, examples: int, *extra: str) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(Path(__file__).resolve()),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        "NO_COLOR": "1",
    }
    command = [
        str(st), "run", f"{base_url}/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(examples),
        *(["--seed", SEED] if SEED != "random" else []),
        "--workers", "1",  # hypothesis' lambda parsing races under threads on 3.11
        "--generation-database", "none",
        "--request-timeout", "20",
        # A live stream stays open until its generation finishes, and no worker runs
        # here: every case would wait out the timeout. tests/test_events.py covers it.
        "--exclude-path", "/v2/video/generations/events",
        "--suppress-health-check", "too_slow",
        "--no-color", "--output-truncate", "false",
        *extra,
    ]  # fmt: skip
    return subprocess.run(
        command, env=env, cwd=root, capture_output=True, text=True, timeout=3600, check=False
    )


def cases_run(output: str) -> int:
    """The run's "Test cases: N generated" count."""
    found = re.search(r"(\d+) generated", output)
    return int(found.group(1)) if found else 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinemaServer]:
    """No worker: submitted jobs stay queued (nothing is fetched or rendered)."""
    data = tmp_path_factory.mktemp("kinema")
    with running(KinemaServer(data, workers=0, KINEMA_MAX_PENDING_PER_KEY="1000000")) as srv:
        yield srv


def test_openapi_document_holds_under_schemathesis(server: KinemaServer) -> None:
    started = time.monotonic()
    keyed = schemathesis(
        server.base_url, EXAMPLES, "--header", f"Authorization: Bearer {server.key}"
    )
    # Without a key: every keyed operation answers the documented 401 envelope.
    anonymous = schemathesis(server.base_url, max(5, EXAMPLES // 5))
    elapsed = time.monotonic() - started
    log = server.log()
    for name, run in (("with the API key", keyed), ("without a key", anonymous)):
        assert run.returncode == 0, (
            f"schemathesis {name} failed (exit {run.returncode}):\n"
            f"{run.stdout[-60_000:]}\n{run.stderr[-10_000:]}\nserver log:\n{log}"
        )
        assert "Runtime Error" not in run.stdout, run.stdout[-60_000:]
    assert "Traceback" not in log, log
    cases = cases_run(keyed.stdout), cases_run(anonymous.stdout)
    print(f"\nschemathesis: {cases[0]} + {cases[1]} (no key) cases in {elapsed:.0f} s")


# Bodies no JSON Schema generator sends: not JSON, not strictly JSON, not objects.
ODD_BODIES = [
    b"", b"null", b"[]", b'"video-01"', b"1", b"\xff\xfe", b"{", b"[" * 100_000,
    b'{"model": {}}', b'{"model": ["video-01"]}', b'{"model": NaN}',
    b'{"model": "video-01", "prompt": NaN}', b'{"model": "video-01", "prompt": "a", "x": 1e400}',
    b'{"model": "video-01", "prompt": 1' + b"0" * 5000 + b"}",
    b'{"model": "video-01", "prompt": "\\ud800"}', b'{"\\udfff": 1}',
]  # fmt: skip
ODD_POLLS = [
    "", "generation_id=", "generation_id=" + "a" * 201, "generation_id=" + "a" * 5000,
    "generation_id=%00%ff%ZZ", "generation_id=%ed%a0%80", "generation_id=a&generation_id=b",
    "generation_id=..%2F..%2Fetc%2Fpasswd", "generation_id=%F0%9F%98%80",
]  # fmt: skip


def test_odd_requests_get_documented_answers(server: KinemaServer) -> None:
    """Malformed bodies and query strings: a documented status and body, never a 5xx."""
    import jsonschema

    answer = httpx.get(server.base_url + "/openapi.json")
    assert answer.status_code == 200, f"/openapi.json: {answer.text}\n{server.log()}"
    document = answer.json()
    components = {"components": document["components"]}

    def conforms(response: httpx.Response, path: str, method: str) -> None:
        what = f"{method.upper()} {path} -> {response.status_code}: {response.text[:500]}"
        documented = document["paths"][path][method]["responses"]
        assert str(response.status_code) in documented, what
        schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
        jsonschema.validate(response.json(), {**schema, **components})
        assert "Traceback" not in response.text, what

    with server.client() as client:
        for path in media_fields_by_path():
            for raw in ODD_BODIES:
                headers = {"content-type": "application/json"}
                conforms(client.post(path, content=raw, headers=headers), path, "post")
            for query in ODD_POLLS:
                conforms(client.get(f"{path}?{query}"), path, "get")
                conforms(httpx.get(f"{server.base_url}{path}?{query}"), path, "get")
            documented = sorted(m.upper() for m in document["paths"][path] if m != "parameters")
            for method in ("DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"):
                if method in documented:
                    continue
                refused = client.request(method, path)
                assert refused.status_code == 405, (method, path, refused.text)
                assert refused.headers["allow"] == ", ".join(documented), (method, path)
    assert "Traceback" not in server.log(), server.log()
