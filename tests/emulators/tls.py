"""A throwaway TLS certificate for the emulators that must speak https (MSAL refuses http authorities).

One self-signed certificate per process ("per test session"), written into a temporary directory that is
removed at exit. It is valid for ``IP:127.0.0.1`` and ``DNS:localhost`` and is its own trust anchor: clients
pass ``cert_path`` as their CA bundle (``requests.Session().verify``, ``httpx.AsyncClient(verify=...)``).

It is generated with the ``cryptography`` package when that is importable, else with the ``openssl`` CLI.
Like ``openssl req -x509`` it carries ``basicConstraints=critical,CA:TRUE`` plus subject/authority key
identifiers, so OpenSSL accepts it as a trust anchor for itself.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import shutil
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    directory: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts only this certificate (for httpx / urllib clients)."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def generate_certificate(directory: Path, *, days: int = 2) -> TlsFiles:
    """Write ``cert.pem`` and ``key.pem`` for 127.0.0.1/localhost into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    try:
        _generate_with_cryptography(cert_path, key_path, days)
    except ImportError:
        _generate_with_openssl(cert_path, key_path, days)
    return TlsFiles(directory, cert_path, key_path)


def _generate_with_cryptography(cert_path: Path, key_path: Path, days: int) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _generate_with_openssl(cert_path: Path, key_path: Path, days: int) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("neither the 'cryptography' package nor the 'openssl' CLI is available")
    args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    args += ["-subj", "/CN=127.0.0.1"]
    args += ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", str(days)]
    args += ["-keyout", str(key_path), "-out", str(cert_path)]
    subprocess.run([openssl, *args], check=True, capture_output=True)


_session: TlsFiles | None = None
_session_lock = threading.Lock()


def session_certificate() -> TlsFiles:
    """The certificate shared by every emulator in this process (created on first use, deleted at exit)."""
    global _session
    with _session_lock:
        if _session is None:
            directory = Path(tempfile.mkdtemp(prefix="kite-emulator-tls-"))
            atexit.register(shutil.rmtree, directory, True)
            _session = generate_certificate(directory)
        return _session
