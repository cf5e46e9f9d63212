"""The admin API (`/v2/admin`), its store queries (SQLite and PostgreSQL), its migration,
`kinema keys` locally and remotely, and how the web app is served (`/`, `/playground`,
the Content-Security-Policy, the static assets). The browser tests are tests/test_web.py."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

import kinema.api.auth
from kinema.api.web import WEB_DIR, content_security_policy
from kinema.cli import main
from kinema.engines.base import Engine
from kinema.jobs.model import Completed, Failed, VideoOutput
from kinema.render_request import FIRST_LAST_FRAME, IMAGE_TO_VIDEO, TEXT_TO_VIDEO
from kinema.settings import Settings
from kinema.store import NewJob, WorkerInfo, open_store
from kinema.store.sql import SqlStore
from kinema.testing import TEST_KEY, FailingEngine, InProcess, InstantEngine, in_process
from kinema.testing.engines import FailingOptions, FixtureOptions
from tests.support import KinemaServer, make_image

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
UNIFIED = "/v2/video/generations"
ADMIN = "/v2/admin"
# Ways to turn text into markup or code: the app never uses them.
UNSAFE_JS = (
    "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
    "new Function", "setAttribute(\"style\"", "createContextualFragment", "sessionStorage",
    "document.cookie",
)  # fmt: skip
READS = ["/keys", "/usage", "/queue", "/workers", "/engines", "/failures", "/audit"]


class WeightlessEngine(Engine):
    """An engine that cannot run here (its weights are missing): disabled."""

    name: ClassVar[str] = "weightless"
    capabilities: ClassVar[frozenset[str]] = frozenset({FIRST_LAST_FRAME})

    def unavailable(self) -> str | None:
        return "model_dir /models/none does not exist"

    def generate(self, request: Any, ctx: Any) -> None:
        raise AssertionError("never runs")


class FetchingEngine(InstantEngine):
    """InstantEngine that first fetches its inputs (a bad URL fails as InvalidInput)."""

    def generate(self, request: Any, ctx: Any) -> None:
        for media in request.media():
            ctx.fetch(media)
        super().generate(request, ctx)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    engines: list[Engine] = [
        FetchingEngine(FixtureOptions(capabilities=[IMAGE_TO_VIDEO])),
        FailingEngine(FailingOptions(capabilities=[TEXT_TO_VIDEO], error_name="GenerationError")),
        WeightlessEngine(),
    ]
    with in_process(tmp_path_factory.mktemp("admin"), engines) as service:
        yield service


@pytest.fixture(scope="module")
def admin_secret(svc: InProcess) -> str:
    key, secret = svc.store.create_key("ops", None)
    assert svc.store.set_admin(key.id, True) == key.id
    return secret


@pytest.fixture(scope="module")
def admin(svc: InProcess, admin_secret: str) -> Iterator[httpx.Client]:
    with svc.client() as client:
        client.headers["Authorization"] = f"Bearer {admin_secret}"
        yield client


@pytest.fixture(scope="module")
def user(svc: InProcess) -> Iterator[httpx.Client]:
    with svc.client() as client:
        yield client


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert {"message", "path", "requestId", "statusCode", "timestamp"} <= set(body)
    return body


def image_uri() -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(make_image(640, 480)).decode()


# ---------------------------------------------------------------------- access
def test_admin_routes_want_an_admin_key(
    admin: httpx.Client, user: httpx.Client, svc: InProcess
) -> None:
    with svc.client() as anon:
        anon.headers.pop("Authorization")
        for path in READS:
            envelope(anon.get(ADMIN + path), 401)
        envelope(anon.post(ADMIN + "/keys", json={"name": "x"}), 401)
    for path in READS:
        body = envelope(user.get(ADMIN + path), 403)  # a valid key, not an admin one
        assert "--admin" in body["message"]
        assert admin.get(ADMIN + path).status_code == 200, path
    envelope(user.post(ADMIN + "/keys", json={"name": "sneaky"}), 403)
    envelope(user.post(ADMIN + "/keys/key_x/revoke"), 403)
    assert all(k.name != "sneaky" for k in svc.store.list_keys())
    # A cookie is no credential here: only the bearer header counts (no CSRF to ride).
    with svc.client() as anon:
        anon.headers.pop("Authorization")
        r = anon.get(ADMIN + "/keys", headers={"Cookie": "session=x; Authorization=x"})
        envelope(r, 401)


# ---------------------------------------------------------------------- keys
def test_keys_create_shown_once_credit_revoke_audited(
    admin: httpx.Client,
    svc: InProcess,
    admin_secret: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="kinema.admin")
    r = admin.post(ADMIN + "/keys", json={"name": "ci bot", "credits": 1_000_000})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("kn-") and created["prefix"] == secret[:10]
    assert created["credits"] == 1_000_000 and created["admin"] is False
    new = {"Authorization": f"Bearer {secret}"}
    assert admin.get(UNIFIED + "/list", headers=new).status_code == 200  # it works

    listing = admin.get(ADMIN + "/keys")
    assert secret not in listing.text  # shown once: never listed
    row = next(k for k in listing.json()["data"] if k["id"] == created["id"])
    assert row["name"] == "ci bot" and row["revoked_at"] is None
    ops = next(k for k in listing.json()["data"] if k["name"] == "ops")
    assert ops["admin"] is True

    r = admin.post(f"{ADMIN}/keys/{created['id']}/credit", json={"add": 500_000})
    assert r.status_code == 200 and r.json()["credits"] == 1_500_000
    envelope(
        admin.post(f"{ADMIN}/keys/{created['id']}/credit", json={"add": -2_000_000}), 409
    )  # < 0
    r = admin.post(f"{ADMIN}/keys/{secret[:10]}/credit", json={"unlimited": True})  # by prefix
    assert r.status_code == 200 and r.json()["credits"] is None
    bad_bodies = (
        {}, {"add": 5, "unlimited": True}, {"add": "lots"}, {"add": 1, "extra": 2},
        {"add": True}, {"add": 1.5}, {"unlimited": False}, {"add": 10**16},
    )  # fmt: skip
    for bad in bad_bodies:
        body = envelope(admin.post(f"{ADMIN}/keys/{created['id']}/credit", json=bad), 400)
        assert body["details"], bad
    envelope(admin.post(ADMIN + "/keys", json={"name": ""}), 400)
    for bad in (
        {"name": "x", "credits": -1},
        {"name": "x", "admin": 1},
        {"name": "x", "credits": 10**16},
    ):
        envelope(admin.post(ADMIN + "/keys", json=bad), 400)
    envelope(admin.post(f"{ADMIN}/keys/key_nope/revoke"), 404)
    envelope(admin.post(f"{ADMIN}/keys/key_nope/credit", json={"add": 1}), 404)
    envelope(admin.post(f"{ADMIN}/keys/bad%20id/revoke"), 400)

    r = admin.post(f"{ADMIN}/keys/{created['id']}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    envelope(admin.post(f"{ADMIN}/keys/{created['id']}/revoke"), 404)  # already revoked
    later = time.monotonic() + svc.settings.auth_cache_seconds + 0.5
    monkeypatch.setattr(kinema.api.auth, "time", SimpleNamespace(monotonic=lambda: later))
    envelope(admin.get(UNIFIED + "/list", headers=new), 401)

    made = admin.post(ADMIN + "/keys", json={"name": "second op", "admin": True}).json()
    assert made["admin"] is True and svc.store.is_admin(made["id"])

    audit = admin.get(ADMIN + "/audit").json()["data"]
    actions = [(e["action"], e["target"]) for e in audit]
    assert actions[:5] == [
        ("key.create", made["id"]),
        ("key.revoke", created["id"]),
        ("key.credit", created["id"]),
        ("key.credit", created["id"]),
        ("key.create", created["id"]),
    ]
    admin_id = next(k.id for k in svc.store.list_keys() if k.name == "ops")
    assert {e["actor"] for e in audit} == {admin_id}
    assert audit[2]["detail"] == {"add": None, "unlimited": True, "balance": None}
    logged = [r.getMessage() for r in caplog.records if r.name == "kinema.admin"]
    assert len(logged) == 5 and all(admin_id in line for line in logged)
    everything = admin.get(ADMIN + "/audit").text + "\n".join(logged)
    assert secret not in everything and admin_secret not in everything
    assert secret[10:20] not in everything


# ---------------------------------------------------------------------- operations
def test_usage_queue_workers_engines_and_failures(
    admin: httpx.Client, user: httpx.Client, svc: InProcess
) -> None:
    good = {"model": "pixverse/v5/image-to-video", "prompt": "zoom", "image_url": image_uri()}
    unreachable = {**good, "image_url": "http://127.0.0.1:9/missing.png"}
    text_only = {"model": "video-01", "prompt": "a fox in the snow"}
    ids = [user.post(UNIFIED, json=body).json()["id"] for body in
           (good, unreachable, text_only, text_only, text_only)]  # fmt: skip
    queue = admin.get(ADMIN + "/queue").json()
    depth = {d["model"]: d for d in queue["data"]}
    assert depth["pixverse/v5/image-to-video"]["queued"] == 2
    assert depth["video-01"]["queued"] == 3
    assert queue["queued"] == 5 and queue["generating"] == 0

    svc.work()
    polls = [user.get(UNIFIED, params={"generation_id": i}).json() for i in ids]
    assert [p["status"] for p in polls] == ["completed", "error", "error", "error", "error"]
    assert admin.get(ADMIN + "/queue").json()["queued"] == 0

    test_key = next(k for k in svc.store.list_keys() if k.name == "KINEMA_API_KEY")
    usage = admin.get(ADMIN + "/usage", params={"days": 2, "bucket": "hour"}).json()
    assert usage["bucket_seconds"] == 3600
    mine = [p for p in usage["data"] if p["key_id"] == test_key.id]
    assert sum(p["jobs"] for p in mine) == 5
    assert sum(p["completed"] for p in mine) == 1 and sum(p["failed"] for p in mine) == 4
    assert sum(p["seconds_rendered"] for p in mine) == pytest.approx(5.0)
    assert sum(p["credits_used"] for p in mine) == polls[0]["meta"]["usage"]["credits_used"]
    only = admin.get(ADMIN + "/usage", params={"key_id": test_key.id}).json()["data"]
    assert {p["key_id"] for p in only} == {test_key.id}
    envelope(admin.get(ADMIN + "/usage", params={"bucket": "week"}), 400)
    keys = {k["id"]: k for k in admin.get(ADMIN + "/keys").json()["data"]}
    assert keys[test_key.id]["usage"]["jobs"] == 5
    assert keys[test_key.id]["usage"]["seconds_rendered"] == pytest.approx(5.0)

    failures = {f["name"]: f for f in admin.get(ADMIN + "/failures").json()["data"]}
    assert failures["GenerationError"]["count"] == 3
    assert failures["GenerationError"]["last_model"] == "video-01"
    assert failures["GenerationError"]["last_message"] == FailingOptions().message
    assert failures["InvalidInput"]["count"] == 1

    # Without a live worker, every runnable engine says so.
    for worker in svc.store.workers(3600):  # the in-process worker's own presence row
        svc.store.worker_gone(worker.id)
    engines = {e["name"]: e for e in admin.get(ADMIN + "/engines").json()["data"]}
    assert engines["weightless"]["status"] == "disabled"
    assert "does not exist" in engines["weightless"]["reason"]
    assert engines["instant"]["status"] == engines["failing"]["status"] == "no_worker"
    now = time.time()
    svc.store.worker_seen(WorkerInfo(
        "gpu-box:1:abc", "gpu-box", 1, [IMAGE_TO_VIDEO, TEXT_TO_VIDEO], now - 60, now, None, 7,
    ))  # fmt: skip
    body = admin.get(ADMIN + "/engines").json()
    engines = {e["name"]: e for e in body["data"]}
    assert body["routes"] == {IMAGE_TO_VIDEO: "instant", TEXT_TO_VIDEO: "failing"}
    # The bad URL was the request's fault: instant stays healthy; failing is degraded.
    assert engines["instant"]["status"] == "ok"
    assert (engines["instant"]["completed"], engines["instant"]["failed"]) == (1, 0)
    assert engines["failing"]["status"] == "degraded" and engines["failing"]["failed"] == 3
    assert engines["instant"]["kind"] == "local" and engines["instant"]["device"] == "cpu"
    workers = admin.get(ADMIN + "/workers").json()["data"]
    (worker,) = [w for w in workers if w["id"] == "gpu-box:1:abc"]
    assert worker["engines"] == ["instant", "failing"] and worker["devices"] == ["cpu"]
    assert worker["jobs_done"] == 7
    svc.store.worker_gone("gpu-box:1:abc")


def test_openapi_documents_the_admin_api(admin: httpx.Client) -> None:
    schema = admin.get("/openapi.json").json()
    paths = schema["paths"]
    expected = {
        "/v2/admin/keys": {"get", "post"},
        "/v2/admin/keys/{key}/revoke": {"post"},
        "/v2/admin/keys/{key}/credit": {"post"},
        "/v2/admin/usage": {"get"},
        "/v2/admin/queue": {"get"},
        "/v2/admin/workers": {"get"},
        "/v2/admin/engines": {"get"},
        "/v2/admin/failures": {"get"},
        "/v2/admin/audit": {"get"},
    }
    components = schema["components"]["schemas"]
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
        for method in methods:
            operation = paths[path][method]
            assert operation["tags"] == ["Admin"]
            assert operation["security"] == [{"bearer": []}]
            ok = operation["responses"]["201" if method == "post" and path.endswith("keys")
                                         else "200"]  # fmt: skip
            ref = ok["content"]["application/json"]["schema"]["$ref"]
            assert ref.removeprefix("#/components/schemas/") in components
            for code in ("401", "403"):
                error = operation["responses"][code]["content"]["application/json"]["schema"]
                assert error["$ref"].endswith("/ErrorEnvelope")
    assert "secret" in components["CreatedKey"]["properties"]
    assert "secret" not in components["AdminKey"]["properties"]
    assert "/playground" not in paths and "/" not in paths


# ---------------------------------------------------------------------- the web app
def test_web_app_is_served_with_a_strict_csp(svc: InProcess, user: httpx.Client) -> None:
    r = user.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/playground"
    page = user.get("/playground")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp and "*" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    # No inline script or style, no inline handler, no secret, nothing from elsewhere.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)
    assert TEST_KEY not in html and "kn-" + "x" not in html
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)
    assets = re.findall(r"/playground/assets/([\w.-]+)", html)
    assert {"app.js", "app.css", "icon.svg"} <= set(assets)
    for name in sorted(p.name for p in WEB_DIR.iterdir() if p.suffix in (".js", ".css", ".svg")):
        r = user.get(f"/playground/assets/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-security-policy"] == csp
        kind = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        assert r.headers["content-type"].startswith(kind[Path(name).suffix])
        again = user.get(f"/playground/assets/{name}", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
        source = r.text
        for unsafe in UNSAFE_JS:
            assert unsafe not in source, (name, unsafe)
        if name != "api.js":  # the one place the key is kept and read
            assert "localStorage." not in source, name
        assert "@import" not in source and "url(http" not in source
        assert not re.search(r"fetch\(\s*[\"'`]https?:", source)
    for bad in ("../api/web.py", "..%2Fapi%2Fweb.py", "index.html.bak", ".hidden.js", "x.py"):
        assert user.get(f"/playground/assets/{bad}").status_code == 404, bad
    assert user.get("/playground/", follow_redirects=False).headers["location"] == "/playground"


def test_csp_lets_videos_play_from_s3_or_another_public_url(tmp_path: Path) -> None:
    local = content_security_policy(Settings(data_dir=tmp_path))
    assert "media-src 'self' blob: data:;" in local
    s3 = Settings(
        data_dir=tmp_path, storage_url="s3://videos/out",
        s3_endpoint_url="http://minio:9000", s3_public_endpoint_url="https://cdn.example.com/x",
        public_url="https://kinema.example.com",
    )  # fmt: skip
    assert (
        "media-src 'self' blob: data: https://cdn.example.com https://kinema.example.com;"
        in content_security_policy(s3)
    )
    aws = Settings(data_dir=tmp_path, storage_url="s3://videos")
    assert "https://*.amazonaws.com" in content_security_policy(aws)


# ---------------------------------------------------------------------- the store
@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'kinema.db'}")
        assert isinstance(s, SqlStore)
        yield s
        s.close()
        return
    schema = "kinema_" + secrets.token_hex(4)
    try:
        pg = create_engine(PG_URL)
        with pg.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # no PostgreSQL on this machine
        pytest.skip(f"PostgreSQL is not reachable: {type(exc).__name__}")
    s = open_store(f"{PG_URL}?options=-csearch_path%3D{schema}")
    assert isinstance(s, SqlStore)
    yield s
    s.close()
    with pg.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    pg.dispose()


def _video(seconds: float) -> VideoOutput:
    return VideoOutput("k", "video/mp4", "k.mp4", 1000, seconds, 64, 48, False)


def test_admin_store_queries(store: SqlStore) -> None:
    key, secret = store.create_key("a", None)
    other, _ = store.create_key("b", 10_000)
    assert not store.is_admin(key.id) and store.admin_key_ids() == set()
    assert store.set_admin(secret[:10], True) == key.id  # by prefix
    assert store.is_admin(key.id) and store.admin_key_ids() == {key.id}
    assert store.set_admin("key_missing", True) is None

    outcomes = [
        (key.id, Completed(_video(2.5), 700)), (key.id, Completed(_video(4.0), 300)),
        (key.id, Failed("GenerationError", "old")), (other.id, Failed("GenerationError", "new")),
        (other.id, Failed("Cancelled", "by owner")), (other.id, Failed("InvalidInput", "bad")),
    ]  # fmt: skip
    for key_id, outcome in outcomes:
        store.create_job(NewJob(key_id, "unified", "m", "image-to-video", {}, 100, 1, backend="e"))
        job = store.claim("w", ["image-to-video"], 30)
        assert job is not None
        assert store.finish(job.id, "w", outcome)
        time.sleep(0.01)
    store.create_job(NewJob(key.id, "unified", "m", "image-to-video", {}, 100, 1))  # pending

    rows = store.key_usage(time.time() - 3600, 3600)
    by_key: dict[str, dict[str, float]] = {}
    for row in rows:
        assert row.start % 3600 == 0
        totals = by_key.setdefault(row.key_id, {"jobs": 0, "completed": 0, "failed": 0,
                                                "seconds": 0, "credits": 0})  # fmt: skip
        for name in totals:
            totals[name] += getattr(row, name)
    assert by_key[key.id] == {"jobs": 4, "completed": 2, "failed": 1, "seconds": 6.5,
                              "credits": 1000}  # fmt: skip
    assert by_key[other.id] == {"jobs": 3, "completed": 0, "failed": 3, "seconds": 0,
                                "credits": 0}  # fmt: skip
    assert {r.key_id for r in store.key_usage(0, 86400, other.id)} == {other.id}
    assert store.key_usage(time.time() + 60, 3600) == []

    failures = store.recent_failures(time.time() - 3600)
    assert (failures[0].name, failures[0].count) == ("GenerationError", 2)
    assert failures[0].last_message == "new" and failures[0].last_model == "m"
    assert {f.name for f in failures} == {"GenerationError", "Cancelled", "InvalidInput"}
    assert store.recent_failures(time.time() + 60) == []
    # Failures of the request itself (cancelled, bad input) do not count against "e".
    assert store.backend_outcomes(time.time() - 3600) == [("e", 2, 2)]

    first = store.record_audit(key.id, "key.create", other.id, {"name": "b", "credits": 1})
    second = store.record_audit(key.id, "key.revoke", other.id, {})
    assert second.id > first.id
    log = store.audit_log()
    assert [e.action for e in log] == ["key.revoke", "key.create"]
    assert log[1].detail == {"name": "b", "credits": 1} and log[1].actor == key.id
    assert store.audit_log(limit=1) == [log[0]]


def test_migration_0006_adds_and_removes_the_audit_table(tmp_path: Path) -> None:
    from alembic import command

    from kinema.store.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'm.db'}"
    open_store(url).close()
    engine = create_engine(url)
    assert "admin_audit" in inspect(engine).get_table_names()
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")  # the revision before 0006 (admin)
    assert "admin_audit" not in inspect(engine).get_table_names()
    open_store(url).close()  # and up again
    assert "admin_audit" in inspect(engine).get_table_names()
    engine.dispose()


# ---------------------------------------------------------------------- the CLI
def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_create_admin_on_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KINEMA_BASE_URL", raising=False)
    data = str(tmp_path)
    code, out, _ = _run(capsys, "keys", "create", "--name", "ops", "--admin", "--data-dir", data)
    assert code == 0 and "Created admin key" in out
    secret = out.strip().splitlines()[-1]
    code, out, _ = _run(capsys, "keys", "create", "--name", "plain", "--data-dir", data)
    assert code == 0 and "Created key" in out
    store = open_store(Settings(data_dir=tmp_path).resolved_database_url)
    found = store.authenticate(secret)
    assert found is not None and store.is_admin(found.id)
    assert len(store.admin_key_ids()) == 1
    store.close()
    code, out, _ = _run(capsys, "keys", "list", "--data-dir", data)
    (ops,) = [line for line in out.splitlines() if " ops " in line]
    (plain,) = [line for line in out.splitlines() if " plain " in line]
    assert ops.rstrip().endswith("admin") and not plain.rstrip().endswith("admin")


def test_keys_through_a_remote_servers_admin_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = KinemaServer(tmp_path / "remote", workers=0)
    server.start()
    try:
        data = str(server.data_dir)
        monkeypatch.setenv("KINEMA_API_KEY", "ignored-for-local-commands")
        code, out, _ = _run(capsys, "keys", "create", "--name", "ops", "--admin", "--data-dir",
                            data)  # fmt: skip
        admin = out.strip().splitlines()[-1]
        monkeypatch.setenv("KINEMA_BASE_URL", server.base_url)
        monkeypatch.setenv("KINEMA_API_KEY", admin)
        code, out, err = _run(capsys, "keys", "create", "--name", "remote bot", "--credits", "10")
        assert code == 0, err
        assert "Created key" in out and "remote bot" in out
        bot = out.strip().splitlines()[-1]
        assert bot.startswith("kn-")
        code, out, _ = _run(capsys, "keys", "list")
        assert code == 0 and "remote bot" in out
        (ops,) = [line for line in out.splitlines() if " ops " in line]
        assert ops.rstrip().endswith("admin")
        code, out, _ = _run(capsys, "keys", "credit", bot[:10], "--add", "5")
        assert code == 0 and "balance: 15" in out
        code, out, _ = _run(capsys, "keys", "credit", bot[:10], "--unlimited")
        assert code == 0 and "balance: unlimited" in out
        code, out, _ = _run(capsys, "keys", "revoke", bot[:10])
        assert code == 0 and "Revoked" in out
        code, _, err = _run(capsys, "keys", "revoke", bot[:10])
        assert code == 1 and "no active key" in err
        # --base-url and --api-key on the command line; a plain key is refused.
        monkeypatch.delenv("KINEMA_BASE_URL")
        code, _, err = _run(capsys, "keys", "list", "--base-url", server.base_url,
                            "--api-key", server.key)  # fmt: skip
        assert code == 1 and "403" in err and "--admin" in err
        code, _, err = _run(capsys, "keys", "list", "--base-url", "http://127.0.0.1:9",
                            "--api-key", admin)  # fmt: skip
        assert code == 1 and "cannot reach" in err
        monkeypatch.delenv("KINEMA_API_KEY")
        code, _, err = _run(capsys, "keys", "list", "--base-url", server.base_url)
        assert code == 1 and "admin key" in err
        audit = httpx.get(
            server.base_url + ADMIN + "/audit", headers={"Authorization": f"Bearer {admin}"}
        ).json()["data"]
        assert [e["action"] for e in audit] == [
            "key.revoke", "key.credit", "key.credit", "key.create",
        ]  # fmt: skip
        assert admin not in server.log() and bot not in server.log()
    finally:
        server.stop()
