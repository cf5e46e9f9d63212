"""HTTPS for `kinema serve`: checking an operator's certificate pair, and the local CA +
server certificate that `--tls-self-signed` keeps in the data dir.

The self-signed mode makes two certificates rather than one self-signed leaf: clients trust
the CA once (`NODE_EXTRA_CA_CERTS`, `SSL_CERT_FILE`, `curl --cacert`) and keep trusting it
when the server certificate is reissued for another `--host` or before it expires. The CA's
private key is written only into `<data_dir>/tls/` (0600) and never printed or copied.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kinema.errors import ConfigError

TLS_DIR = "tls"
CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
SERVER_CERT, SERVER_KEY = "server.pem", "server-key.pem"
CA_DAYS = 3650
SERVER_DAYS = 397  # the longest leaf lifetime browsers and Apple's clients accept
RENEW_BEFORE = timedelta(days=30)  # reissue a certificate this close to its expiry
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
Pair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


@dataclass(frozen=True)
class SelfSigned:
    """The files `--tls-self-signed` serves with; `ca` is what clients trust."""

    ca: Path
    certfile: Path
    keyfile: Path
    names: tuple[str, ...]  # the server certificate's subject alternative names
    issued: bool  # False when the files of an earlier start were still good


def check_pair(certfile: Path, keyfile: Path) -> None:
    """Fail with a ConfigError naming the flag unless the two files are a readable PEM
    certificate (chain) and its unencrypted private key: found here, before the database
    is migrated or a worker started, rather than as a traceback from inside uvicorn."""
    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise ConfigError(
                f"{flag} (KINEMA_{flag[2:].replace('-', '_').upper()}) {path}: cannot read "
                f"it: {exc.strerror or exc}"
            ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An empty password: an encrypted key fails here instead of OpenSSL prompting on
        # the terminal (uvicorn would block on that prompt).
        context.load_cert_chain(str(certfile), str(keyfile), password=lambda: b"")
    except ssl.SSLError as exc:
        raise ConfigError(
            f"--ssl-certfile {certfile} / --ssl-keyfile {keyfile}: not a PEM certificate and "
            f"its matching, unencrypted private key ({exc.reason or exc})"
        ) from None


def server_names(host: str) -> tuple[str, ...]:
    """The names the server certificate covers: the loopback ones, plus `host` when it is
    a name or a specific address; for a wildcard bind (0.0.0.0, ::) the machine's name."""
    names = list(LOCAL_NAMES)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        extra = host.strip().rstrip(".").lower()
    else:
        extra = socket.gethostname().lower() if address.is_unspecified else str(address)
    if extra and extra not in names:
        names.append(extra)
    return tuple(names)


def ensure_self_signed(data_dir: Path, host: str, now: datetime | None = None) -> SelfSigned:
    """The CA and server certificate in `<data_dir>/tls/`, reused when still good (the CA
    valid for another RENEW_BEFORE; the server certificate issued by it, covering
    `server_names(host)`, not about to expire), else made anew: the server certificate
    alone when the CA can stay, so clients keep trusting the same CA."""
    now = now or datetime.now(UTC)
    directory = data_dir / TLS_DIR
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise ConfigError(f"--tls-self-signed: cannot create {directory}: {exc}") from None
    names = server_names(host)
    ca = _load(directory / CA_CERT, directory / CA_KEY)
    issued = False
    if ca is None or not _good_ca(ca[0], now):
        ca = _make_ca(now)
        _write(directory / CA_KEY, _key_pem(ca[1]))
        _write(directory / CA_CERT, _cert_pem(ca[0]))
        issued = True
    server = None if issued else _load(directory / SERVER_CERT, directory / SERVER_KEY)
    if server is None or not _good_server(server[0], ca[0], names, now):
        cert, key = _make_server(ca, names, now)
        _write(directory / SERVER_KEY, _key_pem(key))
        _write(directory / SERVER_CERT, _cert_pem(cert))
        issued = True
    return SelfSigned(
        ca=directory / CA_CERT, certfile=directory / SERVER_CERT,
        keyfile=directory / SERVER_KEY, names=names, issued=issued,
    )  # fmt: skip


# -- certificates --------------------------------------------------------------------------


def _load(cert_path: Path, key_path: Path) -> Pair | None:
    """(certificate, key) from PEM files, or None when either is missing, unreadable or
    the key is not the certificate's."""

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _fresh(cert: x509.Certificate, now: datetime) -> bool:
    return bool(cert.not_valid_before_utc <= now and cert.not_valid_after_utc > now + RENEW_BEFORE)


def _good_ca(cert: x509.Certificate, now: datetime) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return False
    return constraints.ca and _fresh(cert, now)


def _good_server(
    cert: x509.Certificate, ca: x509.Certificate, names: tuple[str, ...], now: datetime
) -> bool:

    try:
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    covered = {str(v).lower() for v in san.get_values_for_type(x509.DNSName)}
    covered |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return _fresh(cert, now) and set(names) <= covered


def _make_ca(now: datetime) -> Pair:

    key = ec.generate_private_key(ec.SECP256R1())
    # A random serial in the name: two data dirs on one machine get distinct CAs.
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kinema"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Kinema local CA {secrets.token_hex(4)}"),
    ])  # fmt: skip
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))  # tolerate a little clock skew
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_server(ca: Pair, names: tuple[str, ...], now: datetime) -> Pair:

    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _cert_pem(cert: x509.Certificate) -> bytes:

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:

    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _write(path: Path, data: bytes) -> None:
    """Write `path` as 0600 from its first byte (never briefly world-readable), through a
    temporary file and a rename so a concurrent start never reads half a file."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"--tls-self-signed: cannot write {path}: {exc}") from None
