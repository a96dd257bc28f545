"""``otel-health import blackbox``: blackbox_exporter's modules and the Prometheus jobs that use
them, as an otel-health configuration.

Each scrape job that probes through blackbox_exporter (``metrics_path: /probe`` or a
``module`` parameter) gives a target for each of its targets (``static_configs``, and the
``file_sd_configs`` files as they read now), with its module's options in otel-health's
names, its job's interval and its module's timeout. Where the two differ by default, the
module's meaning is written out (a 2xx ``expect_status``, ``min_answers: 0``), so each
target's verdict stays what it was. A credential written inline becomes a ``${VARIABLE}``
reference (the value is never written). A module or an option that cannot be carried is one
line in ``notes``, with the reason; a module whose verdict would change without it is not
carried at all (its targets are named), so nothing is imported to pass where it failed."""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config.values import format_seconds, parse_duration
from .probes._credentials import credential_header

__all__ = ["Imported", "import_blackbox"]


@dataclass
class Imported:
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)

    def text(self, source: str) -> str:
        head = [f"# Imported from {source} by `otel-health import blackbox`.",
                "# Check it with `otel-health validate --no-secrets --config FILE`."]
        if self.variables:
            head.append(f"# Credentials are read from the environment: {', '.join(self.variables)}.")
        head += [f"# not carried: {note}" for note in self.notes]
        body = yaml.dump({"targets": self.targets}, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=120)
        return "\n".join(head) + "\n" + body


class _NoAliases(yaml.SafeDumper):
    """Every value written out where it is used: a config takes no YAML aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _Skip(Exception):
    """A module that cannot be carried without changing its verdicts; the message says why."""


# Options that change no verdict, dropped with a line; the others not carried skip the module.
_HARMLESS = {
    "enable_http3": "HTTP/3 is not spoken yet",
    "skip_resolve_phase_with_proxy": "a proxy always resolves the target's name itself here",
    "ip_protocol_fallback": "read with preferred_ip_protocol",
    "preferred_ip_protocol": "read with ip_protocol_fallback",
}
_NOT_YET = {
    "http_headers": "headers from values, secrets or files: write them as headers",
    "proxy_connect_header": "headers on a proxy's CONNECT are not an option yet",
    "dns_over_tls": "DNS over TLS is not spoken yet",
    "expect_bytes": "byte patterns are not an option yet",
}


def _duration(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if re.fullmatch(r"\d+(ms|s|m|h)", text) else None


class _Module:
    """One module read into a target's fields; ``notes`` for what was dropped."""

    def __init__(self, name: str, module: Mapping[str, Any], secret: Callable[[str, str, Any], str]) -> None:
        self.name = name
        self.module = module
        self.secret = secret  # (field, what, value) -> a reference
        self.notes: list[str] = []

    def _options(self, prober: str) -> dict[str, Any]:
        options = self.module.get(prober) or {}
        if not isinstance(options, Mapping):
            raise _Skip(f"its '{prober}' section is not a mapping")
        return dict(options)

    def _drop(self, options: dict[str, Any], handled: set[str]) -> None:
        for key in sorted(set(options) - handled):
            if key in _HARMLESS:
                if key not in ("ip_protocol_fallback", "preferred_ip_protocol"):
                    self.notes.append(f"module {self.name}: {key} ({_HARMLESS[key]})")
            elif key in _NOT_YET:
                raise _Skip(f"{key}: {_NOT_YET[key]}")
            else:
                raise _Skip(f"{key}: not an option otel-health knows")

    def _ip(self, options: Mapping[str, Any], fields: dict[str, Any]) -> None:
        preferred = str(options.get("preferred_ip_protocol", "ip6"))
        fallback = options.get("ip_protocol_fallback", True)
        if not fallback and preferred in ("ip4", "ip6"):
            fields["ip_protocol"] = preferred
        # with the fallback (blackbox's default) either family will do: every address is raced

    def _tls(self, tls: Any, fields: dict[str, Any], *, kind: str) -> None:
        if not tls:
            return
        if not isinstance(tls, Mapping):
            raise _Skip("tls_config is not a mapping")
        if tls.get("insecure_skip_verify"):
            if kind == "grpc":
                raise _Skip("tls_config.insecure_skip_verify: grpcio always verifies; give its CA as ca_file")
            fields["tls_verify"] = False
        for theirs, ours in (("ca_file", "ca_file"), ("server_name", "server_name"), ("cert_file", "cert_file"),
                             ("key_file", "key_file")):
            if tls.get(theirs):
                fields[ours] = str(tls[theirs])
        if tls.get("min_version") and kind == "http":
            fields["tls_min_version"] = str(tls["min_version"])
        if tls.get("max_version") and kind == "http":
            fields["tls_max_version"] = str(tls["max_version"])

    def http(self, url: str) -> dict[str, Any]:
        o = self._options("http")
        fields: dict[str, Any] = {"kind": "http", "url": url}
        codes = o.get("valid_status_codes")
        fields["expect_status"] = [int(c) for c in codes] if codes else ["200-299"]  # blackbox's 2xx, said
        if o.get("valid_http_versions"):  # blackbox takes HTTP/2 for HTTP/2.0
            versions = [str(v) for v in o["valid_http_versions"]]
            fields["valid_http_versions"] = [{"HTTP/2": "HTTP/2.0"}.get(v, v) for v in versions]
        for key in ("method", "body", "fail_if_ssl", "fail_if_not_ssl", "proxy_url",
                    "proxy_from_environment", "fail_if_header_matches", "fail_if_header_not_matches"):
            if o.get(key) not in (None, "", [], False) or (key == "method" and o.get(key)):
                fields[key] = o[key]
        if o.get("follow_redirects") is False or o.get("no_follow_redirects") is True:  # the latter: before 0.21
            fields["follow_redirects"] = False
        if o.get("enable_http2") is False:
            pass  # HTTP/1.1 is the default here
        if o.get("enable_http3") is True:  # 0.28: HTTP/3 alone (its config refuses HTTP/2 and 1.1 beside it)
            fields["http3"] = True
        if o.get("no_proxy"):
            fields["no_proxy"] = [p.strip() for p in str(o["no_proxy"]).split(",") if p.strip()]
        if o.get("body_size_limit"):
            fields["body_size_limit"] = _bytes(o["body_size_limit"])
        if o.get("source_ip_address"):
            fields["source_ip"] = str(o["source_ip_address"])
        headers = {}
        for name, value in (o.get("headers") or {}).items():
            headers[str(name)] = self.secret("header", str(name), value) if credential_header(str(name)) else str(value)
        if o.get("compression"):
            fields["compression"] = str(o["compression"]).lower()
            headers = {k: v for k, v in headers.items() if k.lower() != "accept-encoding"}  # compression asks
        if o.get("body_file"):
            fields["body_file"] = str(o["body_file"])
        if headers:
            fields["headers"] = headers
        for theirs, ours in (("fail_if_body_matches_regexp", "body_not_regex"),
                             ("fail_if_body_not_matches_regexp", "body_regex")):
            patterns = [str(p) for p in o.get(theirs) or []]
            if patterns:
                fields[ours] = patterns[0] if len(patterns) == 1 else patterns
        if o.get("fail_if_body_json_not_matches_cel"):
            fields["body_cel"] = str(o["fail_if_body_json_not_matches_cel"])
        if o.get("fail_if_body_json_matches_cel"):
            fields["body_not_cel"] = str(o["fail_if_body_json_matches_cel"])
        self._auth(o, fields)
        self._tls(o.get("tls_config"), fields, kind="http")
        self._ip(o, fields)
        self._drop(o, {"valid_status_codes", "method", "body", "fail_if_ssl", "fail_if_not_ssl", "valid_http_versions",
                       "proxy_url", "proxy_from_environment", "fail_if_header_matches", "fail_if_header_not_matches",
                       "follow_redirects", "no_follow_redirects", "enable_http2", "enable_http3", "no_proxy",
                       "body_size_limit",
                       "source_ip_address",
                       "headers", "fail_if_body_matches_regexp", "fail_if_body_not_matches_regexp", "basic_auth",
                       "fail_if_body_json_matches_cel", "fail_if_body_json_not_matches_cel", "compression",
                       "body_file",
                       "authorization", "bearer_token", "bearer_token_file", "oauth2", "tls_config"})
        return fields

    def _auth(self, o: Mapping[str, Any], fields: dict[str, Any]) -> None:
        basic = o.get("basic_auth")
        if isinstance(basic, Mapping):
            auth: dict[str, Any] = {"username": str(basic.get("username", ""))}
            if basic.get("password_file"):
                auth["password_file"] = str(basic["password_file"])
            elif basic.get("password") is not None:
                auth["password"] = self.secret("basic_auth.password", "password", basic["password"])
            fields["basic_auth"] = auth
        authorization = o.get("authorization")
        if isinstance(authorization, Mapping):
            if str(authorization.get("type", "Bearer")).lower() != "bearer":
                raise _Skip(f"authorization type {authorization.get('type')!r}: only Bearer is an option here")
            if authorization.get("credentials_file"):
                fields["bearer_token_file"] = str(authorization["credentials_file"])
            elif authorization.get("credentials") is not None:
                fields["bearer_token"] = self.secret("bearer_token", "token", authorization["credentials"])
        if o.get("bearer_token_file"):
            fields["bearer_token_file"] = str(o["bearer_token_file"])
        elif o.get("bearer_token") is not None:
            fields["bearer_token"] = self.secret("bearer_token", "token", o["bearer_token"])
        oauth2 = o.get("oauth2")
        if isinstance(oauth2, Mapping):
            ours: dict[str, Any] = {k: oauth2[k] for k in ("token_url", "client_id", "scopes") if oauth2.get(k)}
            params = {str(k): v for k, v in (oauth2.get("endpoint_params") or {}).items()}
            if params.pop("grant_type", "client_credentials") != "client_credentials":
                raise _Skip("oauth2 with a grant_type other than client_credentials")
            if params:
                ours["endpoint_params"] = params
            if oauth2.get("client_secret_file"):
                ours["client_secret_file"] = str(oauth2["client_secret_file"])
            elif oauth2.get("client_secret") is not None:
                ours["client_secret"] = self.secret("oauth2.client_secret", "client_secret", oauth2["client_secret"])
            fields["oauth2"] = ours

    def tcp(self, target: str) -> dict[str, Any]:
        o = self._options("tcp")
        host, port = _host_port(target)
        fields: dict[str, Any] = {"kind": "tcp", "host": host, "port": port}
        if o.get("tls"):
            fields["tls"] = True
        dialog = [self._step(step) for step in o.get("query_response") or []]
        dialog = [step for step in dialog if step]
        if len(dialog) == 1 and len(dialog[0]) == 1 and set(dialog[0]) <= {"send", "expect"}:
            fields.update(dialog[0])  # one send or one expect: the target's own
        elif dialog:
            fields["dialog"] = dialog
        self._tls(o.get("tls_config"), fields, kind="tcp")
        self._ip(o, fields)
        if o.get("source_ip_address"):
            fields["source_ip"] = str(o["source_ip_address"])
        self._drop(o, {"tls", "query_response", "tls_config", "source_ip_address"})
        return fields

    def icmp(self, target: str) -> dict[str, Any]:
        """blackbox_exporter sends one echo request and passes when its reply comes: one packet, none lost."""
        o = self._options("icmp")
        host = re.sub(r"^[a-z]+://", "", target).split("/", 1)[0]
        if host.startswith("["):  # [IPv6] or [IPv6]:port
            host = host[1:].split("]", 1)[0]
        elif host.count(":") == 1:  # host:port; a bare IPv6 address has more colons
            host = host.rsplit(":", 1)[0]
        fields: dict[str, Any] = {"kind": "icmp", "host": host, "packets": 1, "max_loss": 0}
        for theirs, ours in (("payload_size", "payload_size"), ("ttl", "ttl"), ("dont_fragment", "dont_fragment"),
                             ("source_ip_address", "source_ip")):
            if o.get(theirs):
                fields[ours] = o[theirs] if theirs != "source_ip_address" else str(o[theirs])
        self._ip(o, fields)
        self._drop(o, {"payload_size", "ttl", "dont_fragment", "source_ip_address"})
        return fields

    def _step(self, step: Any) -> dict[str, Any]:
        """A query_response step as a dialog step: blackbox_exporter ends what it sends with a newline."""
        if not isinstance(step, Mapping):
            raise _Skip("a query_response step is not a mapping")
        unknown = sorted(set(step) - {"expect", "send", "starttls", "labels", "expect_bytes"})
        if unknown:
            raise _Skip(f"query_response: {', '.join(unknown)}: not an option otel-health knows")
        if step.get("expect_bytes"):
            raise _Skip(f"query_response expect_bytes: {_NOT_YET['expect_bytes']}")
        if step.get("labels"):
            note = (f"module {self.name}: labels of a query_response step (its probe_expect_info series; the "
                    "match still decides the verdict)")
            if note not in self.notes:
                self.notes.append(note)
        ours: dict[str, Any] = {}
        if step.get("expect"):
            ours["expect"] = str(step["expect"])
        if step.get("send"):
            ours["send"] = f"{step['send']}\n"
        if step.get("starttls"):
            ours["starttls"] = True
        return ours

    def dns(self, target: str) -> dict[str, Any]:
        o = self._options("dns")
        if not o.get("query_name"):
            raise _Skip("no query_name")
        query_type = str(o.get("query_type", "ANY")).upper()  # blackbox's default: ANY, said
        host, port = _host_port(target, 53)
        fields: dict[str, Any] = {"kind": "dns", "server": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                                  "query_name": str(o["query_name"]), "query_type": query_type,
                                  "min_answers": 0}  # blackbox passes a NOERROR answer without records
        if str(o.get("query_class", "IN")).upper() != "IN":
            fields["query_class"] = str(o["query_class"]).upper()
        if o.get("valid_rcodes"):
            fields["valid_rcodes"] = [str(r) for r in o["valid_rcodes"]]
        if str(o.get("transport_protocol", "udp")) == "tcp":
            fields["transport"] = "tcp"
        if o.get("recursion_desired") is False:
            fields["recursion_desired"] = False
        for section in ("validate_answer_rrs", "validate_authority_rrs", "validate_additional_rrs"):
            if o.get(section):
                fields[section] = {k: list(v) for k, v in o[section].items() if v}
        self._ip(o, fields)
        self._drop(o, {"query_name", "query_type", "query_class", "valid_rcodes", "transport_protocol",
                       "recursion_desired", "validate_answer_rrs", "validate_authority_rrs",
                       "validate_additional_rrs", "tls_config"})
        return fields

    def grpc(self, target: str) -> dict[str, Any]:
        o = self._options("grpc")
        host, port = _host_port(target)
        fields: dict[str, Any] = {"kind": "grpc", "host": host, "port": port}
        if o.get("service"):
            fields["service"] = str(o["service"])
        if o.get("tls"):
            fields["tls"] = True
        metadata: dict[str, str] = {}
        for key, values in (o.get("metadata") or {}).items():  # Go's metadata.MD: a key, its values
            values = values if isinstance(values, list) else [values]
            if len(values) != 1:
                raise _Skip(f"metadata {key!r} with {len(values)} values: one value a key is sent here")
            name = str(key).lower()
            metadata[name] = self.secret("metadata", name, values[0]) if credential_header(name) else str(values[0])
        if metadata:
            fields["metadata"] = metadata
        self._tls(o.get("tls_config"), fields, kind="grpc")
        self._ip(o, fields)
        self._drop(o, {"service", "tls", "tls_config", "metadata"})
        return fields


def _bytes(value: Any) -> int:
    text = str(value).strip().upper()
    match = re.fullmatch(r"(\d+)\s*([KMGT]?I?B?)", text)
    if not match:
        raise _Skip(f"body_size_limit {value!r} is not a size")
    unit = match.group(2).rstrip("B").rstrip("I")
    return int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]


def _host_port(target: str, default: int | None = None) -> tuple[str, int]:
    text = re.sub(r"^[a-z]+://", "", target).split("/", 1)[0]
    match = re.fullmatch(r"\[?([^\]]+?)\]?(?::(\d+))?", text)
    if not match or (match.group(2) is None and default is None):
        raise ValueError(f"{target!r} is not HOST:PORT")
    return match.group(1), int(match.group(2)) if match.group(2) else int(default or 0)


def _name(target: str, taken: set[str]) -> str:
    host = re.sub(r"^[a-z]+://", "", target).split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    base = re.sub(r"[^A-Za-z0-9_.\-]+", "-", host).strip("-._")[:100] or "target"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    taken.add(name)
    return name


def _targets_of(job: Mapping[str, Any], base_dir: Path, notes: list[str]) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, str]]] = []
    groups = list(job.get("static_configs") or [])
    for sd in job.get("file_sd_configs") or []:
        for pattern in sd.get("files") or []:
            for path in sorted(glob.glob(str(base_dir / pattern))):
                text = Path(path).read_text(encoding="utf-8")
                groups += json.loads(text) if path.endswith(".json") else (yaml.safe_load(text) or [])
                shown = Path(path).relative_to(base_dir) if Path(path).is_relative_to(base_dir) else path
                notes.append(f"job {job.get('job_name')}: {shown} read once, its targets written out "
                             "(they are not followed as the file changes)")
    for group in groups:
        labels = {str(k): str(v) for k, v in (group.get("labels") or {}).items() if not str(k).startswith("__")}
        found += [(str(t), labels) for t in group.get("targets") or []]
    return found


def import_blackbox(blackbox_text: str, prometheus_text: str, *, base_dir: Path = Path()) -> Imported:
    """The targets of the blackbox jobs in ``prometheus_text``, with the modules of ``blackbox_text``."""
    modules = (yaml.safe_load(blackbox_text) or {}).get("modules") or {}
    config = yaml.safe_load(prometheus_text) or {}
    defaults = config.get("global") or {}
    default_interval = _duration(defaults.get("scrape_interval")) or "1m"
    out = Imported()
    taken: set[str] = set()

    def secret_for(target: str) -> Callable[[str, str, Any], str]:
        def secret(field_name: str, what: str, value: Any) -> str:
            text = str(value)
            if re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", text.strip()):
                return text.strip()
            variable = re.sub(r"^[^A-Z]+", "", re.sub(r"[^A-Z0-9]+", "_", f"{target}_{what}".upper())).strip("_")
            if variable not in out.variables:
                out.variables.append(variable)
            return f"${{{variable}}}"
        return secret

    skipped: dict[str, list[str]] = {}
    for job in config.get("scrape_configs") or []:
        params = job.get("params") or {}
        if job.get("metrics_path") != "/probe" and "module" not in params:
            continue
        job_name = str(job.get("job_name", "?"))
        module_names = params.get("module") or []
        module_name = str(module_names[0]) if module_names else ""
        if module_name not in modules:
            out.notes.append(f"job {job_name}: module {module_name or '(none)'} is not in the blackbox config")
            continue
        module = modules[module_name] or {}
        prober = str(module.get("prober", ""))
        interval = _duration(job.get("scrape_interval")) or default_interval
        # blackbox_exporter's own: the module's timeout, else the scrape's (Prometheus: 10s, at most the interval)
        scrape_timeout = _duration(job.get("scrape_timeout")) or _duration(defaults.get("scrape_timeout")) or \
            format_seconds(min(10.0, parse_duration(interval) or 10.0))
        timeout = _duration(module.get("timeout")) or scrape_timeout
        for target, labels in _targets_of(job, base_dir, out.notes):
            name = _name(target, taken)
            reader = _Module(module_name, module, secret_for(name))
            try:
                if prober == "http":
                    fields = reader.http(target if re.match(r"https?://", target) else f"http://{target}")
                elif prober in ("tcp", "dns", "grpc", "icmp"):
                    fields = getattr(reader, prober)(target)
                else:
                    raise _Skip(f"prober {prober or '(none)'} is not a kind otel-health has yet")
            except _Skip as skip:
                taken.discard(name)
                skipped.setdefault(f"module {module_name}: {skip}", []).append(target)
                continue
            except ValueError as exc:
                taken.discard(name)
                out.notes.append(f"job {job_name}: target {exc}")
                continue
            entry: dict[str, Any] = {"name": name, **fields, "interval": interval, "timeout": timeout}
            if labels:
                entry["labels"] = labels
            out.targets.append(entry)
            out.notes += [n for n in reader.notes if n not in out.notes]
    out.notes += [f"{why} (not imported: {', '.join(targets)})" for why, targets in skipped.items()]
    return out
