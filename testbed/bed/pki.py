"""The test bed's certificates: a CA, a server certificate for 127.0.0.1/localhost, a client
certificate for the mTLS role, and a client certificate from a second ("rogue") CA that the
servers do not trust."""

from __future__ import annotations

from pathlib import Path

from .config import MTLS_USER, POD_GATEWAY
from .procs import run

DAYS = "825"


def _key(path: Path) -> None:
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", path])
    path.chmod(0o600)


def _ca(d: Path, name: str, subject: str) -> None:
    _key(d / f"{name}.key")
    run(["openssl", "req", "-x509", "-new", "-key", d / f"{name}.key", "-sha256", "-days", DAYS,
         "-subj", subject, "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", d / f"{name}.crt"])


def _leaf(d: Path, name: str, ca: str, subject: str, ext: str) -> None:
    _key(d / f"{name}.key")
    run(["openssl", "req", "-new", "-key", d / f"{name}.key", "-subj", subject,
         "-out", d / f"{name}.csr"])
    (d / f"{name}.ext").write_text(ext)
    run(["openssl", "x509", "-req", "-in", d / f"{name}.csr", "-CA", d / f"{ca}.crt",
         "-CAkey", d / f"{ca}.key", "-CAcreateserial", "-days", DAYS, "-sha256",
         "-extfile", d / f"{name}.ext", "-out", d / f"{name}.crt"])
    (d / f"{name}.csr").unlink()
    (d / f"{name}.ext").unlink()


def make(d: Path) -> None:
    """Create every certificate under `d` (idempotent: an existing set is kept)."""
    if (d / "rogue-client.crt").exists():
        return
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    _ca(d, "ca", "/CN=coderops test bed CA")
    _leaf(d, "server", "ca", "/CN=localhost",
          f"subjectAltName=IP:127.0.0.1,DNS:localhost,IP:{POD_GATEWAY}\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "client", "ca", f"/CN={MTLS_USER}", "extendedKeyUsage=clientAuth\n")
    _ca(d, "rogue-ca", "/CN=untrusted CA")
    _leaf(d, "rogue-client", "rogue-ca", f"/CN={MTLS_USER}", "extendedKeyUsage=clientAuth\n")
