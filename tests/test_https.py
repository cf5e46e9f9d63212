"""HTTPS: the local CA + certificate of `--tls-self-signed` (made once, reused, reissued
when they no longer fit), the flags checked before anything starts, and a job end to end
over TLS with clients that verify the certificate (the signed video link says https://)."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store

from kinema import tls
from kinema.cli import main
from kinema.settings import Settings
from kinema.webhooks.dispatcher import base_url_of
from tests.support import MediaServer, wait_for
from tests.tls_server import TlsServer
from tests.videos import assert_video, download

FILES = (tls.CA_CERT, tls.CA_KEY, tls.SERVER_CERT, tls.SERVER_KEY)


def contents(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


def verify(made: tls.SelfSigned, name: str, when: datetime | None = None) -> None:
    """Chain-verify the server certificate for `name` against the CA (cryptography's
    web-PKI verifier: SAN match, key usages, validity)."""
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    leaf = x509.load_pem_x509_certificate(made.certfile.read_bytes())
    builder = PolicyBuilder().store(Store([ca]))
    if when is not None:
        builder = builder.time(when)
    try:
        subject: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = x509.DNSName(name)
    builder.build_server_verifier(subject).verify(leaf, [])


def test_the_local_ca_is_made_once_and_reused(tmp_path: Path) -> None:
    made = tls.ensure_self_signed(tmp_path, "127.0.0.1")
    assert made.issued and made.names == ("localhost", "127.0.0.1", "::1")
    directory = tmp_path / "tls"
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in FILES:
        assert (directory / name).stat().st_mode & 0o777 == 0o600, name
    for name in made.names:
        verify(made, name)
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.verification.VerificationError):  # not for other names
        verify(made, "example.com")

    before = contents(directory)
    again = tls.ensure_self_signed(tmp_path, "localhost")
    assert not again.issued and contents(directory) == before


def test_the_server_certificate_is_reissued_by_the_same_ca(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    first = tls.ensure_self_signed(tmp_path, "127.0.0.1")
    ca = first.ca.read_bytes()

    # Another --host: a new server certificate covering it, from the CA clients trust.
    named = tls.ensure_self_signed(tmp_path, "kinema.example")
    assert named.issued and named.ca.read_bytes() == ca
    verify(named, "kinema.example")
    verify(named, "127.0.0.1")
    address = tls.ensure_self_signed(tmp_path, "10.1.2.3")
    verify(address, "10.1.2.3")

    # A key that is not the certificate's: a new one rather than served.
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    (directory / tls.SERVER_KEY).write_bytes(other)
    fixed = tls.ensure_self_signed(tmp_path, "10.1.2.3")
    assert fixed.issued and (directory / tls.CA_CERT).read_bytes() == ca
    tls.check_pair(fixed.certfile, fixed.keyfile)

    # Near its expiry: reissued (same CA); near the CA's expiry: both anew.
    later = datetime.now(UTC) + timedelta(days=tls.SERVER_DAYS - 10)
    renewed = tls.ensure_self_signed(tmp_path, "10.1.2.3", now=later)
    assert renewed.issued and renewed.ca.read_bytes() == ca
    verify(renewed, "10.1.2.3", when=later)
    much_later = datetime.now(UTC) + timedelta(days=tls.CA_DAYS - 10)
    tls.ensure_self_signed(tmp_path, "10.1.2.3", now=much_later)
    assert (directory / tls.CA_CERT).read_bytes() != ca


def test_a_wildcard_bind_covers_the_machine_name() -> None:
    assert tls.server_names("0.0.0.0")[-1] == socket.gethostname().lower()
    assert tls.server_names("::1") == ("localhost", "127.0.0.1", "::1")


def serve(*argv: str) -> int:
    return main(["serve", *argv])


def test_bad_tls_flags_stop_serve_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KINEMA_SSL_CERTFILE", "KINEMA_SSL_KEYFILE", "KINEMA_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    good = tls.ensure_self_signed(tmp_path / "certs", "127.0.0.1")
    data = ["--data-dir", str(tmp_path / "data"), "--workers", "0"]
    missing = tmp_path / "missing.pem"

    def refused(*argv: str) -> str:
        assert serve(*data, *argv) == 2
        return capsys.readouterr().err

    err = refused("--ssl-certfile", str(missing), "--ssl-keyfile", str(good.keyfile))
    assert "--ssl-certfile" in err and str(missing) in err and "No such file" in err
    err = refused("--ssl-certfile", str(good.certfile), "--ssl-keyfile", str(tmp_path))
    assert "--ssl-keyfile" in err and "directory" in err.lower()
    assert "--ssl-certfile needs --ssl-keyfile" in refused("--ssl-certfile", str(good.certfile))
    err = refused("--ssl-certfile", str(good.certfile), "--ssl-keyfile", str(good.ca))
    assert "matching, unencrypted private key" in err
    # An encrypted key is refused at once (OpenSSL does not prompt on the terminal).
    encrypted = tmp_path / "encrypted.pem"
    key = serialization.load_pem_private_key(good.keyfile.read_bytes(), password=None)
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ))  # fmt: skip
    err = refused("--ssl-certfile", str(good.certfile), "--ssl-keyfile", str(encrypted))
    assert "unencrypted" in err
    err = refused("--tls-self-signed", "--ssl-certfile", str(good.certfile))
    assert "--tls-self-signed" in err
    monkeypatch.setenv("KINEMA_SSL_KEYFILE", str(good.keyfile))  # the environment's half
    assert "--ssl-keyfile needs --ssl-certfile (KINEMA_SSL_CERTFILE)" in refused()
    # Refused before the database was made or a worker started.
    assert not (tmp_path / "data" / "kinema.db").exists()


def test_webhook_links_say_https_when_serving_tls(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path, port=8443)
    assert base_url_of(plain) == "http://127.0.0.1:8443/"
    secure = plain.model_copy(update={"ssl_certfile": tmp_path / "c", "ssl_keyfile": tmp_path})
    assert base_url_of(secure) == "https://127.0.0.1:8443/"


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """`kinema serve` with an operator's certificate pair given in the environment."""
    certs = tls.ensure_self_signed(tmp_path_factory.mktemp("operator-certs"), "127.0.0.1")
    server = TlsServer(
        tmp_path_factory.mktemp("kinema-https"), flags=[], ca=certs.ca,
        KINEMA_SSL_CERTFILE=str(certs.certfile), KINEMA_SSL_KEYFILE=str(certs.keyfile),
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


def test_a_job_end_to_end_over_https(
    https_server: TlsServer, media: MediaServer, tmp_path: Path
) -> None:
    with https_server.client() as c:
        r = c.post("/v2/video/generations", json={
            "model": "pixverse/v5/image-to-video", "prompt": "zoom in slowly",
            "image_url": f"{media.base}/landscape.png", "resolution": "360P", "duration": "5",
        })  # fmt: skip
        assert r.status_code == 201, r.text
        done = wait_for(c, r.json()["id"])
    assert done["status"] == "completed", done
    url = done["video"]["url"]
    assert url.startswith(f"{https_server.base_url}/"), url
    with https_server.plain_client() as http:
        mp4 = download(url, tmp_path / "out.mp4", client=http)
        ranged = http.get(url, headers={"Range": "bytes=0-99"})
    assert_video(mp4, seconds=5, short_side=360, audio=False, aspect=16 / 9)
    assert ranged.status_code == 206 and ranged.content[4:8] == b"ftyp"


def test_clients_that_do_not_trust_the_ca_are_refused(https_server: TlsServer) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(https_server.base_url + "/health", verify=ssl.create_default_context())
    plain = https_server.base_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
        httpx.get(plain + "/health", timeout=5)


def test_self_signed_serve_prints_the_ca_and_reuses_it(tmp_path: Path) -> None:
    server = TlsServer(tmp_path / "data", flags=["--tls-self-signed"], workers=0)
    server.start()
    try:
        with server.client() as c:
            assert c.get("/health").status_code == 200
    finally:
        assert server.stop() == 0
    ca = (tmp_path / "data" / "tls" / "ca.pem").resolve()
    assert f"NODE_EXTRA_CA_CERTS={ca}" in server.log() and "(made;" in server.log()
    assert os.stat(ca.parent / tls.CA_KEY).st_mode & 0o777 == 0o600
    before = contents(ca.parent)
    server.start()  # a restart serves the same certificate
    try:
        with server.client() as c:
            assert c.get("/health").status_code == 200
    finally:
        server.stop()
    assert "(reused;" in server.log() and contents(ca.parent) == before


def test_the_sdk_trusts_the_ca_through_ssl_cert_file(
    https_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's hint for Python clients: httpx (so the SDK and `kinema status`)
    verifies against SSL_CERT_FILE."""
    from kinema.client import Client

    monkeypatch.setenv("SSL_CERT_FILE", str(https_server.ca))
    with Client(https_server.base_url, https_server.key, max_retries=0) as client:
        ids = {model.id for model in client.models.list()}
    assert "veed/fabric-1.0" in ids
