"""kinema.inputs against real HTTP(S) servers on loopback.

Two plain servers play the parts of an SSRF scenario: `media` on 127.0.0.5 is the
operator's internal media server (allowlisted in most tests), `private` on 127.0.0.1 is
what an attacker wants to reach; tests assert it never even sees a request. A third one
speaks TLS with a certificate valid only for "localhost", to prove that connecting to the
pinned IP still verifies the certificate against the real host name.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kinema.errors import InputError, UnsafeUrl
from kinema.inputs import FetchPolicy, check_url, fetch, is_public_address, parse_data_uri
from kinema.netpolicy import Deadline, PinnedBackend
from kinema.settings import Settings

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)
FIELD = "image_url"
MEDIA_HOST = "127.0.0.5"
SECRET = "s3cr3t-t0ken"


# ---------------------------------------------------------------------- test servers
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.close_connection = True
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.server.seen.append((parts.path, self.headers.get("Host", "")))
        route = parts.path.strip("/").split("/")
        # The client hanging up mid-response is expected (size cap, deadline).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            getattr(self, "route_" + route[0].replace("-", "_"), self.route_missing)(
                route[1:], query
            )

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"Connection": "close", **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def _body(self, status: int, body: bytes, ctype: str = "application/octet-stream") -> None:
        self._head(status, {"Content-Type": ctype, "Content-Length": str(len(body))})
        self.wfile.write(body)

    def route_png(self, args: list[str], query: dict[str, str]) -> None:
        self._body(200, PNG, "image/png")

    def route_wav(self, args: list[str], query: dict[str, str]) -> None:
        self._body(200, WAV, "audio/wav")

    def route_html(self, args: list[str], query: dict[str, str]) -> None:
        self._body(200, b"<!doctype html><html><body>Sign in</body></html>", "text/html")

    def route_missing(self, args: list[str], query: dict[str, str]) -> None:
        self._body(404, b"not found", "text/plain")

    def route_hop(self, args: list[str], query: dict[str, str]) -> None:
        """/hop/N redirects N times (relative Locations) before serving the PNG."""
        left = int(args[0])
        if left == 0:
            self.route_png(args, query)
        else:
            self._head(302, {"Location": f"/hop/{left - 1}", "Content-Length": "0"})

    def route_to(self, args: list[str], query: dict[str, str]) -> None:
        self._head(302, {"Location": query["url"], "Content-Length": "0"})

    def route_big(self, args: list[str], query: dict[str, str]) -> None:
        size = int(query["n"])
        self._head(200, {"Content-Type": "image/png", "Content-Length": str(size)})
        self.wfile.write(PNG + bytes(size - len(PNG)))

    def route_big_chunked(self, args: list[str], query: dict[str, str]) -> None:
        size, chunk = int(query["n"]), PNG + bytes(64 * 1024 - len(PNG))
        self._head(200, {"Content-Type": "image/png", "Transfer-Encoding": "chunked"})
        for _ in range(0, size, len(chunk)):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route_stall(self, args: list[str], query: dict[str, str]) -> None:
        """Headers at once, then silence: only a deadline ends this."""
        self._head(200, {"Content-Type": "image/png", "Content-Length": "1000"})
        self.server.stop.wait(10)

    def route_drip(self, args: list[str], query: dict[str, str]) -> None:
        """A body byte every 50 ms: no single read ever times out."""
        self._head(200, {"Content-Type": "image/png", "Content-Length": "1000"})
        while not self.server.stop.wait(0.05):
            self.wfile.write(b"\x89")
            self.wfile.flush()

    def route_drip_headers(self, args: list[str], query: dict[str, str]) -> None:
        """The status line, then a header byte every 50 ms: stalls before any response."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not self.server.stop.wait(0.05):
            self.wfile.write(b"a")
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, tls: ssl.SSLContext | None = None) -> None:
        super().__init__((host, 0), _Handler)
        self.seen: list[tuple[str, str]] = []  # (path, Host header) per request
        self.sni: list[str | None] = []  # server names sent in TLS handshakes
        self.stop = threading.Event()
        if tls is not None:
            tls.sni_callback = self._record_sni
            # Handshake in the handler thread, not in the accept loop.
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self.host, self.port = host, self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    def url(self, path: str, host: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


@pytest.fixture(scope="module")
def media() -> Iterator[_Server]:
    try:
        server = _Server(MEDIA_HOST)
    except OSError:
        pytest.skip(f"cannot bind {MEDIA_HOST} (only Linux routes all of 127/8 to loopback)")
    yield server
    server.close()


@pytest.fixture(scope="module")
def private() -> Iterator[_Server]:
    server = _Server("127.0.0.1")
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _clear_logs(request: pytest.FixtureRequest) -> None:
    for name in ("media", "private"):
        if name in request.fixturenames:
            request.getfixturevalue(name).seen.clear()


def internal(**overrides: Any) -> FetchPolicy:
    """The policy of a deployment whose media server is 127.0.0.5."""
    return dataclasses.replace(FetchPolicy(allowlist=(MEDIA_HOST,), timeout=5.0), **overrides)


def refused(call: Callable[[], object], error: type[InputError] = InputError) -> InputError:
    with pytest.raises(error) as info:
        call()
    assert info.value.field_name == FIELD
    return info.value


# --------------------------------------------------------------------------- data: URIs
def data_uri(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(payload).decode()


def test_data_uri_decodes_png() -> None:
    assert parse_data_uri(data_uri(PNG), FIELD, 1000) == PNG
    assert fetch(data_uri(PNG), FIELD, "image", FetchPolicy()) == PNG
    assert fetch(data_uri(WAV, "audio/wav"), "audio_url", "audio", FetchPolicy()) == WAV


def test_data_uri_tolerates_whitespace_and_missing_padding() -> None:
    encoded = base64.b64encode(PNG).decode().rstrip("=")
    wrapped = "\n".join(encoded[i : i + 20] for i in range(0, len(encoded), 20))
    assert parse_data_uri(f"DATA:image/png;charset=x;base64,\n{wrapped}\n", FIELD, 1000) == PNG


def test_data_uri_bad_base64() -> None:
    error = refused(lambda: parse_data_uri("data:image/png;base64,iVBO@@@=", FIELD, 1000))
    assert "not valid base64" in error.reason


def test_data_uri_oversized_is_refused_before_decoding() -> None:
    # Not even valid base64: only a refusal based on the length alone can say "limit".
    error = refused(lambda: parse_data_uri("data:image/png;base64," + "!" * 4000, FIELD, 1000))
    assert "limit is 1000" in error.reason
    assert parse_data_uri(data_uri(bytes(1000)), FIELD, 1000) == bytes(1000)
    refused(lambda: parse_data_uri(data_uri(bytes(1001)), FIELD, 1000))


@pytest.mark.parametrize(
    "uri", ["data:image/png,%89PNG", "data:image/png;charset=utf-8,abc", "data:image/png"]
)
def test_data_uri_must_be_base64(uri: str) -> None:
    refused(lambda: parse_data_uri(uri, FIELD, 1000))
    refused(lambda: check_url(uri, FIELD, FetchPolicy()))


def test_data_uri_with_wrong_media_type() -> None:
    error = refused(lambda: fetch(data_uri(b"GIF89a" + bytes(20)), FIELD, "image", FetchPolicy()))
    assert error.reason == "is not a supported image (PNG, JPEG or WebP)"
    error = refused(lambda: fetch(data_uri(PNG), FIELD, "audio", FetchPolicy()))
    assert "is not a supported audio" in error.reason


# --------------------------------------------------------------------------- check_url
@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://127.0.0.1/a.png",
        "http://[::1]:8080/a.png",
        "http://10.0.0.1/a.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://localhost:8000/a.png",
        "http://LOCALHOST./a.png",
        "http://api.localhost/a.png",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://user:pass@example.com/a.png",
        "http://evil.example\\@127.0.0.1/",
    ],
)
def test_check_url_refuses(url: str) -> None:
    refused(lambda: check_url(url, FIELD, FetchPolicy()))


@pytest.mark.parametrize("url", ["http:///a.png", "http:a.png", "example.com/a.png", "https://"])
def test_check_url_refuses_malformed(url: str) -> None:
    refused(lambda: check_url(url, FIELD, FetchPolicy()))


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png?X-Amz-Signature=abc",
        "http://example.com:8080/a.png",
        "https://[2606:4700::1111]/a.png",
        "http://8.8.8.8/a.png",
        "https://xn--mnchen-3ya.de/bild.png",
        "data:image/png;base64,iVBORw0KGgo=",
    ],
)
def test_check_url_accepts(url: str) -> None:
    check_url(url, FIELD, FetchPolicy())


def test_check_url_private_switch_and_allowlist() -> None:
    check_url("http://127.0.0.1:9/a.png", FIELD, FetchPolicy(allow_private=True))
    check_url("http://localhost/a.png", FIELD, FetchPolicy(allow_private=True))
    check_url("http://10.1.2.3/a.png", FIELD, FetchPolicy(allowlist=("10.0.0.0/8",)))
    check_url("http://localhost/a.png", FIELD, FetchPolicy(allowlist=("localhost",)))
    refused(lambda: check_url("http://10.1.2.3/", FIELD, FetchPolicy(allowlist=("10.0.0.0/16",))))
    # Even with private addresses allowed, credentials and odd schemes stay refused.
    refused(lambda: check_url("ftp://127.0.0.1/", FIELD, FetchPolicy(allow_private=True)))
    refused(lambda: check_url("http://a:b@10.0.0.1/", FIELD, FetchPolicy(allow_private=True)))


def test_policy_from_settings() -> None:
    settings = Settings(allow_private_urls=True, max_input_bytes=1234, fetch_timeout_seconds=7)
    policy = FetchPolicy.from_settings(settings)
    assert (policy.allow_private, policy.max_bytes, policy.timeout) == (True, 1234, 7.0)
    assert policy.allowlist == ()


# ---------------------------------------------------------------------- is_public_address
@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700::1111", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("127.0.0.1", False),
        ("::1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("fc00::1", False),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("100.64.0.1", False),
        ("100.100.100.200", False),
        ("fd00:ec2::254", False),
        ("0.0.0.0", False),
        ("0.1.2.3", False),
        ("::", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
        ("198.18.0.1", False),
        ("192.0.2.1", False),
        ("203.0.113.9", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),  # IPv4-compatible
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::a00:1", False),  # local-use NAT64
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
        ("not an address", False),
    ],
)
def test_is_public_address(ip: str, public: bool) -> None:
    assert is_public_address(ip) is public
    if ip != "not an address":
        assert is_public_address(ipaddress.ip_address(ip)) is public


# ------------------------------------------------------------------------ fetching: SSRF
def test_fetch_loopback_refused_by_default_allowed_when_private_allowed(private: _Server) -> None:
    url = private.url("/png")
    refused(lambda: fetch(url, FIELD, "image", FetchPolicy()), UnsafeUrl)
    assert private.seen == []
    assert fetch(url, FIELD, "image", FetchPolicy(allow_private=True)) == PNG
    assert private.seen == [("/png", f"127.0.0.1:{private.port}")]


def test_fetch_host_name_resolving_to_loopback_is_refused(private: _Server) -> None:
    name = socket.gethostname()  # on most Linux hosts /etc/hosts maps it to 127.0.x.1
    try:
        infos = socket.getaddrinfo(name, private.port, type=socket.SOCK_STREAM)
    except OSError:
        pytest.skip("this host's name does not resolve")
    if any(is_public_address(str(info[4][0])) for info in infos):
        pytest.skip("this host's name resolves to a public address")
    refused(lambda: fetch(private.url("/png", host=name), FIELD, "image", FetchPolicy()), UnsafeUrl)
    assert private.seen == []


def test_allowlisted_ip_is_fetched(media: _Server) -> None:
    assert fetch(media.url("/png"), FIELD, "image", internal()) == PNG
    assert fetch(media.url("/wav"), "audio_url", "audio", internal()) == WAV
    refused(lambda: fetch(media.url("/png"), FIELD, "image", FetchPolicy()), UnsafeUrl)


def test_allowlisted_host_name_connects_to_its_address_with_original_host(
    private: _Server,
) -> None:
    url = private.url("/png", host="localhost")
    refused(lambda: fetch(url, FIELD, "image", FetchPolicy()), UnsafeUrl)
    assert fetch(url, FIELD, "image", FetchPolicy(allowlist=("localhost",))) == PNG
    assert private.seen == [("/png", f"localhost:{private.port}")]


@pytest.mark.parametrize("hops", [0, 2])
def test_redirect_to_loopback_is_refused(media: _Server, private: _Server, hops: int) -> None:
    url = media.url("/to?" + urllib.parse.urlencode({"url": private.url("/png")}))
    for _ in range(hops):
        url = media.url("/to?" + urllib.parse.urlencode({"url": url}))
    error = refused(lambda: fetch(url, FIELD, "image", internal()), UnsafeUrl)
    assert "127.0.0.1" in error.reason
    assert len(media.seen) == hops + 1
    assert private.seen == []


@pytest.mark.parametrize(
    "target",
    ["http://localhost:{port}/png", "http://2130706433:{port}/png", "file:///etc/passwd"],
)
def test_redirect_to_other_refused_targets(media: _Server, private: _Server, target: str) -> None:
    url = media.url("/to?" + urllib.parse.urlencode({"url": target.format(port=private.port)}))
    refused(lambda: fetch(url, FIELD, "image", internal()), UnsafeUrl)
    assert private.seen == []


def test_redirects_are_followed_up_to_the_limit(media: _Server) -> None:
    assert fetch(media.url("/hop/3"), FIELD, "image", internal(max_redirects=3)) == PNG
    error = refused(lambda: fetch(media.url("/hop/4"), FIELD, "image", internal(max_redirects=3)))
    assert "more than 3 redirects" in error.reason
    # 4 requests for the success; then /hop/4 and 3 redirects followed, the 4th refused.
    assert [path for path, _ in media.seen[4:]] == ["/hop/4", "/hop/3", "/hop/2", "/hop/1"]


# ------------------------------------------------------------------ fetching: responses
def test_http_error_status(media: _Server) -> None:
    error = refused(lambda: fetch(media.url("/missing"), FIELD, "image", internal()))
    assert "404" in error.reason
    assert error.reason == f"could not fetch {media.url('/missing')}: HTTP 404"


def test_html_instead_of_image(media: _Server) -> None:
    error = refused(lambda: fetch(media.url("/html"), FIELD, "image", internal()))
    assert error.reason.startswith("is not a supported image (PNG, JPEG or WebP)")
    assert str(error).startswith(f"{FIELD}: ")


@pytest.mark.parametrize("path", ["/missing", "/html", "/stall", "/to"])
def test_messages_never_contain_the_query_string(media: _Server, path: str) -> None:
    query = {"token": SECRET, "X-Amz-Signature": SECRET}
    if path == "/to":
        query["url"] = f"http://127.0.0.1:9/x?token={SECRET}"
    url = media.url(path + "?" + urllib.parse.urlencode(query))
    error = refused(lambda: fetch(url, FIELD, "image", internal(timeout=0.5)))
    assert SECRET not in str(error)
    assert SECRET not in repr(error.args)


def test_content_length_over_the_cap_is_refused_unread(media: _Server) -> None:
    policy = internal(max_bytes=100_000)
    assert fetch(media.url("/big?n=100000"), FIELD, "image", policy)[:8] == PNG[:8]
    error = refused(lambda: fetch(media.url("/big?n=100001"), FIELD, "image", policy))
    assert "larger than the 100000 bytes" in error.reason


def test_chunked_body_over_the_cap_is_cut_off(media: _Server) -> None:
    policy = internal(max_bytes=200_000)
    started = time.monotonic()
    error = refused(lambda: fetch(media.url("/big-chunked?n=50000000"), FIELD, "image", policy))
    assert "larger than the 200000 bytes" in error.reason
    assert time.monotonic() - started < 2  # stopped early, not after 50 MB


@pytest.mark.parametrize("path", ["/stall", "/drip", "/drip-headers"])
def test_overall_deadline(media: _Server, path: str) -> None:
    started = time.monotonic()
    error = refused(lambda: fetch(media.url(path), FIELD, "image", internal(timeout=1.0)))
    elapsed = time.monotonic() - started
    assert "within 1 s" in error.reason
    assert 0.9 < elapsed < 3


def test_backend_connects_only_to_the_pinned_address(private: _Server) -> None:
    """The last line of defence against DNS rebinding: whatever URL reaches the transport,
    its sockets go only to the address the current hop validated."""
    backend = PinnedBackend(Deadline(5), FIELD)
    refused(lambda: backend.connect_tcp("127.0.0.1", private.port), UnsafeUrl)
    backend.pinned = ipaddress.ip_address(MEDIA_HOST)
    refused(lambda: backend.connect_tcp("127.0.0.1", private.port), UnsafeUrl)
    refused(lambda: backend.connect_tcp("localhost", private.port), UnsafeUrl)
    backend.pinned = ipaddress.ip_address("127.0.0.1")
    backend.connect_tcp("127.0.0.1", private.port).close()


def test_connection_refused_is_an_input_error(private: _Server) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connects are refused
        url = f"http://127.0.0.1:{port}/png"
        error = refused(lambda: fetch(url, FIELD, "image", FetchPolicy(allow_private=True)))
    assert "connection failed" in error.reason


# ---------------------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Server, Path]]:
    """An HTTPS server whose certificate names only "localhost" (no IP address)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=20,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is needed to make a test certificate")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = _Server("127.0.0.1", tls=context)
    yield server, cert
    server.close()


def test_https_verifies_the_real_host_name_while_connecting_to_the_ip(
    tls_server: tuple[_Server, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    server.sni.clear()
    policy = FetchPolicy(allowlist=("localhost",), timeout=5)
    url = server.url("/png", host="localhost", scheme="https")
    # Unknown CA: verification must fail, cleanly.
    error = refused(lambda: fetch(url, FIELD, "image", policy))
    assert "certificate" in error.reason
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # operator's CA, as httpx honours it
    assert fetch(url, FIELD, "image", policy) == PNG
    assert "localhost" in server.sni
    assert server.seen[-1] == ("/png", f"localhost:{server.port}")
    # Addressed by IP, the same certificate (no IP SAN) does not verify.
    by_ip = server.url("/png", scheme="https")
    error = refused(lambda: fetch(by_ip, FIELD, "image", FetchPolicy(allow_private=True)))
    assert "certificate" in error.reason
