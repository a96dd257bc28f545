"""Self-signed certificates made by the fixtures with the openssl command."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path


def self_signed(directory: Path, name: str = "localhost", days: int = 2) -> tuple[Path, Path]:
    """A certificate for ``name`` (and 127.0.0.1 when it is localhost), and its key; (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", str(days), "-subj", f"/CN={name}", "-addext",
         f"subjectAltName=DNS:{name}" + (",IP:127.0.0.1" if name == "localhost" else "")],
        check=True, capture_output=True, timeout=60,
    )
    key.chmod(0o644)
    return cert, key


def expired(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and 127.0.0.1 that expired in 2020; (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, csr = directory / f"{name}-expired.crt", directory / f"{name}-expired.key", directory / "req.csr"
    (directory / "index.txt").write_text("")
    (directory / "serial").write_text("01\n")
    config = directory / "ca.cnf"
    config.write_text(
        f"[ca]\ndefault_ca = ca_default\n[ca_default]\ndir = {directory}\ndatabase = {directory}/index.txt\n"
        f"new_certs_dir = {directory}\nserial = {directory}/serial\ndefault_md = sha256\npolicy = any\n"
        "[any]\ncommonName = supplied\n"
        f"[ext]\nsubjectAltName = DNS:{name},IP:127.0.0.1\nbasicConstraints = critical,CA:TRUE\n"
    )
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={name}"], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "ca", "-batch", "-selfsign", "-config", str(config), "-keyfile", str(key), "-in",
                    str(csr), "-out", str(cert), "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
                    "-extensions", "ext", "-notext"], check=True, capture_output=True, timeout=60)
    return cert, key


def authority(directory: Path, name: str = "Test CA") -> tuple[Path, Path]:
    """A certificate authority for signing test certificates; (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.crt", directory / "ca.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def client_certificate(directory: Path, ca: tuple[Path, Path], name: str = "checker", *,
                       passphrase: str | None = None) -> tuple[Path, Path]:
    """A client certificate signed by ``ca``, and its key (encrypted with ``passphrase`` when
    given); (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, csr, ext = (directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr",
                           directory / f"{name}.ext")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}"],
                   check=True, capture_output=True, timeout=60)
    ext.write_text("extendedKeyUsage=clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
                    "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
                   check=True, capture_output=True, timeout=60)
    if passphrase is not None:
        plain, key = key, directory / f"{name}-encrypted.key"
        subprocess.run(["openssl", "pkey", "-in", str(plain), "-aes256", "-passout", "env:KEY_PASSPHRASE",
                        "-out", str(key)], check=True, capture_output=True, timeout=60,
                       env={"KEY_PASSPHRASE": passphrase, "PATH": "/usr/bin:/bin"})
        plain.unlink()
    key.chmod(0o644)
    return cert, key


def not_after(cert: Path) -> float:
    """The certificate's end as openssl reads it (``notAfter=Dec  9 00:07:12 2026 GMT``)."""
    out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", str(cert)], capture_output=True,
                         text=True, check=True, timeout=30).stdout.strip().split("=", 1)[1]
    return datetime.strptime(out.replace("GMT", "+0000"), "%b %d %H:%M:%S %Y %z").timestamp()
