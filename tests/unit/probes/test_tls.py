from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import pytest

from otel_health.probes._chain import report
from otel_health.probes._tls import client_context


def test_a_chain_s_expiry_is_the_one_openssl_reports(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "37", "-subj", "/CN=t"],
                   check=True, capture_output=True, timeout=60)
    end = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-enddate"], check=True,
                         capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    made = report((der,))
    assert made is not None and made.expiry == ssl.cert_time_to_seconds(end)


def test_client_contexts_are_shared_and_follow_the_ca_file(tmp_path: Path) -> None:
    default = client_context()
    assert client_context() is default
    assert default.verify_mode is ssl.CERT_REQUIRED and default.check_hostname
    lax = client_context(verify=False)
    assert lax is not default and lax.verify_mode is ssl.CERT_NONE and not lax.check_hostname
    no_host = client_context(check_hostname=False)
    assert no_host.verify_mode is ssl.CERT_REQUIRED and not no_host.check_hostname

    from tests.harness.tls import self_signed

    ca, _ = self_signed(tmp_path)
    first = client_context(ca_file=ca)
    assert client_context(ca_file=ca) is first
    stat = os.stat(ca)
    os.utime(ca, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert client_context(ca_file=ca) is not first  # a rotated CA file is read again
    with pytest.raises(FileNotFoundError):
        client_context(ca_file=tmp_path / "missing.pem")
