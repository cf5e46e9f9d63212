"""Getting the bytes of one media input (an http(s) URL or a data: URI), safely.

Callers choose the URLs and we fetch them from inside the deployment, so a fetch must not
become a way into the operator's network (SSRF) or a way to tie up a worker:

* we resolve the name, check every address (`kinema.netpolicy`), then connect to that
  IP: the URL's host becomes the IP, the `Host` header and TLS verification (httpcore's
  `sni_hostname` extension) keep the real name. No second lookup, no DNS rebinding.
* redirects are followed by hand, each hop checked from scratch;
* one deadline covers everything (DNS, connects, TLS, each read, each redirect);
* the body is streamed and cut off past `max_bytes`, and must sniff as the right media.

Failures are `InputError`s naming the field; URLs in messages are cut to
scheme://host/path so signed query strings never leak into job errors.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import httpcore
import httpx

from kinema import netpolicy as net
from kinema.errors import InputError, UnsafeUrl
from kinema.media.sniff import sniff
from kinema.netpolicy import IPAddress, is_public_address

if TYPE_CHECKING:
    from kinema.settings import Settings

__all__ = ["FetchPolicy", "check_url", "fetch", "is_public_address", "parse_data_uri"]
__all__ += ["shorten_url"]

MiB = 1024 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_LOCAL_NAMES = frozenset({"localhost", "metadata.google.internal"})
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")  # after IDNA encoding, lower-cased
_UNSUPPORTED = {
    "image": "is not a supported image (PNG, JPEG or WebP)",
    "audio": "is not a supported audio file (MP3, WAV, M4A, AAC or OGG)",
    "video": "is not a supported video (MP4, MOV or WebM)",
}


@dataclass(frozen=True)
class FetchPolicy:
    """How far a media fetch may go. `allowlist` holds host names and IPs/CIDRs that may
    be private (internal media servers); `timeout` is one deadline for the whole fetch."""

    allow_private: bool = False
    allowlist: tuple[str, ...] = ()
    max_bytes: int = 20 * MiB
    timeout: float = 30.0
    connect_timeout: float = 5.0
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        raw = getattr(settings, "url_allowlist", ())  # optional: not every Settings has it
        entries: Iterable[str] = raw.split(",") if isinstance(raw, str) else raw
        return cls(
            allow_private=settings.allow_private_urls,
            allowlist=tuple(e.strip() for e in entries if e.strip()),
            max_bytes=settings.max_input_bytes,
            timeout=settings.fetch_timeout_seconds,
        )


def shorten_url(url: str) -> str:
    """`url` fit for an error message: scheme://host[:port]/path, at most 120 characters.

    Query, fragment and user info are dropped because that is where secrets live."""
    if url[:5].lower() == "data:":
        return "the data: URI"
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "the given URL"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    short = f"{parts.scheme}://{netloc}{parts.path}"
    return short if len(short) <= 120 else short[:119] + "…"


# ------------------------------------------------------------------------------ data: URIs
def _data_payload(url: str, field: str) -> str:
    """The payload of a `data:[<mime>][;params];base64,<payload>` URI; nothing decoded."""
    if url[:5].lower() != "data:":
        raise InputError(field, "is not a data: URI")
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise InputError(field, "data: URI has no ',' before its payload")
    if header.split(";")[-1].strip().lower() != "base64":
        raise InputError(
            field,
            "data: URIs must be base64-encoded (data:<mime>;base64,<payload>); "
            "percent-encoded text payloads cannot carry media",
        )
    return payload


def parse_data_uri(url: str, field: str, max_bytes: int) -> bytes:
    """The decoded bytes of a base64 data: URI, refused unread if it would exceed
    `max_bytes`. Whitespace and line breaks inside the payload are tolerated, as is missing
    `=` padding, since both are common in hand-built URIs."""
    payload = _data_payload(url, field)
    if "%" in payload:  # some clients percent-encode the base64 alphabet's '+' and '/'
        payload = urllib.parse.unquote(payload)
    compact = "".join(payload.split())
    stripped = compact.rstrip("=")
    decoded_size = len(compact) * 3 // 4 - (len(compact) - len(stripped))
    if decoded_size > max_bytes:
        raise InputError(
            field, f"data: URI holds about {decoded_size} bytes; the limit is {max_bytes}"
        )
    if not stripped:
        raise InputError(field, "data: URI has an empty payload")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(field, "data: URI payload is not valid base64") from None


# ------------------------------------------------------------------------ URL vetting
@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str  # ASCII (IDNA) host, lower-case, no brackets
    literal: IPAddress | None  # the address if the host is an IP literal


def _vet_url(url: str, field: str, policy: FetchPolicy) -> _Target:
    """Parse an http(s) URL and apply every check that needs no DNS."""
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        if not scheme.isalnum():
            raise InputError(field, "must be an http(s) URL or a data: URI")
        raise UnsafeUrl(field, f"must be an http(s) URL or a data: URI, not '{scheme[:20]}:'")
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii").lower()
        port = parsed.port
    except (httpx.InvalidURL, UnicodeError):
        raise InputError(field, "is not a valid URL") from None
    if parsed.userinfo:
        raise UnsafeUrl(field, "URLs with a user name or password are not accepted")
    if not host:
        raise InputError(field, f"URL {shorten_url(url)} has no host")
    if port is not None and not 0 < port < 65536:
        raise InputError(field, f"URL {shorten_url(url)} has an invalid port")
    try:
        literal = net.ip_literal(host)
    except ValueError:  # numeric, so no resolver would treat it as a name either
        raise InputError(field, f"URL {shorten_url(url)} has an invalid IP address") from None
    if literal is None and (":" in host or not _HOST_NAME.fullmatch(host)):
        raise InputError(field, f"URL {shorten_url(url)} does not have a valid host")
    if literal is not None and isinstance(literal, ipaddress.IPv6Address) and literal.scope_id:
        raise UnsafeUrl(field, "link-local IPv6 addresses with a zone are not accepted")
    if not policy.allow_private:
        allowlist = net.parse_allowlist(policy.allowlist)
        name = host.rstrip(".")
        local_name = name in _LOCAL_NAMES or name.endswith(".localhost")
        if literal is None and local_name and not allowlist.allows_host(name):
            raise UnsafeUrl(field, f"{shorten_url(url)} points at this server's own network")
        if literal is not None and not net.address_allowed(literal, host, allowlist):
            raise UnsafeUrl(
                field,
                f"{shorten_url(url)} points at {literal}, a private or special-purpose "
                "address this server does not fetch from",
            )
    return _Target(parsed, host, literal)


def check_url(url: str, field: str, policy: FetchPolicy) -> None:
    """Submit-time check of a media URL, no DNS and no decoding: scheme, shape, user info,
    and IP-literal or well-known local hosts. `fetch` repeats it and checks the rest."""
    if url[:5].lower() == "data:":
        _data_payload(url, field)
        return
    _vet_url(url, field, policy)


# ----------------------------------------------------------------------------- fetching
def _ssl_cause(exc: BaseException | None) -> ssl.SSLError | None:
    """The TLS error behind a wrapped httpcore error (it is chained implicitly)."""
    while exc is not None and not isinstance(exc, ssl.SSLError):
        exc = exc.__cause__ or exc.__context__
    return exc


class _Download:
    """One fetch of an http(s) URL: resolve, vet, connect to the vetted IP, follow
    redirects by hand, stream the body under the size cap, all before one deadline."""

    def __init__(self, url: str, field: str, kind: str, policy: FetchPolicy) -> None:
        self.url = url
        self.field = field
        self.kind = kind
        self.policy = policy
        self.deadline = net.Deadline(policy.timeout)
        self.backend = net.PinnedBackend(self.deadline, field)

    def run(self) -> bytes:
        current = self.url
        transport = net.PinnedTransport(self.backend)
        with httpx.Client(transport=transport, follow_redirects=False, trust_env=False) as client:
            for hop in range(self.policy.max_redirects + 1):
                try:
                    target = _vet_url(current, self.field, self.policy)
                    response = self._request(client, target, current)
                except UnsafeUrl as exc:
                    if hop == 0:
                        raise
                    why = f"{shorten_url(self.url)} redirected to a refused URL: {exc.reason}"
                    raise UnsafeUrl(self.field, why) from None
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        current = self._redirect_target(target, location, current)
                        continue
                    if response.status_code >= 300:
                        self._fail(current, f"HTTP {response.status_code}")
                    return self._read_body(response, current)
                except net.TRANSPORT_ERRORS as exc:
                    self._network_failure(exc, current)
                finally:
                    response.close()
        self._fail(self.url, f"more than {self.policy.max_redirects} redirects")

    def _fail(self, url: str, why: str) -> NoReturn:
        raise InputError(self.field, f"could not fetch {shorten_url(url)}: {why}")

    def _network_failure(self, exc: Exception, url: str) -> NoReturn:
        if self.deadline.remaining() <= 0:
            self._fail(url, f"no complete response within {self.policy.timeout:g} s")
        if isinstance(_ssl_cause(exc), ssl.SSLCertVerificationError):
            self._fail(url, "the server's TLS certificate could not be verified")
        if isinstance(exc, httpcore.TimeoutException | httpx.TimeoutException):
            self._fail(url, "the server did not respond in time")
        if isinstance(exc, httpcore.ProtocolError | httpx.ProtocolError):
            self._fail(url, "the server sent a malformed or incomplete HTTP response")
        self._fail(url, "the connection failed")

    def _resolve(self, target: _Target, url: str) -> list[IPAddress]:
        """All addresses of the host. getaddrinfo cannot be given a timeout, so it runs
        in a daemon thread that we stop waiting for at the deadline."""
        if target.literal is not None:
            return [target.literal]
        port = target.url.port or (443 if target.url.scheme == "https" else 80)
        box: list[Any] = []

        def lookup() -> None:
            try:
                box.append(socket.getaddrinfo(target.host, port, type=socket.SOCK_STREAM))
            except (OSError, UnicodeError) as exc:
                box.append(exc)

        thread = threading.Thread(target=lookup, name="kinema-dns", daemon=True)
        thread.start()
        thread.join(max(self.deadline.remaining(), 0))
        if not box:
            self._fail(url, f"no complete response within {self.policy.timeout:g} s")
        if isinstance(box[0], BaseException):
            self._fail(url, "the host name does not resolve")
        addresses: list[IPAddress] = []
        for family, _, _, _, sockaddr in box[0]:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(str(sockaddr[0]))
            # A zoned link-local address cannot be written into a URL host; never public.
            if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
                if self.policy.allow_private:
                    continue
                self._unsafe(url)
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            self._fail(url, "the host name has no usable address")
        return addresses

    def _unsafe(self, url: str) -> NoReturn:
        # The resolved address is deliberately not shown: it would map internal DNS.
        raise UnsafeUrl(
            self.field,
            f"{shorten_url(url)} resolves to a private or special-purpose address, "
            "which this server does not fetch from",
        )

    def _request(self, client: httpx.Client, target: _Target, url: str) -> httpx.Response:
        addresses = self._resolve(target, url)
        if not self.policy.allow_private:
            allowlist = net.parse_allowlist(self.policy.allowlist)
            # Every address must pass, not just the one we try first: a name that mixes
            # public and private answers is exactly what a rebinding attacker serves.
            if not all(net.address_allowed(ip, target.host, allowlist) for ip in addresses):
                self._unsafe(url)
        headers = {
            "Host": target.url.netloc.decode("ascii"),
            "Accept": f"{self.kind}/*, */*;q=0.5",
            # Compressed bodies would decompress past the size cap inside httpx.
            "Accept-Encoding": "identity",
            "User-Agent": "Kinema media fetcher",
        }
        extensions: dict[str, Any] = {}
        if target.url.scheme == "https" and target.literal is None:
            extensions["sni_hostname"] = target.host  # verify TLS against the real name
        error: Exception | None = None
        for ip in addresses:  # in resolver order, the next one if a connect fails
            left = self.deadline.remaining()
            if left <= 0:
                break
            extensions["timeout"] = {
                "connect": min(self.policy.connect_timeout, left),
                "read": left,
                "write": left,
                "pool": left,
            }
            self.backend.pinned = ip
            request = client.build_request(
                "GET",
                target.url.copy_with(host=str(ip)),
                headers=headers,
                extensions=dict(extensions),
            )
            try:
                return client.send(request, stream=True)
            except net.CONNECT_ERRORS as exc:
                if _ssl_cause(exc) is not None:
                    self._network_failure(exc, url)  # the next address has the same cert
                error = exc
            except net.TRANSPORT_ERRORS as exc:
                self._network_failure(exc, url)
        if error is None or self.deadline.remaining() <= 0:
            self._fail(url, f"no complete response within {self.policy.timeout:g} s")
        self._network_failure(error, url)

    def _redirect_target(self, target: _Target, location: str, url: str) -> str:
        try:
            joined = target.url.join(location)  # relative to the real host, not the IP
        except (httpx.InvalidURL, UnicodeError):
            self._fail(url, "the server redirected to an invalid URL")
        if joined.scheme not in ("http", "https"):
            raise UnsafeUrl(
                self.field,
                f"{shorten_url(url)} redirected to a non-HTTP URL, which is not followed",
            )
        return str(joined)

    def _read_body(self, response: httpx.Response, url: str) -> bytes:
        limit = self.policy.max_bytes
        too_large = f"the file is larger than the {limit} bytes allowed for one input"
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            self._fail(url, too_large)
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > limit:
                self._fail(url, too_large)
        return bytes(body)


def fetch(url: str, field: str, kind: str, policy: FetchPolicy) -> bytes:
    """The bytes of a media input of `kind` ("image", "audio" or "video"): a base64 data: URI or
    an http(s) URL fetched under `policy`. Raises InputError naming `field` (UnsafeUrl
    for refused destinations) for anything short of a supported file of that kind."""
    if kind not in _UNSUPPORTED:
        raise ValueError(f"unknown media kind {kind!r}; expected 'image', 'audio' or 'video'")
    if url[:5].lower() == "data:":
        data = parse_data_uri(url, field, policy.max_bytes)
    else:
        data = _Download(url, field, kind, policy).run()
    if sniff(data, kind) is None:
        hint = ""
        if data.lstrip()[:1] == b"<":
            hint = f" ({shorten_url(url)} returned an HTML/XML page, not the file itself)"
        raise InputError(field, _UNSUPPORTED[kind] + hint)
    return data
