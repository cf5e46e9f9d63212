"""`kinema serve` over HTTPS as a subprocess (tests/test_https.py, tests/test_seed_js.py):
its clients verify the server's certificate against the CA, never with verify=False."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import KinemaServer


def trusting(ca: Path) -> ssl.SSLContext:
    """A client context that trusts `ca` alone, with the strict X.509 checks Python 3.13
    makes the default (so the certificates pass on newer Pythons too)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


class TlsServer(KinemaServer):
    """`kinema serve <flags>` on https://127.0.0.1:<port>. `ca` is the CA that signed its
    certificate: given, or (with --tls-self-signed) the one it makes in its data dir."""

    def __init__(
        self, data_dir: Path, flags: list[str], ca: Path | None = None, workers: int = 1,
        **env: str,
    ) -> None:  # fmt: skip
        super().__init__(data_dir, workers=workers, **env)
        self.flags = flags
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.ca = ca or data_dir / "tls" / "ca.pem"

    def start(self, timeout: float = 60) -> TlsServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kinema", "serve", "--port", str(self.port), *self.flags],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kinema serve exited:\n{self.log()}")
            if self.ca.is_file():
                try:
                    with httpx.Client(verify=trusting(self.ca), timeout=1) as client:
                        if client.get(self.base_url + "/health").status_code == 200:
                            return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"kinema serve did not come up over HTTPS:\n{self.log()}")

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=30, verify=trusting(self.ca)
        )

    def plain_client(self) -> httpx.Client:
        """A client that verifies (and trusts no CA beyond it), for downloads."""
        return httpx.Client(timeout=60, verify=trusting(self.ca))
