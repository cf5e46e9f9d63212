"""Where a media fetch may connect, and the plumbing that makes it connect only there.

Media URLs come from API callers, so every address Kinema connects to on their behalf is
checked first (server-side request forgery): only globally routable unicast addresses are
"public". IPv6 forms that merely carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo)
are judged by the IPv4 address inside, because that is where the packets end up.

The second half is an httpx transport whose sockets may only go to the one address the
caller validated (`PinnedBackend.pinned`) and whose every socket operation ends by one
overall `Deadline`. `kinema.inputs` resolves names, vets them and drives it.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import certifi
import httpcore
import httpx

from kinema.errors import UnsafeUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Spelled out rather than left to `ipaddress.is_private`/`is_global`, whose tables changed
# between Python patch releases; a security boundary should not move with the interpreter.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT (also holds Alibaba's 100.100.100.200 metadata)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (also holds the 169.254.169.254 metadata service)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes 255.255.255.255 broadcast
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # local-use NAT64: translates into a private network
        "100::/64",  # discard-only
        "2001:2::/48",  # benchmarking
        "2001:10::/28",  # ORCHID
        "2001:20::/28",  # ORCHIDv2
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "fc00::/7",  # unique local (holds AWS's fd00:ec2::254 metadata service)
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
# Cloud instance-metadata endpoints: they hand out credentials, so they stay refused even
# for a host that the operator allowlisted by name (only an explicit CIDR entry opens them).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(ip) for ip in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# A host made only of numeric labels (decimal, 0x-hex, 0-octal), 1 to 4 of them: the C
# resolver reads "2130706433", "0x7f.1" or "0177.0.0.1" as IPv4 addresses, so we must too.
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address only wraps, i.e. where its packets really go.

    Deprecated IPv4-compatible addresses (::a.b.c.d) are not unwrapped: they lie in the
    reserved ::/8 and are refused whatever they carry."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client; the server half is checked by the caller
    return None


def is_metadata(ip: IPAddress) -> bool:
    """Is `ip` a cloud metadata endpoint, directly or wrapped in an IPv6 form?"""
    if ip in METADATA_ADDRESSES:
        return True
    inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    return inner is not None and inner in METADATA_ADDRESSES


def is_public_address(ip: str | IPAddress) -> bool:
    """True only for a globally routable unicast address that is safe to fetch from.

    A string that is not an IP address is not public (fail closed)."""
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip)
        except ValueError:
            return False
    if is_metadata(ip):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False  # scoped addresses are link-local by construction
        if ip.teredo is not None and not is_public_address(ip.teredo[0]):
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public_address(inner)
        if any(ip in net for net in _BLOCKED_V6):
            return False
    elif any(ip in net for net in _BLOCKED_V4):
        return False
    # Belt and braces: whatever the interpreter also knows to be special stays refused
    # (for IPv6 `is_reserved` covers everything outside 2000::/3 and the ranges above).
    return not (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_private
    )


def ip_literal(host: str) -> IPAddress | None:
    """The address `host` denotes if it is an IP literal, else None (a name to resolve).

    IPv4 shorthand ("127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1") is normalised the
    way the system resolver would, so it cannot sneak past the address checks. A numeric
    host that is no valid address raises ValueError."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _NUMERIC_HOST.fullmatch(host.lower()):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:
        raise ValueError(f"{host!r} is not a valid IP address") from None


@dataclass(frozen=True)
class Allowlist:
    """Operator-approved destinations that may be private (an internal media server).

    Entries are IP addresses/CIDR networks, which open exactly those addresses, or host
    names, matched exactly (case-insensitive), which open whatever the name resolves to
    except the metadata endpoints."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_ip(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c in net for c in candidates for net in self.networks)


def address_allowed(
    ip: IPAddress, host: str, allowlist: Allowlist, allow_private: bool = False
) -> bool:
    """May a fetch for `host` connect to `ip`? (`allow_private` switches all checks off.)"""
    if allow_private or allowlist.allows_ip(ip):
        return True
    if allowlist.allows_host(host) and not is_metadata(ip):
        return True
    return is_public_address(ip)


@functools.lru_cache(maxsize=64)
def parse_allowlist(entries: tuple[str, ...]) -> Allowlist:
    """Split allowlist entries into networks and host names (cached: policies are reused)."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            hosts.add(entry.rstrip("."))
    return Allowlist(frozenset(hosts), tuple(networks))


# ------------------------------------------------------------- pinned, deadline-bound I/O
# What `PinnedTransport` raises for network/protocol trouble: httpcore's own classes, as
# only httpx.HTTPTransport maps them to httpx's (privately); httpx's are included too.
TRANSPORT_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpx.TransportError,
)
CONNECT_ERRORS = (httpcore.ConnectError, httpcore.ConnectTimeout, httpx.ConnectError)


class Deadline:
    """One point in time by which a whole fetch must be done, however many steps it has."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def clamp(self, timeout: float | None, error: type[Exception]) -> float:
        """`timeout` shortened to what is left; `error` once nothing is."""
        left = self.remaining()
        if left <= 0:
            raise error("the fetch deadline has passed")
        return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the fetch deadline. httpcore applies
    its read timeout per `recv`, so without this a server sending a byte a second would
    keep a fetch alive indefinitely."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, timeout), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """TCP connects only to the address the current hop validated, under the deadline."""

    def __init__(self, deadline: Deadline, field: str) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline
        self._field = field
        self.pinned: IPAddress | None = None

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            target = ipaddress.ip_address(host)
        except ValueError:
            target = None
        if self.pinned is None or target != self.pinned:
            # Unreachable while the URL rewriting works; kept so a regression fails closed.
            raise UnsafeUrl(self._field, "refused to connect to an address that was not checked")
        stream = self._inner.connect_tcp(
            host,
            port,
            timeout=self._deadline.clamp(timeout, httpcore.ConnectTimeout),
            local_address=local_address,
            socket_options=socket_options,
        )
        return DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CoreStream(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


class PinnedTransport(httpx.BaseTransport):
    """httpx's HTTP transport reduced to what a fetch needs, over `PinnedBackend`
    (httpx.HTTPTransport offers no way to supply a network backend). No keep-alive, so a
    connection verified for one host name is never reused for another."""

    def __init__(self, backend: PinnedBackend) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(
                os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
            ),
            max_keepalive_connections=0,
            network_backend=backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreStream(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


@functools.lru_cache(maxsize=4)
def _ssl_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """Certifi's CAs, or the operator's (SSL_CERT_FILE / SSL_CERT_DIR, as httpx honours
    them) for media servers behind an internal CA. Built once: loading CAs is slow."""
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    return ssl.create_default_context(cafile=certifi.where())
