"""A real HTTP target for the tests, run as its own process.

    python -m tests.harness.httpd --port P [--tls-port P --cert C --key K] [--blackhole-port P]

Routes: /ok (JSON with a version), /status/{code}, /slow?ms=N, /hang, /flaky?key=K&fail=N,
/sequence?key=K&codes=200,500,... (one code per request, in turn),
/traced (remembers the request's traceparent; /seen lists them), /auth (basic auth against
$HTTPD_USER / $HTTPD_PASSWORD), /loop (redirects to itself), /drip (a byte a second), /endless (a body without end),
/reset (half a response, then a TCP reset), /gzip and /deflate (compressed JSON),
/chunked (a body in several chunks), /redirect?to=URL&code=N, /echo (any method: the
request's method, headers and body as JSON), /empty (204), /headers?Name=value (answers
with those headers). The blackhole port accepts connections and never answers.

OAuth2 (client credentials, per ``key``): /oauth/token?key=K&ttl=S (Basic auth as
$HTTPD_OAUTH_CLIENT / $HTTPD_PASSWORD; ``answer=garbage`` answers HTML), /oauth/calls?key=K
(how many token requests, and the last form), /oauth/resource?key=K (200 for a token issued
and not revoked, else 401), /oauth/revoke?key=K.

A shop for suites, per ``key``: POST /shop/login?key=K (JSON ``{"user": ...}``; a random token
in ``access_token``, an order id in ``order.id``, an ``X-Request-Id`` header and a ``sid``
cookie for /shop), GET /shop/orders/{id}?key=K (200 only with ``Authorization: Bearer`` the
token and the cookie), POST /shop/logout?key=K (the token ends), GET /shop/state?key=K
(sessions open, tokens issued, the traceparents seen).

Service discovery (Prometheus http_sd), per ``key``: PUT /sd/{key}?status=N&content_type=T
sets what GET /sd/{key} answers (the PUT's body, with an ETag; a matching If-None-Match gets
304; only with ``Authorization: Bearer`` $HTTPD_PASSWORD); GET /sd/{key}/log says how many
requests came, how many were answered 304 and how many lacked the token.

More TLS listeners: ``--extra-tls`` (another certificate), ``--mtls`` (a client certificate
signed by the given CA required), ``--tls12`` (at most TLS 1.2).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import socket
import ssl
import threading
from typing import Any

from aiohttp import web

_flaky: dict[str, int] = {}
_seen: list[dict[str, str]] = []


async def ok(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": "1.2.3", "build": {"commit": "abc"}})


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status\n")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.query.get("ms", "300")) / 1000)
    return web.Response(text="slow OK\n")


async def hang(_: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    return web.Response(text="late\n")


async def flaky(request: web.Request) -> web.Response:
    key = request.query.get("key", "default")
    fail = int(request.query.get("fail", "1"))
    _flaky[key] = _flaky.get(key, 0) + 1
    if _flaky[key] <= fail:
        return web.Response(status=503, text="not yet\n")
    return web.Response(text="OK\n")


_sequence: dict[str, int] = {}


async def sequence(request: web.Request) -> web.Response:
    """Answers with the codes in ``codes`` in turn, one per request, cycling; per ``key``."""
    codes = [int(c) for c in request.query["codes"].split(",")]
    key = request.query.get("key", "default")
    index = _sequence.get(key, 0)
    _sequence[key] = index + 1
    return web.Response(status=codes[index % len(codes)], text="seq\n")


async def traced(request: web.Request) -> web.Response:
    _seen.append({k.lower(): v for k, v in request.headers.items()})
    return web.Response(text="OK\n")


async def seen(_: web.Request) -> web.Response:
    return web.json_response(_seen)


_shops: dict[str, dict[str, Any]] = {}
_sd: dict[str, dict[str, Any]] = {}


async def sd_set(request: web.Request) -> web.Response:
    body = await request.read()
    _sd[request.match_info["key"]] = {
        "body": body, "status": int(request.query.get("status", "200")),
        "type": request.query.get("content_type", "application/json"),
        "etag": f'"{hash(body) & 0xFFFFFFFF:08x}"', "requests": 0, "not_modified": 0, "unauthorized": 0,
    }
    return web.Response(status=204)


async def sd_get(request: web.Request) -> web.Response:
    sd = _sd.setdefault(request.match_info["key"], {"body": b"[]", "status": 200, "type": "application/json",
                                                     "etag": '"0"', "requests": 0, "not_modified": 0,
                                                     "unauthorized": 0})
    sd["requests"] += 1
    if request.headers.get("Authorization") != f"Bearer {os.environ.get('HTTPD_PASSWORD', '')}":
        sd["unauthorized"] += 1
        return web.Response(status=401)
    if sd["status"] != 200:
        return web.Response(status=sd["status"])
    if request.headers.get("If-None-Match") == sd["etag"]:
        sd["not_modified"] += 1
        return web.Response(status=304, headers={"ETag": sd["etag"]})
    return web.Response(body=sd["body"], headers={"ETag": sd["etag"], "Content-Type": sd["type"]})


async def sd_log(request: web.Request) -> web.Response:
    sd = _sd.get(request.match_info["key"], {})
    return web.json_response({k: sd.get(k, 0) for k in ("requests", "not_modified", "unauthorized")})


def _shop(request: web.Request) -> dict[str, Any]:
    shop = _shops.setdefault(request.query.get("key", "default"),
                             {"open": set(), "issued": [], "traceparents": [], "cookies": {}})
    shop["traceparents"].append(request.headers.get("traceparent"))
    return shop


async def shop_login(request: web.Request) -> web.Response:
    shop = _shop(request)
    body = await request.json()
    if not isinstance(body, dict) or body.get("user") != "checker":
        return web.json_response({"error": "who are you?"}, status=403)
    token, sid = secrets.token_hex(16), secrets.token_hex(8)
    if request.query.get("tokens") == "base64":  # what base64 tokens hold: '+', '/' and '='
        token = f"{secrets.token_hex(8)}+/{secrets.token_hex(8)}=="
    shop["open"].add(token)
    shop["issued"].append(token)
    shop["cookies"][token] = sid
    response = web.json_response({"access_token": token, "order": {"id": 4711}},
                                 headers={"X-Request-Id": "req-42"})
    response.set_cookie("sid", sid, path="/shop", httponly=True)
    return response


async def shop_order(request: web.Request) -> web.Response:
    shop = _shop(request)
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token not in shop["open"] or request.cookies.get("sid") != shop["cookies"].get(token):
        return web.json_response({"error": "log in first"}, status=401)
    return web.json_response({"status": "ok", "id": int(request.match_info["id"]), "build": {"version": "3.1.0"}})


async def shop_logout(request: web.Request) -> web.Response:
    shop = _shop(request)
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token not in shop["open"]:
        return web.json_response({"error": "no such session"}, status=401)
    shop["open"].discard(token)
    return web.Response(status=204)


async def shop_state(request: web.Request) -> web.Response:
    shop = _shops.get(request.query.get("key", "default"), {"open": set(), "issued": [], "traceparents": []})
    return web.json_response({"open": len(shop["open"]), "issued": shop["issued"],
                              "traceparents": shop["traceparents"]})


async def auth(request: web.Request) -> web.Response:
    expected = base64.b64encode(f"{os.environ['HTTPD_USER']}:{os.environ['HTTPD_PASSWORD']}".encode()).decode()
    if request.headers.get("Authorization") != f"Basic {expected}":
        return web.Response(status=401, text="unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="t"'})
    return web.Response(text="OK\n")


async def drip(request: web.Request) -> web.StreamResponse:
    """Headers at once, then one byte a second, for a minute."""
    response = web.StreamResponse(headers={"Content-Length": "60"})
    await response.prepare(request)
    for _ in range(60):
        await response.write(b"x")
        await asyncio.sleep(1)
    return response


async def endless(request: web.Request) -> web.StreamResponse:
    """A body that never ends (chunked), as fast as it is read."""
    response = web.StreamResponse()
    await response.prepare(request)
    chunk = b"y" * 65536
    for _ in range(100_000):
        await response.write(chunk)
    return response


async def reset(request: web.Request) -> web.StreamResponse:
    """Half a response, then a TCP reset."""
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    await response.write(b"z" * 10)
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket
            import struct

            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return response


async def compressed(request: web.Request) -> web.Response:
    response = web.json_response({"status": "ok", "padding": "p" * 2000, "marker": "compressed-marker"})
    coding = web.ContentCoding.gzip if request.path == "/gzip" else web.ContentCoding.deflate
    response.enable_compression(coding)
    return response


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"first part, ", b"second part, ", b"chunked-marker"):
        await response.write(part)
        await asyncio.sleep(0.01)
    await response.write_eof()
    return response


async def redirect(request: web.Request) -> web.Response:
    code = int(request.query.get("code", "302"))
    return web.Response(status=code, headers={"Location": request.query["to"]})


async def echo(request: web.Request) -> web.Response:
    body = await request.text()
    return web.json_response({"method": request.method, "headers": {k.lower(): v for k, v in request.headers.items()},
                              "body": body, "path": request.raw_path, "peer": request.remote})


SAYINGS = {
    # JSON whose version is a lone surrogate (valid JSON, not valid Unicode), one with terminal
    # escapes and a line break, and a megabyte.
    "surrogate": '{"version": "\\ud800x"}',
    "escapes": '{"version": "\\u001b[31mred\\r\\nnext"}',
    "markup": '{"status": "ok", "version": "<script>alert(1)</script>"}',
    "huge": '{"version": "' + "v" * 1_000_000 + '"}',
}


async def says(request: web.Request) -> web.Response:
    return web.Response(text=SAYINGS[request.match_info["what"]], content_type="application/json")


async def filler(request: web.Request) -> web.Response:
    """``size`` bytes of one character (``fill``, default x) with no newline, then ``tail``; or,
    with ``nest``, that many nested JSON arrays."""
    nest = int(request.query.get("nest", "0"))
    if nest:
        return web.Response(text="[" * nest + "]" * nest, content_type="application/json")
    size = int(request.match_info["size"])
    text = request.query.get("fill", "x")[:1] * size + request.query.get("tail", "")
    return web.Response(text=text, content_type="text/plain")


async def empty(_: web.Request) -> web.Response:
    return web.Response(status=204)


PAGES = {
    # the text is written by the page's script: a browser that runs it sees "all systems go"
    "app": "<!doctype html><title>app</title><main><h1>Status</h1><div id=status>loading</div></main>"
           "<script>setTimeout(() => { const s = document.getElementById('status');"
           " s.textContent = 'all systems go'; s.className = 'ok'; }, 50)</script>",
    "broken": "<!doctype html><title>broken</title><p>shell rendered</p>"
              "<script>throw new Error('render failed: undefined is not a function')</script>",
    "hidden": "<!doctype html><title>hidden</title><div id=status class=ok style='display:none'>ok</div>",
    # an image that never comes: the load event never fires, DOMContentLoaded does
    "stuck": "<!doctype html><title>stuck</title><p>text first</p><img src='/hang'>",
}


async def page(request: web.Request) -> web.Response:
    """An HTML page (``PAGES``); ``whoami`` says a digest of the Authorization header it got."""
    name = request.match_info["name"]
    if name == "whoami":
        import hashlib

        said = request.headers.get("Authorization", "")
        digest = hashlib.sha256(said.encode()).hexdigest()[:12] if said else "nobody"
        return web.Response(text=f"<!doctype html><p>authorized as {digest}</p>", content_type="text/html")
    return web.Response(text=PAGES[name], content_type="text/html")


async def headers(request: web.Request) -> web.Response:
    return web.Response(text="headers\n", headers=dict(request.query))


_oauth_calls: dict[str, int] = {}
_oauth_forms: dict[str, dict[str, str]] = {}
_oauth_valid: dict[str, set[str]] = {}


async def oauth_token(request: web.Request) -> web.Response:
    key = request.query.get("key", "default")
    calls = _oauth_calls[key] = _oauth_calls.get(key, 0) + 1
    if request.query.get("answer") == "garbage":
        return web.Response(text="<html>sign-in page</html>", content_type="text/html")
    form = dict(await request.post())
    _oauth_forms[key] = {k: str(v) for k, v in form.items()}
    client = base64.b64encode(f"{os.environ['HTTPD_OAUTH_CLIENT']}:{os.environ['HTTPD_PASSWORD']}".encode()).decode()
    if request.headers.get("Authorization") != f"Basic {client}":
        return web.json_response({"error": "invalid_client", "error_description": "client authentication failed"},
                                 status=401)
    if form.get("grant_type") != "client_credentials":
        return web.json_response({"error": "unsupported_grant_type"}, status=400)
    token = f"tok-{key}-{calls}-{os.urandom(4).hex()}"
    _oauth_valid.setdefault(key, set()).add(token)
    return web.json_response({"access_token": token, "token_type": "Bearer",
                              "expires_in": int(request.query.get("ttl", "3600"))})


async def oauth_calls(request: web.Request) -> web.Response:
    key = request.query.get("key", "default")
    return web.json_response({"calls": _oauth_calls.get(key, 0), "form": _oauth_forms.get(key)})


async def oauth_resource(request: web.Request) -> web.Response:
    key = request.query.get("key", "default")
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer ") or given[7:] not in _oauth_valid.get(key, set()):
        return web.Response(status=401, text="token refused\n", headers={"WWW-Authenticate": "Bearer"})
    return web.Response(text="resource OK\n")


async def oauth_revoke(request: web.Request) -> web.Response:
    _oauth_valid.pop(request.query.get("key", "default"), None)
    return web.Response(text="revoked\n")


# RDAP (domain registrations): a bootstrap file naming this server's registries, and their domains.
RDAP_DOMAINS = {  # (registry, name): the RDAP answer, or a status
    ("test", "example.test"): {"objectClassName": "domain", "ldhName": "EXAMPLE.TEST", "events": [
        {"eventAction": "registration", "eventDate": "2001-05-04T12:00:00Z"},
        {"eventAction": "expiration", "eventDate": "2027-03-01T00:00:00Z"}]},
    ("test", "noexpiry.test"): {"objectClassName": "domain", "ldhName": "noexpiry.test",
                                "events": [{"eventAction": "registration", "eventDate": "2020-01-01T00:00:00Z"}]},
    ("test", "broken.test"): 500,
    ("cotest", "shop.co.test"): {"objectClassName": "domain", "ldhName": "shop.co.test", "events": [
        {"eventAction": "expiration", "eventDate": "2026-12-31T23:59:59+00:00"}]},
}
RDAP_CALLS: dict[str, int] = {}


async def rdap_bootstrap(request: web.Request) -> web.Response:
    base = f"http://{request.host}/rdap"
    return web.json_response({"version": "1.0", "publication": "2026-01-01T00:00:00Z", "services": [
        [["test"], [f"{base}/test/"]], [["co.test"], [f"{base}/cotest"]]
    ]})


async def rdap_domain(request: web.Request) -> web.Response:
    registry, name = request.match_info["registry"], request.match_info["name"].lower()
    RDAP_CALLS[name] = RDAP_CALLS.get(name, 0) + 1
    answer = RDAP_DOMAINS.get((registry, name), 404)
    if isinstance(answer, int):
        return web.json_response({"errorCode": answer}, status=answer, content_type="application/rdap+json")
    return web.json_response(answer, content_type="application/rdap+json")


async def rdap_calls(_: web.Request) -> web.Response:
    return web.json_response(RDAP_CALLS)


async def loop(_: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


async def blackhole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Never answers; lets go once the client has (else a long run exhausts descriptors)."""
    try:
        await asyncio.wait_for(reader.read(), 3600)  # until EOF: the client gave up
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


def _blocking_tls_server(port: int, context: ssl.SSLContext) -> None:
    """A TLS listener on OpenSSL's blocking sockets, one thread per connection: a refused
    handshake ends with the alert OpenSSL sends, as servers in the field do (asyncio's server
    aborts the connection instead), then a clean close. Answers any request with 200."""
    listener = socket.create_server(("127.0.0.1", port))

    def serve(conn: socket.socket) -> None:
        conn.settimeout(30)
        tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (OSError, ssl.SSLError):
            # The alert is sent; read what the client sent meanwhile, so the close is a FIN
            # and not a reset that would discard the alert on the client's side.
            with socket.socket(fileno=tls.detach()) as raw, contextlib.suppress(OSError):
                raw.settimeout(2)
                while raw.recv(4096):
                    pass
            return
        with tls, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                more = tls.recv(4096)
                if not more:
                    return
                data += more
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntls ok.\n")

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--blackhole-port", type=int)
    parser.add_argument("--extra-tls", action="append", default=[], help="PORT:CERT:KEY, more TLS listeners")
    parser.add_argument("--mtls", help="PORT:CERT:KEY:CLIENT_CA, a listener that requires a client certificate")
    parser.add_argument("--tls12", help="PORT:CERT:KEY, a listener that speaks at most TLS 1.2")
    args = parser.parse_args()
    app = web.Application(client_max_size=8 * 1024 * 1024)  # /sd/{key} takes answers of megabytes
    app.router.add_get("/ok", ok)
    app.router.add_put("/sd/{key}", sd_set)
    app.router.add_get("/sd/{key}", sd_get)
    app.router.add_get("/sd/{key}/log", sd_log)
    app.router.add_post("/shop/login", shop_login)
    app.router.add_get("/shop/orders/{id}", shop_order)
    app.router.add_post("/shop/logout", shop_logout)
    app.router.add_get("/shop/state", shop_state)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang", hang)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/traced", traced)
    app.router.add_get("/sequence", sequence)
    app.router.add_get("/seen", seen)
    app.router.add_get("/auth", auth)
    app.router.add_get("/loop", loop)
    app.router.add_get("/drip", drip)
    app.router.add_get("/endless", endless)
    app.router.add_get("/reset", reset)
    app.router.add_get("/gzip", compressed)
    app.router.add_get("/deflate", compressed)
    app.router.add_get("/chunked", chunked)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/empty", empty)
    app.router.add_get("/fill/{size}", filler)
    app.router.add_get("/says/{what}", says)
    app.router.add_get("/headers", headers)
    app.router.add_get("/page/{name}", page)
    app.router.add_post("/oauth/token", oauth_token)
    app.router.add_get("/oauth/calls", oauth_calls)
    app.router.add_get("/oauth/resource", oauth_resource)
    app.router.add_get("/oauth/revoke", oauth_revoke)
    app.router.add_get("/rdap/bootstrap.json", rdap_bootstrap)
    app.router.add_get("/rdap/{registry}/domain/{name}", rdap_domain)
    app.router.add_get("/rdap/calls", rdap_calls)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    if args.tls_port:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        await web.TCPSite(runner, "127.0.0.1", args.tls_port, ssl_context=context).start()
    for spec in args.extra_tls:
        port, cert, key = spec.split(":", 2)
        extra = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        extra.load_cert_chain(cert, key)
        await web.TCPSite(runner, "127.0.0.1", int(port), ssl_context=extra).start()
    if args.mtls:
        port, cert, key, client_ca = args.mtls.split(":", 3)
        mtls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
        mtls.verify_mode = ssl.CERT_REQUIRED
        mtls.load_cert_chain(cert, key)
        _blocking_tls_server(int(port), mtls)
    if args.tls12:
        port, cert, key = args.tls12.split(":", 2)
        old = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        old.load_cert_chain(cert, key)
        _blocking_tls_server(int(port), old)
    if args.blackhole_port:
        await asyncio.start_server(blackhole, "127.0.0.1", args.blackhole_port)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
