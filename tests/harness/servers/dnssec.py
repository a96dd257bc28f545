"""NSD serving signed zones (ldns-keygen and ldns-signzone, Debian's ldnsutils): a parent zone
``test.`` whose key is the trust anchor, delegating to children that are signed well, signed
with signatures long expired, signed then altered, and not signed at all; with unbound-host
(Debian's unbound-host) as the reference validator, told the same anchor and the same date."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..procs import Process, free_port
from .common import require
from .nsd import dns_answers

__all__ = ["SIGNED_AT", "SignedNsd", "start_signed_nsd", "valid_around"]

# Every good signature is valid from the first of January 2030 to the first of March 2030: the
# tests check at an instant inside (SIGNED_AT, on a clock they set), never at today's date.
SIGNED_AT = "2030-01-15T00:00:00+00:00"
_GOOD = ("20300101000000", "20300301000000")
_EXPIRED = ("20291101000000", "20291201000000")
_CHILDREN = ("chain", "expired", "tampered")  # and "plain", unsigned


@dataclass
class SignedNsd:
    port: int
    anchor: str  # the DS of test.'s key, as a zone file line
    anchor_key: str  # that key itself: a DNSKEY line
    workdir: Path
    process: Process

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def unbound_verdict(self, name: str, rdtype: str = "A") -> str:
        """What unbound-host says of ``name``: secure, insecure or bogus (validated at SIGNED_AT)."""
        host = require(shutil.which("unbound-host") or "/usr/sbin/unbound-host", "unbound-host (Debian package "
                                                                                  "unbound-host)")
        out = subprocess.run([str(host), "-C", str(self.workdir / "unbound.conf"), "-v", "-t", rdtype, name],
                             capture_output=True, text=True, timeout=30).stdout
        for verdict in ("secure", "insecure", "BOGUS"):
            if f"({verdict}" in out:
                return verdict.lower()
        return out.strip()

    def stop(self) -> None:
        self.process.stop()


def valid_around(now: float, *, before: float = 86400.0, after: float = 30 * 86400.0) -> tuple[str, str]:
    """Signatures' validity from a day before ``now`` to a month after it, as ldns-signzone takes
    them: for a run whose other side (Prometheus, otel-health's wall clock) reads the real now."""
    return (time.strftime("%Y%m%d%H%M%S", time.gmtime(now - before)),
            time.strftime("%Y%m%d%H%M%S", time.gmtime(now + after)))


def _keygen(workdir: Path, zone: str) -> str:
    """A key for ``zone`` (ECDSA P-256, a KSK that signs everything); its base name."""
    out = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone], cwd=workdir, capture_output=True,
                         text=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


def _sign(workdir: Path, zone: str, text: str, key: str, dates: tuple[str, str]) -> str:
    unsigned = workdir / f"{zone}zone"
    unsigned.write_text(text)
    subprocess.run(["ldns-signzone", "-i", dates[0], "-e", dates[1], "-o", zone, "-f", f"{unsigned}.signed",
                    str(unsigned), key], cwd=workdir, check=True, capture_output=True, timeout=60)
    return f"{zone}zone.signed"


def start_signed_nsd(workdir: Path, valid: tuple[str, str] = _GOOD) -> SignedNsd:
    """``valid``: when the good signatures begin and end (YYYYMMDDhhmmss, UTC)."""
    nsd = shutil.which("nsd") or "/usr/sbin/nsd"
    require(nsd, "nsd (Debian package nsd)")
    require(shutil.which("ldns-signzone") or "/usr/bin/ldns-signzone", "ldns-signzone (Debian package ldnsutils)")
    workdir.mkdir(parents=True, exist_ok=True)
    soa = "@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n"
    files: dict[str, str] = {}
    delegations = ""
    for child in _CHILDREN:
        dates = _EXPIRED if child == "expired" else valid
        zone = f"{child}.test."
        key = _keygen(workdir, zone)
        text = f"$ORIGIN {zone}\n$TTL 300\n{soa}www A 192.0.2.{10 + len(files)}\n"
        files[zone] = _sign(workdir, zone, text, key, dates)
        ds = (workdir / f"{key}.ds").read_text().split()
        delegations += f"{child} NS ns1.{child}\nns1.{child} A 127.0.0.1\n{child} DS {' '.join(ds[3:])}\n"
    tampered = workdir / files["tampered.test."]  # signed, then an address changed under its signature
    tampered.write_text(re.sub(r"(www\.tampered\.test\.\s+\d+\s+IN\s+A\s+)192\.0\.2\.\d+", r"\g<1>198.51.100.7",
                               tampered.read_text()))
    (workdir / "plain.test.zone").write_text(f"$ORIGIN plain.test.\n$TTL 300\n{soa}www A 192.0.2.50\n")
    files["plain.test."] = "plain.test.zone"
    delegations += "plain NS ns1.plain\nns1.plain A 127.0.0.1\n"
    parent_key = _keygen(workdir, "test.")
    files["test."] = _sign(workdir, "test.", f"$ORIGIN test.\n$TTL 300\n{soa}www A 192.0.2.1\n{delegations}",
                           parent_key, valid)
    anchor = " ".join((workdir / f"{parent_key}.ds").read_text().split())
    anchor_key = " ".join(line for line in (workdir / f"{parent_key}.key").read_text().split("\n")
                          if line and not line.startswith(";")).strip()
    port = free_port()
    zones = "".join(f"zone:\n  name: {zone}\n  zonefile: {path}\n" for zone, path in files.items())
    conf = workdir / "nsd.conf"
    conf.write_text(
        f'server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: ""\n  chroot: ""\n'
        f'  zonesdir: "{workdir}"\n  pidfile: "{workdir}/nsd.pid"\n  database: ""\n'
        f'  xfrdfile: "{workdir}/xfrd.state"\n  zonelistfile: "{workdir}/zone.list"\n'
        f'  xfrdir: "{workdir}"\n  server-count: 1\n  do-ip6: no\n  verbosity: 1\n'
        "remote-control:\n  control-enable: no\n" + zones)
    (workdir / "unbound.conf").write_text(
        # test. is one of the names unbound answers itself (RFC 6761) unless told not to
        'server:\n  val-override-date: "20300115000000"\n  do-not-query-localhost: no\n'
        '  local-zone: "test." nodefault\n'
        f'  module-config: "validator iterator"\n  trust-anchor: "{anchor}"\n  chroot: ""\n  username: ""\n'
        f'stub-zone:\n  name: "test."\n  stub-addr: 127.0.0.1@{port}\n')
    process = Process("nsd (signed zones)", [nsd, "-d", "-c", str(conf)], log_path=workdir / "nsd.log", cwd=workdir)
    process.wait_ready(lambda: dns_answers(port, "test"), timeout=30)
    return SignedNsd(port, anchor, " ".join(anchor_key.split()), workdir, process)
