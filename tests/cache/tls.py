"""TLS in front of a local Redis for tests: a test CA, a server certificate, and stunnel.

The PyPI ``redis-server`` is built without TLS, so Debian's stunnel (``make test`` installs it)
terminates TLS on a port of its own and passes the bytes to the plain Redis behind it.

    certificates = Certificates.make(tmp_path)         # CA, server cert for 127.0.0.1, other CA
    with Stunnel.start(tmp_path, certificates, backend_port=redis_server.port) as tunnel:
        url = tunnel.url                                 # rediss://127.0.0.1:PORT/0
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from frugal.local.processes import StopsOnExit, free_port, stop_process

STUNNEL = shutil.which("stunnel4") or "/usr/bin/stunnel4"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@dataclass(frozen=True)
class Certificates:
    ca: Path  # signed the server's certificate
    server_cert: Path  # for IP 127.0.0.1
    server_key: Path
    other_ca: Path  # a CA that signed nothing here: the wrong one

    @classmethod
    def make(cls, directory: Path) -> Certificates:
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("ca", "other-ca"):
            _openssl(
                "req", "-x509", *_EC, "-days", "2", "-subj", f"/CN=frugal test {name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout", directory / f"{name}.key", "-out", directory / f"{name}.pem",
            )  # fmt: skip
        extensions = directory / "server.ext"
        extensions.write_text(
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            "authorityKeyIdentifier=keyid\n"
        )
        _openssl(
            "req", *_EC, "-subj", "/CN=127.0.0.1",
            "-keyout", directory / "server.key", "-out", directory / "server.csr",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", directory / "server.csr", "-days", "2",
            "-CA", directory / "ca.pem", "-CAkey", directory / "ca.key", "-CAcreateserial",
            "-extfile", extensions, "-out", directory / "server.pem",
        )  # fmt: skip
        return cls(
            ca=directory / "ca.pem",
            server_cert=directory / "server.pem",
            server_key=directory / "server.key",
            other_ca=directory / "other-ca.pem",
        )


@dataclass
class Stunnel(StopsOnExit):
    """A stunnel child accepting TLS on ``port`` for the plain Redis on ``backend_port``."""

    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, directory: Path, certificates: Certificates, *, backend_port: int) -> Stunnel:
        port = free_port()
        config = directory / "stunnel.conf"
        config.write_text(
            f"foreground = yes\npid =\noutput = {directory / 'stunnel.log'}\n"
            f"[redis]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend_port}\n"
            f"cert = {certificates.server_cert}\nkey = {certificates.server_key}\n"
        )
        process = subprocess.Popen(
            [STUNNEL, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        tunnel = cls(port=port, process=process)
        deadline = time.monotonic() + 20
        while not tunnel._listening():
            if process.poll() is not None or time.monotonic() > deadline:
                tunnel.stop()
                log = directory / "stunnel.log"
                raise RuntimeError(
                    f"stunnel did not start: {log.read_text() if log.exists() else ''}"
                )
            time.sleep(0.05)
        return tunnel

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False
