"""One webhook POST, under the media fetcher's SSRF rules: the host is resolved once,
every address it resolves to must be allowed, and the connection goes to an address that
was checked (`kinema.netpolicy.PinnedTransport`; TLS is still verified against the real
name). Redirects are not followed (a 3xx is a failed attempt) and one deadline bounds the
whole attempt, DNS included."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from kinema import __version__
from kinema import netpolicy as net
from kinema.errors import UnsafeUrl
from kinema.inputs import FetchPolicy, shorten_url
from kinema.netpolicy import IPAddress
from kinema.webhooks.urls import FIELD, webhook_url_problem

USER_AGENT = f"Kinema-Webhooks/{__version__}"


class DeliveryError(Exception):
    """The attempt got no HTTP answer (refused, timed out, TLS, DNS); retried."""


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str
    literal: IPAddress | None


def _target(url: str, policy: FetchPolicy) -> _Target:
    problem = webhook_url_problem(url, policy)
    if problem is not None:
        raise UnsafeUrl(FIELD, problem)
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii").lower()
    return _Target(parsed, host, net.ip_literal(host))


class _PostTransport(net.PinnedTransport):
    """`PinnedTransport` for a request with a body; the response is closed unread (a
    webhook's answer is its status)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                content=request.read(),
                extensions=request.extensions,
            )
        )
        response.close()
        return httpx.Response(status_code=response.status, headers=response.headers)


def _unsafe(target: _Target) -> UnsafeUrl:
    # The resolved address is deliberately not shown: it would map internal DNS.
    return UnsafeUrl(
        FIELD,
        f"{shorten_url(str(target.url))} resolves to a private or special-purpose address, "
        "which this server does not send webhooks to",
    )


def _lookup(target: _Target, deadline: net.Deadline, policy: FetchPolicy) -> list[IPAddress]:
    """The host's addresses. getaddrinfo takes no timeout, so it runs in a daemon thread
    that we stop waiting for at the deadline."""
    port = target.url.port or (443 if target.url.scheme == "https" else 80)
    box: list[Any] = []

    def lookup() -> None:
        try:
            box.append(socket.getaddrinfo(target.host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            box.append(exc)

    thread = threading.Thread(target=lookup, name="kinema-webhook-dns", daemon=True)
    thread.start()
    thread.join(max(deadline.remaining(), 0))
    if not box:
        raise DeliveryError("the host name did not resolve in time")
    if isinstance(box[0], BaseException):
        raise DeliveryError("the host name does not resolve")
    found: list[IPAddress] = []
    for family, _, _, _, sockaddr in box[0]:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]))
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            if policy.allow_private:
                continue  # a zoned address cannot be written into a URL
            raise _unsafe(target)
        if ip not in found:
            found.append(ip)
    return found


def _resolve(target: _Target, deadline: net.Deadline, policy: FetchPolicy) -> list[IPAddress]:
    """Every address of the host, each allowed by the policy (UnsafeUrl otherwise: a name
    mixing public and private answers is what a DNS-rebinding attacker serves)."""
    found = [target.literal] if target.literal is not None else _lookup(target, deadline, policy)
    if not found:
        raise DeliveryError("the host name has no usable address")
    if not policy.allow_private:
        allowlist = net.parse_allowlist(policy.allowlist)
        if not all(net.address_allowed(ip, target.host, allowlist) for ip in found):
            raise _unsafe(target)
    return found


def _describe(exc: BaseException, deadline: net.Deadline, timeout: float) -> str:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if deadline.remaining() <= 0 or isinstance(
        exc, httpcore.TimeoutException | httpx.TimeoutException
    ):
        return f"no response within {timeout:g} s"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return "the receiver's TLS certificate could not be verified"
    if cause is not None:
        return "the TLS handshake failed"
    if isinstance(exc, httpcore.ProtocolError | httpx.ProtocolError):
        return "the receiver sent a malformed HTTP response"
    return "the connection failed"


def post(url: str, body: bytes, headers: dict[str, str], policy: FetchPolicy) -> int:
    """POST `body` to `url`; the response's status code. UnsafeUrl when the policy
    refuses the destination, DeliveryError when no HTTP answer came."""
    target = _target(url, policy)
    deadline = net.Deadline(policy.timeout)
    addresses = _resolve(target, deadline, policy)
    backend = net.PinnedBackend(deadline, FIELD)
    sent = {
        **headers,
        "Host": target.url.netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    extensions: dict[str, Any] = {}
    if target.url.scheme == "https" and target.literal is None:
        extensions["sni_hostname"] = target.host
    error: BaseException | None = None
    # Straight through the transport, not an httpx.Client: nothing to follow, and httpx's
    # request log would write the destination (query tokens included) into server logs.
    transport = _PostTransport(backend)
    try:
        for ip in addresses:
            left = deadline.remaining()
            if left <= 0:
                break
            extensions["timeout"] = {
                "connect": min(policy.connect_timeout, left), "read": left, "write": left,
                "pool": left,
            }  # fmt: skip
            backend.pinned = ip
            request = httpx.Request(
                "POST", target.url.copy_with(host=str(ip)), headers=sent, content=body,
                extensions=dict(extensions),
            )  # fmt: skip
            try:
                return transport.handle_request(request).status_code
            except net.CONNECT_ERRORS as exc:
                error = exc
                continue  # the next address, if the name has several
            except net.TRANSPORT_ERRORS as exc:
                raise DeliveryError(_describe(exc, deadline, policy.timeout)) from None
    finally:
        transport.close()
    if error is None:
        raise DeliveryError(f"no response within {policy.timeout:g} s")
    raise DeliveryError(_describe(error, deadline, policy.timeout))
