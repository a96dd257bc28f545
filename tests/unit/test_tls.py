from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from otel_health.probes._tls import not_after


def test_not_after_reads_the_expiry_that_openssl_reports(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "37", "-subj", "/CN=t"],
                   check=True, capture_output=True, timeout=60)
    end = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-enddate"], check=True,
                         capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert not_after(der) == ssl.cert_time_to_seconds(end)
